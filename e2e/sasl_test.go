//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/broker/authn/authntest"
)

const confluentSASLScript = confluentPoll + `
import sys
from confluent_kafka import Producer, Consumer, TopicPartition
addr, topic, ca, user, password, mechanism = sys.argv[1:7]
conf = {"bootstrap.servers": addr, "security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism,
        "sasl.username": user, "sasl.password": password, "ssl.ca.location": ca}
p = Producer(dict(conf, **{"message.timeout.ms": 10000}))
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
for i in range(10):
    p.produce(topic, value=("confluent-sasl-%d" % i).encode(), partition=0, on_delivery=report)
left = p.flush(30)
if left or errors:
    print("produce failed: %d unflushed, errors %s" % (left, errors[:3]), file=sys.stderr)
    sys.exit(1)
c = Consumer(dict(conf, **{"group.id": "e2e-sasl", "enable.auto.commit": False}))
c.assign([TopicPartition(topic, 0, 0)])
got = []
poll(c, 10, 30, lambda m: got.append(m.value().decode()))
c.close()
print("\n".join(got))
`

// TestSASLPlainClients: confluent-kafka-python, kcat and franz-go
// authenticate with SASL/PLAIN over a SASL_SSL listener; a wrong password
// gets SASL_AUTHENTICATION_FAILED.
func TestSASLPlainClients(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "/usr/bin/python3")
	dir := t.TempDir()
	ca := authntest.NewCA(t, "strata-e2e-ca")
	node := ca.WriteFiles(t, dir, pkix.Name{CommonName: "broker-1"})
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("admin:admin-secret\nalice:alice:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startSASLSSLBroker(t, node, "--sasl-plain-users-file", users)
	topic := uniqueTopic(t)

	out := string(runCmd(t, nil, 90*time.Second, "/usr/bin/python3", "-c", confluentSASLScript, b.addr, topic, node.CA, "alice", "alice:secret", "PLAIN"))
	if lines := strings.Fields(out); len(lines) != 10 || lines[0] != "confluent-sasl-0" || lines[9] != "confluent-sasl-9" {
		t.Fatalf("confluent-kafka-python over SASL_SSL/PLAIN consumed:\n%s", out)
	}

	kcat := func(user, password string) []string {
		return []string{"-b", b.addr, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=PLAIN",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + password, "-X", "ssl.ca.location=" + node.CA}
	}
	got := string(runCmd(t, nil, 60*time.Second, "kcat", append(kcat("admin", "admin-secret"), "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n")...))
	if lines := strings.Fields(got); len(lines) != 10 {
		t.Fatalf("kcat over SASL_SSL/PLAIN consumed:\n%s", got)
	}
	// A wrong password: kcat fails and says why.
	cmd := exec.Command("kcat", append(kcat("admin", "wrong"), "-L", "-m", "10")...)
	bad, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(bad)), "authentication") {
		t.Fatalf("kcat with a wrong password: err %v, output:\n%s", err, bad)
	}
	if strings.Contains(string(bad), topic) {
		t.Fatalf("a client that failed authentication learned the topic name:\n%s", bad)
	}

	ctx := testContext(t, time.Minute)
	tlsCfg := &tls.Config{RootCAs: ca.Pool()}
	cl := newClient(t, b.addr, kgo.DialTLSConfig(tlsCfg), kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("franz-sasl")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wrong := newClient(t, b.addr, kgo.DialTLSConfig(tlsCfg), kgo.SASL(plain.Auth{User: "admin", Pass: "nope"}.AsMechanism()), kgo.RetryTimeout(2*time.Second))
	if err := wrong.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("franz-go with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if strings.Contains(readFile(t, b.logPath), "admin-secret") || strings.Contains(readFile(t, b.logPath), "alice:secret") {
		t.Fatal("a password is in the broker's log")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// startSASLSSLBroker starts a broker whose CLIENT listener is SASL_SSL with
// node's identity; brokers would replicate over a PLAINTEXT INTERNAL
// listener, whose address it returns (tests use it as an unauthenticated
// admin).
func startSASLSSLBroker(t *testing.T, node authntest.Files, extra ...string) (*brokerProcess, string) {
	t.Helper()
	bdir := t.TempDir()
	b := &brokerProcess{dataDir: filepath.Join(bdir, "data"), addr: freePort(t), admin: freePort(t), ctrl: freePort(t),
		logPath: filepath.Join(bdir, "strata.log")}
	internal := freePort(t)
	b.extra = append([]string{"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + internal, "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "CLIENT:SASL_SSL", "--ssl-cert-file", node.Cert, "--ssl-key-file", node.Key,
		"--ssl-ca-file", node.CA}, extra...)
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			logTail(t, b.logPath)
		}
	})
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	return b, internal
}

// TestSASLSCRAMClients: a SCRAM-SHA-512 user created with
// AlterUserScramCredentials (KIP-554) produces and consumes with
// confluent-kafka-python and franz-go over SASL_SSL; a wrong password is
// refused.
func TestSASLSCRAMClients(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	ca := authntest.NewCA(t, "strata-e2e-ca")
	node := ca.WriteFiles(t, t.TempDir(), pkix.Name{CommonName: "broker-1"})
	b, internal := startSASLSSLBroker(t, node, "--sasl-enabled-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256")
	ctx := testContext(t, 2*time.Minute)
	adm := kadm.NewClient(newClient(t, internal))
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "app", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "app-secret"}})
	if err != nil || altered.Error() != nil {
		t.Fatalf("AlterUserScramCredentials: %v %v", err, altered.Error())
	}
	topic := uniqueTopic(t)
	out := string(runCmd(t, nil, 90*time.Second, "/usr/bin/python3", "-c", confluentSASLScript, b.addr, topic, node.CA, "app", "app-secret", "SCRAM-SHA-512"))
	if lines := strings.Fields(out); len(lines) != 10 || lines[9] != "confluent-sasl-9" {
		t.Fatalf("confluent-kafka-python over SASL_SSL/SCRAM-SHA-512 consumed:\n%s", out)
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool()}
	cl := newClient(t, b.addr, kgo.DialTLSConfig(tlsCfg), kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha512Mechanism()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("franz-scram")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wrong := newClient(t, b.addr, kgo.DialTLSConfig(tlsCfg), kgo.SASL(scram.Auth{User: "app", Pass: "nope"}.AsSha512Mechanism()), kgo.RetryTimeout(2*time.Second))
	if err := wrong.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("franz-go SCRAM with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if strings.Contains(readFile(t, b.logPath), "app-secret") {
		t.Fatal("a password is in the broker's log")
	}
}
