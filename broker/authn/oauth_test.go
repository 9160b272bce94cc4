package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
)

func TestOAuthValidate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	issuer := authntest.NewIssuer(t, "key-1")
	other := authntest.NewIssuer(t, "key-1") // same kid, another key
	stranger := authntest.NewIssuer(t, "key-2")
	dir := t.TempDir()
	v, err := authn.NewOAuthValidator(authn.OAuthConfig{
		JWKSFile:         issuer.WriteJWKS(t, dir),
		ExpectedIssuer:   "https://idp.example",
		ExpectedAudience: []string{"kafka"},
		ClockSkew:        30 * time.Second,
		Now:              func() time.Time { return now },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "alice", "iss": "https://idp.example", "aud": "kafka",
			"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	// An unsigned token ("alg":"none") and an HMAC one, made by hand: the
	// library signs neither with a public key set.
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	payload := b64(`{"sub":"alice","iss":"https://idp.example","aud":"kafka","iat":1767322985,"exp":1767330245}`)
	none := b64(`{"alg":"none","typ":"JWT"}`) + "." + payload + "."
	hmacSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hmac, err := jwt.Signed(hmacSigner).Claims(claims(nil)).Serialize()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		token string
		want  string // "" = valid; else a piece of the reason
	}{
		{"good", issuer.Token(t, claims(nil)), ""},
		{"within clock skew after exp", issuer.Token(t, claims(func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() })), ""},
		{"audience list", issuer.Token(t, claims(func(c map[string]any) { c["aud"] = []string{"other", "kafka"} })), ""},
		{"expired", issuer.Token(t, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), "expired"},
		{"nbf in the future", issuer.Token(t, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet"},
		{"iat in the future", issuer.Token(t, claims(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })), "future"},
		{"no exp", issuer.Token(t, claims(func(c map[string]any) { delete(c, "exp") })), `"exp"`},
		{"no iat", issuer.Token(t, claims(func(c map[string]any) { delete(c, "iat") })), `"iat"`},
		{"wrong issuer", issuer.Token(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), "issuer"},
		{"wrong audience", issuer.Token(t, claims(func(c map[string]any) { c["aud"] = "billing" })), "audience"},
		{"no audience", issuer.Token(t, claims(func(c map[string]any) { delete(c, "aud") })), "audience"},
		{"bad signature", other.Token(t, claims(nil)), "signature"},
		{"tampered payload", tamper(issuer.Token(t, claims(nil))), "signature"},
		{"alg none", none, "algorithm"},
		{"alg HS256", hmac, "algorithm"},
		{"unknown kid", stranger.Token(t, claims(nil)), `kid "key-2"`},
		{"no sub", issuer.Token(t, claims(func(c map[string]any) { delete(c, "sub") })), `"sub"`},
		{"blank sub", issuer.Token(t, claims(func(c map[string]any) { c["sub"] = " " })), `"sub"`},
		{"not a JWT", "abc.def", "compact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Validate(tc.token)
			if tc.want == "" {
				if err != nil || tok.Principal != authn.User("alice") {
					t.Fatalf("Validate: %v %v, want User:alice", tok, err)
				}
				return
			}
			if !errors.Is(err, authn.ErrInvalidToken) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want ErrInvalidToken about %q", err, tc.want)
			}
		})
	}
}

func tamper(token string) string {
	parts := strings.Split(token, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","iss":"https://idp.example","aud":"kafka","iat":1767322985,"exp":1767330245}`))
	return strings.Join(parts, ".")
}

func TestOAuthSubClaimNameAndRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// A key set holding the private key: only its public half is used.
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "rsa", Algorithm: string(jose.PS256)}}}
	data, err := set.Keys[0].MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, []byte(`{"keys":[`+string(data)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := authn.NewOAuthValidator(authn.OAuthConfig{JWKSFile: path, SubClaimName: "client_id"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "rsa"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(map[string]any{"client_id": "svc-orders", "sub": "ignored",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.Validate(token)
	if err != nil || tok.Principal != authn.User("svc-orders") || tok.Expiry.Unix() != now.Add(time.Hour).Unix() {
		t.Fatalf("Validate: %+v %v, want User:svc-orders expiring in an hour", tok, err)
	}
}

// TestOAuthKeySetReload: a rotated key set is used without a restart; a
// broken rewrite keeps the previous keys and is reported.
func TestOAuthKeySetReload(t *testing.T) {
	first, second := authntest.NewIssuer(t, "k1"), authntest.NewIssuer(t, "k2")
	dir := t.TempDir()
	path := first.WriteJWKS(t, dir)
	var reloadErrors []error
	v, err := authn.NewOAuthValidator(authn.OAuthConfig{JWKSFile: path}, func(err error) { reloadErrors = append(reloadErrors, err) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(second.UserToken(t, "bob", time.Hour)); err == nil {
		t.Fatal("a token of a key not yet in the set was accepted")
	}
	writeStamped(t, path, second.JWKS(t), time.Now().Add(time.Second))
	if _, err := v.Validate(second.UserToken(t, "bob", time.Hour)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	writeStamped(t, path, []byte(`{"keys":[`), time.Now().Add(2*time.Second))
	if _, err := v.Validate(second.UserToken(t, "bob", time.Hour)); err != nil || len(reloadErrors) != 1 {
		t.Fatalf("after a broken rewrite: %v, reload errors %v; want the previous keys and one error", err, reloadErrors)
	}
	if _, err := authn.NewOAuthValidator(authn.OAuthConfig{JWKSFile: path}, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("loading a broken key set: %v, want an error naming the file", err)
	}
}

// writeStamped writes data with modification time mod, so the change is
// seen whatever the file system's timestamp granularity.
func writeStamped(t *testing.T, path string, data []byte, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestParseOAuthBearer(t *testing.T) {
	for _, tc := range []struct {
		msg            string
		authzid, token string
		ok             bool
	}{
		{"n,,\x01auth=Bearer abc.def.ghi\x01\x01", "", "abc.def.ghi", true},
		{"n,a=alice,\x01auth=bearer tok\x01ext=1\x01\x01", "alice", "tok", true},
		{"n,,\x01host=x\x01auth=Bearer t\x01\x01", "", "t", true},
		{"n,,\x01auth=Bearer t\x01", "", "", false},           // unterminated
		{"n,,\x01auth=Basic dXNlcg==\x01\x01", "", "", false}, // not a bearer token
		{"n,,\x01\x01", "", "", false},                        // no auth
		{"p=x,,\x01auth=Bearer t\x01\x01", "", "", false},     // channel binding
		{"\x01", "", "", false},
	} {
		authzid, token, err := authn.ParseOAuthBearer([]byte(tc.msg))
		if tc.ok != (err == nil) || authzid != tc.authzid || token != tc.token {
			t.Errorf("%q: %q %q %v", tc.msg, authzid, token, err)
		}
	}
}

func TestOAuthBearerServerChallengeThenFailure(t *testing.T) {
	issuer := authntest.NewIssuer(t, "k")
	v, err := authn.NewOAuthValidator(authn.OAuthConfig{JWKSFile: issuer.WriteJWKS(t, t.TempDir())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := authn.NewOAuthBearerServer(v)
	expired := issuer.UserToken(t, "alice", -time.Hour)
	reply, done, _, err := s.Step([]byte("n,,\x01auth=Bearer " + expired + "\x01\x01"))
	if err != nil || done || string(reply) != authn.OAuthErrorStatus {
		t.Fatalf("expired token: %q %t %v, want the invalid_token challenge", reply, done, err)
	}
	if _, _, _, err := s.Step([]byte{1}); !errors.Is(err, authn.ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after the challenge: %v, want the token's failure", err)
	}

	s = authn.NewOAuthBearerServer(v)
	good := issuer.UserToken(t, "alice", time.Hour)
	if _, _, _, err := s.Step([]byte("n,a=bob,\x01auth=Bearer " + good + "\x01\x01")); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("authzid of another user: %v, want a failure", err)
	}
	s = authn.NewOAuthBearerServer(v)
	reply, done, p, err := s.Step([]byte("n,a=alice,\x01auth=Bearer " + good + "\x01\x01"))
	if err != nil || !done || len(reply) != 0 || p != authn.User("alice") || s.Expiry().IsZero() {
		t.Fatalf("good token: %q %t %v %v", reply, done, p, err)
	}
}
