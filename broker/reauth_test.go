package broker_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// reauthBroker is a broker whose SASL_PLAINTEXT listener offers PLAIN
// (alice, bob) and OAUTHBEARER (tokens of issuer), with sessions of
// maxReauth, on clock.
type reauthBroker struct {
	*brokertest.Node
	clock     *fakeClock
	issuer    *authntest.Issuer
	usersFile string
}

func startReauth(t *testing.T, maxReauth time.Duration) *reauthBroker {
	t.Helper()
	dir := t.TempDir()
	b := &reauthBroker{clock: &fakeClock{now: time.Now()}, issuer: authntest.NewIssuer(t, "k1"), usersFile: filepath.Join(dir, "users")}
	if err := os.WriteFile(b.usersFile, []byte("alice:alice-secret\nbob:bob-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := authn.LoadPlainUsers(b.usersFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	oauth, err := authn.NewOAuthValidator(authn.OAuthConfig{JWKSFile: b.issuer.WriteJWKS(t, dir), ClockSkew: -1, Now: b.clock.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Node = brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.SASLMechanisms = []string{"PLAIN", "OAUTHBEARER"}
		c.PlainUsers = users
		c.OAuthBearer = oauth
		c.ConnectionsMaxReauth = maxReauth
		c.SASLClock = b.clock.Now
	})
	return b
}

// token is a token for subject issued now by the broker's clock.
func (b *reauthBroker) token(t *testing.T, subject string, ttl time.Duration) string {
	now := b.clock.Now()
	return b.issuer.Token(t, map[string]any{"sub": subject, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
}

// saslLogin runs SaslHandshake v1 and one SaslAuthenticate v2 with msg.
func (r *rawConn) saslLogin(mechanism string, msg []byte) (*kmsg.SASLHandshakeResponse, *kmsg.SASLAuthenticateResponse, error) {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mechanism
	hresp := kmsg.NewPtrSASLHandshakeResponse()
	if err := r.roundTrip(hs, hresp); err != nil || hresp.ErrorCode != 0 {
		return hresp, nil, err
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.SetVersion(2)
	auth.SASLAuthBytes = msg
	aresp := kmsg.NewPtrSASLAuthenticateResponse()
	err := r.roundTrip(auth, aresp)
	return hresp, aresp, err
}

func (r *rawConn) plainLogin(user, password string) *kmsg.SASLAuthenticateResponse {
	r.t.Helper()
	hresp, aresp, err := r.saslLogin("PLAIN", []byte("\x00"+user+"\x00"+password))
	if err != nil || hresp.ErrorCode != 0 {
		r.t.Fatalf("PLAIN login as %s: %v (handshake code %d)", user, err, hresp.ErrorCode)
	}
	return aresp
}

func (r *rawConn) metadata() error {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(4)
	return r.roundTrip(meta, kmsg.NewPtrMetadataResponse())
}

// closed reports whether err means the broker closed the connection.
func closed(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded) &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset"))
}

// TestSASLReauthExpiredSessionIsClosed: with connections.max.reauth.ms
// the client is told its session lifetime; a request after it closes the
// connection; re-authenticating before it extends the session.
func TestSASLReauthExpiredSessionIsClosed(t *testing.T) {
	b := startReauth(t, 10*time.Second)

	c := dialRaw(t, b.Addr)
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 10000 {
		t.Fatalf("login: code %d lifetime %d ms, want 0 and 10000", resp.ErrorCode, resp.SessionLifetimeMillis)
	}
	b.clock.Advance(9 * time.Second)
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata within the session: %v", err)
	}
	b.clock.Advance(time.Second)
	if err := c.metadata(); !closed(err) {
		t.Fatalf("Metadata once the session expired: %v, want the connection closed", err)
	}

	// Re-authenticating (same principal) before the end renews it.
	c = dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	b.clock.Advance(9 * time.Second)
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 10000 {
		t.Fatalf("re-authentication: code %d lifetime %d", resp.ErrorCode, resp.SessionLifetimeMillis)
	}
	b.clock.Advance(9 * time.Second) // 18 s after the first login
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata after re-authentication: %v", err)
	}
	// The session has expired, and the client re-authenticates then: a
	// SaslHandshake is what an expired session may still send.
	b.clock.Advance(time.Minute)
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication after expiry: code %d", resp.ErrorCode)
	}
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata after re-authenticating an expired session: %v", err)
	}
}

// TestSASLReauthRefusals: a re-authentication as another principal, of a
// user removed meanwhile, or with another mechanism, fails and closes the
// connection; requests between the re-authentication's handshake and its
// authenticate close it too.
func TestSASLReauthRefusals(t *testing.T) {
	b := startReauth(t, time.Hour)

	c := dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	_, resp, err := c.saslLogin("PLAIN", []byte("\x00bob\x00bob-secret"))
	if err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, "Cannot change principals") {
		t.Fatalf("re-authentication as bob: %v %+v, want SASL_AUTHENTICATION_FAILED about the principal", err, resp)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("after a refused re-authentication: %v, want the connection closed", err)
	}

	c = dialRaw(t, b.Addr)
	c.plainLogin("bob", "bob-secret")
	if err := os.WriteFile(b.usersFile, []byte("alice:alice-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(b.usersFile, later, later); err != nil {
		t.Fatal(err)
	}
	if err := c.metadata(); err != nil {
		t.Fatalf("bob's session goes on until it re-authenticates: %v", err)
	}
	if _, resp, err := c.saslLogin("PLAIN", []byte("\x00bob\x00bob-secret")); err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication of a removed user: %v %+v, want SASL_AUTHENTICATION_FAILED", err, resp)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("after the removed user's re-authentication: %v, want the connection closed", err)
	}

	c = dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	hresp, _, err := c.saslLogin("OAUTHBEARER", nil)
	if err != nil || hresp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("re-authentication with another mechanism: %v code %d, want UNSUPPORTED_SASL_MECHANISM", err, hresp.ErrorCode)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("after a change of mechanism: %v, want the connection closed", err)
	}

	c = dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "PLAIN"
	if err := c.roundTrip(hs, kmsg.NewPtrSASLHandshakeResponse()); err != nil {
		t.Fatal(err)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("Metadata in the middle of a re-authentication: %v, want the connection closed", err)
	}
}

// TestSASLReauthOff: without connections.max.reauth.ms sessions never
// expire, a token's expiry notwithstanding, and cannot re-authenticate.
func TestSASLReauthOff(t *testing.T) {
	b := startReauth(t, 0)
	c := dialRaw(t, b.Addr)
	token := b.token(t, "carol", 5*time.Second)
	_, resp, err := c.saslLogin("OAUTHBEARER", []byte("n,,\x01auth=Bearer "+token+"\x01\x01"))
	if err != nil || resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 0 {
		t.Fatalf("OAUTHBEARER login: %v %+v, want success with lifetime 0", err, resp)
	}
	b.clock.Advance(time.Hour)
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata an hour later: %v", err)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "OAUTHBEARER"
	hresp := kmsg.NewPtrSASLHandshakeResponse()
	if err := c.roundTrip(hs, hresp); err != nil || hresp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("re-authentication without session expiry: %v code %d, want ILLEGAL_SASL_STATE", err, hresp.ErrorCode)
	}
}

// TestSASLOAuthBearerSession: the token's expiry bounds the session; an
// expired token is answered with Kafka's invalid_token challenge, then
// SASL_AUTHENTICATION_FAILED; a fresh token re-authenticates.
func TestSASLOAuthBearerSession(t *testing.T) {
	b := startReauth(t, time.Minute)
	login := func(c *rawConn, token string) (*kmsg.SASLAuthenticateResponse, error) {
		_, resp, err := c.saslLogin("OAUTHBEARER", []byte("n,,\x01auth=Bearer "+token+"\x01\x01"))
		return resp, err
	}
	c := dialRaw(t, b.Addr)
	token := b.token(t, "carol", 5*time.Second)
	resp, err := login(c, token)
	if err != nil || resp.ErrorCode != 0 || resp.SessionLifetimeMillis <= 0 || resp.SessionLifetimeMillis > 5000 {
		t.Fatalf("login: %v %+v, want a lifetime up to the token's 5 s", err, resp)
	}
	b.clock.Advance(4 * time.Second)
	fresh := b.token(t, "carol", time.Hour)
	if resp, err := login(c, fresh); err != nil || resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 60000 {
		t.Fatalf("re-authentication with a fresh token: %v %+v, want the 60 s of connections.max.reauth.ms", err, resp)
	}
	b.clock.Advance(10 * time.Second) // past the first token's expiry
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata on the renewed session: %v", err)
	}

	// Re-authenticating with the expired token: the challenge, then the failure.
	b.clock.Advance(40 * time.Second)
	resp, err = login(c, token)
	if err != nil || resp.ErrorCode != 0 || string(resp.SASLAuthBytes) != authn.OAuthErrorStatus {
		t.Fatalf("expired token: %v %+v, want the invalid_token challenge", err, resp)
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.SetVersion(2)
	auth.SASLAuthBytes = []byte{1}
	final := kmsg.NewPtrSASLAuthenticateResponse()
	if err := c.roundTrip(auth, final); err != nil || final.ErrorCode != kerr.SaslAuthenticationFailed.Code || final.ErrorMessage == nil || *final.ErrorMessage != authn.OAuthErrorStatus {
		t.Fatalf("after the challenge: %v %+v, want SASL_AUTHENTICATION_FAILED %s", err, final, authn.OAuthErrorStatus)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("after the failed re-authentication: %v, want the connection closed", err)
	}
}

// TestSASLPrincipalReadDuringReauthentication: a connection's principal
// may be read by the server (here ConnectionPrincipals) while the
// connection authenticates and re-authenticates: -race finds no data race.
func TestSASLPrincipalReadDuringReauthentication(t *testing.T) {
	b := startReauth(t, 10*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				b.Server.ConnectionPrincipals()
			}
		}
	}()
	c := dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	b.clock.Advance(5 * time.Second)
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication: code %d", resp.ErrorCode)
	}
	close(stop)
	wg.Wait()
	if ps := b.Server.ConnectionPrincipals(); !slices.Contains(ps, authn.User("alice")) {
		t.Fatalf("connection principals %v, want alice's among them", ps)
	}
}

// TestSASLReauthAtMostOncePerSecond: as in Kafka, a connection begins at
// most one re-authentication a second; a SaslHandshake sooner is answered
// ILLEGAL_SASL_STATE and the session goes on; a second later it may.
func TestSASLReauthAtMostOncePerSecond(t *testing.T) {
	b := startReauth(t, 10*time.Second)
	c := dialRaw(t, b.Addr)
	c.plainLogin("alice", "alice-secret")
	// The first re-authentication may come at once.
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 {
		t.Fatalf("first re-authentication: code %d", resp.ErrorCode)
	}
	b.clock.Advance(999 * time.Millisecond)
	hresp, _, err := c.saslLogin("PLAIN", []byte("\x00alice\x00alice-secret"))
	if err != nil || hresp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("re-authentication 999 ms after the last: %v code %d, want ILLEGAL_SASL_STATE", err, hresp.ErrorCode)
	}
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata after the refused handshake: %v, want the session to go on", err)
	}
	b.clock.Advance(time.Millisecond)
	if resp := c.plainLogin("alice", "alice-secret"); resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 10000 {
		t.Fatalf("re-authentication a second after the last: code %d lifetime %d", resp.ErrorCode, resp.SessionLifetimeMillis)
	}
}
