package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn/authntest"
)

func TestServeOAuthBearerFlags(t *testing.T) {
	dir := t.TempDir()
	issuer := authntest.NewIssuer(t, "k")
	jwks := issuer.WriteJWKS(t, dir)
	base := []string{"--listeners", "CLIENT=127.0.0.1:9092,INTERNAL=127.0.0.1:9094", "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "CLIENT:SASL_PLAINTEXT", "--sasl-enabled-mechanisms", "OAUTHBEARER"}
	cfg, err := parseServe(t, append(base, "--sasl-oauthbearer-jwks-file", jwks, "--sasl-oauthbearer-expected-audience", "kafka, other",
		"--sasl-oauthbearer-sub-claim-name", "client_id", "--connections-max-reauth-ms", "60000")...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Broker.OAuthBearer == nil || cfg.Broker.ConnectionsMaxReauth != time.Minute {
		t.Fatalf("OAuthBearer %v, ConnectionsMaxReauth %v", cfg.Broker.OAuthBearer, cfg.Broker.ConnectionsMaxReauth)
	}
	now := time.Now()
	good := issuer.Token(t, map[string]any{"client_id": "svc", "aud": "kafka", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if tok, err := cfg.Broker.OAuthBearer.Validate(good); err != nil || tok.Principal.Name != "svc" {
		t.Fatalf("a token for the configured audience and claim: %v %v", tok, err)
	}
	wrongAudience := issuer.Token(t, map[string]any{"client_id": "svc", "aud": "billing", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if _, err := cfg.Broker.OAuthBearer.Validate(wrongAudience); err == nil {
		t.Fatal("a token for another audience was accepted")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{base, "--sasl-oauthbearer-jwks-file"},
		{append(base, "--sasl-oauthbearer-jwks-file", dir+"/missing.json"), "missing.json"},
		{append(base, "--sasl-oauthbearer-jwks-file", jwks, "--connections-max-reauth-ms", "-1"), "--connections-max-reauth-ms"},
		{append(slices.Clone(base[:6]), "--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--sasl-oauthbearer-jwks-file", jwks), "OAUTHBEARER is not in"},
	} {
		_, err := parseServe(t, tc.args...)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error about %s", tc.args, err, tc.want)
		}
	}
}
