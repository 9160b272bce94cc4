package partition

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
)

// keyedBatch builds one batch of one record key=value.
func keyedBatch(t *testing.T, opts recordbatch.BuildOptions, key, value string) []byte {
	t.Helper()
	b, err := recordbatch.Build(opts, []recordbatch.Record{{Key: []byte(key), Value: []byte(value), Timestamp: t0.UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompactionKeepsTheProducersLastBatch: Kafka's cleaner keeps the last
// batch of every active producer, emptied of its records but with its
// producer id, epoch and sequences (BatchRetention.RETAIN_EMPTY), so that
// producer state rebuilt from the log (a follower truncating to its new
// leader, a restart without a snapshot, a follower replicating the
// cleaned log) still knows the producer and its last sequence. The
// cleaner turned the batch into a filler without a producer id: after a
// truncation rebuilt the state from the log, the producer's retry of its
// last batch was appended a second time instead of being answered as a
// duplicate.
func TestCompactionKeepsTheProducersLastBatch(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01"})
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	mustAppend(t, p, keyedBatch(t, idempotent(42, 0, 0), "k", "v1"))       // 0: producer 42's last batch
	mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "k", "v2")) // 1: supersedes it
	for i := range 6 {
		mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "other", string(rune('a'+i)))) // rolling segments
	}
	if len(p.Segments()) < 3 {
		t.Fatalf("only %d segments", len(p.Segments()))
	}
	if stats, err := p.Compact(t0.Add(time.Hour)); err != nil || stats.RecordsRemoved == 0 {
		t.Fatalf("compaction: %+v, %v", stats, err)
	}
	if again := mustAppend(t, p, keyedBatch(t, idempotent(42, 0, 0), "k", "v1")); again != 0 {
		t.Fatalf("retry before the truncation answered %d, want 0", again)
	}
	// A new leader's log ends one record earlier: the state is rebuilt.
	end := p.LogEndOffset()
	if err := p.TruncateTo(end - 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.producers.Lookup(42); !ok {
		t.Errorf("producer 42 is unknown after the truncation rebuilt the producer state from the compacted log")
	}
	if again := mustAppend(t, p, keyedBatch(t, idempotent(42, 0, 0), "k", "v1")); again != 0 {
		t.Fatalf("retry of producer 42's last batch after the truncation appended at %d, want the original offset 0 (a duplicate)", again)
	}
}

// TestTruncationKeepsProducersWhoseRecordsRetentionDeleted: KIP-360 keeps
// a producer's state after retention deleted its records, until
// producer.id.expiration.ms. A follower truncating its tail to the new
// leader's log rebuilds the state at the truncation offset; Kafka loads
// the newest snapshot at or below it (one is taken at every segment roll)
// so a producer known only from deleted segments survives. The only
// snapshot (at the log end when it was taken) was above the truncation
// offset and deleted, and the state rebuilt from the log start: the
// producer was forgotten, and its fenced older epoch accepted again.
func TestTruncationKeepsProducersWhoseRecordsRetentionDeleted(t *testing.T) {
	dir := t.TempDir()
	p := replica(t, dir, 1, map[string]string{"segment.bytes": "1024"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	mustAppend(t, p, batch(t, idempotent(42, 1, 0), "epoch-1", 1)) // producer 42 at epoch 1 fences epoch 0
	for i := range 8 {
		mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, string(rune('a'+i))+string(make([]byte, 400)), 1))
	}
	values := topicconfig.Typed(nil, map[string]string{"segment.bytes": "1024", "retention.bytes": "1"})
	if err := p.SetConfig(values, nil); err != nil {
		t.Fatal(err)
	}
	p.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Retention: true, Snapshot: true})
	if p.LogStartOffset() == 0 {
		t.Fatal("retention deleted nothing")
	}
	wantCode(t, "epoch 0 after retention", appendErr(p, batch(t, idempotent(42, 0, 0), "zombie", 1), 9), kerr.InvalidProducerEpoch)

	// More records, over several segments, then the periodic snapshot at
	// the log end; a truncation cuts the tail below it.
	if err := p.SetConfig(topicconfig.Typed(nil, map[string]string{"segment.bytes": "1024"}), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, string(rune('a'+i))+string(make([]byte, 400)), 1))
	}
	p.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Snapshot: true})
	if err := p.TruncateTo(p.LogEndOffset() - 2); err != nil {
		t.Fatal(err)
	}
	if p.LogEndOffset() <= p.LogStartOffset() {
		t.Fatalf("truncated to %d, below the log start %d", p.LogEndOffset(), p.LogStartOffset())
	}
	wantCode(t, "epoch 0 after retention and a truncation", appendErr(p, batch(t, idempotent(42, 0, 0), "zombie", 1), 9), kerr.InvalidProducerEpoch)
}

// TestRestartKeepsProducersWhoseRecordsRetentionDeleted: the same loss at
// a restart after a crash. The only producer snapshot is taken at the log
// end once a minute; retention that deletes past it before the next one
// would leave a snapshot below the log start, which recovery skips,
// rebuilding from the log start without the producer (Kafka snapshots at
// every segment roll, so a snapshot at or above the log start always holds
// it): moving the log start past the newest snapshot writes one.
func TestRestartKeepsProducersWhoseRecordsRetentionDeleted(t *testing.T) {
	dir := t.TempDir()
	p := replica(t, dir, 1, map[string]string{"segment.bytes": "1024"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	mustAppend(t, p, batch(t, idempotent(42, 1, 0), "epoch-1", 1)) // producer 42 at epoch 1 fences epoch 0
	p.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Snapshot: true})
	for i := range 8 {
		mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, string(rune('a'+i))+string(make([]byte, 400)), 1))
	}
	values := topicconfig.Typed(nil, map[string]string{"segment.bytes": "1024", "retention.bytes": "1"})
	if err := p.SetConfig(values, nil); err != nil {
		t.Fatal(err)
	}
	p.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Retention: true})
	if p.LogStartOffset() <= 1 {
		t.Fatalf("retention deleted nothing past the snapshot: log start %d", p.LogStartOffset())
	}
	// Crash: p is not closed (Close would snapshot); a new process opens the directory.
	restarted := replica(t, dir, 1, nil)
	restarted.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	wantCode(t, "epoch 0 after retention and a restart", appendErr(restarted, batch(t, idempotent(42, 0, 0), "zombie", 1), 9), kerr.InvalidProducerEpoch)
}
