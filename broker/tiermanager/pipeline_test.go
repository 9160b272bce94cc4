package tiermanager

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
)

// gateBucket runs hooks around each upload of the bucket it wraps.
type gateBucket struct {
	tiering.Bucket
	// before runs before the upload; an error fails it.
	before func(key string) error
	// after runs when the upload returned.
	after func(key string)
}

func (b *gateBucket) Upload(ctx context.Context, key string, r io.Reader, partSize int) error {
	if err := b.before(key); err != nil {
		return err
	}
	err := b.Bucket.Upload(ctx, key, r, partSize)
	b.after(key)
	return err
}

// recordingStore records the base offsets of the "copy finished" commits
// (not the fencing no-op's, which names no entry).
type recordingStore struct {
	Store
	mu       sync.Mutex
	finished []int64
}

func (s *recordingStore) FinishSegmentCopy(ctx context.Context, ref metadata.SegmentRef) error {
	s.mu.Lock()
	if ref.BaseOffset >= 0 {
		s.finished = append(s.finished, ref.BaseOffset)
	}
	s.mu.Unlock()
	return s.Store.FinishSegmentCopy(ctx, ref)
}

// pipelineFixture is the fixture with a tier uploading through a
// gateBucket that holds the first segment's .log until the second
// segment's last object is uploaded, then lets it go on (failing it with
// failFirst), and a manager committing through a recordingStore.
type pipelineFixture struct {
	*fixture
	store *recordingStore
	// overlapped is set when the second segment was uploaded while the
	// first one's .log waited.
	overlapped atomic.Bool
}

func newPipelineFixture(t *testing.T, failFirst bool) *pipelineFixture {
	f := &pipelineFixture{fixture: newFixture(t, 30)}
	sealed := f.sealed()
	if len(sealed) < 3 {
		t.Fatalf("%d sealed segments, want at least 3", len(sealed))
	}
	stem := func(i int) string { return fmt.Sprintf("/%020d-", sealed[i].BaseOffset) }
	secondDone := make(chan struct{})
	var closeOnce sync.Once
	var failed atomic.Bool
	gate := &gateBucket{Bucket: f.faults,
		before: func(key string) error {
			if !strings.Contains(key, stem(0)) || !strings.HasSuffix(key, ".log") {
				return nil
			}
			select {
			case <-secondDone:
				f.overlapped.Store(true)
			case <-time.After(10 * time.Second): // uploads run one at a time: the test fails
			}
			if failFirst && !failed.Swap(true) {
				return fmt.Errorf("injected: %w", tiering.ErrUnavailable)
			}
			return nil
		},
		after: func(key string) {
			if strings.Contains(key, stem(1)) && strings.HasSuffix(key, ".txnindex") {
				closeOnce.Do(func() { close(secondDone) })
			}
		},
	}
	f.tier = f.newTier(gate, 4)
	f.store = &recordingStore{Store: f.fixture.store}
	m, err := New(Config{
		Tier: f.tier, Store: f.store, NodeID: metadatatest.NodeID,
		Partitions: func() []*partition.Partition { return []*partition.Partition{f.part} },
		StagingDir: filepath.Join(t.TempDir(), "staging"), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.manager = m
	return f
}

// TestPipelinedUploadsCommitInOffsetOrder: a partition's sealed segments
// are uploaded concurrently (the second one is written while the first
// one's .log is held back), and their "copy finished" commits still come
// in offset order.
func TestPipelinedUploadsCommitInOffsetOrder(t *testing.T) {
	f := newPipelineFixture(t, false)
	sealed := f.sealed()
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	if !f.overlapped.Load() {
		t.Fatal("the second segment was not uploaded while the first one's upload waited: uploads are not pipelined")
	}
	want := make([]int64, len(sealed))
	for i, info := range sealed {
		want[i] = info.BaseOffset
	}
	if !slices.Equal(f.store.finished, want) {
		t.Fatalf("copy finished committed for base offsets %v, want %v (offset order)", f.store.finished, want)
	}
	f.checkCoversSealed(sealed, f.topic.Partitions[0].LeaderEpoch)
}

// TestPipelinedUploadFailureCommitsNoLaterSegment: the first segment's
// upload fails after the second one's succeeded; no "copy finished" is
// committed (the manifest's end must not pass the failed segment), and the
// next pass deletes the unfinished copies and uploads everything.
func TestPipelinedUploadFailureCommitsNoLaterSegment(t *testing.T) {
	f := newPipelineFixture(t, true)
	sealed := f.sealed()
	if err := f.work(); err == nil {
		t.Fatal("the pass succeeded with the first segment's upload failing")
	}
	if !f.overlapped.Load() {
		t.Fatal("the second segment was not uploaded while the first one's upload waited")
	}
	if len(f.store.finished) != 0 {
		t.Fatalf("copy finished committed for %v after the first segment's upload failed", f.store.finished)
	}
	entries := f.entries()
	if len(entries) < 2 {
		t.Fatalf("entries %+v, want at least the two segments started", entries)
	}
	for _, e := range entries {
		if e.State != metadata.SegmentCopyStarted {
			t.Fatalf("entry %+v after the first segment's upload failed, want every entry copy started", e)
		}
	}
	if _, _, ok := f.store.State().RemoteLogOffsets(f.topic.ID, 0); ok {
		t.Fatal("the remote log has readable data")
	}
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	f.checkCoversSealed(sealed, f.topic.Partitions[0].LeaderEpoch)
	if f.store.finished[0] != sealed[0].BaseOffset {
		t.Fatalf("copy finished order %v", f.store.finished)
	}
}

// TestUploadLagMetrics: strata_tiering_upload_lag_segments and
// strata_tiering_upload_lag_seconds per topic, after a failed pass (every
// sealed segment behind; the age of the oldest at the scrape) and after a
// pass that uploaded everything (0 and 0).
func TestUploadLagMetrics(t *testing.T) {
	f := newFixture(t, 30)
	registry := prometheus.NewRegistry()
	f.manager.metrics = newMetrics(registry)
	sealed := f.sealed()
	oldest := f.manager.lag(f.part).oldest
	if oldest.IsZero() {
		t.Fatal("no age for the oldest sealed segment")
	}
	f.manager.metrics.lags.now = func() time.Time { return oldest.Add(90 * time.Second) }
	gauge := func(name string) float64 {
		t.Helper()
		families, err := registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, family := range families {
			if family.GetName() != name {
				continue
			}
			for _, metric := range family.GetMetric() {
				if label := metric.GetLabel(); len(label) == 1 && label[0].GetValue() == f.topic.Name {
					return metric.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{topic=%q}", name, f.topic.Name)
		return 0
	}

	// Every request fails (uploads are pipelined: failing only the next
	// one would let an earlier segment's upload through when a later one
	// reaches the bucket first).
	f.faults.SetUnreachable(true)
	f.pass()
	f.faults.SetUnreachable(false)
	if got := gauge("strata_tiering_upload_lag_segments"); got != float64(len(sealed)) {
		t.Fatalf("lag segments %v after a failed pass, want %d", got, len(sealed))
	}
	if got := gauge("strata_tiering_upload_lag_seconds"); got != 90 {
		t.Fatalf("lag seconds %v, want 90", got)
	}
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	if got := gauge("strata_tiering_upload_lag_segments"); got != 0 {
		t.Fatalf("lag segments %v after uploading everything", got)
	}
	if got := gauge("strata_tiering_upload_lag_seconds"); got != 0 {
		t.Fatalf("lag seconds %v after uploading everything", got)
	}
}

// TestLagCollectorAggregatesTopics: segments add up over a topic's
// partitions, the age is the oldest's.
func TestLagCollectorAggregatesTopics(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newLagCollector(func() time.Time { return now })
	c.set(metadata.TopicPartition{Topic: "a", Partition: 0}, uploadLag{bytes: 10, segments: 2, oldest: now.Add(-30 * time.Second)})
	c.set(metadata.TopicPartition{Topic: "a", Partition: 1}, uploadLag{bytes: 10, segments: 1, oldest: now.Add(-50 * time.Second)})
	c.set(metadata.TopicPartition{Topic: "b", Partition: 0}, uploadLag{})
	registry := prometheus.NewRegistry()
	registry.MustRegister(c)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, family := range families {
		for _, metric := range family.GetMetric() {
			got[family.GetName()+"/"+metric.GetLabel()[0].GetValue()] = metric.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"strata_tiering_upload_lag_segments/a": 3, "strata_tiering_upload_lag_seconds/a": 50,
		"strata_tiering_upload_lag_segments/b": 0, "strata_tiering_upload_lag_seconds/b": 0,
	}
	for key, value := range want {
		if got[key] != value {
			t.Fatalf("%s = %v, want %v (all: %v)", key, got[key], value, got)
		}
	}
	c.forget(metadata.TopicPartition{Topic: "b", Partition: 0})
	if families, _ := registry.Gather(); len(families[0].GetMetric()) != 1 {
		t.Fatalf("topic b still exported after its only partition was forgotten: %v", families)
	}
}
