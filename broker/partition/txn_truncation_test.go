package partition

import (
	"testing"
)

// TestTruncationDropsHeldTransactions: a follower that replicated a
// transaction and its marker (not yet committed, so the marker holds the
// LSO at the transaction's first offset) and then truncates them away (its
// new leader never had them) must forget the hold, as Kafka clears its
// unreplicated transactions in truncateAndReload: the transaction no
// longer exists here. Leading later, its last stable offset must follow
// the high watermark; it stayed at the vanished transaction's first offset
// until the high watermark passed the vanished marker's offset — forever on
// an idle partition.
func TestTruncationDropsHeldTransactions(t *testing.T) {
	leader := replica(t, t.TempDir(), 1, nil)
	leader.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	appendTxn(t, leader, 7, 0)     // offset 0
	mustMarker(t, leader, 7, true) // offset 1, not committed: the follower has not fetched
	data, err := leader.Read(0, 1<<20, leader.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}

	follower := replica(t, t.TempDir(), 2, nil)
	follower.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	if err := follower.AppendReplicated(data, 0, 1); err != nil {
		t.Fatal(err)
	}
	// Broker 1 fails before anything is committed; broker 2 is elected and
	// a third history starts: here, the follower truncates to offset 0 (as
	// it would to agree with another new leader) and then leads.
	if err := follower.TruncateTo(0); err != nil {
		t.Fatal(err)
	}
	follower.ApplyAssignment(assignment(2, 2, []int32{1, 2}, []int32{2}), t0)
	mustAppend(t, follower, batch(t, idempotent(3, 0, 0), "plain", 1)) // offset 0
	if open := follower.OpenTransactions(); len(open) != 0 {
		t.Fatalf("open transactions %+v", open)
	}
	if hw, lso := follower.HighWatermark(), follower.LastStableOffset(); hw != 1 || lso != 1 {
		t.Fatalf("no transaction in the log: high watermark %d, LSO %d; want 1 and 1", hw, lso)
	}
}
