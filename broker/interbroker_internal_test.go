package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn"
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
