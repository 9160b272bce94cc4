package partition

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestCompactionKeepsTheProducersLastEntry: Kafka's cleaner keeps every
// producer's last entry in the log (isBatchLastRecordOfProducer), so
// producer state rebuilt from the log still fences its older epochs:
//   - after a Transactions V2 marker (which bumps the epoch) the producer
//     has no data batch at its epoch, and the marker is kept;
//   - when its last data batch is in an aborted transaction, the batch is
//     kept emptied (RETAIN_EMPTY).
//
// The cleaner removed both (the marker once delete.retention.ms passed
// after its transaction's data went, the aborted batch at once, then its
// marker): a new replica of the cleaned log did not know the producer
// and, once leader, appended a zombie of an older epoch.
func TestCompactionKeepsTheProducersLastEntry(t *testing.T) {
	for _, c := range []struct {
		name   string
		marker Marker
		epoch  int16 // of the producer's last entry
	}{
		{"V2 commit marker", Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true, TransactionVersion: 2}, 4},
		{"aborted last batch", Marker{ProducerID: 7, ProducerEpoch: 3, CoordinatorEpoch: 1}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			configs := map[string]string{"cleanup.policy": "compact", "segment.bytes": "200",
				"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0", "max.compaction.lag.ms": "1"}
			p := replica(t, t.TempDir(), 1, configs)
			p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
			p.StartTxnVerification(7, 3)
			mustAppend(t, p, keyedBatch(t, transactional(7, 3, 0), "k", "v1")) // 0
			if _, err := p.AppendMarker(c.marker, t0); err != nil {
				t.Fatal(err) // 1
			}
			mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "k", "v2")) // 2: supersedes offset 0
			for i := range 6 {
				mustAppend(t, p, keyedBatch(t, recordbatch.BuildOptions{}, "other", string(rune('a'+i)))) // rolling segments
			}
			// The data, then the marker's stamp, then the marker.
			for i := range 4 {
				if _, err := p.Compact(t0.Add(time.Duration(i) * time.Hour)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond) // past the delete horizon (delete.retention.ms=0)
			}
			// A new replica replicates the cleaned log from the start, then leads.
			data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
			if err != nil {
				t.Fatal(err)
			}
			follower := replica(t, t.TempDir(), 2, configs)
			follower.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
			if err := follower.AppendReplicated(data, p.HighWatermark(), 2); err != nil {
				t.Fatal(err)
			}
			if pr, ok := follower.producers.Lookup(7); !ok || pr.Epoch != c.epoch {
				t.Errorf("producer 7 on a replica of the cleaned log: known %v, epoch %d; want epoch %d", ok, pr.Epoch, c.epoch)
			}
			follower.ApplyAssignment(assignment(2, 3, []int32{1, 2}, []int32{2}), t0)
			wantCode(t, "an older epoch on the new leader", appendErr(follower, keyedBatch(t, idempotent(7, c.epoch-1, 0), "zombie", "z"), 9), kerr.InvalidProducerEpoch)
		})
	}
}
