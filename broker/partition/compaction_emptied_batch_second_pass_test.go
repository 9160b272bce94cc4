package partition

import (
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestCompactionKeepsTheEmptiedBatchOnLaterPasses: the cleaner keeps a
// producer's last data batch, emptied, when a pass removes its records
// (Kafka's RETAIN_EMPTY). A later pass that cleans the segment again
// (merging the small cleaned segments, or removing another record of it)
// must keep it as well: an empty batch that is still its producer's last
// is not a filler. The second pass folded it into a filler without a
// producer id, and a replica replicating the cleaned log from the start no
// longer knew the producer: its retry of the last batch was appended a
// second time instead of being answered as a duplicate.
func TestCompactionKeepsTheEmptiedBatchOnLaterPasses(t *testing.T) {
	configs := map[string]string{"cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01"}
	p := replica(t, t.TempDir(), 1, configs)
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	mustAppend(t, p, keyedBatch(t, idempotent(42, 0, 0), "k", "v1"))       // 0: producer 42's last batch
	mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "k", "v2")) // 1: supersedes it
	for i := range 6 {
		mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "other", string(rune('a'+i)))) // rolling segments
	}
	if stats, err := p.Compact(t0.Add(time.Hour)); err != nil || stats.RecordsRemoved == 0 {
		t.Fatalf("first compaction: %+v, %v", stats, err)
	}
	hasProducerBatch := func(what string) bool {
		data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		spans, err := recordbatch.Split(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range spans {
			h, err := recordbatch.ParseHeader(data[sp.Position : sp.Position+sp.Length])
			if err != nil {
				t.Fatal(err)
			}
			if h.ProducerID == 42 {
				return true
			}
		}
		return false
	}
	if !hasProducerBatch("after the first pass") {
		t.Fatal("the first pass dropped producer 42's last batch")
	}
	// More records: the cleaned segments are cleaned (merged) again.
	for i := range 6 {
		mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "other", string(rune('A'+i))))
	}
	if stats, err := p.Compact(t0.Add(2 * time.Hour)); err != nil || stats.SegmentsRewritten == 0 {
		t.Fatalf("second compaction: %+v, %v", stats, err)
	}
	if !hasProducerBatch("after the second pass") {
		t.Error("the second pass dropped producer 42's emptied last batch")
	}

	// A new replica replicates the cleaned log from the start.
	data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	follower := replica(t, t.TempDir(), 2, configs)
	follower.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	if err := follower.AppendReplicated(data, p.HighWatermark(), 2); err != nil {
		t.Fatal(err)
	}
	if _, ok := follower.producers.Lookup(42); !ok {
		t.Error("a replica of the cleaned log does not know producer 42")
	}
}
