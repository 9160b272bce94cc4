package segment

import (
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestCompactStopsAtAnAbandonedGroup: when a group's swap is given up
// (here DeleteRecords removed its first segment while the pass built its
// copy), the pass does not go on to swap later groups: a later group
// drops an expired tombstone (or a marker) only because the records it
// deletes are removed from the earlier groups in the same pass, so the
// value left in the abandoned group's surviving segment came back.
func TestCompactStopsAtAnAbandonedGroup(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	// One batch per segment (rolled by age), two segments per group.
	cfg := Config{SegmentBytes: 200, SegmentAge: time.Second, IndexIntervalBytes: 4096, Now: clock.Now, Logger: logger}
	l := openTestLog(t, t.TempDir(), 0, cfg)
	m := &compactModel{}
	for _, r := range []compactRecord{
		{key: []byte("x"), value: []byte("1")},
		{key: []byte("k"), value: []byte("v")}, // offset 1, segment 1 (group 1)
		{key: []byte("k")},                     // offset 2, segment 2 (group 2): the tombstone
		{key: []byte("y"), value: []byte("2")},
		{key: []byte("z"), value: []byte("3")}, // active segment
	} {
		r.timestamp = clock.Millis()
		m.appendRecords(t, l, recordbatch.None, []compactRecord{r}, -1)
		clock.Advance(2 * time.Second)
	}
	if got := len(l.Segments()); got != 5 {
		t.Fatalf("%d segments, want 5", got)
	}
	deleted := false
	hook := func(step string) {
		if step == "cleaned" && !deleted {
			deleted = true
			if err := l.SetStartOffset(1); err != nil { // removes segment 0 only
				t.Error(err)
			}
		}
	}
	compactHook.Store(&hook)
	defer compactHook.Store(nil)
	if _, err := l.Compact(CompactOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	compactHook.Store(nil)
	got, _ := readRecords(t, l)
	var last *compactRecord // of key k
	for i, r := range got {
		if string(r.key) == "k" {
			last = &got[i]
		}
	}
	if last != nil && last.value != nil {
		t.Fatalf("the deleted key's value is back: records %v", got)
	}
}
