package broker_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/brokertest"
)

// FuzzSASL is the unauthenticated side of FuzzHandlers: on a SASL_PLAINTEXT
// listener (PLAIN and SCRAM), each input is a fresh connection and a few
// steps from the input — SaslHandshake v0/v1 of a mechanism, SaslAuthenticate
// of a token (random bytes, or PLAIN and SCRAM messages built of odd
// parts: empty names, bad escapes, wrong nonces, bad base64), a raw token
// (after a v0 handshake), ApiVersions, Metadata — and checks that each
// step is answered with a response that decodes at its version (or a raw
// token with a raw reply), or the connection is closed, within
// handlerFuzzTimeout, and that the broker does not crash.
func FuzzSASL(f *testing.F) {
	sf := startSASLFuzzer(f)
	f.Add([]byte{0, 1, 0, 1, 1, 1, 3})       // handshake v1 PLAIN, authenticate PLAIN
	f.Add([]byte{0, 1, 1, 1, 1, 2, 1, 1, 3}) // handshake v1 SCRAM-SHA-256, client-first, client-final
	f.Add([]byte{0, 0, 0, 2, 1})             // handshake v0 PLAIN, raw token
	f.Fuzz(func(t *testing.T, input []byte) {
		sf.tb = t
		defer func() { sf.tb = f }()
		sf.run(input)
	})
}

// TestSASLHostileExchanges is FuzzSASL on seeded random inputs.
func TestSASLHostileExchanges(t *testing.T) {
	sf := startSASLFuzzer(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		input := make([]byte, rng.IntN(120))
		for j := range input {
			input[j] = byte(rng.Uint32())
		}
		sf.run(input)
		if t.Failed() {
			t.Fatalf("input %x", input)
		}
	}
}

type saslFuzzer struct {
	tb   testing.TB
	node *brokertest.Node
}

func startSASLFuzzer(tb testing.TB) *saslFuzzer {
	path := filepath.Join(tb.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice:alice-secret\nbob:pass:with:colons\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	users, err := authn.LoadPlainUsers(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	n := brokertest.Start(tb, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.SASLMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
		c.PlainUsers = users
	})
	// A SCRAM user, so that a client-first names someone.
	internal := &handlerFuzzer{tb: tb, node: n, addr: n.Server.Addr("INTERNAL").String()}
	defer internal.closeConn()
	alter := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for _, m := range []int8{1, 2} {
		alter.Upsertions = append(alter.Upsertions, kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
			Name: "alice", Mechanism: m, Iterations: 4096, Salt: []byte("salt"), SaltedPassword: make([]byte, 32*int(m)),
		})
	}
	internal.mustRoundTrip(alter)
	return &saslFuzzer{tb: tb, node: n}
}

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER", "", "plain", "SCRAM-SHA-1"}

// run plays one input on a new connection.
func (sf *saslFuzzer) run(input []byte) {
	f := &filler{in: input, known: &knownValues{}}
	hf := &handlerFuzzer{tb: sf.tb, node: sf.node}
	defer hf.closeConn()
	var (
		mechanism   string
		raw         bool   // after a successful v0 handshake: raw tokens until the exchange ends
		rawLeft     int    // raw tokens left in the exchange
		serverFirst string // SCRAM: the server's first message, for the client-final
	)
	for step := 0; step < 8 && len(f.in) > 0; step++ {
		if raw {
			reply, ok := sf.rawToken(hf, sf.token(f, mechanism, serverFirst))
			if !ok {
				return // closed: a failed authentication
			}
			serverFirst = string(reply)
			if rawLeft--; rawLeft == 0 {
				raw = false
			}
			continue
		}
		var req kmsg.Request
		switch f.byte() % 5 {
		case 0:
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.SetVersion(int16(f.byte() % 2))
			hs.Mechanism = saslMechanisms[int(f.byte())%len(saslMechanisms)]
			req = hs
		case 1:
			auth := kmsg.NewPtrSASLAuthenticateRequest()
			auth.SetVersion(int16(f.byte() % 3))
			auth.SASLAuthBytes = sf.token(f, mechanism, serverFirst)
			req = auth
		case 2:
			// A raw frame outside of a v0 exchange: read as a request.
			if _, ok := sf.rawToken(hf, f.bytes(int(f.byte()%64))); !ok {
				return
			}
			continue
		case 3:
			req = kmsg.NewPtrApiVersionsRequest()
		default:
			req = kmsg.NewPtrMetadataRequest()
		}
		resp, ok := hf.roundTrip(req)
		if !ok {
			return // closed
		}
		switch r := resp.(type) {
		case *kmsg.SASLHandshakeResponse:
			if r.ErrorCode == 0 {
				mechanism = req.(*kmsg.SASLHandshakeRequest).Mechanism
				serverFirst = ""
				if req.GetVersion() == 0 {
					raw, rawLeft = true, 1
					if strings.HasPrefix(mechanism, "SCRAM") {
						rawLeft = 2
					}
				}
			}
		case *kmsg.SASLAuthenticateResponse:
			serverFirst = string(r.SASLAuthBytes)
		}
	}
}

// rawToken writes token as a raw frame and reads the reply frame; not ok
// when the broker closed the connection.
func (sf *saslFuzzer) rawToken(hf *handlerFuzzer, token []byte) ([]byte, bool) {
	if hf.conn == nil {
		nc, err := net.Dial("tcp", sf.node.Addr)
		if err != nil {
			sf.tb.Fatal(err)
		}
		hf.conn = nc
	}
	hf.conn.SetDeadline(time.Now().Add(handlerFuzzTimeout))
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(token)))
	if _, err := hf.conn.Write(append(frame, token...)); err != nil {
		return nil, false
	}
	var size [4]byte
	if _, err := io.ReadFull(hf.conn, size[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			sf.tb.Fatalf("raw token %q: no reply nor close within %v", token, handlerFuzzTimeout)
		}
		return nil, false
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		sf.tb.Fatalf("raw token %q: reply frame of %d bytes", token, n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(hf.conn, reply); err != nil {
		return nil, false
	}
	return reply, true
}

var (
	plainParts = []string{"", "alice", "alice-secret", "bob", "pass:with:colons", "\x00", "mallory", strings.Repeat("a", 300)}
	gs2Headers = []string{"n,,", "y,,", "p=tls-server-end-point,,", "n,a=alice,", "n,a=bob,", "n,a=a=2Cb,", "", "n", ",,", "n,,,"}
	scramAttrs = []string{"n=alice", "n=", "n=bob", "n=a=2Cb", "n=a=3D", "n=a=ZZ", "n=a=", "r=nonce", "r=", "r=,", "m=ext", "x", "=", "n=alice,r=abc", "r=abc,n=alice", "ext=1"}
)

// token is a SASL token: random bytes, or a PLAIN or SCRAM message (for
// the exchange's mechanism) of parts the input picks.
func (sf *saslFuzzer) token(f *filler, mechanism, serverFirst string) []byte {
	switch sel := f.byte() % 4; {
	case sel == 0:
		return f.bytes(int(f.byte()))
	case sel == 1 || mechanism == "PLAIN":
		var parts []string
		for range 1 + f.byte()%4 {
			parts = append(parts, plainParts[int(f.byte())%len(plainParts)])
		}
		return []byte(strings.Join(parts, "\x00"))
	case sel == 2 || serverFirst == "":
		var attrs []string
		for range f.byte() % 4 {
			attrs = append(attrs, scramAttrs[int(f.byte())%len(scramAttrs)])
		}
		return []byte(gs2Headers[int(f.byte())%len(gs2Headers)] + strings.Join(attrs, ","))
	default:
		// A client-final for serverFirst's nonce, or not.
		nonce := ""
		for _, attr := range strings.Split(serverFirst, ",") {
			if strings.HasPrefix(attr, "r=") {
				nonce = attr[2:]
			}
		}
		binding := []string{"biws", base64.StdEncoding.EncodeToString([]byte("n,,")), "", "==", "eSws"}[int(f.byte())%5]
		nonce = []string{nonce, nonce + "x", "", "x" + nonce, nonce[:len(nonce)/2]}[int(f.byte())%5]
		proof := []string{base64.StdEncoding.EncodeToString(f.bytes(32)), base64.StdEncoding.EncodeToString(f.bytes(64)), "", "!!", "AAAA"}[int(f.byte())%5]
		msg := "c=" + binding + ",r=" + nonce + ",p=" + proof
		if f.byte()%4 == 0 {
			msg = "c=" + binding + ",r=" + nonce + ",x=1,p=" + proof
		}
		return []byte(msg)
	}
}
