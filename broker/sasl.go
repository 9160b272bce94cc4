package broker

import (
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

// saslState is a connection's progress through SASL (reader goroutine only).
type saslState struct {
	mechanism     string // chosen by SaslHandshake; "" before
	authenticated bool
	// rawToken: a SaslHandshake v0 succeeded, so the next frame is a raw
	// SASL token, not a Kafka request.
	rawToken bool
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
// v0): an empty frame on success, a closed connection on failure.
func (c *clientConn) handleRawToken(token []byte) (net.Buffers, error) {
	c.sasl.rawToken = false
	if !c.authenticate(token) {
		return nil, fmt.Errorf("SASL %s authentication failed", c.sasl.mechanism)
	}
	return net.Buffers{make([]byte, 4)}, nil
}

// authenticate checks the token of the handshake's mechanism and, when it
// is good, makes the connection act as its principal.
func (c *clientConn) authenticate(token []byte) bool {
	var principal authn.Principal
	var ok bool
	switch c.sasl.mechanism {
	case mechanismPlain:
		user, password, err := authn.ParsePlain(token)
		if err == nil && c.server.cfg.PlainUsers.Verify(user, password) {
			principal, ok = authn.User(user), true
		}
	}
	if !ok {
		c.log.Info("SASL authentication failed", "mechanism", c.sasl.mechanism)
		return false
	}
	c.sasl.authenticated = true
	c.principal = principal
	return true
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
	if !c.authenticate(req.SASLAuthBytes) {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: invalid username or password"
		resp.ErrorMessage = &msg
		c.stopReading()
	}
	return resp, nil
}
