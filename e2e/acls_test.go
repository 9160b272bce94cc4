//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestACLsAdmin: ACLs created with franz-go's kadm and with `strata acls`
// against the real binary are listed by both, survive a kill -9 and a
// restart (they live in the metadata quorum), and are deleted by filter.
func TestACLsAdmin(t *testing.T) {
	b := startBroker(t)
	bs := []string{"--bootstrap-server", b.addr, "--output", "json"}
	list := func() []map[string]string {
		t.Helper()
		var out []map[string]string
		if err := json.Unmarshal([]byte(strataCLI(t, 0, append([]string{"acls", "list"}, bs...)...)), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	results, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || len(results) != 1 || results[0].Err != nil {
		t.Fatalf("kadm CreateACLs: %v %+v", err, results)
	}
	cl.Close()
	strataCLI(t, 0, append([]string{"acls", "create", "--deny-principal", "User:eve", "--operation", "READ", "--group", "g-", "--resource-pattern-type", "prefixed"}, bs...)...)
	// A principal that is not Type:Name is a usage error (exit 2).
	strataCLI(t, 2, append([]string{"acls", "create", "--allow-principal", "eve", "--operation", "READ", "--topic", "t"}, bs...)...)
	if got := list(); len(got) != 2 {
		t.Fatalf("list: %+v", got)
	}

	b.kill()
	b.restart(t)
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm = kadm.NewClient(cl)
	described, err := adm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().Operations().ResourcePatternType(kadm.ACLPatternAny))
	if err != nil || len(described) != 1 || described[0].Err != nil || len(described[0].Described) != 2 {
		t.Fatalf("after kill -9 and restart: %v %+v", err, described)
	}

	var deleted []map[string]string
	if err := json.Unmarshal([]byte(strataCLI(t, 0, append([]string{"acls", "delete", "--group", "g-", "--resource-pattern-type", "prefixed"}, bs...)...)), &deleted); err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0]["principal"] != "User:eve" {
		t.Fatalf("deleted %+v", deleted)
	}
	if got := list(); len(got) != 1 || got[0]["principal"] != "User:alice" || got[0]["operation"] != "WRITE" {
		t.Fatalf("left %+v", got)
	}
}

// TestACLsEnforced: a broker run with --authorizer acl and
// --allow-everyone-if-no-acl-found serves resources no ACL names to
// everyone; a DENY of DESCRIBE on a topic hides it from Metadata (strata
// topics list) and a DENY of WRITE refuses produce with
// TOPIC_AUTHORIZATION_FAILED.
func TestACLsEnforced(t *testing.T) {
	b := startBroker(t, "--authorizer", "acl", "--allow-everyone-if-no-acl-found")
	bs := []string{"--bootstrap-server", b.addr}
	strataCLI(t, 0, append([]string{"topics", "create", "--topic", "open-topic"}, bs...)...)
	strataCLI(t, 0, append([]string{"topics", "create", "--topic", "secret-topic"}, bs...)...)
	if out := strataCLI(t, 0, append([]string{"topics", "list"}, bs...)...); !strings.Contains(out, "secret-topic") {
		t.Fatalf("before the ACL: %s", out)
	}
	strataCLI(t, 0, append([]string{"acls", "create", "--deny-principal", "User:ANONYMOUS", "--operation", "DESCRIBE", "--operation", "WRITE", "--topic", "secret-topic"}, bs...)...)
	out := strataCLI(t, 0, append([]string{"topics", "list"}, bs...)...)
	if strings.Contains(out, "secret-topic") || !strings.Contains(out, "open-topic") {
		t.Fatalf("topics list with DESCRIBE denied on secret-topic:\n%s", out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "open-topic", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to open-topic: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secret-topic", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret-topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
