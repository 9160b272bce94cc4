package broker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// onMessage is a slog handler that calls fn (once) when a record with
// message msg is logged, on the logging goroutine.
type onMessage struct {
	msg  string
	once *sync.Once
	fn   func()
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(h.fn)
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }

// TestRemoteAlignmentKeepsAcknowledgedRecords (forced interleaving): a
// leader whose local log ends inside the tiered data (a topic recovered
// from the bucket: ImportSegments bumps the leader epoch while this broker
// keeps leading) restarts its log after the remote log end. The restart
// (the partition manager's alignWithRemote) ran after ApplyAssignment had
// started the new term, and checked the log end without the partition's
// append lock: a produce in between was appended at offsets the object store holds,
// acknowledged with the high watermark past it, and then wiped by the
// restart, which moved the high watermark back.
func TestRemoteAlignmentKeepsAcknowledgedRecords(t *testing.T) {
	store := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, store, metadatatest.NodeID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const records = 150
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, func() []recordbatch.Record {
		out := make([]recordbatch.Record, records)
		for i := range out {
			out[i] = recordbatch.Record{Timestamp: time.Now().UnixMilli(), Value: []byte("acked")}
		}
		return out
	}())
	if err != nil {
		t.Fatal(err)
	}
	var (
		p         *partition.Partition
		base      int64 = -1
		appendErr error
		hwAcked   int64
	)
	handler := onMessage{msg: "local log ends inside the tiered data or below the log start; restarting it past them", once: &sync.Once{}, fn: func() {
		// A producer's request, served meanwhile on its connection's
		// goroutine; the test waits for its answer.
		done := make(chan struct{})
		go func() {
			defer close(done)
			base, _, appendErr = p.Append(append([]byte(nil), batch...), 9, time.Now())
			hwAcked = p.HighWatermark()
		}()
		<-done
	}}
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: t.TempDir(), nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: newMetrics(nil), log: slog.New(handler),
		files: fileBudget{limit: func() (uint64, bool) { return 0, false }},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "recovered", Assignments: [][]int32{{metadatatest.NodeID}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.reconcile(); err != nil {
		t.Fatal(err)
	}
	if p = pm.get(topic, 0); p == nil || !p.Leading() || p.LogEndOffset() != 0 {
		t.Fatalf("partition %v not an empty leader", p)
	}

	// Disaster recovery imports the bucket's segments, offsets 0-99.
	const remoteEnd = 99
	segment := metadata.SegmentManifest{
		SegmentID: [16]byte{0x5e, 1}, BaseOffset: 0, LastOffset: remoteEnd, SizeBytes: 10_000,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		LeaderEpoch: 3, EpochRanges: []metadata.EpochRange{{Epoch: 3, StartOffset: 0}},
	}
	if err := store.ImportSegments(ctx, topic.ID, 0, []metadata.SegmentManifest{segment}); err != nil {
		t.Fatal(err)
	}
	if err := pm.reconcile(); err != nil {
		t.Fatal(err)
	}
	if base < 0 && appendErr == nil {
		t.Fatal("the local log was not restarted (no produce injected)")
	}
	if appendErr != nil {
		return // refused, not acknowledged: nothing to lose
	}
	if base <= remoteEnd {
		t.Errorf("a produce was acknowledged at offset %d, inside the tiered offsets 0-%d", base, remoteEnd)
	}
	if hw := p.HighWatermark(); hw < hwAcked {
		t.Errorf("high watermark moved back from %d (when the produce of offsets %d-%d was acknowledged) to %d", hwAcked, base, base+records-1, hw)
	}
	data, err := p.Read(base, 1<<20, p.HighWatermark(), true)
	if err != nil {
		t.Fatalf("reading the acknowledged batch at %d: %v", base, err)
	}
	h, err := recordbatch.ParseHeader(data)
	if err != nil || h.BaseOffset != base || h.NumRecords != records {
		t.Fatalf("at the acknowledged offset %d the log has %+v (%v), not the produced batch of %d records", base, h, err, records)
	}
}
