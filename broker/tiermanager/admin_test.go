package tiermanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// fakeCluster places every partition on node metadatatest.NodeID and
// counts reconciles.
type fakeCluster struct {
	reconciles int
	placeErr   error
}

func (c *fakeCluster) PlaceReplicas(partitions int32) ([][]int32, error) {
	if c.placeErr != nil {
		return nil, c.placeErr
	}
	assignments := make([][]int32, partitions)
	for i := range assignments {
		assignments[i] = []int32{metadatatest.NodeID}
	}
	return assignments, nil
}

func (c *fakeCluster) Reconcile() error {
	c.reconciles++
	return nil
}

// TestRecoverRebuildsTheManifest: a cluster rebuilt from the bucket alone
// gets the topic with its id, tiering on and no retention, and the
// readable segments as they were; a second run imports nothing; a topic
// of that name with another id is left alone.
func TestRecoverRebuildsTheManifest(t *testing.T) {
	f := newFixture(t, 20)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	uploaded := f.entries()

	fresh := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, fresh, metadatatest.NodeID) // where fakeCluster places replicas
	cluster := &fakeCluster{}
	var reports []RecoverProgress
	recovery := RecoverConfig{Tier: f.tier, Store: fresh, Cluster: cluster, Logger: testLogger(t)}
	if err := Recover(f.ctx, recovery, func(p RecoverProgress) { reports = append(reports, p) }); err != nil {
		t.Fatal(err)
	}
	topic, ok := fresh.State().Topic(f.topic.Name)
	if !ok || topic.ID != f.topic.ID || len(topic.Partitions) != 1 ||
		topic.Configs["remote.storage.enable"] != "true" || topic.Configs["retention.ms"] != "-1" {
		t.Fatalf("recovered topic %+v (found %t)", topic, ok)
	}
	var recovered []metadata.SegmentManifest
	fresh.State().EachSegment(topic.ID, 0, 0, func(e metadata.SegmentManifest) bool {
		recovered = append(recovered, e)
		return true
	})
	if fmt.Sprint(recovered) != fmt.Sprint(uploaded) {
		t.Fatalf("recovered entries\n%+v\nwant\n%+v", recovered, uploaded)
	}
	last := uploaded[len(uploaded)-1]
	want := RecoverProgress{Topic: f.topic.Name, Partition: 0, Segments: len(uploaded), FirstOffset: 0, NextOffset: last.LastOffset + 1, Done: 1, Total: 1}
	if len(reports) != 1 || reports[0] != want || cluster.reconciles != 1 {
		t.Fatalf("reports %+v (want %+v), %d reconciles", reports, want, cluster.reconciles)
	}

	reports = nil
	if err := Recover(f.ctx, recovery, func(p RecoverProgress) { reports = append(reports, p) }); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || reports[0].Segments != 0 || reports[0].Skipped != "" {
		t.Fatalf("second recovery: %+v", reports)
	}

	other := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, other, metadatatest.NodeID)
	if _, err := other.CreateTopic(f.ctx, metadata.TopicSpec{Name: f.topic.Name, Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
		t.Fatal(err)
	}
	reports = nil
	if err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: other, Cluster: cluster}, func(p RecoverProgress) { reports = append(reports, p) }); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || !strings.Contains(reports[0].Skipped, "another topic id") || other.State().SegmentCount() != 0 {
		t.Fatalf("recovery next to a topic of another id: %+v, %d entries", reports, other.State().SegmentCount())
	}
}

func TestRecoverFailures(t *testing.T) {
	f := newFixture(t, 10)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	placement := errors.New("no live broker")
	err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: metadatatest.Start(t), Cluster: &fakeCluster{placeErr: placement}}, nil)
	if !errors.Is(err, placement) {
		t.Fatalf("recovery without a placement: %v", err)
	}
	if err := Recover(f.ctx, RecoverConfig{Tier: f.tier}, nil); err == nil {
		t.Fatal("recovery without a store")
	}
}

// TestImportedEntries: entries at or past the remote log end are imported,
// each at the highest leader epoch of its offsets.
func TestImportedEntries(t *testing.T) {
	f := newFixture(t, 1)
	entry := func(base int64, epochs ...int32) metadata.SegmentManifest {
		e := metadata.SegmentManifest{SegmentID: uuid.New(), BaseOffset: base, LastOffset: base + 9, State: metadata.SegmentCopyFinished}
		for i, epoch := range epochs {
			e.EpochRanges = append(e.EpochRanges, metadata.EpochRange{Epoch: epoch, StartOffset: base + int64(i)})
		}
		return e
	}
	existing := entry(0, 0)
	existing.LeaderEpoch = 0
	if err := f.store.StartSegmentCopy(f.ctx, f.topic.ID, 0, existing); err != nil {
		t.Fatal(err)
	}
	if err := f.store.FinishSegmentCopy(f.ctx, metadata.SegmentRef{TopicID: f.topic.ID, BaseOffset: 0, SegmentID: existing.SegmentID}); err != nil {
		t.Fatal(err)
	}
	entries := importedEntries(f.store.State(), snapshotOf(f.part.Name(), entry(0, 0), entry(10, 1, 4), entry(20, 4, 7)))
	if len(entries) != 2 || entries[0].BaseOffset != 10 || entries[0].LeaderEpoch != 4 || entries[1].LeaderEpoch != 7 {
		t.Fatalf("imported %+v, want the entries at 10 (epoch 4) and 20 (epoch 7)", entries)
	}
	// A snapshot written at epoch 9 (leaderships without new data): the
	// entries take its epoch, so the import lifts the partition's leader
	// epoch above 9 and the recovered cluster's snapshots (manifest-10 and
	// up) supersede the old cluster's manifest-9.
	written := snapshotOf(f.part.Name(), entry(10, 1, 4), entry(20, 4, 7))
	written.Epoch = 9
	if entries := importedEntries(f.store.State(), written); len(entries) != 2 || entries[0].LeaderEpoch != 9 || entries[1].LeaderEpoch != 9 {
		t.Fatalf("imported from a snapshot of epoch 9: %+v", entries)
	}
}

// TestScrub: the bucket agrees with the manifest after uploads; a lost
// object and an object no entry names are reported; an empty manifest
// snapshot of a partition without entries is expected.
func TestScrub(t *testing.T) {
	f := newFixture(t, 10)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	report, err := Scrub(f.ctx, f.tier, f.store.State())
	if err != nil || !report.Clean() {
		t.Fatalf("scrub after uploads: %v %+v", err, report)
	}
	entries := f.entries()
	lost := entries[0]
	var lostKey string
	for _, key := range f.objects() {
		if strings.Contains(key, uuid.UUID(lost.SegmentID).String()) && strings.HasSuffix(key, ".timeindex") {
			lostKey = key
		}
	}
	if err := f.faults.Delete(f.ctx, lostKey); err != nil {
		t.Fatal(err)
	}
	if err := f.faults.Upload(f.ctx, strings.Replace(lostKey, ".timeindex", ".stray", 1), strings.NewReader("x"), 5<<20); err != nil {
		t.Fatal(err)
	}
	other, err := f.store.CreateTopic(f.ctx, metadata.TopicSpec{Name: "empty", Assignments: [][]int32{{metadatatest.NodeID}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tier.PutManifestSnapshot(f.ctx, snapshotOf(metadata.TopicPartition{Topic: other.Name, TopicID: other.ID})); err != nil {
		t.Fatal(err)
	}
	report, err = Scrub(context.Background(), f.tier, f.store.State())
	if err != nil || len(report.Missing) != 1 || report.Missing[0].Key != lostKey || report.Missing[0].Partition != f.part.Name() ||
		report.Missing[0].Segment.SegmentID != lost.SegmentID || len(report.Orphans) != 1 || len(report.SizeMismatches) != 0 {
		t.Fatalf("scrub after losing %s: %v %+v", lostKey, err, report)
	}
}

func snapshotOf(p metadata.TopicPartition, segments ...metadata.SegmentManifest) tiering.ManifestSnapshot {
	return tiering.ManifestSnapshot{Partition: p, Segments: segments}
}

// TestRecoverReservesProducerIDs: the producer ids in the recovered
// producer state (the .producers a replica restarting from the tier
// loads) are never handed to a new producer: the recovered cluster's first
// producer-id block starts above them. Handing out 42 again would let the
// old producer 42's state fence the new one (INVALID_PRODUCER_EPOCH) or
// take its first batch for a duplicate (acknowledged, never appended).
func TestRecoverReservesProducerIDs(t *testing.T) {
	f := newFixture(t, 20) // producer 42
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	fresh := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, fresh, metadatatest.NodeID)
	recovery := RecoverConfig{Tier: f.tier, Store: fresh, Cluster: &fakeCluster{}, Logger: testLogger(t)}
	if err := Recover(f.ctx, recovery, nil); err != nil {
		t.Fatal(err)
	}
	first, err := fresh.AllocateProducerIDs(f.ctx, metadatatest.NodeID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if first <= 42 {
		t.Fatalf("the recovered cluster hands out producer ids %d..%d, which include the recovered producer 42", first, first+999)
	}
}

// TestRecoverRefusesDamagedProducerState: a recovery whose bucket holds a
// damaged .producers object for a partition's last segment cannot tell
// which producer ids to keep out of allocation: it fails, naming the
// partition, before it creates or imports anything, so it can be run
// again once the object is mended.
func TestRecoverRefusesDamagedProducerState(t *testing.T) {
	f := newFixture(t, 20) // producer 42
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	var last string
	for _, key := range f.objects() {
		if strings.HasSuffix(key, ".producers") {
			last = key
		}
	}
	if last == "" {
		t.Fatalf("no .producers object uploaded: %v", f.objects())
	}
	if err := f.faults.Upload(f.ctx, last, strings.NewReader("not a producer snapshot"), 0); err != nil {
		t.Fatal(err)
	}
	fresh := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, fresh, metadatatest.NodeID)
	err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: fresh, Cluster: &fakeCluster{}, Logger: testLogger(t)}, nil)
	if err == nil || !strings.Contains(err.Error(), "producer state of "+f.topic.Name+"-0") || !strings.Contains(err.Error(), "run the recovery again") {
		t.Fatalf("recovery over a damaged .producers object: %v", err)
	}
	if topics := fresh.State().Topics(); len(topics) != 0 {
		t.Fatalf("the failed recovery created %d topics", len(topics))
	}
}

// TestRecoverProducerIDsAtTheTopOfTheRange: a recovered producer id at or
// next to math.MaxInt64 must not overflow the reservation (id+1). The
// largest id below the top is reserved up to math.MaxInt64, the last id
// a block can start at, so no id is handed out again (allocation reports
// the ids exhausted, as Kafka does for a block past the max). An id of
// math.MaxInt64 leaves no id past it to reserve: the recovery fails,
// naming the partition, before it creates anything. It overflowed into a
// negative reservation the metadata refused, without naming the
// partition.
func TestRecoverProducerIDsAtTheTopOfTheRange(t *testing.T) {
	recoverWithProducer := func(t *testing.T, producerID int64) (*metadata.Store, string, error) {
		f := newFixture(t, 0)
		appendBatches(t, f.part, 20, producerID)
		if err := f.work(); err != nil {
			t.Fatal(err)
		}
		fresh := metadatatest.Start(t)
		metadatatest.RegisterBroker(t, fresh, metadatatest.NodeID)
		err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: fresh, Cluster: &fakeCluster{}, Logger: testLogger(t)}, nil)
		return fresh, f.topic.Name, err
	}
	t.Run("max", func(t *testing.T) {
		fresh, topic, err := recoverWithProducer(t, math.MaxInt64)
		if err == nil || !strings.Contains(err.Error(), topic+"-0") || !strings.Contains(err.Error(), fmt.Sprint(int64(math.MaxInt64))) || strings.Contains(err.Error(), "-9223372036854775808") {
			t.Fatalf("recovery of producer id math.MaxInt64: %v, want an error naming %s-0 and the id", err, topic)
		}
		if topics := fresh.State().Topics(); len(topics) != 0 {
			t.Fatalf("the failed recovery created %d topics", len(topics))
		}
	})
	t.Run("max-1", func(t *testing.T) {
		fresh, _, err := recoverWithProducer(t, math.MaxInt64-1)
		if err != nil {
			t.Fatal(err)
		}
		if next := fresh.State().NextProducerID(); next != math.MaxInt64 {
			t.Fatalf("next producer id after recovering producer math.MaxInt64-1: %d, want math.MaxInt64", next)
		}
		if first, err := fresh.AllocateProducerIDs(context.Background(), metadatatest.NodeID, 1); err == nil {
			t.Fatalf("the recovered cluster hands out producer id %d after recovering producer math.MaxInt64-1", first)
		}
	})
}

// TestRecoverKeepsTheLogStart: records deleted by DeleteRecords inside a
// remote segment stay deleted after a recovery from the bucket. The
// DeleteRecords alone (no upload, no expiry after it) rewrites the
// manifest snapshot on the next pass, once; the recovered partition's log
// start is the old one, so ListOffsets EARLIEST answers it and a Fetch
// below it is OFFSET_OUT_OF_RANGE, as before the disaster.
func TestRecoverKeepsTheLogStart(t *testing.T) {
	f := newFixture(t, 20)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	uploaded := f.entries()
	logStart := uploaded[1].BaseOffset + 3 // inside the second segment
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, f.part.LeaderEpoch(), logStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.part.DeleteRecordsBefore(logStart); err != nil {
		t.Fatal(err)
	}
	snapshotPuts := 0
	f.faults.BeforeUpload(func(key string) {
		if strings.Contains(key, "/manifest-") {
			snapshotPuts++
		}
	})
	// A failed write is retried by the next pass.
	f.faults.FailNext(tieringtest.OpUpload, 1)
	for range 3 {
		if err := f.work(); err != nil {
			t.Fatal(err)
		}
	}
	snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
	if err != nil || snapshot.LogStartOffset != logStart {
		t.Fatalf("manifest snapshot after DeleteRecords to %d: log start %d, %v", logStart, snapshot.LogStartOffset, err)
	}
	if snapshotPuts != 2 {
		t.Fatalf("%d manifest snapshot writes in 3 passes after DeleteRecords (the first failing), want 2", snapshotPuts)
	}

	fresh := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, fresh, metadatatest.NodeID)
	if err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: fresh, Cluster: &fakeCluster{}, Logger: testLogger(t)}, nil); err != nil {
		t.Fatal(err)
	}
	topic, _ := fresh.State().Topic(f.topic.Name)
	if got, ok := fresh.State().LogStartOffset(topic.ID, 0); !ok || got != logStart {
		t.Fatalf("recovered log start offset %d (set %t), want %d", got, ok, logStart)
	}
	recovered := openReplica(t, topic, tieredConfigs)
	if starts := recovered.ReadLogStarts(fresh.State); starts.Log != logStart {
		t.Fatalf("recovered partition's log start (ListOffsets EARLIEST) %d, want %d: the deleted offsets %d..%d are readable again",
			starts.Log, logStart, uploaded[0].BaseOffset, logStart-1)
	}
	// A second run changes nothing.
	if err := Recover(f.ctx, RecoverConfig{Tier: f.tier, Store: fresh, Cluster: &fakeCluster{}, Logger: testLogger(t)}, nil); err != nil {
		t.Fatal(err)
	}
}
