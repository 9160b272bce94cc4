package broker

import (
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
// SaslHandshake v0 (the SASL tokens following it raw, without Kafka
// framing) is not served: every client since Kafka 1.0 sends v1.

// The SASL mechanisms (Kafka's sasl.enabled.mechanisms names).
const (
	mechanismPlain = "PLAIN"
)

// saslState is a connection's progress through SASL (reader goroutine only).
type saslState struct {
	mechanism     string // chosen by SaslHandshake; "" before
	authenticated bool
}

func init() {
	register(1, 1, handleSaslHandshake)
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

func handleSaslHandshake(c *clientConn, _ requestHeader, req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.server.cfg.SASLMechanisms
	switch {
	case !c.listener.SecurityProtocol.SASL() || c.sasl.mechanism != "" || c.sasl.authenticated:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !slices.Contains(c.server.cfg.SASLMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		c.sasl.mechanism = req.Mechanism
	}
	return resp, nil
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
	var principal authn.Principal
	var ok bool
	switch c.sasl.mechanism {
	case mechanismPlain:
		user, password, err := authn.ParsePlain(req.SASLAuthBytes)
		if err == nil && c.server.cfg.PlainUsers.Verify(user, password) {
			principal, ok = authn.User(user), true
		}
	}
	if !ok {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: invalid username or password"
		resp.ErrorMessage = &msg
		c.log.Info("SASL authentication failed", "mechanism", c.sasl.mechanism)
		c.stopReading()
		return resp, nil
	}
	c.sasl.authenticated = true
	c.principal = principal
	return resp, nil
}
