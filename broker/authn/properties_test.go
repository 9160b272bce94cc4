package authn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCredentialsFile: the inter-broker credentials file holds
// sasl.username/sasl.password (or sasl.jaas.config), refuses other keys,
// reports a mode others can read, and is read again when it changes; a
// change that does not parse keeps the previous credentials.
func TestCredentialsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.properties")
	write := func(data string, mode os.FileMode, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		// A distinct modification time, whatever the file system's clock
		// granularity: the reload goes by it (and the size).
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("# the brokers' user\nsasl.username = broker\nsasl.password=s3cret\n", 0o600, base)
	var reloadErrs []error
	f, loose, err := LoadCredentialsFile(path, func(err error) { reloadErrs = append(reloadErrs, err) })
	if err != nil || loose {
		t.Fatalf("load: %v, loose mode %v", err, loose)
	}
	if user, password := f.Credentials(); user != "broker" || password != "s3cret" {
		t.Fatalf("credentials %q/%q", user, password)
	}

	write(`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker2" password="n\"ew";`, 0o600, base.Add(time.Minute))
	if user, password := f.Credentials(); user != "broker2" || password != `n\"ew` {
		t.Fatalf("after the change: %q/%q", user, password)
	}
	write("sasl.username=broker3\n", 0o600, base.Add(2*time.Minute)) // no password
	if user := f.User(); user != "broker2" || len(reloadErrs) != 1 {
		t.Fatalf("after a bad change: user %q, reload errors %v", user, reloadErrs)
	}

	write("sasl.username=b\nsasl.password=p\n", 0o644, base.Add(3*time.Minute))
	if _, loose, err := LoadCredentialsFile(path, nil); err != nil || !loose {
		t.Fatalf("0644 file: %v, loose mode %v", err, loose)
	}
	write("sasl.username=b\nsasl.pasword=p\n", 0o600, base.Add(4*time.Minute))
	if _, _, err := LoadCredentialsFile(path, nil); err == nil || !strings.Contains(err.Error(), "sasl.pasword") {
		t.Fatalf("misspelled key: %v", err)
	}
}
