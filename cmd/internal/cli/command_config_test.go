package cli

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestCommandConfigSASLSSL: `strata topics` reaches a SASL_SSL listener
// with --command-config, and not without it or with a wrong password.
func TestCommandConfigSASLSSL(t *testing.T) {
	dir := t.TempDir()
	ca := authntest.NewCA(t, "ca")
	files := ca.WriteFiles(t, dir, pkix.Name{CommonName: "broker-1"})
	id, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(usersFile, "admin:admin-secret\n")
	users, err := authn.LoadPlainUsers(usersFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLSSL
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.TLS, c.PlainUsers = id, users
	})
	good := filepath.Join(dir, "client.properties")
	write(good, "# librdkafka names\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\";\nssl.ca.location="+files.CA+"\n")
	bad := filepath.Join(dir, "wrong.properties")
	write(bad, "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=admin\nsasl.password=nope\nssl.ca.location="+files.CA+"\n")

	if code, _, stderr := runCLI("topics", "create", "--topic", "secured", "--bootstrap-server", n.Addr, "--command-config", good, "--timeout", "10s"); code != 0 {
		t.Fatalf("create with --command-config: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI("topics", "list", "--bootstrap-server", n.Addr, "--command-config", good, "--timeout", "10s")
	if code != 0 || !strings.Contains(stdout, "secured") {
		t.Fatalf("list with --command-config: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{}, {"--command-config", bad}} {
		code, stdout, _ := runCLI(append([]string{"topics", "list", "--bootstrap-server", n.Addr, "--timeout", "3s"}, args...)...)
		if code == 0 || strings.Contains(stdout, "secured") {
			t.Fatalf("list with %v: exit %d, stdout %q", args, code, stdout)
		}
	}
}

func TestCommandConfigRefusesUnknownAndJKS(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"security.protocol=SSL\nssl.truststore.location=/etc/kafka/truststore.jks\n": "JKS",
		"security.protcol=SSL\n":       "security.protcol",
		"security.protocol=SASL_SSL\n": "sasl.username",
		"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b\n": "GSSAPI",
		"no equals sign\n": "key=value",
	} {
		path := filepath.Join(dir, "c.properties")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI("topics", "list", "--bootstrap-server", "127.0.0.1:1", "--command-config", path, "--timeout", "1s")
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %q", content, code, stderr, want)
		}
	}
}

// TestUsersCommands: strata users set-password creates a SCRAM user that
// can then authenticate (through --command-config with SCRAM-SHA-512);
// list shows it, delete removes it.
func TestUsersCommands(t *testing.T) {
	dir := t.TempDir()
	n := brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.SASLMechanisms = []string{"SCRAM-SHA-512"}
	})
	internal := n.Server.Addr("INTERNAL").String()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2-long\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI("users", "set-password", "--user", "ops", "--password-file", pwFile, "--bootstrap-server", internal, "--timeout", "10s"); code != 0 {
		t.Fatalf("set-password: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runCLI("users", "list", "--bootstrap-server", internal, "--timeout", "10s")
	if code != 0 || !strings.Contains(stdout, "ops") || !strings.Contains(stdout, "SCRAM-SHA-512") || strings.Contains(stdout, "hunter2") {
		t.Fatalf("list: exit %d\n%s%s", code, stdout, stderr)
	}
	conf := filepath.Join(dir, "scram.properties")
	if err := os.WriteFile(conf, []byte("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=ops\nsasl.password=hunter2-long\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI("topics", "list", "--bootstrap-server", n.Addr, "--command-config", conf, "--timeout", "10s"); code != 0 {
		t.Fatalf("topics list as the SCRAM user: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI("users", "delete", "--user", "ops", "--bootstrap-server", internal, "--timeout", "10s"); code != 0 {
		t.Fatalf("delete: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := runCLI("topics", "list", "--bootstrap-server", n.Addr, "--command-config", conf, "--timeout", "3s"); code == 0 {
		t.Fatal("a deleted user still authenticates")
	}
	if code, _, stderr := runCLI("users", "delete", "--user", "ops", "--bootstrap-server", internal, "--timeout", "10s"); code == 0 || !strings.Contains(stderr, "RESOURCE_NOT_FOUND") {
		t.Fatalf("deleting a missing user: exit %d, %s", code, stderr)
	}
}
