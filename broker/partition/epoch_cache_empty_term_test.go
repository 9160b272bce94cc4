package partition

import (
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestEmptyLeadershipEpochGivesWayToReplicatedRecords: replica 2 led at
// epoch 5 without appending anything (its epoch cache says epoch 5 starts
// at its log end, 2); broker 1, which had more records of epoch 4 (up to
// 4), leads again at epoch 6. Replica 2's fetch position (last fetched
// epoch 4, which skips the empty epoch 5) agrees with broker 1's log, so
// it appends broker 1's epoch-4 records at 2..3 and its epoch-6 record
// at 4. Its epoch cache must then say what its log holds, as broker 1's
// does: epoch 4 up to 4, no epoch 5 (Kafka drops such an entry, "a
// conflicting epoch entry at the end of the log ... if this broker was a
// leader and ... failed to append any entries before another leader was
// elected", UnifiedLog.truncateTo). Kept, it claims offsets 2..3 for
// epoch 5: once replica 2 leads (epoch 7), it answers a follower that
// has epoch 4 up to 3 — below the high watermark — that the logs part
// at 2, and the follower truncates committed records (and a consumer's
// OffsetForLeaderEpoch(4) reports a truncation that never happened).
func TestEmptyLeadershipEpochGivesWayToReplicatedRecords(t *testing.T) {
	replicas := []int32{1, 2, 3}
	leader := replica(t, t.TempDir(), 1, nil)
	leader.ApplyAssignment(assignment(1, 4, replicas, replicas), t0)
	for range 4 {
		mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "e4", 1))
	}
	early, _ := leader.Read(0, 1<<20, 2, true) // epoch 4, offsets 0..1

	r := replica(t, t.TempDir(), 2, nil)
	r.ApplyAssignment(assignment(1, 4, replicas, replicas), t0)
	if err := r.AppendReplicated(early, 2, 4); err != nil || r.LogEndOffset() != 2 {
		t.Fatalf("replica 2 at epoch 4: end %d (%v)", r.LogEndOffset(), err)
	}
	r.ApplyAssignment(assignment(2, 5, replicas, replicas), t0) // leads, appends nothing
	leader.ApplyAssignment(assignment(2, 5, replicas, replicas), t0)

	// Broker 1 leads again at epoch 6, with its epoch-4 records 2..3.
	leader.ApplyAssignment(assignment(1, 6, replicas, replicas), t0)
	mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "e6", 1))
	r.ApplyAssignment(assignment(1, 6, replicas, replicas), t0)
	position := r.FetchPosition()
	if diverging, err := leader.DivergingEpoch(position); diverging != nil || err != nil {
		t.Fatalf("replica 2's position %+v: diverging %+v (%v), want none", position, diverging, err)
	}
	rest, _ := leader.Read(position.Offset, 1<<20, leader.LogEndOffset(), true)
	if err := r.AppendReplicated(rest, 5, 6); err != nil || r.LogEndOffset() != 5 {
		t.Fatalf("replica 2 fetching 2..4: end %d (%v)", r.LogEndOffset(), err)
	}

	for _, epoch := range []int32{4, 5, 6} {
		wantEpoch, wantEnd := leader.EpochEndOffset(epoch)
		if gotEpoch, gotEnd := r.EpochEndOffset(epoch); gotEpoch != wantEpoch || gotEnd != wantEnd {
			// Replica 2 leads at epoch 7; follower 3 has epoch 4 up to 3.
			r.ApplyAssignment(assignment(2, 7, replicas, replicas), t0)
			diverging, _ := r.DivergingEpoch(FetchPosition{Offset: 3, LastFetchedEpoch: 4})
			t.Fatalf("replica 2 holds broker 1's log 0..4, but its epoch %d ends at (%d, %d), broker 1's at (%d, %d); leading, it answers a follower at offset 3 of epoch 4 (below the high watermark %d) the diverging epoch %+v",
				epoch, gotEpoch, gotEnd, wantEpoch, wantEnd, r.HighWatermark(), diverging)
		}
	}
}
