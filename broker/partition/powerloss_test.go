package partition

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// openCrashable opens a partition replica in dir, the only replica and
// leader at epoch 0, that the test "crashes": it is never closed before the
// power loss (Close would flush and snapshot), only when the test ends.
func openCrashable(t *testing.T, dir string) *Partition {
	t.Helper()
	p := openUnassigned(t, dir)
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	return p
}

// openUnassigned is openCrashable without the assignment.
func openUnassigned(t *testing.T, dir string) *Partition {
	t.Helper()
	p, err := Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{7}, Index: 0, Self: 1,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestStaleProducerSnapshotStaysRemoved runs a partition on a
// lost-page-cache file system (internal/lazyfs). A producer snapshot taken
// above what the log kept through a power loss describes batches that are
// gone, and recovery removes it. That removal must itself survive the next
// power loss: else, once the log has grown past the snapshot's offset
// again, the snapshot comes back and is loaded, and a producer's next
// batch is answered as a duplicate of batches it never wrote there (an
// acknowledged write that is not in the log).
func TestStaleProducerSnapshotStaysRemoved(t *testing.T) {
	// Records stamped now, so that no append rolls the segment for its age
	// (a roll fsyncs the directory, which would hide a missing fsync).
	idempotentNow := func(producerID int64, sequence int32, value string) []byte {
		t.Helper()
		b, err := recordbatch.Build(idempotent(producerID, 0, sequence), []recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(value)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mustAppend := func(p *Partition, b []byte) int64 {
		t.Helper()
		base, _, err := p.Append(b, 9, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return base
	}
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	crashed := openCrashable(t, dir)
	mustAppend(crashed, idempotentNow(42, 0, "a")) // offset 0
	mustAppend(crashed, idempotentNow(42, 1, "b")) // offset 1
	if _, err := crashed.syncLog(); err != nil {
		t.Fatal(err)
	}
	mustAppend(crashed, idempotentNow(42, 2, "c")) // offsets 2-3, never fsynced
	mustAppend(crashed, idempotentNow(42, 3, "d"))
	crashed.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Snapshot: true})
	stale := filepath.Join(dir, "00000000000000000004.snapshot")
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("no producer snapshot at the log end: %v", err)
	}
	mount.Drop(t) // the log keeps offsets 0-1; the snapshot at 4 survives

	recovered := openCrashable(t, dir)
	if end := recovered.LogEndOffset(); end != 2 {
		t.Fatalf("log end after a power loss %d, want 2 (the fsynced prefix)", end)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the snapshot above the recovered log end: stat says %v, want it removed", err)
	}
	// Another producer takes offsets 2-4, fsynced; nothing fsyncs the
	// partition directory in between.
	for sequence := range int32(3) {
		mustAppend(recovered, idempotentNow(43, sequence, "other"))
	}
	if _, err := recovered.syncLog(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)

	reopened := openCrashable(t, dir)
	if end := reopened.LogEndOffset(); end != 5 {
		t.Fatalf("log end after the second power loss %d, want 5", end)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale producer snapshot came back after the second power loss (stat: %v)", err)
	}
	// Producer 42 wrote sequences 0-1 only (its 2-3 were lost unacknowledged
	// with the tail): its retry of sequence 2 is new and lands at the end.
	if base := mustAppend(reopened, idempotentNow(42, 2, "c")); base != 5 {
		t.Fatalf("producer 42's sequence 2 answered at offset %d, want appended at 5 (offset 2 holds producer 43's records)", base)
	}
}

// TestNewPartitionSurvivesPowerLoss: a partition created in a durable data
// dir, whose appends were fsynced, comes back after a power loss with its
// directory, its partition.metadata and its records. Already safe:
// partition.metadata is written through atomicfile (directory fsynced),
// and segment.Open fsyncs a new log's directory and its parent.
func TestNewPartitionSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	p := openCrashable(t, dir)
	b := batch(t, idempotent(42, 0, 0), "a", 3)
	mustAppend(t, p, b)
	if _, err := p.syncLog(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)

	reopened := openCrashable(t, dir)
	if end := reopened.LogEndOffset(); end != 3 {
		t.Fatalf("log end after a power loss %d, want 3 (fsynced)", end)
	}
	if reopened.TopicID() != [16]byte{7} {
		t.Fatalf("topic id after a power loss %x", reopened.TopicID())
	}
	// A retry of the fsynced batch is a duplicate: the producer state
	// came back with the records.
	if base := mustAppend(t, reopened, batch(t, idempotent(42, 0, 0), "a", 3)); base != 0 || reopened.LogEndOffset() != 3 {
		t.Fatalf("retry answered %d, log end %d; want 0 and no append", base, reopened.LogEndOffset())
	}
}

// TestEpochCacheTrimmedThroughPowerLoss: the leader-epoch checkpoint names
// an epoch that started above what the log kept through a power loss. Open
// trims it from the cache; the trimmed cache must also be what is on disk,
// or, once the log has grown past that offset again under an older epoch
// (a follower copying its leader), a second power loss brings the stale
// entry back and OffsetForLeaderEpoch answers from a history this replica
// does not hold (the truncation decisions of KIP-101 go wrong).
func TestEpochCacheTrimmedThroughPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	crashed := openCrashable(t, dir)                                     // leader at epoch 0
	mustAppend(t, crashed, batch(t, recordbatch.BuildOptions{}, "a", 3)) // offsets 0-2, epoch 0
	if _, err := crashed.syncLog(); err != nil {
		t.Fatal(err)
	}
	crashed.ApplyAssignment(assignment(1, 5, []int32{1, 2}, []int32{1}), t0) // epoch 5 from offset 3, checkpointed
	mustAppend(t, crashed, batch(t, recordbatch.BuildOptions{}, "b", 1))     // offset 3, never fsynced
	mount.Drop(t)

	follower := openUnassigned(t, dir)
	if end := follower.LogEndOffset(); end != 3 {
		t.Fatalf("log end after a power loss %d, want 3", end)
	}
	if epoch := follower.LatestEpoch(); epoch != 0 {
		t.Fatalf("latest epoch after a power loss %d, want 0 (epoch 5 started above the log kept)", epoch)
	}
	// Broker 2 leads at epoch 6; its log holds epoch 0 up to offset 5.
	follower.ApplyAssignment(assignment(2, 6, []int32{1, 2}, []int32{2}), t0)
	fromLeader := batch(t, recordbatch.BuildOptions{BaseOffset: 3, PartitionLeaderEpoch: 0}, "c", 2) // offsets 3-4
	if err := follower.AppendReplicated(fromLeader, 5, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.syncLog(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)

	reopened := openUnassigned(t, dir)
	if end := reopened.LogEndOffset(); end != 5 {
		t.Fatalf("log end after the second power loss %d, want 5", end)
	}
	if epoch := reopened.LatestEpoch(); epoch != 0 {
		t.Errorf("latest epoch %d, want 0: every batch in the log is epoch 0", epoch)
	}
	if epoch, end := reopened.EpochEndOffset(0); epoch != 0 || end != 5 {
		t.Errorf("OffsetForLeaderEpoch(0) = epoch %d end %d, want epoch 0 end 5", epoch, end)
	}
}

// TestHighWatermarkCheckpointTrimmedThroughPowerLoss: the
// replication-offset-checkpoint names a high watermark above what the log
// kept through a power loss. Open lowers the high watermark to the log
// end; the checkpoint must be lowered too (as a truncation does), or, once
// the log has grown past it again with records its leader has not
// committed, a second power loss brings the old value back and this
// replica counts those records as committed.
func TestHighWatermarkCheckpointTrimmedThroughPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	crashed := openCrashable(t, dir)                                     // alone in its ISR: commits on append
	mustAppend(t, crashed, batch(t, recordbatch.BuildOptions{}, "a", 3)) // offsets 0-2
	if _, err := crashed.syncLog(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, crashed, batch(t, recordbatch.BuildOptions{}, "b", 2)) // offsets 3-4, never fsynced
	if err := crashed.checkpointHighWatermark(); err != nil {            // 5, durable
		t.Fatal(err)
	}
	mount.Drop(t)

	follower := openUnassigned(t, dir)
	if hw := follower.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark after a power loss %d, want 3 (the log end)", hw)
	}
	// Broker 2 leads at epoch 1 and has committed only up to offset 3.
	follower.ApplyAssignment(assignment(2, 1, []int32{1, 2}, []int32{2}), t0)
	fromLeader := batch(t, recordbatch.BuildOptions{BaseOffset: 3, PartitionLeaderEpoch: 1}, "c", 2) // offsets 3-4
	if err := follower.AppendReplicated(fromLeader, 3, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.syncLog(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)

	reopened := openUnassigned(t, dir)
	if hw := reopened.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark after the second power loss %d, want 3: offsets 3-4 were never committed", hw)
	}
}
