package broker

import (
	"strings"
	"testing"
)

func TestFileBudget(t *testing.T) {
	budget := func(limit uint64, open int) fileBudget {
		return fileBudget{
			limit: func() (uint64, bool) { return limit, true },
			open:  func() (int, bool) { return open, true },
		}
	}
	// 1024 - 100 open - 64 reserve - 300 reserved = 560 → 186 partitions.
	check := budget(1024, 100).check(300)
	if got := check.partitions(); got != 186 {
		t.Fatalf("room for %d partitions, want 186", got)
	}
	if ok, _ := check.admit(1, 186); !ok {
		t.Fatal("186 partitions refused with room for 186")
	}
	ok, msg := check.admit(1, 187)
	if ok {
		t.Fatal("187 partitions admitted with room for 186")
	}
	for _, want := range []string{"broker 1", "187 more partitions", "limit of 1024 (RLIMIT_NOFILE)", "100 are open", "364 are kept", "room for 186", "ulimit -n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// Over the limit already: no room, never negative.
	if got := budget(100, 90).check(0).partitions(); got != 0 {
		t.Fatalf("room for %d partitions past the limit", got)
	}
	// Where descriptors cannot be counted there is no bound.
	unknown := fileBudget{limit: func() (uint64, bool) { return 0, false }}
	if ok, _ := unknown.check(0).admit(1, 1_000_000); !ok {
		t.Fatal("refused without knowing the limit")
	}
	// The real process: known on Linux, with room for a few partitions.
	if real := (fileBudget{}).check(0); real.known && real.limit == 0 {
		t.Fatalf("read limit 0: %+v", real)
	}
}
