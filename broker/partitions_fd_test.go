package broker

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestReconcileKeepsDescriptorsFree: a node assigned more partitions than
// its file descriptors hold opens only those that fit beside the reserve
// (no directory for the others), counts the rest, and opens them once
// descriptors are free.
func TestReconcileKeepsDescriptorsFree(t *testing.T) {
	store := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, store, metadatatest.NodeID)
	dataDir := t.TempDir()
	// Room for 4 partitions: 64 reserved + 4×3 beside the 100 open.
	var limit uint64 = 100 + fdReserve + 4*fdsPerPartition
	m := newMetrics(nil)
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: dataDir, nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: m, log: slog.New(slog.DiscardHandler),
		files: fileBudget{
			limit: func() (uint64, bool) { return limit, true },
			open:  func() (int, bool) { return 100, true },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	assignments := make([][]int32, 10)
	for i := range assignments {
		assignments[i] = []int32{metadatatest.NodeID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "many", Assignments: assignments})
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.reconcile(); err == nil {
		t.Fatal("reconcile reported no partition left closed")
	}
	countOpen := func() int {
		n := 0
		for i := range int32(10) {
			if pm.get(topic, i) != nil {
				n++
			}
		}
		return n
	}
	if n := countOpen(); n != 4 {
		t.Fatalf("%d partitions open, want the 4 that fit", n)
	}
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "many-*"))
	if len(dirs) != 4 {
		t.Fatalf("%d partition directories, want 4", len(dirs))
	}
	if got := testutil.ToFloat64(m.fdRefusals); got != 6 {
		t.Fatalf("file descriptor refusals %v, want 6", got)
	}
	limit = 1 << 20
	if err := pm.reconcile(); err != nil {
		t.Fatal(err)
	}
	if n := countOpen(); n != 10 {
		t.Fatalf("%d partitions open once descriptors are free, want 10", n)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "many-9", "partition.metadata")); err != nil {
		t.Fatal(err)
	}
}
