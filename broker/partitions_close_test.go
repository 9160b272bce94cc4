package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// leadersOnly is a group.Topic for a Manager whose shards are reached
// directly (Shards), never by group id.
type leadersOnly struct{}

func (leadersOnly) Leaders() ([]int32, error)                 { return []int32{metadatatest.NodeID}, nil }
func (leadersOnly) PartitionExists(group.TopicPartition) bool { return true }
func (leadersOnly) TopicID(string) ([16]byte, bool)           { return [16]byte{}, false }

// TestReconcileRemovesLedOffsetsPartitionWithoutWaitingForCommit (forced
// interleaving): a __consumer_offsets partition this broker leads goes
// away in one metadata change (a reassignment moving it to other brokers
// finishes with a new leader, or the topic is deleted) while its shard
// waits for an offset commit to reach the in-sync replicas, with the
// shard's mutex held. The pass closed the shard (onClose) before removing
// the partition, so the close waited for that commit, and each one queued
// behind it, until offsets.commit.timeout.ms: the replicas no longer
// follow this broker, so the commit could not complete, and the whole
// metadata reconcile stalled meanwhile. The partition's waiting appends
// now fail before the shard is closed.
func TestReconcileRemovesLedOffsetsPartitionWithoutWaitingForCommit(t *testing.T) {
	store := metadatatest.Start(t)
	metadatatest.ReportApplying(t, store, metadatatest.NodeID, metadatatest.RegisterBroker(t, store, metadatatest.NodeID))
	const follower = metadatatest.NodeID + 1
	metadatatest.ReportApplying(t, store, follower, metadatatest.RegisterBroker(t, store, follower))
	logger := slog.New(slog.DiscardHandler)
	s := &Server{log: logger, groups: group.NewManager(group.ManagerConfig{Topic: leadersOnly{}, Logger: logger})}
	t.Cleanup(s.groups.Close)
	follow := &groupsFollow{s: s, logs: map[*partition.Partition]*offsetsLog{}}
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: t.TempDir(), nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: newMetrics(nil), log: logger,
		onLeadership: follow.leadership,
		onClose:      follow.closing,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The follower is in the ISR and never fetches: a commit waits.
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: offsetsTopic, Internal: true,
		Assignments: [][]int32{{metadatatest.NodeID, follower}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := pm.get(topic, 0)
	if p == nil || !p.Leading() {
		t.Fatal("the offsets partition is not open and led here")
	}
	var sh *group.Shard
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if shards, _ := s.groups.Shards(); len(shards) == 1 && shards[0].Serving() {
			sh = shards[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shard never served")
		}
	}

	committed := make(chan error, 1)
	go func() {
		committed <- sh.CommitOffsets(group.OffsetCommitRequest{GroupID: "g", GenerationID: -1},
			map[group.TopicPartition]group.CommittedOffset{{Topic: "t", Partition: 0}: {Offset: 1}})
	}()
	// Once appended, the commit waits for the follower with the shard's
	// mutex held (until it is applied).
	for deadline := time.Now().Add(10 * time.Second); p.LogEndOffset() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the commit was never appended")
		}
	}
	if _, err := store.DeleteTopic(ctx, offsetsTopic); err != nil {
		t.Fatal(err)
	}
	reconciled := make(chan error, 1)
	go func() { reconciled <- pm.reconcile() }()
	select {
	case err := <-committed:
		// REQUEST_TIMED_OUT (COORDINATOR_NOT_AVAILABLE) after
		// offsets.commit.timeout.ms, had the pass waited for it.
		if !errors.Is(err, kerr.NotCoordinator) {
			t.Fatalf("the commit in flight when the partition went away ended with %v, want NOT_COORDINATOR at once", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the commit in flight never ended")
	}
	select {
	case err := <-reconciled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reconcile pass that removes the partition never ended")
	}
	if shards, _ := s.groups.Shards(); len(shards) != 0 {
		t.Fatal("the removed partition's shard is still installed")
	}
}

// TestReconcileRemovesPartitionWithoutFsyncingIt (forced interleaving): a
// partition removed here (its topic deleted, or its replica reassigned
// away) was closed as at shutdown before its directory went: every dirty
// segment was fsynced first, on the reconcile pass — up to a whole active
// segment of data written since the last roll (flush.ms is off by
// default), for records about to be deleted — and the pass, with every
// other partition's leadership change, waited for it. Nothing of a
// removed partition is fsynced now but the removal itself.
func TestReconcileRemovesPartitionWithoutFsyncingIt(t *testing.T) {
	store := metadatatest.Start(t)
	metadatatest.ReportApplying(t, store, metadatatest.NodeID, metadatatest.RegisterBroker(t, store, metadatatest.NodeID))
	syncing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: t.TempDir(), nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: newMetrics(nil), log: slog.New(slog.DiscardHandler),
		// A slow disk: an fsync of the partition's log takes until
		// release.
		syncFault: func(topic string, index int32) error {
			once.Do(func() { close(syncing) })
			<-release
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := openWithARecord(t, ctx, pm, store, metadata.TopicSpec{Name: "doomed", Assignments: [][]int32{{metadatatest.NodeID}}}, "unflushed")
	if _, err := store.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	reconciled := make(chan error, 1)
	go func() { reconciled <- pm.reconcile() }()
	select {
	case err := <-reconciled:
		if err != nil {
			t.Fatal(err)
		}
	case <-syncing:
		close(release)
		<-reconciled
		t.Fatal("the reconcile pass fsynced the log of the partition it removes")
	}
	if pm.get(topic, 0) != nil {
		t.Fatal("the deleted topic's partition is still open")
	}
}

// TestMaintenanceDoesNotHoldReconcile (forced interleaving): the periodic
// maintenance (retention, due flushes, high watermark checkpoints and
// producer snapshots: fsyncs, partition after partition) ran on the
// goroutine that follows metadata changes, so a slow round — a slow disk,
// or many partitions — held every leadership change back until it ended.
// Metadata changes are followed while a round is in progress now.
func TestMaintenanceDoesNotHoldReconcile(t *testing.T) {
	store := metadatatest.Start(t)
	metadatatest.ReportApplying(t, store, metadatatest.NodeID, metadatatest.RegisterBroker(t, store, metadatatest.NodeID))
	var armed atomic.Bool
	syncing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir: t.TempDir(), nodeID: metadatatest.NodeID, store: store,
		retentionInterval: time.Hour, cleanerBackoff: time.Hour,
		metrics: newMetrics(nil), log: slog.New(slog.DiscardHandler),
		// A slow disk: the due flush takes until release.
		syncFault: func(topic string, index int32) error {
			if topic == "flushed" && armed.Load() {
				once.Do(func() { close(syncing) })
				<-release
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	openWithARecord(t, ctx, pm, store, metadata.TopicSpec{Name: "flushed", Assignments: [][]int32{{metadatatest.NodeID}},
		Configs: map[string]string{"flush.ms": "1"}}, "to flush")
	armed.Store(true)
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { pm.run(runCtx); close(ran) }()
	defer func() { stop(); <-ran }()
	defer close(release)
	<-syncing // a maintenance round is in the due flush
	next, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "next", Assignments: [][]int32{{metadatatest.NodeID}}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); pm.get(next, 0) == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a topic created during a maintenance round was not opened before the round ended")
		}
	}
}

// openWithARecord creates the topic spec names, has pm open its partition
// 0 (a reconcile pass) and appends one unflushed record to it.
func openWithARecord(t *testing.T, ctx context.Context, pm *partitionManager, store *metadata.Store, spec metadata.TopicSpec, value string) metadata.Topic {
	t.Helper()
	topic, err := store.CreateTopic(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := pm.get(topic, 0)
	if p == nil {
		t.Fatal("the partition is not open")
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(value)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Append(batch, 9, time.Now()); err != nil {
		t.Fatal(err)
	}
	return topic
}
