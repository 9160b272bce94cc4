package replica

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/internal/testclock"
	"github.com/strata-log/strata/metadata"
)

// divergentFollower sets up a leader (broker leaderID) and a follower
// (followerID) of one partition whose logs share offsets 0..3 (epoch 1)
// and then part: the leader wrote 4..7 in epoch 3; the follower holds a
// tail the leader does not have, appended under tailEpoch (1: the old
// leader's epoch 1 went on past where the new leader's ended; 2: an epoch
// the new leader never saw). The follower follows the leader at epoch 3.
func divergentFollower(t *testing.T, clock *testclock.Clock, tailEpoch int32) (leaderPart, follower *partition.Partition, a metadata.Partition) {
	t.Helper()
	replicas := []int32{leaderID, followerID}
	leaderPart = openReplica(t, leaderID)
	leaderPart.ApplyAssignment(metadata.Partition{Replicas: replicas, Leader: leaderID, LeaderEpoch: 1, PartitionEpoch: 1, ISR: replicas}, clock.Now())
	appendRecords(t, leaderPart, 4) // 0..3, epoch 1
	shared, err := leaderPart.Read(0, 1<<20, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	a = metadata.Partition{Replicas: replicas, Leader: leaderID, LeaderEpoch: 3, PartitionEpoch: 3, ISR: []int32{leaderID}}
	leaderPart.ApplyAssignment(a, clock.Now())
	appendRecords(t, leaderPart, 2) // 4..5, epoch 3
	appendRecords(t, leaderPart, 2) // 6..7, epoch 3

	follower = openReplica(t, followerID)
	follower.ApplyAssignment(metadata.Partition{Replicas: replicas, Leader: leaderID, LeaderEpoch: 1, PartitionEpoch: 1, ISR: replicas}, clock.Now())
	if err := follower.AppendReplicated(shared, 4, 1); err != nil {
		t.Fatal(err)
	}
	if tailEpoch != 1 {
		follower.ApplyAssignment(metadata.Partition{Replicas: replicas, Leader: 9, LeaderEpoch: tailEpoch, PartitionEpoch: tailEpoch, ISR: replicas}, clock.Now())
	}
	// The tail: batches 4..5 and 6, so that its end, 7, falls inside the
	// leader's batch 6..7 but its batch 4..5 ends where the leader's
	// does: a follower that took the leader's batches from 7 unchecked
	// would cut back to 6 only and keep 4..5.
	for _, b := range [][]byte{replicatedBatch(t, 4, tailEpoch, "lost", 2), replicatedBatch(t, 6, tailEpoch, "lost", 1)} {
		if err := follower.AppendReplicated(b, 4, tailEpoch); err != nil {
			t.Fatal(err)
		}
	}
	follower.ApplyAssignment(a, clock.Now())
	if follower.LogEndOffset() != 7 || follower.HighWatermark() != 4 {
		t.Fatalf("setup: follower end %d, high watermark %d", follower.LogEndOffset(), follower.HighWatermark())
	}
	return leaderPart, follower, a
}

// TestFollowerTruncatesOnDivergingEpoch: a follower whose log has a tail
// the new leader does not have — written in an epoch the leader never saw,
// or in the leader's own earlier epoch past where that epoch ends on the
// leader — fetches at once in the new leader epoch, stating the epoch of
// its last batch (Fetch v12+ LastFetchedEpoch, KIP-595). The leader
// answers DivergingEpoch {1, 4} (its epoch 1 ends at 4) and no records;
// the follower truncates to 4, fetches again, and ends byte-identical to
// the leader — with no OffsetForLeaderEpoch round trip. Before, every new
// leader epoch cost an OffsetForLeaderEpoch request first.
func TestFollowerTruncatesOnDivergingEpoch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tailEpoch int32
	}{
		{"tail in an epoch the leader does not have", 2},
		{"tail past the end of the leader's epoch", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			leaderPart, follower, a := divergentFollower(t, clock, tc.tailEpoch)
			leader := serveLeader(t, leaderPart, clock, nil)
			limiter := ratelog.New(ratelog.Config{})
			t.Cleanup(limiter.Close)
			round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)

			round() // answered DivergingEpoch: truncated to 4
			if follower.LogEndOffset() != 4 {
				t.Fatalf("after the diverging answer: follower end %d, want 4", follower.LogEndOffset())
			}
			for i := 0; follower.LogEndOffset() != leaderPart.LogEndOffset(); i++ {
				if i == 10 {
					t.Fatalf("after 10 rounds: follower end %d, leader end %d", follower.LogEndOffset(), leaderPart.LogEndOffset())
				}
				round()
			}
			sameLog(t, leaderPart, follower)
			if epoch, end := follower.EpochEndOffset(1); epoch != 1 || end != 4 || follower.LatestEpoch() != 3 {
				t.Fatalf("follower epochs: epoch 1 ends at %d (epoch %d), latest %d; want the leader's: 1 ends at 4, latest 3", end, epoch, follower.LatestEpoch())
			}
			leader.mu.Lock()
			defer leader.mu.Unlock()
			if !slices.Equal(leader.diverging, []partition.EpochEnd{{Epoch: 1, EndOffset: 4}}) || leader.truncates != 0 {
				t.Fatalf("leader answered DivergingEpoch %+v and %d OffsetForLeaderEpoch; want {1 4} once and none", leader.diverging, leader.truncates)
			}
			if got := leader.offsets; len(got) < 2 || got[0] != 7 || got[1] != 4 {
				t.Fatalf("fetch offsets %v, want 7 (diverging) then 4", got)
			}
		})
	}
}

// TestDivergingEpochFromAPreviousLeaderEpoch: the leader changes while a
// fetch is in flight (forced: the follower applies the new assignment as
// the leader receives the fetch, before it answers). The DivergingEpoch
// answer was for the old term and is discarded: a follower that now leads
// keeps its whole log, and one that follows a newer leader truncates only
// on what that leader answers.
func TestDivergingEpochFromAPreviousLeaderEpoch(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(a metadata.Partition) metadata.Partition
	}{
		{"the follower leads now", func(a metadata.Partition) metadata.Partition {
			a.Leader, a.LeaderEpoch, a.PartitionEpoch, a.ISR = followerID, 4, 4, []int32{followerID}
			return a
		}},
		{"another broker leads now", func(a metadata.Partition) metadata.Partition {
			a.Leader, a.LeaderEpoch, a.PartitionEpoch = 5, 4, 4
			return a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			leaderPart, follower, a := divergentFollower(t, clock, 2)
			leader := serveLeader(t, leaderPart, clock, nil)
			limiter := ratelog.New(ratelog.Config{})
			t.Cleanup(limiter.Close)
			round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)
			leader.beforeAnswer = func() {
				follower.ApplyAssignment(tc.next(a), clock.Now())
				leader.beforeAnswer = nil
			}
			round()
			leader.mu.Lock()
			diverging := slices.Clone(leader.diverging)
			leader.mu.Unlock()
			if len(diverging) != 1 {
				t.Fatalf("the leader answered DivergingEpoch %+v, want once", diverging)
			}
			if follower.LogEndOffset() != 7 {
				t.Fatalf("a DivergingEpoch answer of the previous leader epoch truncated the follower to %d", follower.LogEndOffset())
			}
		})
	}
}

// TestFollowerOfAnOlderLeaderAsksOffsetForLeaderEpoch: a leader that
// answers Fetch below v12 cannot check the follower's last fetched epoch.
// The follower discards the unchecked answer (taking it would keep part
// of its divergent tail: the leader's batches below its log end are
// skipped as already there), asks OffsetForLeaderEpoch from then on, and
// ends byte-identical to the leader.
func TestFollowerOfAnOlderLeaderAsksOffsetForLeaderEpoch(t *testing.T) {
	clock := testclock.New(t0)
	leaderPart, follower, a := divergentFollower(t, clock, 2)
	leader := serveLeader(t, leaderPart, clock, nil)
	limiter := ratelog.New(ratelog.Config{})
	t.Cleanup(limiter.Close)
	round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch,
		kgo.MaxVersions(kversion.V2_6_0())) // Fetch v11
	for i := 0; follower.LogEndOffset() != leaderPart.LogEndOffset(); i++ {
		if i == 10 {
			t.Fatalf("after 10 rounds: follower end %d, leader end %d", follower.LogEndOffset(), leaderPart.LogEndOffset())
		}
		round()
		clock.Advance(time.Second)
	}
	sameLog(t, leaderPart, follower)
	if _, truncates := leader.requests(); truncates != 1 {
		t.Fatalf("%d OffsetForLeaderEpoch requests, want 1", truncates)
	}
}
