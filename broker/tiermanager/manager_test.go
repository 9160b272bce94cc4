package tiermanager

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

func TestConfigValidate(t *testing.T) {
	tier := &tiering.Tier{}
	store := &metadata.Store{}
	valid := Config{Tier: tier, Store: store, Partitions: func() []*partition.Partition { return nil }, StagingDir: "staging"}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"no tier":           func(c *Config) { c.Tier = nil },
		"no store":          func(c *Config) { c.Store = nil },
		"no partitions":     func(c *Config) { c.Partitions = nil },
		"no staging dir":    func(c *Config) { c.StagingDir = "" },
		"negative interval": func(c *Config) { c.Interval = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			c := valid
			change(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestNewEmptiesTheStagingDir(t *testing.T) {
	f := newFixture(t, 1)
	staging := filepath.Join(t.TempDir(), "staging")
	if err := os.MkdirAll(filepath.Join(staging, "orders-0-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "orders-0-123", "producers"), []byte("left over"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Tier: f.tier, Store: f.store, Partitions: func() []*partition.Partition { return nil }, StagingDir: staging})
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(staging); err != nil || len(entries) != 0 {
		t.Fatalf("staging dir after New: %v, %v", entries, err)
	}
	if m.cfg.Interval != 30*time.Second {
		t.Fatalf("default interval %v", m.cfg.Interval)
	}
}

// TestPassUploadsSealedSegmentsInOrder: a pass uploads every sealed segment
// below the high watermark, oldest first, commits each, writes the
// manifest snapshot; the next pass goes on from the manifest's end.
func TestPassUploadsSealedSegmentsInOrder(t *testing.T) {
	f := newFixture(t, 40, 2) // follower 2 holds the high watermark
	sealed := f.sealed()
	if len(sealed) < 4 {
		t.Fatalf("%d sealed segments, want at least 4", len(sealed))
	}
	epoch := f.topic.Partitions[0].LeaderEpoch

	// Nothing committed yet: nothing uploaded.
	f.pass()
	if entries := f.entries(); len(entries) != 0 {
		t.Fatalf("entries above the high watermark: %+v", entries)
	}
	// The high watermark inside the second segment: only the first is
	// committed entirely.
	f.followerAt(2, sealed[1].EndOffset-1)
	f.pass()
	f.checkCoversSealed(sealed[:1], epoch)

	f.followerAt(2, f.part.LogEndOffset())
	f.pass()
	f.checkCoversSealed(sealed, epoch)

	// Remote reads give back the local bytes.
	for _, e := range f.entries() {
		batches, err := f.tier.Read(f.ctx, f.part.Name(), e, e.BaseOffset+2, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		remote := batches.AppendTo(nil)
		batches.Release()
		local, err := f.part.Read(e.BaseOffset+2, 1<<20, e.LastOffset+1, true)
		if err != nil || !bytes.Equal(remote, local) {
			t.Fatalf("segment %d: remote read differs from local (%v)", e.BaseOffset, err)
		}
	}
	snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
	if err != nil || len(snapshot.Segments) != len(sealed) || snapshot.Segments[len(sealed)-1].LastOffset != sealed[len(sealed)-1].EndOffset-1 {
		t.Fatalf("manifest snapshot: %v %+v", err, snapshot)
	}
	if lag := f.manager.lag(f.part); lag != (uploadLag{}) {
		t.Fatalf("lag %+v after uploading everything", lag)
	}

	// New segments: the next pass uploads only them.
	appendBatches(t, f.part, 20, 42)
	f.followerAt(2, f.part.LogEndOffset())
	more := f.sealed()
	if len(more) <= len(sealed) {
		t.Fatal("no new sealed segment")
	}
	want := int64(0)
	for _, info := range more[len(sealed):] {
		want += info.Size
	}
	if lag := f.manager.lag(f.part); lag.bytes != want || lag.bytes == 0 || lag.segments != len(more)-len(sealed) || lag.oldest.IsZero() {
		t.Fatalf("lag %+v, want %d bytes in %d segments", lag, want, len(more)-len(sealed))
	}
	f.pass()
	f.checkCoversSealed(more, epoch)
}

// TestPassRunsOnlyForTheLeader: nothing is uploaded by a replica that does
// not lead, leads at another epoch than the state's, or whose topic does
// not tier.
func TestPassRunsOnlyForTheLeader(t *testing.T) {
	for name, change := range map[string]func(f *fixture){
		"follower": func(f *fixture) {
			f.part.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{1, 2}}, time.Now())
		},
		"leader at an epoch the state does not know": func(f *fixture) {
			f.part.ApplyAssignment(metadata.Partition{Replicas: []int32{1}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1}}, time.Now())
		},
		"not tiered":    func(f *fixture) { f.setConfigs(tiered("remote.storage.enable", "false")) },
		"copy disabled": func(f *fixture) { f.setConfigs(tiered("remote.log.copy.disable", "true")) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 20)
			change(f)
			f.pass()
			if entries := f.entries(); len(entries) != 0 {
				t.Fatalf("entries %+v", entries)
			}
			if objects := f.objects(); len(objects) != 0 {
				t.Fatalf("objects %v", objects)
			}
		})
	}
}

// TestUnfinishedCopyIsCleanedUp: a copy an earlier leader (or this broker
// before a crash) started and never finished has its objects and entry
// deleted by the next pass, which then uploads the segment again.
func TestUnfinishedCopyIsCleanedUp(t *testing.T) {
	f := newFixture(t, 30)
	sealed := f.sealed()
	epoch := f.topic.Partitions[0].LeaderEpoch
	files := tiering.SegmentFiles{Partition: f.part.Name(), BaseOffset: sealed[0].BaseOffset,
		LogPath: sealed[0].LogPath, OffsetIndexPath: sealed[0].OffsetIndexPath, TimeIndexPath: sealed[0].TimeIndexPath}
	abandoned, err := tiering.DescribeSegment(files)
	if err != nil {
		t.Fatal(err)
	}
	abandoned.LeaderEpoch = epoch
	if err := f.store.StartSegmentCopy(f.ctx, f.topic.ID, 0, abandoned); err != nil {
		t.Fatal(err)
	}
	if err := f.tier.UploadDescribed(f.ctx, files, abandoned); err != nil {
		t.Fatal(err)
	}
	if entries := f.entries(); len(entries) != 1 || entries[0].State != metadata.SegmentCopyStarted {
		t.Fatalf("entries before the pass: %+v", entries)
	}

	f.manager = f.newManager() // as after a restart
	f.pass()
	f.checkCoversSealed(sealed, epoch)
	for _, key := range f.objects() {
		if strings.Contains(key, uuid.UUID(abandoned.SegmentID).String()) {
			t.Fatalf("object %s of the abandoned copy left behind", key)
		}
	}
}

// TestFailedUploadIsRetried: an upload the store refuses leaves its entry
// "copy started"; the task backs off; the next pass deletes what was
// written and uploads again.
func TestFailedUploadIsRetried(t *testing.T) {
	f := newFixture(t, 30)
	sealed := f.sealed()
	f.faults.FailNext(tieringtest.OpUpload, 1)
	f.pass()
	// The first segment's upload failed: no entry is finished; the
	// later uploads started with it (the pipeline) are left "copy
	// started" too.
	entries := f.entries()
	if len(entries) == 0 || len(entries) > f.tier.UploadConcurrency() || entries[0].BaseOffset != sealed[0].BaseOffset {
		t.Fatalf("entries after a failed upload: %+v", entries)
	}
	for _, e := range entries {
		if e.State != metadata.SegmentCopyStarted {
			t.Fatalf("entries after a failed upload of the first segment: %+v", entries)
		}
	}
	f.manager.mu.Lock()
	task := f.manager.tasks[f.part]
	failures, retryAt := task.failures, task.retryAt
	f.manager.mu.Unlock()
	if failures != 1 || !retryAt.After(time.Now()) {
		t.Fatalf("task after a failure: %d failures, retry at %v", failures, retryAt)
	}
	f.pass() // backing off: nothing happens
	if again := f.entries(); len(again) != len(entries) || again[0].SegmentID != entries[0].SegmentID {
		t.Fatalf("entries during the backoff: %+v", again)
	}
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	f.checkCoversSealed(sealed, f.topic.Partitions[0].LeaderEpoch)
}

func TestRetryBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 50: time.Minute} {
		if got := retryBackoff(failures); got != want {
			t.Errorf("retryBackoff(%d) = %v, want %v", failures, got, want)
		}
	}
}

// TestStaleEntries: a new pass deletes entries not finished, or every
// entry when remote storage is off with remote.log.delete.on.disable.
func TestStaleEntries(t *testing.T) {
	store := metadatatest.Start(t)
	ctx := context.Background()
	metadatatest.RegisterBroker(t, store, metadatatest.NodeID)
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "orders", Assignments: [][]int32{{metadatatest.NodeID}}})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(base int64) metadata.SegmentManifest {
		return metadata.SegmentManifest{SegmentID: uuid.New(), BaseOffset: base, LastOffset: base + 9, SizeBytes: 100,
			FirstTimestamp: -1, MaxTimestamp: -1, EpochRanges: []metadata.EpochRange{{Epoch: 0, StartOffset: base}}}
	}
	ref := func(e metadata.SegmentManifest) metadata.SegmentRef {
		return metadata.SegmentRef{TopicID: topic.ID, BaseOffset: e.BaseOffset, SegmentID: e.SegmentID}
	}
	started, finished, deleting := entry(0), entry(10), entry(20)
	for _, e := range []metadata.SegmentManifest{started, finished, deleting} {
		if err := store.StartSegmentCopy(ctx, topic.ID, 0, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []func() error{
		func() error { return store.FinishSegmentCopy(ctx, ref(finished)) },
		func() error { return store.FinishSegmentCopy(ctx, ref(deleting)) },
		func() error { return store.StartSegmentDelete(ctx, ref(deleting)) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	name := metadata.TopicPartition{Topic: topic.Name, TopicID: topic.ID}
	bases := func(entries []metadata.SegmentManifest) []int64 {
		var out []int64
		for _, e := range entries {
			out = append(out, e.BaseOffset)
		}
		return out
	}
	if got := bases(staleEntries(store.State(), name, false)); len(got) != 2 || got[0] != 0 || got[1] != 20 {
		t.Fatalf("stale entries %v, want the copy started at 0 and the delete started at 20", got)
	}
	if got := bases(staleEntries(store.State(), name, true)); len(got) != 3 {
		t.Fatalf("stale entries with deleteAll %v, want all three", got)
	}
}

// TestRunStopsWithItsContext: Run passes on its own every Interval and
// returns once its context ends.
func TestRunStopsWithItsContext(t *testing.T) {
	f := newFixture(t, 30)
	f.manager.cfg.Interval = 10 * time.Millisecond
	passes := 0
	f.manager.cfg.Partitions = func() []*partition.Partition {
		passes++ // Run's goroutine only
		return []*partition.Partition{f.part}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.manager.Run(ctx)
	}()
	// Done when the manifest snapshot, written last, lists every sealed
	// segment.
	done := func() bool {
		snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
		return err == nil && len(snapshot.Segments) == len(f.sealed())
	}
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d entries", len(f.entries()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if passes < 2 {
		t.Fatalf("%d passes", passes)
	}
	f.checkCoversSealed(f.sealed(), f.topic.Partitions[0].LeaderEpoch)
}

// TestMetrics: the tiering series keep their names and follow the passes.
func TestMetrics(t *testing.T) {
	f := newFixture(t, 10)
	registry := prometheus.NewRegistry()
	m, err := New(Config{Tier: f.tier, Store: f.store, NodeID: metadatatest.NodeID,
		Partitions: func() []*partition.Partition { return []*partition.Partition{f.part} },
		StagingDir: filepath.Join(t.TempDir(), "staging"), Registerer: registry})
	if err != nil {
		t.Fatal(err)
	}
	f.manager = m
	f.pass()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, family := range families {
		for _, metric := range family.GetMetric() {
			value := metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
			values[family.GetName()] += value
		}
	}
	sealed := f.sealed()
	uploadedBytes := int64(0)
	for _, info := range sealed {
		uploadedBytes += info.Size
	}
	for name, want := range map[string]float64{
		"strata_tiering_segments_committed_total": float64(len(sealed)),
		"strata_tiering_bytes_uploaded_total":     float64(uploadedBytes),
		"strata_tiering_upload_lag_bytes":         0,
	} {
		if got, ok := values[name]; !ok || got != want {
			t.Errorf("%s = %v (present %t), want %v", name, got, ok, want)
		}
	}
	f.part.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{1, 2}}, time.Now())
	f.pass()
	if families, _ := registry.Gather(); len(families) != 2 {
		// The lag of a partition no longer led is dropped; the counters
		// stay.
		var names []string
		for _, family := range families {
			names = append(names, family.GetName())
		}
		t.Errorf("series after losing the leadership: %v", names)
	}
}

// TestLocalRetentionWaitsForUploads: each pass sets the replicas' local
// retention limit from the manifest, so local retention deletes uploaded
// segments only, however small local.retention.bytes is.
func TestLocalRetentionWaitsForUploads(t *testing.T) {
	f := newFixture(t, 20)
	f.setConfigs(tiered("local.retention.bytes", "1"))
	retention := func() { f.part.Maintain(time.Now(), partition.Maintenance{Retention: true}) }
	retention()
	if start := f.part.LogStartOffset(); start != 0 {
		t.Fatalf("local retention deleted up to %d before any upload", start)
	}
	sealed := f.sealed()
	f.pass()
	f.pass() // the limit set at the start of a pass covers the uploads of the one before
	retention()
	if start, want := f.part.LogStartOffset(), sealed[len(sealed)-1].EndOffset; start != want {
		t.Fatalf("local log starts at %d after retention, want %d (every uploaded segment gone)", start, want)
	}
	// What is gone locally is read from the object store.
	entries := f.entries()
	if len(entries) != len(sealed) || entries[0].BaseOffset != 0 {
		t.Fatalf("entries %+v", entries)
	}
}

// TestUploadsPauseOnAnUnsharedStore: while Config.Unshared reports that
// this broker's object store is node-local in a multi-node cluster (a
// second node joined a one-node cluster tiering into its data dir),
// nothing is uploaded (and nothing committed), so no replica's local
// retention passes a segment the other nodes could not read back; once
// the store is shared, uploads resume.
func TestUploadsPauseOnAnUnsharedStore(t *testing.T) {
	f := newFixture(t, 40)
	sealed := f.sealed()
	unshared := errors.New("node-local object store in a cluster of more than one node")
	f.manager.cfg.Unshared = func() error { return unshared }
	f.pass()
	if entries, objects := f.entries(), f.objects(); len(entries) != 0 || len(objects) != 0 {
		t.Fatalf("uploaded to an unshared store: entries %+v, objects %v", entries, objects)
	}
	unshared = nil
	f.pass()
	f.checkCoversSealed(sealed, f.topic.Partitions[0].LeaderEpoch)
}
