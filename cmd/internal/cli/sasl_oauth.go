package cli

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
)

// authFlags are serve's OAUTHBEARER (KIP-768) and re-authentication
// (KIP-368) settings, Kafka's names.
type authFlags struct {
	jwksFile         string
	expectedIssuer   string
	expectedAudience string
	subClaimName     string
	clockSkewSeconds int
	maxReauthMs      int64
}

func addAuthFlags(fs *pflag.FlagSet, f *authFlags) {
	fs.StringVar(&f.jwksFile, "sasl-oauthbearer-jwks-file", "", "OAUTHBEARER: JSON Web Key Set file ({\"keys\":[...]}, RS/PS/ES keys) that tokens' signatures are checked against; re-read when it changes (sasl.oauthbearer.jwks.endpoint.url with a file)")
	fs.StringVar(&f.expectedIssuer, "sasl-oauthbearer-expected-issuer", "", "OAUTHBEARER: the \"iss\" tokens must carry (default: not checked)")
	fs.StringVar(&f.expectedAudience, "sasl-oauthbearer-expected-audience", "", "OAUTHBEARER: comma-separated audiences, one of which the token's \"aud\" must name (default: not checked)")
	fs.StringVar(&f.subClaimName, "sasl-oauthbearer-sub-claim-name", "sub", "OAUTHBEARER: the claim naming the principal (User:<value>)")
	fs.IntVar(&f.clockSkewSeconds, "sasl-oauthbearer-clock-skew-seconds", 30, "OAUTHBEARER: how far a token's exp, nbf and iat may be off this node's clock")
	fs.Int64Var(&f.maxReauthMs, "connections-max-reauth-ms", 0, "KIP-368: SASL sessions last this long (or until the OAUTHBEARER token expires, if sooner) and clients re-authenticate on the same connection before then, against the credentials of that time; a connection that does not is closed. 0: sessions never expire (Kafka's default)")
}

// oauthConfig loads the OAUTHBEARER validator (nil when OAUTHBEARER is
// not enabled) and the re-authentication setting.
func oauthConfig(f *authFlags, mechanisms []string, listeners []broker.Listener, log *slog.Logger) (*authn.OAuthValidator, time.Duration, error) {
	if f.maxReauthMs < 0 {
		return nil, 0, usageErrorf("--connections-max-reauth-ms %d: must be 0 (off) or more", f.maxReauthMs)
	}
	maxReauth := time.Duration(f.maxReauthMs) * time.Millisecond
	if !slices.Contains(mechanisms, "OAUTHBEARER") {
		if f.jwksFile != "" {
			return nil, 0, usageErrorf("--sasl-oauthbearer-jwks-file given but OAUTHBEARER is not in --sasl-enabled-mechanisms")
		}
		return nil, maxReauth, nil
	}
	sasl := slices.ContainsFunc(listeners, func(l broker.Listener) bool { return l.SecurityProtocol.SASL() })
	if f.jwksFile == "" {
		if sasl {
			return nil, 0, usageErrorf("a SASL listener with OAUTHBEARER needs --sasl-oauthbearer-jwks-file")
		}
		return nil, maxReauth, nil
	}
	if f.clockSkewSeconds < 0 {
		return nil, 0, usageErrorf("--sasl-oauthbearer-clock-skew-seconds %d: must be 0 or more", f.clockSkewSeconds)
	}
	if strings.TrimSpace(f.subClaimName) == "" {
		return nil, 0, usageErrorf("--sasl-oauthbearer-sub-claim-name is empty")
	}
	var audience []string
	for _, a := range strings.Split(f.expectedAudience, ",") {
		if a = strings.TrimSpace(a); a != "" {
			audience = append(audience, a)
		}
	}
	skew := time.Duration(f.clockSkewSeconds) * time.Second
	if skew == 0 {
		skew = -1 // none (0 means the default in authn.OAuthConfig)
	}
	v, err := authn.NewOAuthValidator(authn.OAuthConfig{
		JWKSFile:         f.jwksFile,
		ExpectedIssuer:   f.expectedIssuer,
		ExpectedAudience: audience,
		SubClaimName:     strings.TrimSpace(f.subClaimName),
		ClockSkew:        skew,
	}, func(err error) {
		log.Error("reloading the OAUTHBEARER key set failed; the previous keys stay until the file is fixed", "err", err)
	})
	if err != nil {
		return nil, 0, usageErrorf("--sasl-oauthbearer-jwks-file: %v", err)
	}
	return v, maxReauth, nil
}
