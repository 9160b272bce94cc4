//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
