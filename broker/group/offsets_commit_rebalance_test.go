package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestCommitCheckedAsWritten: Shard.CommitOffsets and CommitTxnOffsets
// check who commits as they write (a handler checked earlier, and the
// group may have rebalanced since), as Kafka checks and stores under the
// group's lock: a commit of a generation the group has left behind is
// refused with ILLEGAL_GENERATION, a plain member commit while the group
// completes a rebalance with REBALANCE_IN_PROGRESS (a transactional one
// is accepted then, as in Kafka), a standalone commit (generation -1) to
// a group with members with UNKNOWN_MEMBER_ID; a refused commit writes
// nothing, live or after a reload.
func TestCommitCheckedAsWritten(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	a := stableMemberOf(t, sh, "g", "consumer", subscription("t"))
	old := OffsetCommitRequest{GroupID: "g", GenerationID: a.GenerationID, MemberID: a.MemberID}
	wantErr(t, "a's commit checked before the rebalance", c.ValidateOffsetCommit(old), nil)
	if err := sh.CommitOffsets(old, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 10, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("a's commit: %v", err)
	}

	// b joins, a rejoins: a new generation, whose assignment is not synced
	// yet (CompletingRebalance).
	b := &call[JoinResult]{t: t}
	c.Join(joinReq("g", "", Protocol{Name: "range", Metadata: subscription("t")}), b.done)
	rejoined := &call[JoinResult]{t: t}
	c.Join(joinReq("g", a.MemberID, Protocol{Name: "range", Metadata: subscription("t")}), rejoined.done)
	wantErr(t, "a's rejoin", rejoined.result().Err, nil)
	wantErr(t, "b's join", b.result().Err, nil)
	current := rejoined.result().GenerationID
	if current == a.GenerationID {
		t.Fatalf("generation %d after the rebalance, want a new one", current)
	}
	producer := TxnProducer{"tx", pidA, epoch}
	one := func(offset int64) map[TopicPartition]CommittedOffset {
		return map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: offset, LeaderEpoch: -1}}
	}
	wantErr(t, "a's commit of the old generation", sh.CommitOffsets(old, one(50)), kerr.IllegalGeneration)
	wantErr(t, "a's transactional commit of the old generation", sh.CommitTxnOffsets(old, producer, one(51)), kerr.IllegalGeneration)
	b2 := OffsetCommitRequest{GroupID: "g", GenerationID: current, MemberID: b.result().MemberID}
	wantErr(t, "b's commit while completing the rebalance", sh.CommitOffsets(b2, one(52)), kerr.RebalanceInProgress)
	wantErr(t, "a standalone commit to a group with members", sh.CommitOffsets(standalone("g"), one(53)), kerr.UnknownMemberID)
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "g", tp("t", 0), 10)
		wantPending(t, s, "g", tp("t", 0), false)
	}
	wantErr(t, "b's transactional commit while completing the rebalance", sh.CommitTxnOffsets(b2, producer, one(100)), nil)
	wantPending(t, sh, "g", tp("t", 0), true)
}
