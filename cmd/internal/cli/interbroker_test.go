package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInterBrokerFlags: --sasl-mechanism-inter-broker-protocol and
// --sasl-inter-broker-credentials-file configure the brokers' SASL user
// on a SASL inter-broker listener (PLAIN by default, as Kafka), and
// --ssl-principal-mapping-rules the certificate principals; bad values
// are refused naming their flag.
func TestInterBrokerFlags(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	creds := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(users, []byte("broker:b-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte("sasl.username=broker\nsasl.password=b-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saslInterBroker := []string{"--listeners", "CLIENT=127.0.0.1:9092,INTERNAL=127.0.0.1:9094", "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "INTERNAL:SASL_PLAINTEXT", "--sasl-plain-users-file", users}

	cfg, err := parseServe(t, append(saslInterBroker, "--sasl-inter-broker-credentials-file", creds,
		"--ssl-principal-mapping-rules", "RULE:^CN=([^,]*).*$/$1/L,DEFAULT")...)
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Broker
	if b.InterBrokerSASLMechanism != "PLAIN" || b.InterBrokerCredentials == nil || b.InterBrokerCredentials.User() != "broker" {
		t.Fatalf("inter-broker SASL: mechanism %q, credentials %v", b.InterBrokerSASLMechanism, b.InterBrokerCredentials)
	}
	if name, err := b.SSLPrincipalMapping.Name("CN=Alice,O=example"); err != nil || name != "alice" {
		t.Fatalf("mapping: %q, %v", name, err)
	}
	cfg, err = parseServe(t, append(saslInterBroker, "--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512",
		"--sasl-mechanism-inter-broker-protocol", "scram-sha-512", "--sasl-inter-broker-credentials-file", creds)...)
	if err != nil || cfg.Broker.InterBrokerSASLMechanism != "SCRAM-SHA-512" {
		t.Fatalf("SCRAM-SHA-512: %q, %v", cfg.Broker.InterBrokerSASLMechanism, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{saslInterBroker, "--sasl-inter-broker-credentials-file"},
		{append(saslInterBroker, "--sasl-inter-broker-credentials-file", users), "--sasl-inter-broker-credentials-file"},
		{append(saslInterBroker, "--sasl-inter-broker-credentials-file", creds, "--sasl-mechanism-inter-broker-protocol", "GSSAPI"), "--sasl-mechanism-inter-broker-protocol"},
		{[]string{"--sasl-mechanism-inter-broker-protocol", "PLAIN"}, "--sasl-mechanism-inter-broker-protocol"},
		{[]string{"--ssl-principal-mapping-rules", "RULE:^CN=(.*)$/$1"}, "--ssl-principal-mapping-rules"},
	} {
		if _, err := parseServe(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to name %s", tc.args, err, tc.want)
		}
	}
}
