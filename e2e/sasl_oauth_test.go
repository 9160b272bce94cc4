//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// startSASLPlaintextBroker starts a broker whose CLIENT listener is
// SASL_PLAINTEXT (replication over a PLAINTEXT INTERNAL listener, whose
// address it returns). prepare, when set, runs on the data dir first
// (e.g. strata format).
func startSASLPlaintextBroker(t *testing.T, prepare func(b *brokerProcess), extra ...string) (*brokerProcess, string) {
	t.Helper()
	bdir := t.TempDir()
	b := &brokerProcess{dataDir: filepath.Join(bdir, "data"), addr: freePort(t), admin: freePort(t), ctrl: freePort(t),
		logPath: filepath.Join(bdir, "strata.log")}
	internal := freePort(t)
	b.extra = append([]string{"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + internal, "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "CLIENT:SASL_PLAINTEXT"}, extra...)
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			logTail(t, b.logPath)
		}
	})
	if prepare != nil {
		prepare(b)
	}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	return b, internal
}

// produceUntilError produces one record every 100 ms for up to d and
// returns the first error (nil if none) and how many records succeeded.
func produceUntilError(ctx context.Context, cl *kgo.Client, topic string, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	n := 0
	for time.Now().Before(deadline) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			return n, err
		}
		n++
		time.Sleep(100 * time.Millisecond)
	}
	return n, nil
}

// TestSASLOAuthBearerFranzGo: franz-go authenticates with OAUTHBEARER
// tokens checked against a local key set; with
// --connections-max-reauth-ms the session ends with the token, so a
// client that fetches fresh tokens re-authenticates on the same
// connection and goes on, while one stuck with an expired token is cut
// off with SASL_AUTHENTICATION_FAILED; a token for another audience is
// refused.
func TestSASLOAuthBearerFranzGo(t *testing.T) {
	issuer := authntest.NewIssuer(t, "e2e-key")
	jwks := issuer.WriteJWKS(t, t.TempDir())
	b, _ := startSASLPlaintextBroker(t, nil, "--sasl-enabled-mechanisms", "OAUTHBEARER",
		"--sasl-oauthbearer-jwks-file", jwks, "--sasl-oauthbearer-expected-audience", "kafka",
		"--sasl-oauthbearer-clock-skew-seconds", "0", "--connections-max-reauth-ms", "60000")
	ctx := testContext(t, 50*time.Second)
	token := func(subject, audience string, ttl time.Duration) string {
		now := time.Now()
		return issuer.Token(t, map[string]any{"sub": subject, "aud": audience, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
	}
	topic := uniqueTopic(t)

	// Fresh tokens of 3 s: the session follows each token's expiry and is
	// renewed in place, for longer than one token lives.
	var fetched atomic.Int32
	fresh := newClient(t, b.addr, kgo.AllowAutoTopicCreation(), kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) {
		fetched.Add(1)
		return oauth.Auth{Token: token("svc-orders", "kafka", 3*time.Second)}, nil
	})))
	if n, err := produceUntilError(ctx, fresh, topic, 5*time.Second); err != nil {
		t.Fatalf("with fresh tokens, record %d failed: %v", n, err)
	}
	reauths := metricOrZero(t, b, `strata_sasl_authentications_total{kind="reauthentication",mechanism="OAUTHBEARER",result="success"}`)
	if reauths < 1 || fetched.Load() < 2 {
		t.Fatalf("%v re-authentications, %d tokens fetched; want the session renewed with new tokens", reauths, fetched.Load())
	}
	consumer := newClient(t, b.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SASL(oauth.Auth{Token: token("svc-reader", "kafka", time.Minute)}.AsMechanism()))
	fetches := consumer.PollFetches(ctx)
	if err := fetches.Err0(); err != nil || fetches.NumRecords() == 0 {
		t.Fatalf("consume with OAUTHBEARER: %v, %d records", err, fetches.NumRecords())
	}

	// One token of 3 s, never renewed: cut off once it expires.
	stale := token("svc-stale", "kafka", 3*time.Second)
	stuck := newClient(t, b.addr, kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(2*time.Second),
		kgo.SASL(oauth.Auth{Token: stale}.AsMechanism()))
	n, err := produceUntilError(ctx, stuck, topic, 15*time.Second)
	if n == 0 || !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a client with an expiring token: %d records then %v, want records until it expires, then SASL_AUTHENTICATION_FAILED", n, err)
	}

	wrongAudience := newClient(t, b.addr, kgo.RetryTimeout(time.Second), kgo.SASL(oauth.Auth{Token: token("svc-orders", "billing", time.Minute)}.AsMechanism()))
	if err := wrongAudience.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a token for another audience: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// TestSASLScramFormatUserAndReauthCutOff: a SCRAM user given to `strata
// format --add-scram` logs in on the cluster's first start; a wrong
// password is refused; a user deleted mid-session is cut off at its next
// re-authentication (--connections-max-reauth-ms).
func TestSASLScramFormatUserAndReauthCutOff(t *testing.T) {
	format := func(b *brokerProcess) {
		runCmd(t, nil, 30*time.Second, strataBin, "format", "--cluster-id", "auth-e2e", "--node-id", "1", "--data-dir", b.dataDir,
			"--controller-advertise", b.ctrl, "--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]")
	}
	b, _ := startSASLPlaintextBroker(t, format, "--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--connections-max-reauth-ms", "3000")
	ctx := testContext(t, 50*time.Second)
	admin := newClient(t, b.addr, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()))
	adm := kadm.NewClient(admin)
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "app", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "app-secret"}})
	if err != nil || altered.Error() != nil {
		t.Fatalf("the --add-scram user creating another: %v %v", err, altered.Error())
	}
	wrong := newClient(t, b.addr, kgo.RetryTimeout(time.Second), kgo.SASL(scram.Auth{User: "admin", Pass: "guess"}.AsSha512Mechanism()))
	if err := wrong.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	topic := uniqueTopic(t)
	app := newClient(t, b.addr, kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(2*time.Second),
		kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha512Mechanism()))
	if n, err := produceUntilError(ctx, app, topic, 4*time.Second); err != nil {
		t.Fatalf("app before deletion, record %d: %v", n, err)
	}
	deleted, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "app", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || deleted.Error() != nil {
		t.Fatalf("delete app: %v %v", err, deleted.Error())
	}
	if _, err := produceUntilError(ctx, app, topic, 15*time.Second); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a deleted user's open connection: %v, want SASL_AUTHENTICATION_FAILED at its re-authentication", err)
	}
}

// TestSASLPlainUsersFileReload: a user added to --sasl-plain-users-file
// logs in without a restart; a user removed from it is cut off at its
// next re-authentication.
func TestSASLPlainUsersFileReload(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeUsers := func(content string) {
		// Replaced with a rename, as SECURITY.md advises.
		tmp := users + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, users); err != nil {
			t.Fatal(err)
		}
	}
	writeUsers("alice:alice-secret\n")
	b, _ := startSASLPlaintextBroker(t, nil, "--sasl-plain-users-file", users, "--connections-max-reauth-ms", "3000")
	ctx := testContext(t, 40*time.Second)
	topic := uniqueTopic(t)
	alice := newClient(t, b.addr, kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RetryTimeout(2*time.Second),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	writeUsers("bob:bob-secret\n")
	bob := newClient(t, b.addr, kgo.SASL(plain.Auth{User: "bob", Pass: "bob-secret"}.AsMechanism()))
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatalf("a user added to the file: %v", err)
	}
	if _, err := produceUntilError(ctx, alice, topic, 15*time.Second); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a user removed from the file: %v, want SASL_AUTHENTICATION_FAILED at its re-authentication", err)
	}
}
