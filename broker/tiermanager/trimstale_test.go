package tiermanager

import (
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// staleStateStore answers the first State() with a state read earlier:
// what a pass sees when it read the metadata just before an upload of the
// partition committed (an upload task runs beside the pass).
type staleStateStore struct {
	Store
	mu    sync.Mutex
	stale *metadata.State
}

func (s *staleStateStore) State() *metadata.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stale := s.stale; stale != nil {
		s.stale = nil
		return stale
	}
	return s.Store.State()
}

// TestPassStateBeforeFirstUploadKeepsRemoteEpochs: a pass whose metadata
// was read before the partition's first upload committed, and whose local
// copies local retention then deleted at once (finishUpload), does not
// take the local log start for the log start: the uploaded records keep
// their leader epochs, and OffsetForLeaderEpoch for epoch 0 answers its
// real end, not the local log start above it.
func TestPassStateBeforeFirstUploadKeepsRemoteEpochs(t *testing.T) {
	f := newFixture(t, 4) // epoch 0: offsets 0..19
	f.bumpLeaderEpoch()
	appendBatches(t, f.part, 6, 42) // epoch 1: offsets 20..49
	if epoch, end := f.part.EpochEndOffset(0); epoch != 0 || end != 20 {
		t.Fatalf("before: OffsetForLeaderEpoch(0) = epoch %d, end offset %d; want epoch 0 ending at 20", epoch, end)
	}

	before := f.store.State() // no remote data yet
	f.setConfigs(tiered("local.retention.bytes", "1"))
	if err := f.work(); err != nil { // uploads, and deletes the local copies
		t.Fatal(err)
	}
	if _, _, ok := f.store.State().RemoteLogOffsets(f.topic.ID, 0); !ok || f.part.LogStartOffset() <= 20 {
		t.Fatalf("want uploaded data and a local log start past offset 20; local log start %d", f.part.LogStartOffset())
	}
	if start := f.part.LogStartOffsetIn(f.store.State()); start != 0 {
		t.Fatalf("log start %d after the upload, want 0", start)
	}

	stale := &staleStateStore{Store: f.store, stale: before}
	m, err := New(Config{
		Tier: f.tier, Store: stale, NodeID: metadatatest.NodeID,
		Partitions: func() []*partition.Partition { return []*partition.Partition{f.part} },
		StagingDir: t.TempDir(),
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.tick(f.ctx, time.Now())
	m.wg.Wait()

	if epoch, end := f.part.EpochEndOffset(0); epoch != 0 || end != 20 {
		t.Fatalf("OffsetForLeaderEpoch(0) = epoch %d, end offset %d after a pass with metadata from before the upload; want epoch 0 ending at 20 (its records are in the object store)", epoch, end)
	}
}
