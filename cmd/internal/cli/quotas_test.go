package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker/brokertest"
)

func TestQuotasFlags(t *testing.T) {
	// Nothing listens on port 1: every case is refused before any request.
	bs := []string{"--bootstrap-server", "127.0.0.1:1", "--timeout", "1s"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"quotas"}, "missing subcommand"},
		{[]string{"quotas", "grant"}, "unknown subcommand"},
		{[]string{"quotas", "set", "--producer-byte-rate", "10"}, "name the entity"},
		{[]string{"quotas", "set", "--user", "a"}, "--producer-byte-rate and/or --consumer-byte-rate"},
		{[]string{"quotas", "set", "--user", "a", "--consumer-byte-rate", "-1"}, "must be at least 1"},
		{[]string{"quotas", "set", "--user", "a", "--default", "user", "--producer-byte-rate", "1"}, "not both"},
		{[]string{"quotas", "delete", "--default", "group"}, `--default "group"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(append(tc.args, bs...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 naming %q", code, stderr, tc.want)
			}
		})
	}
	if code, _, stderr := runCLI("quotas", "--help"); code != 0 || !strings.Contains(stderr, "--producer-byte-rate") {
		t.Fatalf("--help: exit %d\n%s", code, stderr)
	}
	code, _, stderr := runCLI("serve", "--quota-window-num", "1", "--data-dir", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "--quota-window-num") {
		t.Fatalf("serve --quota-window-num 1: exit %d, %s", code, stderr)
	}
}

// TestQuotasAgainstBroker: set, list (all and one entity), delete against
// an in-process broker.
func TestQuotasAgainstBroker(t *testing.T) {
	n := brokertest.Start(t)
	bs := []string{"--bootstrap-server", n.Addr}
	run := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(append(args, bs...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		return stdout
	}
	list := func(args ...string) []QuotaInfo {
		t.Helper()
		var out []QuotaInfo
		stdout := run(append([]string{"quotas", "list", "--output", "json"}, args...)...)
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		return out
	}
	run("quotas", "set", "--user", "alice", "--producer-byte-rate", "1048576", "--consumer-byte-rate", "2097152")
	run("quotas", "set", "--user", "alice", "--default", "client-id", "--producer-byte-rate", "1024")
	run("quotas", "set", "--default", "user", "--consumer-byte-rate", "512")
	if got := list(); len(got) != 4 {
		t.Fatalf("list: %+v", got)
	}
	got := list("--user", "alice")
	if len(got) != 2 || got[0].Key != "consumer_byte_rate" || got[0].Value != 2097152 || *got[0].User != "alice" || got[0].ClientID != nil {
		t.Fatalf("list --user alice (strict: not her client-id default): %+v", got)
	}
	if got := list("--default", "user"); len(got) != 1 || *got[0].User != "<default>" || got[0].Value != 512 {
		t.Fatalf("list --default user: %+v", got)
	}
	if table := run("quotas", "list"); !strings.Contains(table, "alice      <default>  producer_byte_rate  1024") {
		t.Fatalf("table:\n%s", table)
	}
	run("quotas", "delete", "--user", "alice", "--quota", "producer_byte_rate")
	if got := list("--user", "alice"); len(got) != 1 || got[0].Key != "consumer_byte_rate" {
		t.Fatalf("after deleting producer_byte_rate: %+v", got)
	}
	run("quotas", "delete", "--user", "alice")
	if got := list("--user", "alice"); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	code, _, stderr := runCLI(append([]string{"quotas", "set", "--client-id", "x", "--producer-byte-rate", "1", "--consumer-byte-rate", "1"}, bs...)...)
	if code != 0 {
		t.Fatalf("set both: %d %s", code, stderr)
	}
}
