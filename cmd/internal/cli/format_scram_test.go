package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/metadata"
)

func TestParseAddScram(t *testing.T) {
	c, err := parseAddScram("SCRAM-SHA-512=[name=admin,password=secret]")
	if err != nil || c.User != "admin" || c.Mechanism != metadata.ScramSHA512 || c.Iterations != 4096 || len(c.Salt) != 32 || len(c.StoredKey) != 64 {
		t.Fatalf("password form: %+v %v", c, err)
	}
	// The salted form derives what the password form would with that salt.
	salt := []byte("fixed-salt")
	want, err := authn.ScramCredentialWithSalt(authn.ScramSHA256, "p,w]d", salt, 8192)
	if err != nil {
		t.Fatal(err)
	}
	quoted, err := parseAddScram(`SCRAM-SHA-256=[name="alice",password="p,w]d",iterations=8192,salt="` + base64.StdEncoding.EncodeToString(salt) + `"]`)
	if err != nil || !bytes.Equal(quoted.StoredKey, want.StoredKey) || !bytes.Equal(quoted.ServerKey, want.ServerKey) || quoted.Iterations != 8192 {
		t.Fatalf("quoted password with salt: %+v %v", quoted, err)
	}
	saltedPassword := []byte(strings.Repeat("s", 32))
	fromSalted, err := authn.ScramCredentialFromSalted(authn.ScramSHA256, salt, saltedPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	c, err = parseAddScram("SCRAM-SHA-256=[name=bob,salt=" + base64.StdEncoding.EncodeToString(salt) + ",saltedpassword=" + base64.StdEncoding.EncodeToString(saltedPassword) + "]")
	if err != nil || !bytes.Equal(c.StoredKey, fromSalted.StoredKey) {
		t.Fatalf("salted form: %+v %v", c, err)
	}
	for _, bad := range []string{
		"SCRAM-SHA-1=[name=a,password=b]",
		"SCRAM-SHA-512=name=a,password=b",
		"SCRAM-SHA-512=[password=b]",
		"SCRAM-SHA-512=[name=a]",
		"SCRAM-SHA-512=[name=a,password=b,iterations=100]",
		"SCRAM-SHA-512=[name=a,password=b,iterations=99999]",
		"SCRAM-SHA-512=[name=a,password=b,colour=red]",
		"SCRAM-SHA-512=[name=a,name=b,password=c]",
		"SCRAM-SHA-512=[name=a,saltedpassword=c2FsdA==]",
		`SCRAM-SHA-512=[name=a,password="b]`,
	} {
		if _, err := parseAddScram(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestFormatAddScram: format takes repeated --add-scram values and
// refuses a bad one as a usage error (the credential's first start is
// metadata's TestFormatWithScramCredentials and e2e's).
func TestFormatAddScram(t *testing.T) {
	dir := t.TempDir()
	err := runFormat([]string{"--cluster-id", "c1", "--node-id", "1", "--data-dir", dir, "--controller-advertise", "127.0.0.1:1",
		"--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]", "--add-scram", "SCRAM-SHA-256=[name=admin,password=other]"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = runFormat([]string{"--cluster-id", "c1", "--data-dir", t.TempDir(), "--add-scram", "SCRAM-SHA-512=[name=admin]"}, io.Discard, io.Discard)
	var usage usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "--add-scram") {
		t.Fatalf("format with a credential without password: %v, want a usage error naming --add-scram", err)
	}
}
