package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
//
// Re-authentication (KIP-368), as Kafka's SaslServerAuthenticator: with
// connections.max.reauth.ms (Config.ConnectionsMaxReauth) set, a session
// lasts that long, or until the credential expires if sooner (an
// OAUTHBEARER token's "exp"), and SaslAuthenticate v1+ tells the client
// its SessionLifetimeMs. Off (0, Kafka's default) sessions never expire,
// tokens or not, and the lifetime is 0. Before its session ends the client
// sends SaslHandshake and SaslAuthenticate again on the same connection,
// with the same mechanism; the new authentication must name the same
// principal, else it fails and the connection closes. It is checked
// against the credentials as they are then: a SCRAM user deleted, a PLAIN
// user removed from the users file, or an expired token is refused. A
// connection whose session has expired and sends anything but SaslHandshake
// is closed, as Kafka does. Sessions without an expiry cannot
// re-authenticate (ILLEGAL_SASL_STATE, as in Kafka). A connection starts
// at most one re-authentication a second (Kafka's KafkaChannel): a
// SaslHandshake sooner after the last re-authentication began is answered
// ILLEGAL_SASL_STATE, and the session goes on as it was.

// The SASL mechanisms (Kafka's sasl.enabled.mechanisms names).
const (
	mechanismPlain       = "PLAIN"
	mechanismOAuthBearer = "OAUTHBEARER"
)

// saslMechanismServed reports whether this broker serves mechanism.
func saslMechanismServed(mechanism string) bool {
	_, scram := scramMechanism(mechanism)
	return mechanism == mechanismPlain || mechanism == mechanismOAuthBearer || scram
}

func scramMechanism(mechanism string) (authn.ScramMechanism, bool) {
	m := authn.ScramMechanism(mechanism)
	return m, m == authn.ScramSHA256 || m == authn.ScramSHA512
}

// saslExchange is one mechanism's server side of one authentication.
type saslExchange interface {
	// step takes the client's next message and returns the answer. done
	// (with a nil error) means authenticated as principal, with a
	// credential that expires at expiry (zero: it does not). An error
	// fails the authentication; its text is logged, never sent.
	step(msg []byte) (reply []byte, done bool, principal authn.Principal, expiry time.Time, err error)
}

type plainExchange struct{ users *authn.PlainUsers }

func (e plainExchange) step(msg []byte) ([]byte, bool, authn.Principal, time.Time, error) {
	user, password, err := authn.ParsePlain(msg)
	if err != nil {
		return nil, false, authn.Principal{}, time.Time{}, err
	}
	if e.users == nil || !e.users.Verify(user, password) {
		return nil, false, authn.Principal{}, time.Time{}, errors.New("invalid username or password")
	}
	return nil, true, authn.User(user), time.Time{}, nil
}

type scramExchange struct{ server *authn.ScramServer }

func (e scramExchange) step(msg []byte) ([]byte, bool, authn.Principal, time.Time, error) {
	reply, done, principal, err := e.server.Step(msg)
	return reply, done, principal, time.Time{}, err
}

type oauthExchange struct{ server *authn.OAuthBearerServer }

func (e oauthExchange) step(msg []byte) ([]byte, bool, authn.Principal, time.Time, error) {
	reply, done, principal, err := e.server.Step(msg)
	return reply, done, principal, e.server.Expiry(), err
}

// newSASLExchange starts an authentication with mechanism (one of
// Config.SASLMechanisms).
func (s *Server) newSASLExchange(mechanism string) saslExchange {
	if m, scram := scramMechanism(mechanism); scram {
		server, _ := authn.NewScramServer(m, s.scramCredential(m))
		return scramExchange{server}
	}
	if mechanism == mechanismOAuthBearer {
		return oauthExchange{authn.NewOAuthBearerServer(s.cfg.OAuthBearer)}
	}
	return plainExchange{s.cfg.PlainUsers}
}

// saslState is a connection's progress through SASL (reader goroutine only).
type saslState struct {
	// mechanism is the handshake's (of the authentication in progress, or
	// of the last one); "" before the first.
	mechanism string
	// exchange is the authentication in progress, from a successful
	// SaslHandshake until it succeeds or fails; nil otherwise.
	exchange saslExchange
	// authenticated: the connection authenticated at least once, and acts
	// as its principal (clientConn.principal), also while it
	// re-authenticates.
	authenticated bool
	// rawToken: a SaslHandshake v0 succeeded, so the next frames are raw
	// SASL tokens, not Kafka requests, until authentication ends.
	rawToken bool
	// sessionExpiry is when the session ends unless the client
	// re-authenticates first (KIP-368); zero: never.
	sessionExpiry time.Time
	// reauthStarted is when the last re-authentication began (its
	// SaslHandshake); zero: none yet.
	reauthStarted time.Time
}

// minReauthInterval is how soon after a re-authentication began another
// may begin on the same connection (Kafka's KafkaChannel: once a second).
const minReauthInterval = time.Second

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

// saslNow is the clock of SASL sessions.
func (s *Server) saslNow() time.Time {
	if s.cfg.SASLClock != nil {
		return s.cfg.SASLClock()
	}
	return time.Now()
}

// admitSASL decides whether a request may be served on a SASL listener:
// before authentication, and while re-authenticating, only ApiVersions,
// SaslHandshake and SaslAuthenticate; once the session has expired only
// SaslHandshake, which begins a re-authentication. An error closes the
// connection.
func (c *clientConn) admitSASL(h requestHeader) error {
	if !c.sasl.authenticated || c.sasl.exchange != nil {
		if allowedBeforeAuth(h.key) {
			return nil
		}
		return fmt.Errorf("%s before SASL authentication completed (client %q): only ApiVersions, SaslHandshake and SaslAuthenticate are served until then", kmsg.NameForKey(h.key), h.clientID)
	}
	if expiry := c.sasl.sessionExpiry; !expiry.IsZero() && h.key != kmsg.SASLHandshake.Int16() {
		if now := c.server.saslNow(); !now.Before(expiry) {
			c.server.saslMetrics.expiredSessions.Inc()
			return fmt.Errorf("%s on an expired SASL session of %s (expired %s ago; client %q): clients re-authenticate before their session lifetime (KIP-368, --connections-max-reauth-ms or the token's expiry) ends", kmsg.NameForKey(h.key), c.principal(), now.Sub(expiry).Round(time.Millisecond), h.clientID)
		}
	}
	return nil
}

func handleSaslHandshake(c *clientConn, h requestHeader, req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.server.cfg.SASLMechanisms
	switch {
	case !c.listener.SecurityProtocol.SASL() || c.sasl.exchange != nil:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case c.sasl.authenticated && c.sasl.sessionExpiry.IsZero():
		// A session that never expires is not re-authenticated (Kafka).
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case c.sasl.authenticated && !c.sasl.reauthStarted.IsZero() && c.server.saslNow().Sub(c.sasl.reauthStarted) < minReauthInterval:
		// Kafka answers such a handshake as a request of an
		// authenticated connection: ILLEGAL_SASL_STATE, nothing closed.
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case c.sasl.authenticated && req.Mechanism != c.sasl.mechanism:
		// A re-authentication keeps its mechanism (Kafka's
		// REAUTH_BAD_MECHANISM): refused, and the connection closed.
		c.log.Info("SASL re-authentication with another mechanism refused", "mechanism", req.Mechanism, "previous", c.sasl.mechanism, "principal", c.principal().String())
		c.server.saslMetrics.observe(c.sasl.mechanism, true, false)
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.stopReading()
	case !slices.Contains(c.server.cfg.SASLMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		if c.sasl.authenticated {
			c.sasl.reauthStarted = c.server.saslNow()
		}
		c.sasl.mechanism = req.Mechanism
		c.sasl.exchange = c.server.newSASLExchange(req.Mechanism)
		c.sasl.rawToken = h.version == 0
	}
	return resp, nil
}

// handleRawToken authenticates with a raw SASL token (after SaslHandshake
// v0): the mechanism's answer as a raw frame (empty for PLAIN), a closed
// connection on failure.
func (c *clientConn) handleRawToken(token []byte) (net.Buffers, error) {
	reply, _, err := c.authenticate(token)
	if err != nil {
		return nil, fmt.Errorf("SASL %s authentication failed", c.sasl.mechanism)
	}
	if c.sasl.exchange == nil {
		c.sasl.rawToken = false
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(reply)))
	return net.Buffers{append(frame, reply...)}, nil
}

// authenticate takes the client's next message of the exchange in
// progress and returns the server's answer. When the exchange completes
// the connection acts as its principal and its session lasts lifetime
// (0: forever). An error is the failure the client is told (the reason is
// logged); the exchange is then over.
func (c *clientConn) authenticate(msg []byte) (reply []byte, lifetime time.Duration, err error) {
	reauthenticating := c.sasl.authenticated
	kind := "authentication"
	if reauthenticating {
		kind = "re-authentication"
	}
	reply, done, principal, expiry, failure := c.sasl.exchange.step(msg)
	if failure == nil && !done {
		return reply, 0, nil // more messages to come (SCRAM, a refused OAUTHBEARER token)
	}
	mechanism := c.sasl.mechanism
	c.sasl.exchange = nil
	shown := fmt.Errorf("Authentication failed during %s due to invalid credentials with SASL mechanism %s", kind, mechanism)
	if errors.Is(failure, authn.ErrInvalidToken) {
		shown = errors.New(authn.OAuthErrorStatus) // what Kafka tells OAUTHBEARER clients
	}
	if failure == nil && reauthenticating && principal != c.principal() {
		failure = fmt.Errorf("principal %s differs from the connection's", principal)
		shown = fmt.Errorf("Cannot change principals during re-authentication from %s: %s", c.principal(), principal)
	}
	c.server.saslMetrics.observe(mechanism, reauthenticating, failure == nil)
	if failure != nil {
		c.log.Info("SASL "+kind+" failed", "mechanism", mechanism, "principal", c.principal().String(), "reason", failure)
		return nil, 0, shown
	}
	now := c.server.saslNow()
	lifetime = c.server.sessionLifetime(now, expiry)
	c.sasl.sessionExpiry = time.Time{}
	if lifetime > 0 {
		c.sasl.sessionExpiry = now.Add(lifetime)
	}
	if !reauthenticating {
		c.sasl.authenticated = true
		c.setPrincipal(principal)
	}
	c.log.Debug("SASL "+kind+" succeeded", "mechanism", mechanism, "principal", principal.String(), "session_lifetime", lifetime)
	return reply, lifetime, nil
}

// sessionLifetime is how long a session authenticated at now lasts
// (KIP-368, as Kafka's SaslServerAuthenticator): 0 (forever) while
// connections.max.reauth.ms is off, whatever the credential; else that
// long, or until the credential expires (credentialExpiry, zero: never)
// if sooner. A credential already expired (accepted within the clock
// skew) gets 1 ms, not 0, which would mean "never".
func (s *Server) sessionLifetime(now, credentialExpiry time.Time) time.Duration {
	if s.cfg.ConnectionsMaxReauth <= 0 {
		return 0
	}
	lifetime := s.cfg.ConnectionsMaxReauth
	if !credentialExpiry.IsZero() {
		lifetime = min(lifetime, credentialExpiry.Sub(now))
	}
	return max(lifetime, time.Millisecond)
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
	if c.sasl.exchange == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate needs a successful SaslHandshake first"
		resp.ErrorMessage = &msg
		c.stopReading() // Kafka closes the connection after a SASL failure
		return resp, nil
	}
	reply, lifetime, err := c.authenticate(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		c.stopReading()
		return resp, nil
	}
	resp.SASLAuthBytes = reply
	resp.SessionLifetimeMillis = lifetime.Milliseconds()
	return resp, nil
}

// saslMetrics count authentications (Kafka's successful- and
// failed-(re)authentication-total, expired-connections-killed-count).
type saslMetrics struct {
	authentications *prometheus.CounterVec
	expiredSessions prometheus.Counter
}

func newSASLMetrics(reg prometheus.Registerer) *saslMetrics {
	m := &saslMetrics{
		authentications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "sasl_authentications_total",
			Help: "SASL authentications on client listeners, by mechanism, kind (authentication, reauthentication: KIP-368) and result (success, failure)."},
			[]string{"mechanism", "kind", "result"}),
		expiredSessions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Name: "sasl_expired_sessions_closed_total",
			Help: "Connections closed because a request came after their SASL session expired without re-authentication (KIP-368)."}),
	}
	if reg != nil {
		reg.MustRegister(m.authentications, m.expiredSessions)
	}
	return m
}

func (m *saslMetrics) observe(mechanism string, reauthentication, success bool) {
	kind, result := "authentication", "failure"
	if reauthentication {
		kind = "reauthentication"
	}
	if success {
		result = "success"
	}
	m.authentications.WithLabelValues(mechanism, kind, result).Inc()
}
