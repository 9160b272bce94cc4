package authntest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer mints OAUTHBEARER tokens (JWTs) signed with its own ES256 key, as
// an OAuth authorization server would; its key set is what a broker's
// --sasl-oauthbearer-jwks-file holds.
type Issuer struct {
	KeyID string
	key   crypto.Signer
}

// NewIssuer makes an issuer with a fresh key named keyID.
func NewIssuer(t testing.TB, keyID string) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{KeyID: keyID, key: key}
}

// JWKS is the issuer's public key set, JSON.
func (i *Issuer) JWKS(t testing.TB) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.key.Public(), KeyID: i.KeyID, Algorithm: string(jose.ES256), Use: "sig"}}}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// WriteJWKS writes the key set to dir/jwks.json and returns the path.
func (i *Issuer) WriteJWKS(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, i.JWKS(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Token signs claims (with "kid" in the header). Claims is a JSON object:
// a map, or a struct such as jwt.Claims.
func (i *Issuer) Token(t testing.TB, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// UserToken is a token for subject, issued now and expiring after ttl.
func (i *Issuer) UserToken(t testing.TB, subject string, ttl time.Duration) string {
	now := time.Now()
	return i.Token(t, jwt.Claims{Subject: subject, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl))})
}
