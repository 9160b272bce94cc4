package broker

import (
	"context"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
)

// TestInterBrokerSASLTakesTheFileAsItIsNow: each inter-broker SASL
// authentication (each new connection) takes the credentials file as it
// is then, for every mechanism: rotating the password needs no restart.
func TestInterBrokerSASLTakesTheFileAsItIsNow(t *testing.T) {
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "broker.properties")
			write := func(user string, mod time.Time) {
				t.Helper()
				if err := os.WriteFile(path, []byte("sasl.username="+user+"\nsasl.password=secret-of-"+user+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(path, mod, mod); err != nil {
					t.Fatal(err)
				}
			}
			base := time.Now().Add(-time.Hour)
			write("broker", base)
			creds, _, err := authn.LoadCredentialsFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{InterBrokerSASLMechanism: mechanism, InterBrokerCredentials: creds}
			sasl := cfg.interBrokerSASL()
			if sasl.Name() != mechanism {
				t.Fatalf("mechanism %s, want %s", sasl.Name(), mechanism)
			}
			first := func() string {
				t.Helper()
				_, msg, err := sasl.Authenticate(context.Background(), "127.0.0.1:9094")
				if err != nil {
					t.Fatal(err)
				}
				return string(msg)
			}
			if msg := first(); !strings.Contains(msg, "broker") || strings.Contains(msg, "rotated") {
				t.Fatalf("first message %q, want user broker", msg)
			}
			write("rotated", base.Add(time.Minute))
			if msg := first(); !strings.Contains(msg, "rotated") {
				t.Fatalf("first message after the file changed %q, want user rotated", msg)
			}
		})
	}
}

// TestValidateInterBroker: a SASL inter-broker listener needs the brokers'
// mechanism (one of sasl.enabled.mechanisms) and credentials (with PLAIN,
// a user of the PLAIN users file); those settings need a SASL
// inter-broker listener; an SSL inter-broker listener with client
// certificates needs this node's own node certificate.
func TestValidateInterBroker(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	users, err := authn.LoadPlainUsers(writeFile("users", "broker:right\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := func(password string) *authn.CredentialsFile {
		f, _, err := authn.LoadCredentialsFile(writeFile("broker-"+password, "sasl.username=broker\nsasl.password="+password+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ca := authntest.NewCA(t, "ca")
	identity := func(node int32) *authn.TLS {
		var files authntest.Files
		if node >= 0 {
			files = ca.WriteNodeFiles(t, t.TempDir(), node, pkix.Name{CommonName: "n"})
		} else {
			files = ca.WriteFiles(t, t.TempDir(), pkix.Name{CommonName: "n"})
		}
		id, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequired}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	listeners := func(p authn.Protocol) []Listener {
		return []Listener{{Name: "CLIENT", Address: "127.0.0.1:0"}, {Name: "INTERNAL", Address: "127.0.0.1:0", SecurityProtocol: p}}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for none
	}{
		{"PLAINTEXT", Config{Listeners: listeners(authn.Plaintext)}, ""},
		{"SASL", Config{Listeners: listeners(authn.SASLPlaintext), PlainUsers: users, InterBrokerSASLMechanism: "PLAIN", InterBrokerCredentials: creds("right")}, ""},
		{"SASL without credentials", Config{Listeners: listeners(authn.SASLPlaintext), PlainUsers: users}, "--sasl-inter-broker-credentials-file"},
		{"SASL, wrong PLAIN password", Config{Listeners: listeners(authn.SASLPlaintext), PlainUsers: users, InterBrokerSASLMechanism: "PLAIN", InterBrokerCredentials: creds("wrong")}, "--sasl-plain-users-file"},
		{"SASL, mechanism not enabled", Config{Listeners: listeners(authn.SASLPlaintext), PlainUsers: users, InterBrokerSASLMechanism: "SCRAM-SHA-512", InterBrokerCredentials: creds("right")}, "--sasl-enabled-mechanisms"},
		{"credentials without SASL", Config{Listeners: listeners(authn.Plaintext), InterBrokerSASLMechanism: "PLAIN", InterBrokerCredentials: creds("right")}, "SASL_SSL"},
		{"SSL, node certificate", Config{NodeID: 1, Listeners: listeners(authn.SSL), TLS: identity(1)}, ""},
		{"SSL, no node certificate", Config{NodeID: 1, Listeners: listeners(authn.SSL), TLS: identity(-1)}, "urn:strata:node:1"},
		{"SSL, another node's certificate", Config{NodeID: 1, Listeners: listeners(authn.SSL), TLS: identity(2)}, "node 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.InterBrokerListener = "INTERNAL"
			tt.cfg.setDefaults()
			err := tt.cfg.validateInterBroker()
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}
