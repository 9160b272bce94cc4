package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/brokertest"
)

// startSASL starts a broker whose CLIENT listener is SASL_PLAINTEXT with
// PLAIN users alice (password "alice-secret") and bob; replication uses a
// PLAINTEXT INTERNAL listener.
func startSASL(t *testing.T) *brokertest.Node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("# PLAIN users\nalice:alice-secret\nbob:pass:with:colons\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := authn.LoadPlainUsers(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.PlainUsers = users
	})
}

func TestSASLPlainWithFranzGo(t *testing.T) {
	n := startSASL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := n.Client(kgo.SASL(plain.Auth{User: "bob", Pass: "pass:with:colons"}.AsMechanism()), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if ps := n.Server.ConnectionPrincipals(); !slices.Contains(ps, authn.User("bob")) {
		t.Fatalf("principals %v, want User:bob", ps)
	}

	wrong := n.Client(kgo.SASL(plain.Auth{User: "alice", Pass: "guess"}.AsMechanism()), kgo.RetryTimeout(time.Second))
	if err := wrong.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	unknown := n.Client(kgo.SASL(plain.Auth{User: "mallory", Pass: "alice-secret"}.AsMechanism()), kgo.RetryTimeout(time.Second))
	if err := unknown.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("unknown user: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// requestFrame is req's request frame (size prefix included) as a client
// encodes it, with correlationID and a null client id.
func requestFrame(req kmsg.Request, correlationID int32) []byte {
	return kmsg.NewRequestFormatter().AppendRequest(nil, req, correlationID)
}

// rawConn is a Kafka connection without a client library.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	id int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

// roundTrip sends req and reads its response into resp; io.EOF when the
// broker closed the connection instead.
func (r *rawConn) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	r.id++
	if _, err := r.nc.Write(requestFrame(req, r.id)); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(r.nc, size[:]); err != nil {
		return err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.nc, buf); err != nil {
		return err
	}
	buf = buf[4:] // correlation id
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		buf = buf[1:]
	}
	return resp.ReadFrom(buf)
}

func TestSASLRequestsBeforeAuthenticationCloseTheConnection(t *testing.T) {
	n := startSASL(t)
	c := dialRaw(t, n.Addr)
	versions := kmsg.NewPtrApiVersionsRequest()
	if err := c.roundTrip(versions, kmsg.NewPtrApiVersionsResponse()); err != nil {
		t.Fatalf("ApiVersions before authentication: %v", err)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(4)
	if err := c.roundTrip(meta, kmsg.NewPtrMetadataResponse()); !errors.Is(err, io.EOF) {
		t.Fatalf("Metadata before authentication: %v, want the connection closed", err)
	}
}

func TestSASLUnknownMechanismAndIllegalState(t *testing.T) {
	n := startSASL(t)
	c := dialRaw(t, n.Addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "GSSAPI"
	resp := kmsg.NewPtrSASLHandshakeResponse()
	if err := c.roundTrip(hs, resp); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || !slices.Equal(resp.SupportedMechanisms, []string{"PLAIN"}) {
		t.Fatalf("GSSAPI: code %d, mechanisms %v; want UNSUPPORTED_SASL_MECHANISM and [PLAIN]", resp.ErrorCode, resp.SupportedMechanisms)
	}
	// SaslAuthenticate without a successful handshake: ILLEGAL_SASL_STATE.
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.SetVersion(1)
	auth.SASLAuthBytes = []byte("\x00alice\x00alice-secret")
	aresp := kmsg.NewPtrSASLAuthenticateResponse()
	if err := c.roundTrip(auth, aresp); err != nil {
		t.Fatal(err)
	}
	if aresp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("authenticate before handshake: code %d, want ILLEGAL_SASL_STATE", aresp.ErrorCode)
	}

	// A good exchange, byte by byte; a second handshake is illegal.
	c = dialRaw(t, n.Addr)
	hs.Mechanism = "PLAIN"
	if err := c.roundTrip(hs, resp); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("PLAIN handshake: %v code %d", err, resp.ErrorCode)
	}
	if err := c.roundTrip(auth, aresp); err != nil || aresp.ErrorCode != 0 {
		t.Fatalf("PLAIN authenticate: %v code %d", err, aresp.ErrorCode)
	}
	if err := c.roundTrip(hs, resp); err != nil || resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("second handshake: %v code %d, want ILLEGAL_SASL_STATE", err, resp.ErrorCode)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(4)
	if err := c.roundTrip(meta, kmsg.NewPtrMetadataResponse()); err != nil {
		t.Fatalf("Metadata after authentication: %v", err)
	}
}

// rawToken sends a SASL token without Kafka framing (after SaslHandshake
// v0) and returns the broker's raw answer.
func (r *rawConn) rawToken(token []byte) ([]byte, error) {
	if _, err := r.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...)); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(r.nc, size[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r.nc, buf)
	return buf, err
}

// TestSASLHandshakeV0RawToken: librdkafka's flow, SaslHandshake v0 then
// the PLAIN token raw (KIP-43).
func TestSASLHandshakeV0RawToken(t *testing.T) {
	n := startSASL(t)
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"\x00alice\x00alice-secret", true}, {"\x00alice\x00wrong", false}, {"garbage", false}} {
		c := dialRaw(t, n.Addr)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.SetVersion(0)
		hs.Mechanism = "PLAIN"
		resp := kmsg.NewPtrSASLHandshakeResponse()
		if err := c.roundTrip(hs, resp); err != nil || resp.ErrorCode != 0 {
			t.Fatalf("handshake v0: %v code %d", err, resp.ErrorCode)
		}
		answer, err := c.rawToken([]byte(tc.token))
		if !tc.ok {
			// Closed: EOF, or a reset when the broker closed with our
			// bytes unread; never a timeout.
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("token %q: answer %q err %v, want the connection closed", tc.token, answer, err)
			}
			continue
		}
		if err != nil || len(answer) != 0 {
			t.Fatalf("token %q: answer %q err %v, want an empty frame", tc.token, answer, err)
		}
		meta := kmsg.NewPtrMetadataRequest()
		meta.SetVersion(4)
		if err := c.roundTrip(meta, kmsg.NewPtrMetadataResponse()); err != nil {
			t.Fatalf("Metadata after raw authentication: %v", err)
		}
	}
}
