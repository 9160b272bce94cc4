package partition

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
)

// TestReplicatedEpochCheckpointedBeforeItsBatches: a follower appends its
// leader's first batch of epoch 2 (offsets 3..4) after epoch 1's (0..2).
// The broker process dies right after that batch reached the log file: the
// page cache outlives the process, so the restarted replica has it, and its
// epoch cache starts from the leader-epoch checkpoint as it was on disk at
// that moment (a readable checkpoint is not checked against the batches).
// That checkpoint must already name epoch 2, as Kafka assigns a batch's
// epoch before appending it. Without it the restarted replica has epoch 1
// running over epoch 2's batches: leading, it answers OffsetForLeaderEpoch
// and DivergingEpoch for epoch 1 with the log end, not 3, so a follower
// with epoch 2 at 3..4 — committed records — is told its last epoch is
// unknown and truncates to the end of its own epoch 1.
func TestReplicatedEpochCheckpointedBeforeItsBatches(t *testing.T) {
	dir := t.TempDir()
	checkpoint := filepath.Join(dir, leaderEpochCheckpoint)
	armed := false
	var onDisk []byte // the checkpoint when the epoch-2 batch is written
	open := func(fault func(int) (int, error)) *Partition {
		t.Helper()
		p, err := Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{7}, Index: 0, Self: 2,
			Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler), SegmentWriteFault: fault})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	follower := open(func(int) (int, error) {
		if armed {
			data, err := os.ReadFile(checkpoint)
			if err != nil {
				t.Errorf("reading the checkpoint at the epoch-2 write: %v", err)
			}
			onDisk, armed = data, false
		}
		return 0, nil // the write goes through
	})
	replicas := []int32{1, 2}
	follower.ApplyAssignment(assignment(1, 2, replicas, replicas), t0)
	epoch1 := batch(t, recordbatch.BuildOptions{BaseOffset: 0, PartitionLeaderEpoch: 1}, "e1", 3)
	if err := follower.AppendReplicated(epoch1, 3, 2); err != nil {
		t.Fatal(err)
	}
	armed = true
	epoch2 := batch(t, recordbatch.BuildOptions{BaseOffset: 3, PartitionLeaderEpoch: 2}, "e2", 2)
	if err := follower.AppendReplicated(epoch2, 5, 2); err != nil {
		t.Fatal(err)
	}
	if onDisk == nil {
		t.Fatal("the epoch-2 batch was never written")
	}
	// The crash: the log keeps the batch, the checkpoint is as it was then.
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(checkpoint, onDisk, 0o644); err != nil {
		t.Fatal(err)
	}

	restarted := open(nil)
	if end := restarted.LogEndOffset(); end != 5 {
		t.Fatalf("restarted log end %d, want 5", end)
	}
	if epoch := restarted.LatestEpoch(); epoch != 2 {
		t.Errorf("restarted latest epoch %d, want 2: offsets 3..4 are epoch 2's", epoch)
	}
	if epoch, end := restarted.EpochEndOffset(1); epoch != 1 || end != 3 {
		t.Errorf("restarted OffsetForLeaderEpoch(1) = epoch %d end %d, want epoch 1 end 3", epoch, end)
	}
}

// TestFailedReplicatedAppendLeavesNoEpoch: the epochs checkpointed ahead of
// a replicated append go again when the log does not take its batches (a
// full disk), in memory and on disk: the replica neither states them as
// its last fetched epoch nor, leading, makes its own epoch start past its
// log end.
func TestFailedReplicatedAppendLeavesNoEpoch(t *testing.T) {
	dir := t.TempDir()
	full := false
	p, err := Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{7}, Index: 0, Self: 2,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler),
		SegmentWriteFault: func(int) (int, error) {
			if full {
				return 0, syscall.ENOSPC
			}
			return 0, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	replicas := []int32{1, 2}
	p.ApplyAssignment(assignment(1, 2, replicas, replicas), t0)
	if err := p.AppendReplicated(batch(t, recordbatch.BuildOptions{PartitionLeaderEpoch: 1}, "e1", 3), 3, 2); err != nil {
		t.Fatal(err)
	}
	full = true
	if err := p.AppendReplicated(batch(t, recordbatch.BuildOptions{BaseOffset: 3, PartitionLeaderEpoch: 2}, "e2", 2), 5, 2); err == nil {
		t.Fatal("an append to a full disk worked")
	}
	if end, epoch := p.LogEndOffset(), p.LatestEpoch(); end != 3 || epoch != 1 {
		t.Fatalf("after the failed append: log end %d, latest epoch %d; want 3, 1", end, epoch)
	}
	if c, ok := readEpochCache(dir); !ok || c.latest() != 1 {
		t.Fatalf("checkpoint after the failed append: %+v (%v), want epoch 1 last", c.entries, ok)
	}
}
