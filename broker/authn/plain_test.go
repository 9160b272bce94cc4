package authn_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn"
)

// TestPlainUsersReload: the users file is re-read when it changes; a
// rewrite that does not parse keeps the previous users and is reported.
func TestPlainUsersReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeStamped(t, path, []byte("alice:a-secret\nbob:b-secret\n"), time.Now())
	var reloadErrors []error
	users, err := authn.LoadPlainUsers(path, func(err error) { reloadErrors = append(reloadErrors, err) })
	if err != nil {
		t.Fatal(err)
	}
	if !users.Verify("bob", "b-secret") || users.Verify("carol", "c-secret") {
		t.Fatal("initial users wrong")
	}
	writeStamped(t, path, []byte("alice:a-secret\ncarol:c-secret\n"), time.Now().Add(time.Second))
	if users.Verify("bob", "b-secret") || !users.Verify("carol", "c-secret") || !users.Verify("alice", "a-secret") {
		t.Fatal("after the rewrite: bob must be gone, carol added")
	}
	writeStamped(t, path, []byte("alice:a-secret\nbroken line\n"), time.Now().Add(2*time.Second))
	if !users.Verify("carol", "c-secret") || len(reloadErrors) != 1 || !strings.Contains(reloadErrors[0].Error(), "line 2") {
		t.Fatalf("broken rewrite: carol kept %t, reload errors %v; want the previous users and an error naming line 2", users.Verify("carol", "c-secret"), reloadErrors)
	}
	users.Verify("alice", "a-secret")
	if len(reloadErrors) != 1 {
		t.Fatalf("the same broken file was reported again: %v", reloadErrors)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !users.Verify("carol", "c-secret") {
		t.Fatal("a removed file dropped the users")
	}
}
