package replica

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/internal/testclock"
	"github.com/strata-log/strata/metadata"
)

// replicatedBatch is a batch of n records at base, written under leader
// epoch epoch, as a follower receives it.
func replicatedBatch(t *testing.T, base int64, epoch int32, value string, n int) []byte {
	t.Helper()
	records := make([]recordbatch.Record, n)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: t0.UnixMilli(), Value: []byte(value)}
	}
	b, err := recordbatch.Build(recordbatch.BuildOptions{BaseOffset: base, PartitionLeaderEpoch: epoch}, records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFollowerRecoversFromABatchBelowItsLogEnd: the leader answers a
// fetch at the follower's log end with the batch holding that offset,
// which starts below it when the two logs do not split the same offsets
// into the same batches — the follower's last batch is not the leader's
// (two histories under one leader epoch, which OffsetForLeaderEpoch cannot
// tell apart), or its log was restarted at an offset inside one of the
// leader's batches. The follower's log end is inside the leader's batch;
// before, the append failed with "replicated batch at offset 2, log end is
// 3" at every retry, forever (the nemesis saw a follower log it for good),
// the follower never caught up and stayed out of the ISR. Now the follower
// takes the leader's history: it truncates to the leader's batch and
// appends it, and ends up byte-identical to the leader. As in Kafka (a
// follower whose log is empty at an offset inside the leader's first batch
// restarts its log at that batch's base offset), and beyond it: Kafka
// fails such a partition until its leader changes.
func TestFollowerRecoversFromABatchBelowItsLogEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		// follower prepares the follower's log; the leader's is batch
		// [0..1] then [2..4], both at epoch 4.
		follower func(t *testing.T, leaderPart, f *partition.Partition)
	}{
		{"divergent last batch", func(t *testing.T, leaderPart, f *partition.Partition) {
			// [0..1] as the leader has it, then a one-record batch at 2
			// the leader does not have: the follower's end is 3.
			first, err := leaderPart.Read(0, 1<<20, 2, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.AppendReplicated(first, 0, 4); err != nil {
				t.Fatal(err)
			}
			if err := f.AppendReplicated(replicatedBatch(t, 2, 4, "lost", 1), 0, 4); err != nil {
				t.Fatal(err)
			}
		}},
		{"divergent batches across the leader's", func(t *testing.T, _, f *partition.Partition) {
			// [0] and [1..2], neither the leader's: cutting back to the
			// leader's batch at 2 leaves 0 (end 1), inside [0..1], which
			// goes at the next fetch.
			if err := f.AppendReplicated(replicatedBatch(t, 0, 4, "lost", 1), 0, 4); err != nil {
				t.Fatal(err)
			}
			if err := f.AppendReplicated(replicatedBatch(t, 1, 4, "lost", 2), 0, 4); err != nil {
				t.Fatal(err)
			}
		}},
		{"log restarted inside a batch", func(t *testing.T, leaderPart, f *partition.Partition) {
			// An empty log at 3: its first fetch is answered from the
			// batch's start, 2.
			if err := f.RestartAt(3, []metadata.EpochRange{{Epoch: 4, StartOffset: 0}}, nil); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(t0)
			a := metadata.Partition{Replicas: []int32{leaderID, followerID}, Leader: leaderID, LeaderEpoch: 4, PartitionEpoch: 4, ISR: []int32{leaderID}}
			leaderPart := openReplica(t, leaderID)
			leaderPart.ApplyAssignment(a, clock.Now())
			appendRecords(t, leaderPart, 2) // [0..1]
			end := appendRecords(t, leaderPart, 3)
			follower := openReplica(t, followerID)
			follower.ApplyAssignment(a, clock.Now())
			tc.follower(t, leaderPart, follower)

			leader := serveLeader(t, leaderPart, clock, nil)
			limiter := ratelog.New(ratelog.Config{})
			t.Cleanup(limiter.Close)
			round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)
			for i := 0; follower.LogEndOffset() != end || follower.HighWatermark() != end; i++ {
				if i == 100 {
					t.Fatalf("after 100 rounds (10 s): follower end %d, high watermark %d; want the leader's %d", follower.LogEndOffset(), follower.HighWatermark(), end)
				}
				round()
				clock.Advance(100 * time.Millisecond)
			}
			start := follower.LogStartOffset()
			want, err := leaderPart.Read(start, 1<<20, end, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := follower.Read(start, 1<<20, end, true)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || start > 2 {
				t.Fatalf("follower log from %d: %d bytes, not the leader's %d (want the leader's batches from offset 2 at least)", start, len(got), len(want))
			}
		})
	}
}

// TestFollowerTakesACompactionFillerAcrossItsLogEnd: the leader's cleaner
// replaces a run of removed batches by one empty filler batch, so a
// follower behind it (which still has some of those batches, as they were)
// fetches at a log end inside the filler. Before, the append failed at
// every retry ("replicated batch at offset 2, log end is 4"), forever —
// the nemesis saw it on __consumer_offsets; truncating to the filler, as
// for a divergent batch, would throw away the follower's compacted log
// filler by filler. Now the follower appends the filler's part past its
// log end as a filler of its own, keeps what it has, and goes on with the
// leader's next batch.
func TestFollowerTakesACompactionFillerAcrossItsLogEnd(t *testing.T) {
	clock := testclock.New(t0)
	const epoch = 4
	a := metadata.Partition{Replicas: []int32{leaderID, followerID}, Leader: leaderID, LeaderEpoch: epoch, PartitionEpoch: epoch, ISR: []int32{leaderID}}
	// The leader's log as its cleaner left it: records 0..1, a filler
	// over 2..6, record 7 (written here as replicated data under an
	// earlier assignment, then it leads).
	leaderPart := openReplica(t, leaderID)
	leaderPart.ApplyAssignment(metadata.Partition{Replicas: a.Replicas, Leader: 5, LeaderEpoch: epoch, PartitionEpoch: 3, ISR: a.Replicas}, clock.Now())
	first := replicatedBatch(t, 0, epoch, "a", 2)
	filler := recordbatch.Assemble(recordbatch.Header{BaseOffset: 2, PartitionLeaderEpoch: epoch, LastOffsetDelta: 4,
		FirstTimestamp: -1, MaxTimestamp: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, nil)
	last := replicatedBatch(t, 7, epoch, "c", 1)
	if err := leaderPart.AppendReplicated(slices.Concat(first, filler, last), 0, epoch); err != nil {
		t.Fatal(err)
	}
	leaderPart.ApplyAssignment(a, clock.Now())
	// The follower has 0..1 and 2..3 as they were before the leader
	// compacted them.
	follower := openReplica(t, followerID)
	follower.ApplyAssignment(a, clock.Now())
	removed := replicatedBatch(t, 2, epoch, "b", 2)
	if err := follower.AppendReplicated(slices.Concat(first, removed), 0, epoch); err != nil {
		t.Fatal(err)
	}

	leader := serveLeader(t, leaderPart, clock, nil)
	limiter := ratelog.New(ratelog.Config{})
	t.Cleanup(limiter.Close)
	round := followerFetcher(t, leader, clock, limiter, follower, epoch)
	for i := 0; follower.LogEndOffset() != 8 || follower.HighWatermark() != 8; i++ {
		if i == 100 {
			t.Fatalf("after 100 rounds (10 s): follower end %d, high watermark %d; want the leader's 8", follower.LogEndOffset(), follower.HighWatermark())
		}
		round()
		clock.Advance(100 * time.Millisecond)
	}
	if start := follower.LogStartOffset(); start != 0 {
		t.Fatalf("follower log start %d, want 0", start)
	}
	kept, err := follower.Read(0, 1<<20, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Concat(first, removed); !bytes.Equal(kept, want) {
		t.Fatal("the follower's records 0..3 are not the ones it had: it truncated them")
	}
	got, err := follower.Read(7, 1<<20, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, last) {
		t.Fatal("the follower does not hold the leader's record 7")
	}
}
