package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255), validating JSON Web
// Tokens as Kafka's broker does with sasl.oauthbearer.jwks.endpoint.url
// pointing at a local file (KIP-768): the token's signature against a key
// of a local JSON Web Key Set, then its claims.

// OAuthConfig is how OAUTHBEARER tokens are validated (Kafka's
// sasl.oauthbearer.* broker settings).
type OAuthConfig struct {
	// JWKSFile is a JSON Web Key Set (RFC 7517, {"keys":[...]}) holding the
	// public keys tokens are signed with, re-read when it changes (keys
	// rotate without a restart). Required.
	JWKSFile string
	// ExpectedIssuer, when set, must equal the token's "iss".
	ExpectedIssuer string
	// ExpectedAudience, when set, must share a value with the token's "aud".
	ExpectedAudience []string
	// SubClaimName is the claim naming the principal; default "sub".
	SubClaimName string
	// ClockSkew is how far "exp", "nbf" and "iat" may be off; default 30 s
	// (Kafka's sasl.oauthbearer.clock.skew.seconds). Negative means none.
	ClockSkew time.Duration
	// Now is the clock tokens are checked against; default time.Now.
	Now func() time.Time
}

// oauthAlgorithms are the signature algorithms accepted: RSA, RSA-PSS and
// ECDSA. "none" and HMAC (a shared secret, which a key set of public keys
// cannot hold) are refused.
var oauthAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
}

// ErrInvalidToken is any reason an OAUTHBEARER token is refused; the
// client is told only Kafka's {"status":"invalid_token"}, the reason is
// logged.
var ErrInvalidToken = errors.New("invalid OAUTHBEARER token")

// OAuthValidator validates OAUTHBEARER tokens. It is safe for concurrent use.
type OAuthValidator struct {
	cfg  OAuthConfig
	keys *reloadingFile[[]jose.JSONWebKey]
}

// OAuthToken is what a valid token proves.
type OAuthToken struct {
	Principal Principal
	Expiry    time.Time // the token's "exp"
}

// NewOAuthValidator loads cfg.JWKSFile; onReloadError, when set, is told
// of a change of the file that failed to load (the previous keys stay).
func NewOAuthValidator(cfg OAuthConfig, onReloadError func(error)) (*OAuthValidator, error) {
	if cfg.JWKSFile == "" {
		return nil, errors.New("OAUTHBEARER needs a JSON Web Key Set file (--sasl-oauthbearer-jwks-file)")
	}
	if cfg.SubClaimName == "" {
		cfg.SubClaimName = "sub"
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 30 * time.Second
	}
	cfg.ClockSkew = max(cfg.ClockSkew, 0)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys, err := newReloadingFile(cfg.JWKSFile, "OAUTHBEARER JSON Web Key Set", parseJWKS, onReloadError)
	if err != nil {
		return nil, err
	}
	return &OAuthValidator{cfg: cfg, keys: keys}, nil
}

// parseJWKS keeps the public keys of a key set (the public half of a
// private key too); a set without one is refused, it would refuse every
// token.
func parseJWKS(data []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if public := k.Public(); public.Valid() {
			keys = append(keys, public)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New(`holds no public RSA or EC key (want {"keys":[{"kty":"RSA","kid":...,"n":...,"e":...}]})`)
	}
	return keys, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidToken}, args...)...)
}

// Validate checks a compact JWS token: an accepted algorithm, a signature
// by a key of the set (the one its "kid" names, or any when it names
// none), "exp" and "iat" present (as Kafka requires), "exp", "nbf" and
// "iat" within the clock skew, the expected issuer and audience, and a
// non-empty principal claim.
func (v *OAuthValidator) Validate(token string) (OAuthToken, error) {
	parsed, err := jwt.ParseSigned(token, oauthAlgorithms)
	if err != nil {
		return OAuthToken{}, invalidf("%v", err)
	}
	if len(parsed.Headers) != 1 {
		return OAuthToken{}, invalidf("want one signature, token has %d", len(parsed.Headers))
	}
	kid := parsed.Headers[0].KeyID
	var candidates []jose.JSONWebKey
	for _, k := range v.keys.Current() {
		if kid == "" || k.KeyID == kid {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		return OAuthToken{}, invalidf("no key with kid %q in the key set", kid)
	}
	var standard jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range candidates {
		if parsed.Claims(k.Key, &standard, &all) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return OAuthToken{}, invalidf("signature does not verify with key %q", kid)
	}
	if standard.Expiry == nil {
		return OAuthToken{}, invalidf(`no "exp" claim`)
	}
	if standard.IssuedAt == nil {
		return OAuthToken{}, invalidf(`no "iat" claim`)
	}
	expected := jwt.Expected{Issuer: v.cfg.ExpectedIssuer, AnyAudience: v.cfg.ExpectedAudience, Time: v.cfg.Now()}
	if err := standard.ValidateWithLeeway(expected, v.cfg.ClockSkew); err != nil {
		return OAuthToken{}, invalidf("%v", err)
	}
	name, _ := all[v.cfg.SubClaimName].(string)
	if strings.TrimSpace(name) == "" {
		return OAuthToken{}, invalidf("no %q claim naming the principal", v.cfg.SubClaimName)
	}
	return OAuthToken{Principal: User(name), Expiry: standard.Expiry.Time()}, nil
}

// ParseOAuthBearer splits an OAUTHBEARER client first message (RFC 7628
// section 3.1): gs2-header %x01 "auth=Bearer " token %x01
// *(key=value %x01) %x01. It returns the authorization id of the
// gs2-header ("" when absent) and the token; extensions are ignored.
func ParseOAuthBearer(msg []byte) (authzid, token string, err error) {
	parts := bytes.Split(msg, []byte{1})
	// gs2-header, key/value pairs, then two empty parts (the closing
	// %x01 %x01).
	if len(parts) < 4 || len(parts[len(parts)-1]) != 0 || len(parts[len(parts)-2]) != 0 {
		return "", "", errors.New("malformed OAUTHBEARER message: want gs2-header ^A auth=Bearer <token> ^A ^A")
	}
	header := string(parts[0])
	if !strings.HasPrefix(header, "n,") && !strings.HasPrefix(header, "y,") || !strings.HasSuffix(header, ",") {
		return "", "", errors.New("malformed OAUTHBEARER gs2 header: want n,, or n,a=<authzid>,")
	}
	if zid := header[2 : len(header)-1]; zid != "" {
		if !strings.HasPrefix(zid, "a=") {
			return "", "", errors.New("malformed OAUTHBEARER gs2 header: bad authorization id")
		}
		if authzid, err = decodeSaslName(zid[2:]); err != nil {
			return "", "", errors.New("malformed OAUTHBEARER authorization id: bad escape")
		}
	}
	for _, kv := range parts[1 : len(parts)-2] {
		key, value, ok := strings.Cut(string(kv), "=")
		if !ok {
			return "", "", errors.New("malformed OAUTHBEARER key/value pair")
		}
		if key != "auth" {
			continue // an extension (KIP-342): not used
		}
		scheme, t, ok := strings.Cut(value, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			return "", "", errors.New(`malformed OAUTHBEARER auth: want "Bearer <token>"`)
		}
		token = strings.TrimSpace(t)
	}
	if token == "" {
		return "", "", errors.New("OAUTHBEARER message without auth=Bearer <token>")
	}
	return authzid, token, nil
}

// OAuthErrorStatus is the server's challenge after an invalid token
// (RFC 7628 section 3.2.2, Kafka's JSON), which the client answers with
// a single %x01 before the exchange fails.
const OAuthErrorStatus = `{"status":"invalid_token"}`

// OAuthBearerServer runs one OAUTHBEARER exchange.
type OAuthBearerServer struct {
	validator *OAuthValidator
	step      int
	failure   error // why the token was refused, once the challenge is sent
	expiry    time.Time
}

// NewOAuthBearerServer starts an exchange validating with v.
func NewOAuthBearerServer(v *OAuthValidator) *OAuthBearerServer {
	return &OAuthBearerServer{validator: v}
}

// Step handles the client's next message. The first carries the token: a
// valid one completes the exchange (done, the principal); an invalid one
// is answered with OAuthErrorStatus, and the client's next message (%x01)
// ends the exchange with the reason as the error. A malformed message, or
// an authorization id other than the token's principal, fails at once.
func (s *OAuthBearerServer) Step(msg []byte) (reply []byte, done bool, principal Principal, err error) {
	s.step++
	switch s.step {
	case 1:
		authzid, token, err := ParseOAuthBearer(msg)
		if err != nil {
			return nil, false, Principal{}, invalidf("%v", err)
		}
		t, err := s.validator.Validate(token)
		if err != nil {
			s.failure = err
			return []byte(OAuthErrorStatus), false, Principal{}, nil
		}
		if authzid != "" && authzid != t.Principal.Name {
			return nil, false, Principal{}, invalidf("authorization id %q is not the token's principal %q", authzid, t.Principal.Name)
		}
		s.expiry = t.Expiry
		return nil, true, t.Principal, nil
	case 2:
		if s.failure != nil {
			return nil, false, Principal{}, s.failure
		}
	}
	return nil, false, Principal{}, invalidf("the exchange is over")
}

// Expiry is the accepted token's "exp" (zero before the exchange is done).
func (s *OAuthBearerServer) Expiry() time.Time { return s.expiry }
