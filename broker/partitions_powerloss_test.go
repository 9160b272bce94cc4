package broker

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestStaleDirectoryRemovalSurvivesPowerLoss runs the partition manager's
// data dir on a lost-page-cache file system (internal/lazyfs): the
// directory of a deleted topic, removed at start, stays removed through a
// power loss (before, the removal was never fsynced and it came back; on a
// file system that keeps some of an unsynced directory's unlinks, it could
// come back without its partition.metadata and then never be removed).
func TestStaleDirectoryRemovalSurvivesPowerLoss(t *testing.T) {
	store := metadatatest.Start(t) // the Raft log stays off the mount
	metadatatest.RegisterBroker(t, store, metadatatest.NodeID)
	mount := lazyfstest.Mount(t)
	dataDir := filepath.Join(mount.Dir, "data")
	// A formatted data dir: its name is durable (metadata.Format).
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.SyncDir(mount.Dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dataDir, "deleted-0")
	l, err := segment.Open(stale, 0, segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := segment.WritePartitionMetadata(stale, [16]byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: dataDir, nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: newMetrics(nil), log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the deleted topic's directory at start: stat says %v, want it removed", err)
	}
	mount.Drop(t)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the deleted topic's directory came back after a power loss: stat says %v", err)
	}
}
