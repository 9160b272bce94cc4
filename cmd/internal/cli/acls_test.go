package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker/brokertest"
)

func TestACLsFlags(t *testing.T) {
	// Nothing listens on port 1: every case is refused before any request.
	bs := []string{"--bootstrap-server", "127.0.0.1:1", "--timeout", "1s"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"acls"}, "missing subcommand"},
		{[]string{"acls", "grant"}, "unknown subcommand"},
		{[]string{"acls", "create", "--operation", "WRITE", "--topic", "t"}, "--allow-principal or --deny-principal"},
		{[]string{"acls", "create", "--allow-principal", "User:a", "--topic", "t"}, "give --operation"},
		{[]string{"acls", "create", "--allow-principal", "User:a", "--operation", "WRITE"}, "give a resource"},
		{[]string{"acls", "create", "--allow-principal", "alice", "--operation", "WRITE", "--topic", "t"}, "want Type:Name"},
		{[]string{"acls", "create", "--allow-principal", "User:a", "--operation", "FLY", "--topic", "t"}, `--operation "FLY"`},
		{[]string{"acls", "create", "--allow-principal", "User:a", "--operation", "ANY", "--topic", "t"}, `--operation "ANY"`},
		{[]string{"acls", "create", "--allow-principal", "User:a", "--operation", "READ", "--topic", "t", "--resource-pattern-type", "match"}, "literal or prefixed"},
		{[]string{"acls", "list", "--resource-pattern-type", "fuzzy"}, "--resource-pattern-type"},
		{[]string{"acls", "delete", "--allow-principal", "User:a"}, "give a resource"},
		{[]string{"acls", "list", "--output", "yaml"}, "table or json"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(append(tc.args, bs...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 naming %q", code, stderr, tc.want)
			}
		})
	}
	if code, _, stderr := runCLI("acls", "--help"); code != 0 || !strings.Contains(stderr, "--allow-principal") {
		t.Fatalf("--help: exit %d\n%s", code, stderr)
	}
}

// TestACLsAgainstBroker: create, list (all, by topic with MATCH), delete
// against an in-process broker.
func TestACLsAgainstBroker(t *testing.T) {
	n := brokertest.Start(t)
	bs := []string{"--bootstrap-server", n.Addr, "--output", "json"}
	run := func(args ...string) []ACLInfo {
		t.Helper()
		code, stdout, stderr := runCLI(append(args, bs...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		var out []ACLInfo
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stdout)
		}
		return out
	}
	created := run("acls", "create", "--allow-principal", "User:alice", "--allow-principal", "User:bob", "--operation", "WRITE", "--operation", "describe", "--topic", "orders")
	if len(created) != 4 {
		t.Fatalf("created %+v, want 2 principals × 2 operations", created)
	}
	run("acls", "create", "--deny-principal", "User:eve", "--host", "10.0.0.9", "--operation", "ALL", "--topic", "ord", "--resource-pattern-type", "prefixed")
	run("acls", "create", "--allow-principal", "User:alice", "--operation", "read", "--group", "g", "--cluster", "--transactional-id", "tx")

	if all := run("acls", "list"); len(all) != 8 {
		t.Fatalf("list: %+v, want 8 ACLs", all)
	}
	matching := run("acls", "list", "--topic", "orders", "--resource-pattern-type", "match")
	if len(matching) != 5 {
		t.Fatalf("matching orders: %+v, want alice's and bob's 4 and eve's prefixed deny", matching)
	}
	eve := run("acls", "list", "--deny-principal", "User:eve")
	if len(eve) != 1 || eve[0] != (ACLInfo{Principal: "User:eve", Host: "10.0.0.9", Permission: "DENY", Operation: "ALL", ResourceType: "TOPIC", PatternType: "PREFIXED", ResourceName: "ord"}) {
		t.Fatalf("eve: %+v", eve)
	}
	deleted := run("acls", "delete", "--topic", "orders", "--allow-principal", "User:bob")
	if len(deleted) != 2 || deleted[0].Principal != "User:bob" || deleted[1].Principal != "User:bob" {
		t.Fatalf("deleted %+v, want bob's 2", deleted)
	}
	if all := run("acls", "list"); len(all) != 6 {
		t.Fatalf("after delete: %+v", all)
	}
	// The table output names the columns.
	code, stdout, _ := runCLI("acls", "list", "--group", "g", "--bootstrap-server", n.Addr)
	if code != 0 || !strings.Contains(stdout, "PRINCIPAL") || !strings.Contains(stdout, "User:alice") {
		t.Fatalf("table: exit %d\n%s", code, stdout)
	}
}

func TestAuthorizerFlags(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil || cfg.Broker.Authorizer != nil {
		t.Fatalf("default: %v, authorizer %+v; want none", err, cfg.Broker.Authorizer)
	}
	cfg, err = parseServe(t, "--authorizer", "acl", "--super-users", "User:admin; User:ops", "--allow-everyone-if-no-acl-found")
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Broker.Authorizer; a == nil || !a.AllowEveryoneIfNoACLFound || len(a.SuperUsers) != 2 || !a.SuperUsers["User:admin"] || !a.SuperUsers["User:ops"] {
		t.Fatalf("authorizer %+v", cfg.Broker.Authorizer)
	}
	for _, args := range [][]string{
		{"--authorizer", "simple"},
		{"--authorizer", "acl", "--super-users", "admin"},
		{"--super-users", "User:admin"},
		{"--allow-everyone-if-no-acl-found"},
	} {
		if _, err := parseServe(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
