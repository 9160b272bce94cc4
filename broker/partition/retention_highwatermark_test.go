package partition

import (
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestRetentionKeepsRecordsAboveTheHighWatermark: as Kafka's
// deletableSegments (only segments that end at or below the high
// watermark), retention never deletes records no follower has yet. A
// leader with retention.ms=0 whose follower has not fetched keeps its
// records: deleted, its follower would restart its log past them (behind
// the leader's log start), the high watermark would pass them, and the
// acks=all producer would be told that records no replica holds, and no
// consumer could ever read, were committed by min.insync.replicas.
func TestRetentionKeepsRecordsAboveTheHighWatermark(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"retention.ms": "0", "segment.bytes": "512", "min.insync.replicas": "2"})
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	fresh := time.Now().Add(-time.Minute)
	var end int64
	for range 4 {
		b, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: fresh.UnixMilli(), Value: make([]byte, 400)}})
		if err != nil {
			t.Fatal(err)
		}
		base, _, err := p.Append(b, 9, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		end = base + 1
	}
	if _, err := p.FollowerFetched(2, 1, t0); err != nil || p.HighWatermark() != 1 {
		t.Fatalf("follower 2 at 1: high watermark %d (%v)", p.HighWatermark(), err)
	}
	p.EnforceRetention()
	if start, hw := p.LogStartOffset(), p.HighWatermark(); start > hw {
		// What follows: the follower, behind the leader's log start,
		// restarts its log there (OFFSET_OUT_OF_RANGE, RestartAt) and
		// fetches from it; the acks=all wait is answered.
		if _, err := p.FollowerFetched(2, start, t0); err == nil {
			if done, code, _ := p.CommitStatus(end, 1); done && code == 0 {
				t.Fatalf("retention deleted the records from %d up to %d above the high watermark %d: the acks=all append ending at %d is then answered committed though only the leader ever had it (and deleted it)", hw, start, hw, end)
			}
		}
		t.Fatalf("retention deleted the records from %d up to %d, above the high watermark %d", hw, start, hw)
	}
	if start := p.LogStartOffset(); start != 1 {
		t.Fatalf("log start %d, want 1 (the committed records deleted, as retention.ms=0 asks)", start)
	}
}
