package partition

import "testing"

// TestLogStartRaisesTheHighWatermark: a follower whose leader's log start
// (Fetch) is above its own high watermark moves its log start there and
// its high watermark with it, as Kafka's UnifiedLog does when its log
// start passes its high watermark: the high watermark is never below the
// log start. The raised high watermark is checkpointed at once, so a
// restart finds them consistent. A log start past the log end stops at the
// log end: the high watermark never passes the records this replica has
// (its fetcher restarts the log at its leader's log start).
func TestLogStartRaisesTheHighWatermark(t *testing.T) {
	dir := t.TempDir()
	_, data := leaderOfFiveSegments(t, t.TempDir())

	follower := replica(t, dir, 2, map[string]string{"segment.bytes": "1"})
	follower.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	if err := follower.AppendReplicated(data, 4, 2); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want int64) {
		t.Helper()
		start, hw := follower.LogStartOffset(), follower.HighWatermark()
		checkpointed, ok := readHighWatermarkCheckpoint(dir, "orders", 0)
		if start != want || hw != want || !ok || checkpointed != want {
			t.Fatalf("%s: log start %d, high watermark %d, checkpointed %d (%t); want %d for all", when, start, hw, checkpointed, ok, want)
		}
	}
	if err := follower.FollowLogStart(6); err != nil {
		t.Fatal(err)
	}
	check("leader's log start 6, high watermark 4", 6)
	if err := follower.FollowLogStart(15); err != nil {
		t.Fatal(err)
	}
	check("leader's log start 15, log end 10", 10)
	if end := follower.LogEndOffset(); end != 10 {
		t.Fatalf("log end %d, want 10", end)
	}

	follower.Close()
	follower = replica(t, dir, 2, map[string]string{"segment.bytes": "1"})
	check("after a restart", 10)
}

// TestLastStableOffsetNeverBelowTheLogStart: the last stable offset a
// client is answered is never below the log start it is answered with,
// even when the high watermark is (ListOffsets LATEST read_committed, a
// Fetch's last stable offset): Kafka's is never below its log start.
func TestLastStableOffsetNeverBelowTheLogStart(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 2, []int32{1}, []int32{1}), t0)
	mustAppend(t, p, batch(t, idempotent(7, 0, 0), "a", 10))
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d, want 10", hw)
	}
	for _, c := range []struct{ logStart, want int64 }{{0, 10}, {10, 10}, {12, 12}} {
		if got := p.LastStableOffsetFrom(c.logStart); got != c.want {
			t.Errorf("last stable offset from log start %d: %d, want %d", c.logStart, got, c.want)
		}
	}
}
