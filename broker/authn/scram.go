package authn

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM (RFC 5802, RFC 7677), the server side.

// ScramMechanismOf maps Kafka's mechanism number (KIP-554: 1
// SCRAM-SHA-256, 2 SCRAM-SHA-512) to its name.
func ScramMechanismOf(n int8) (ScramMechanism, bool) {
	switch n {
	case 1:
		return ScramSHA256, true
	case 2:
		return ScramSHA512, true
	}
	return "", false
}

// Number is Kafka's number of the mechanism (0 when unknown).
func (m ScramMechanism) Number() int8 {
	switch m {
	case ScramSHA256:
		return 1
	case ScramSHA512:
		return 2
	}
	return 0
}

// ScramMechanism is a SCRAM mechanism name.
type ScramMechanism string

// The SCRAM mechanisms (Kafka's names).
const (
	ScramSHA256 ScramMechanism = "SCRAM-SHA-256"
	ScramSHA512 ScramMechanism = "SCRAM-SHA-512"
)

// MinScramIterations is the fewest PBKDF2 iterations a credential may
// have (Kafka's minimum, RFC 7677's recommendation).
const MinScramIterations = 4096

func (m ScramMechanism) hash() (func() hash.Hash, error) {
	switch m {
	case ScramSHA256:
		return sha256.New, nil
	case ScramSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown SCRAM mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", string(m))
}

// ScramCredential is what the server keeps of a SCRAM password: never the
// password, only the salt, the iteration count and the keys derived from
// them (RFC 5802 section 3).
type ScramCredential struct {
	Mechanism  ScramMechanism
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// NewScramCredential derives a credential from password with a random
// 32-byte salt.
func NewScramCredential(m ScramMechanism, password string, iterations int) (ScramCredential, error) {
	salt := make([]byte, 32)
	rand.Read(salt)
	return ScramCredentialWithSalt(m, password, salt, iterations)
}

// ScramCredentialWithSalt derives a credential from password and salt.
func ScramCredentialWithSalt(m ScramMechanism, password string, salt []byte, iterations int) (ScramCredential, error) {
	h, err := m.hash()
	if err != nil {
		return ScramCredential{}, err
	}
	if iterations < MinScramIterations {
		return ScramCredential{}, fmt.Errorf("SCRAM iterations %d: must be at least %d", iterations, MinScramIterations)
	}
	if password == "" {
		return ScramCredential{}, errors.New("SCRAM password is empty")
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return ScramCredential{}, err
	}
	return ScramCredentialFromSalted(m, salt, salted, iterations)
}

// ScramCredentialFromSalted derives a credential from the salted password
// (PBKDF2 of the password), as AlterUserScramCredentials carries it.
func ScramCredentialFromSalted(m ScramMechanism, salt, salted []byte, iterations int) (ScramCredential, error) {
	h, err := m.hash()
	if err != nil {
		return ScramCredential{}, err
	}
	if len(salted) != h().Size() {
		return ScramCredential{}, fmt.Errorf("salted password of %d bytes, want %d for %s", len(salted), h().Size(), m)
	}
	clientKey := hmacOf(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return ScramCredential{Mechanism: m, Salt: append([]byte(nil), salt...), Iterations: iterations,
		StoredKey: stored.Sum(nil), ServerKey: hmacOf(h, salted, []byte("Server Key"))}, nil
}

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	mac := hmac.New(h, key)
	mac.Write(msg)
	return mac.Sum(nil)
}

// ScramServer runs one SCRAM exchange: Step takes the client-first
// message, answers the server-first; then takes the client-final and
// answers the server-final with the authenticated principal.
type ScramServer struct {
	mechanism ScramMechanism
	h         func() hash.Hash
	lookup    func(user string) (ScramCredential, bool)
	nonce     func() string // the server's nonce part (tests fix it)

	step            int
	user            string
	cred            ScramCredential
	known           bool
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonceFull       string
}

// ErrScramFailed is any SCRAM failure the client is told only as
// SASL_AUTHENTICATION_FAILED (which step failed is not revealed).
var ErrScramFailed = errors.New("SCRAM authentication failed")

// NewScramServer starts an exchange; lookup returns the user's credential
// for this mechanism.
func NewScramServer(m ScramMechanism, lookup func(user string) (ScramCredential, bool)) (*ScramServer, error) {
	h, err := m.hash()
	if err != nil {
		return nil, err
	}
	return &ScramServer{mechanism: m, h: h, lookup: lookup, nonce: func() string {
		b := make([]byte, 24)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}}, nil
}

// Step handles the client's next message. done with a nil error means
// authenticated as principal; a non-nil error (wrapping ErrScramFailed)
// ends the exchange.
func (s *ScramServer) Step(msg []byte) (reply []byte, done bool, principal Principal, err error) {
	switch s.step {
	case 0:
		s.step = 1
		reply, err := s.clientFirst(string(msg))
		return reply, false, Principal{}, err
	case 1:
		s.step = 2
		reply, err := s.clientFinal(string(msg))
		if err != nil {
			return nil, false, Principal{}, err
		}
		return reply, true, User(s.user), nil
	}
	return nil, false, Principal{}, fmt.Errorf("%w: the exchange is over", ErrScramFailed)
}

func failf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrScramFailed}, args...)...)
}

// decodeSaslName undoes RFC 5802's escaping of ',' and '=' in names.
func decodeSaslName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == ',':
			return "", failf("unescaped comma in a name")
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", failf("bad escape in a name")
		}
	}
	return b.String(), nil
}

func (s *ScramServer) clientFirst(msg string) ([]byte, error) {
	// gs2-header: "n,," or "y,," (no channel binding), or with
	// "a=authzid," which must name the user itself.
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 || (parts[0] != "n" && parts[0] != "y") {
		return nil, failf("client-first message: want a gs2 header without channel binding")
	}
	authzid := ""
	if parts[1] != "" {
		if !strings.HasPrefix(parts[1], "a=") {
			return nil, failf("client-first message: bad authorization id")
		}
		var err error
		if authzid, err = decodeSaslName(parts[1][2:]); err != nil {
			return nil, err
		}
	}
	s.gs2Header = parts[0] + "," + parts[1] + ","
	s.clientFirstBare = parts[2]
	attrs := strings.Split(parts[2], ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, failf("client-first message: want n=user,r=nonce")
	}
	user, err := decodeSaslName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	if user == "" || (authzid != "" && authzid != user) {
		return nil, failf("client-first message: empty user, or an authorization id of another user")
	}
	s.user = user
	s.cred, s.known = s.lookup(user)
	if !s.known || s.cred.Mechanism != s.mechanism {
		// Go on with a made-up credential, so that an unknown user fails
		// where a wrong password does: names cannot be probed.
		s.known = false
		salt := make([]byte, 32)
		rand.Read(salt)
		s.cred = ScramCredential{Mechanism: s.mechanism, Salt: salt, Iterations: MinScramIterations,
			StoredKey: make([]byte, s.h().Size()), ServerKey: make([]byte, s.h().Size())}
	}
	s.nonceFull = attrs[1][2:] + s.nonce()
	s.serverFirst = "r=" + s.nonceFull + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

func (s *ScramServer) clientFinal(msg string) ([]byte, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, failf("client-final message: no proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	// The nonce must end with the server-first's (Kafka's check:
	// librdkafka sends its own nonce before the server's whole one).
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) ||
		!strings.HasPrefix(attrs[1], "r=") || !strings.HasSuffix(attrs[1][2:], s.nonceFull) {
		return nil, failf("client-final message: channel binding or nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != s.h().Size() {
		return nil, failf("client-final message: malformed proof")
	}
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	signature := hmacOf(s.h, s.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for j := range proof {
		clientKey[j] = proof[j] ^ signature[j]
	}
	stored := s.h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), s.cred.StoredKey) != 1 || !s.known {
		return nil, failf("invalid credentials")
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(s.h, s.cred.ServerKey, authMessage))), nil
}
