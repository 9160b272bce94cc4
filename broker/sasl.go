package broker

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/authn"
)

// SASL on SASL_PLAINTEXT and SASL_SSL listeners (Kafka's KIP-43 and
// KIP-152): the client sends SaslHandshake naming a mechanism, then
// SaslAuthenticate with the mechanism's messages. Until authentication
// completes only ApiVersions, SaslHandshake and SaslAuthenticate are
// served; any other request closes the connection, as in Kafka.
//
// After SaslHandshake v0 (librdkafka still sends it when it is advertised)
// the client sends its SASL token raw, as one size-prefixed frame without a
// Kafka request header (KIP-43); the broker answers a success with an
// empty frame (four zero bytes) and a failure by closing the connection.

// The SASL mechanisms (Kafka's sasl.enabled.mechanisms names).
const (
	mechanismPlain = "PLAIN"
)

// saslMechanismServed reports whether this broker serves mechanism.
func saslMechanismServed(mechanism string) bool {
	_, scram := scramMechanism(mechanism)
	return mechanism == mechanismPlain || scram
}

func scramMechanism(mechanism string) (authn.ScramMechanism, bool) {
	m := authn.ScramMechanism(mechanism)
	return m, m == authn.ScramSHA256 || m == authn.ScramSHA512
}

// saslState is a connection's progress through SASL (reader goroutine only).
type saslState struct {
	mechanism     string // chosen by SaslHandshake; "" before
	authenticated bool
	// rawToken: a SaslHandshake v0 succeeded, so the next frames are raw
	// SASL tokens, not Kafka requests, until authentication ends.
	rawToken bool
	// scram is the SCRAM exchange in progress (SCRAM mechanisms).
	scram *authn.ScramServer
}

func init() {
	register(0, 1, handleSaslHandshake)
	register(0, 2, handleSaslAuthenticate)
}

// allowedBeforeAuth reports whether a request with key may be served on a
// SASL listener before authentication.
func allowedBeforeAuth(key int16) bool {
	switch key {
	case apiKeyVersions, kmsg.SASLHandshake.Int16(), kmsg.SASLAuthenticate.Int16():
		return true
	}
	return false
}

func handleSaslHandshake(c *clientConn, h requestHeader, req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.server.cfg.SASLMechanisms
	switch {
	case !c.listener.SecurityProtocol.SASL() || c.sasl.mechanism != "" || c.sasl.authenticated:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !slices.Contains(c.server.cfg.SASLMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		c.sasl.mechanism = req.Mechanism
		c.sasl.rawToken = h.version == 0
	}
	return resp, nil
}

// handleRawToken authenticates with a raw SASL token (after SaslHandshake
// v0): the mechanism's answer as a raw frame (empty for PLAIN), a closed
// connection on failure.
func (c *clientConn) handleRawToken(token []byte) (net.Buffers, error) {
	reply, ok := c.authenticate(token)
	if !ok {
		return nil, fmt.Errorf("SASL %s authentication failed", c.sasl.mechanism)
	}
	if c.sasl.authenticated {
		c.sasl.rawToken = false
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(reply)))
	return net.Buffers{append(frame, reply...)}, nil
}

// authenticate takes the client's next token of the handshake's
// mechanism: it returns the server's answer and false when authentication
// failed. When the exchange is complete the connection acts as its
// principal (c.sasl.authenticated); SCRAM takes two tokens.
func (c *clientConn) authenticate(token []byte) ([]byte, bool) {
	var principal authn.Principal
	var reply []byte
	var failure error // why SCRAM failed (never holds a password)
	ok := false
	if m, scram := scramMechanism(c.sasl.mechanism); scram {
		if c.sasl.scram == nil {
			c.sasl.scram, _ = authn.NewScramServer(m, c.server.scramCredential(m))
		}
		var done bool
		var err error
		reply, done, principal, err = c.sasl.scram.Step(token)
		if err == nil && !done {
			return reply, true // server-first message; the client's final comes next
		}
		ok, failure = err == nil, err
	} else if c.sasl.mechanism == mechanismPlain {
		user, password, err := authn.ParsePlain(token)
		if err == nil && c.server.cfg.PlainUsers != nil && c.server.cfg.PlainUsers.Verify(user, password) {
			principal, ok = authn.User(user), true
		}
	}
	if !ok {
		c.log.Info("SASL authentication failed", "mechanism", c.sasl.mechanism, "reason", failure)
		return nil, false
	}
	c.sasl.authenticated = true
	c.principal = principal
	return reply, true
}

// scramCredential is a user's SCRAM credential from the metadata quorum.
func (s *Server) scramCredential(m authn.ScramMechanism) func(user string) (authn.ScramCredential, bool) {
	return func(user string) (authn.ScramCredential, bool) {
		c, ok := s.cfg.Metadata.State().ScramCredential(user, m.Number())
		if !ok {
			return authn.ScramCredential{}, false
		}
		return authn.ScramCredential{Mechanism: m, Salt: c.Salt, Iterations: int(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey}, true
	}
}

func handleSaslAuthenticate(c *clientConn, _ requestHeader, req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if c.sasl.mechanism == "" || c.sasl.authenticated {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate needs a SaslHandshake first, once per connection"
		resp.ErrorMessage = &msg
		c.stopReading() // Kafka closes the connection after a SASL failure
		return resp, nil
	}
	reply, ok := c.authenticate(req.SASLAuthBytes)
	if !ok {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: invalid username or password"
		resp.ErrorMessage = &msg
		c.stopReading()
		return resp, nil
	}
	resp.SASLAuthBytes = reply
	return resp, nil
}
