package tiermanager

import (
	"testing"
	"time"

	"github.com/strata-log/strata/metadata"
)

// TestLocalLogStartFollowsTheQuorum: a replica that missed a DeleteRecords
// (down, or out of the ISR, when its leader moved the log start) and then
// leads holds records below the log start committed in the quorum, and its
// high watermark may be short of it (the previous leader's was further).
// When its term starts its local log start moves up to the quorum's, and
// its high watermark with it, as Kafka's does when the log start passes it
// (UnifiedLog.updateLogStartOffset): no record below the log start is kept
// or served, ListOffsets EARLIEST_LOCAL (-4) is never below EARLIEST, and
// the high watermark and last stable offset (Fetch, ListOffsets LATEST)
// are never below the log start.
func TestLocalLogStartFollowsTheQuorum(t *testing.T) {
	f := newFixture(t, 20, 2) // offsets 0..99, follower 2
	f.followerAt(2, 30)
	// An earlier leader, whose high watermark was further, committed 40.
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, f.part.LeaderEpoch(), 40); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantHighWatermark int64) {
		t.Helper()
		starts := f.part.ReadLogStarts(f.store.State)
		if starts.Local != 40 || starts.Log != 40 {
			t.Fatalf("%s: local log start %d, log start %d; want 40 and 40", when, starts.Local, starts.Log)
		}
		if hw, lso := f.part.HighWatermark(), f.part.LastStableOffsetFrom(starts.Log); hw != wantHighWatermark || lso != wantHighWatermark {
			t.Fatalf("%s: high watermark %d, last stable offset %d; want %d", when, hw, lso, wantHighWatermark)
		}
	}

	// This replica's term starts: its local log start goes up to the
	// quorum's, past its high watermark, which follows.
	f.startTerm()
	check("at the start of the term, high watermark 30", 40)
	if end := f.part.LogEndOffset(); end != 100 {
		t.Fatalf("log end %d, want 100 (the records past the log start stay)", end)
	}

	// The follower catches up: the high watermark moves on from there.
	f.followerAt(2, 60)
	f.pass()
	check("after a pass, high watermark 60", 60)
}

// TestNewLeaderBehindTheQuorumLogStartRestartsThere: a replica whose log
// ends below the log start committed in the quorum (it missed the records
// and the DeleteRecords: an unclean election) starts its term with its log
// restarted at the log start, as Kafka's log is truncated fully when its
// log start passes its end: log start, high watermark and log end are the
// quorum's log start, and the term's first produce goes there — not below
// the log start, where no consumer could ever read it (Fetch
// OFFSET_OUT_OF_RANGE, ListOffsets LATEST below EARLIEST).
func TestNewLeaderBehindTheQuorumLogStartRestartsThere(t *testing.T) {
	f := newFixture(t, 20, 2) // offsets 0..99, follower 2
	f.followerAt(2, 100)
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, f.part.LeaderEpoch(), 150); err != nil {
		t.Fatal(err)
	}
	f.startTerm()
	starts := f.part.ReadLogStarts(f.store.State)
	if starts.Local != 150 || starts.Log != 150 || f.part.LogEndOffset() != 150 || f.part.HighWatermark() != 150 {
		t.Fatalf("local log start %d, log start %d, log end %d, high watermark %d; want 150 for all",
			starts.Local, starts.Log, f.part.LogEndOffset(), f.part.HighWatermark())
	}
	if lso := f.part.LastStableOffsetFrom(starts.Log); lso != 150 {
		t.Fatalf("last stable offset %d, want 150", lso)
	}
	if epoch, end := f.part.EpochEndOffset(f.part.LeaderEpoch() - 1); end < 150 {
		t.Fatalf("OffsetForLeaderEpoch of the previous epoch: epoch %d end %d, below the log start 150", epoch, end)
	}
	appendBatches(t, f.part, 1, -1)
	if got := f.part.LogEndOffset(); got <= 150 {
		t.Fatalf("log end %d after the term's first produce, want past 150", got)
	}
}

// TestFollowerFollowsTheQuorumLogStartPastItsHighWatermark: a follower's
// tier manager pass moves its local log start up to the quorum's and its
// high watermark with it, never past its log end: one whose log ends below
// the quorum's log start keeps nothing (its fetcher restarts it at its
// leader's log start).
func TestFollowerFollowsTheQuorumLogStartPastItsHighWatermark(t *testing.T) {
	f := newFixture(t, 20, 2) // offsets 0..99, follower 2
	f.followerAt(2, 30)
	topic, _ := f.store.State().TopicByID(f.topic.ID)
	if _, err := f.store.ChangePartition(f.ctx, metadata.PartitionChange{TopicID: f.topic.ID, Partition: 0,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, Leader: 2, ISR: []int32{2}}); err != nil {
		t.Fatal(err)
	}
	topic, _ = f.store.State().TopicByID(f.topic.ID)
	f.part.ApplyAssignmentAfterRemote(topic.Partitions[0], time.Now(), f.store.State())
	for _, c := range []struct{ quorum, want int64 }{{40, 40}, {150, 100}} {
		if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, topic.Partitions[0].LeaderEpoch, c.quorum); err != nil {
			t.Fatal(err)
		}
		if err := f.part.FollowQuorumLogStart(f.store.State()); err != nil {
			t.Fatal(err)
		}
		if start, hw, end := f.part.LogStartOffset(), f.part.HighWatermark(), f.part.LogEndOffset(); start != c.want || hw != c.want || end != 100 {
			t.Fatalf("quorum log start %d: local log start %d, high watermark %d, log end %d; want %d, %d, 100", c.quorum, start, hw, end, c.want, c.want)
		}
	}
}

// TestNewLeaderTrimsEpochsBelowTheQuorumLogStart: when a new leader's
// local log start follows the quorum's, its leader epoch cache forgets the
// epochs entirely below it at once, as Kafka's does when its log start
// moves (tiered data included): OffsetForLeaderEpoch of such an epoch
// answers the log start, not an end below it, which would make a consumer
// validating its position at the log start see a truncation.
func TestNewLeaderTrimsEpochsBelowTheQuorumLogStart(t *testing.T) {
	f := newFixture(t, 10, 2) // offsets 0..49, follower 2
	f.followerAt(2, 50)
	first := f.part.LeaderEpoch()
	f.startTerm()
	appendBatches(t, f.part, 10, 42) // offsets 50..99, the second epoch
	f.followerAt(2, 55)
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, f.part.LeaderEpoch(), 60); err != nil {
		t.Fatal(err)
	}
	f.startTerm()
	if start, hw := f.part.LogStartOffset(), f.part.HighWatermark(); start != 60 || hw != 60 {
		t.Fatalf("local log start %d, high watermark %d; want 60 and 60", start, hw)
	}
	if epoch, end := f.part.EpochEndOffset(first); end != 60 {
		t.Fatalf("OffsetForLeaderEpoch of epoch %d, entirely below the log start 60: epoch %d, end %d; want the log start 60", first, epoch, end)
	}
}
