package tiermanager

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// TestDeposedUploaderLeavesNoOrphans forces the interleaving a paused
// leader meets (a SIGSTOP, a GC pause, a slow PUT): broker 1 uploads a
// partition's first segment, commits it, commits "copy started" for the
// second, writes its .log and stops before the .index. Leadership moves to
// broker 2, whose pass deletes the unfinished copy, uploads the data again
// and writes its manifest snapshot at the new epoch. Then broker 1 wakes
// up: it writes the rest of its copy (no entry names it any more), its
// "copy finished" is refused (fenced leader epoch), and it writes its
// manifest snapshot, late. The bucket's newest snapshot must still be
// broker 2's, scrub must report broker 1's late objects, and broker 2's
// next orphan sweep must leave the bucket exactly what the manifest names.
func TestDeposedUploaderLeavesNoOrphans(t *testing.T) {
	f := newFixture(t, 30, 2)
	// Broker 1 uploads one segment at a time, so that its late objects
	// are the second segment's (broker 2 has its own tier: f.tier).
	shared := f.tier
	f.tier = f.newTier(f.faults, 1)
	f.manager = f.newManager()
	f.tier = shared
	if len(f.sealed()) < 3 {
		t.Fatalf("%d sealed segments, want at least 3", len(f.sealed()))
	}
	f.followerAt(2, f.part.LogEndOffset())

	// Broker 1 stops before the second segment's .index.
	paused, resume := make(chan struct{}), make(chan struct{})
	var indexes atomic.Int32
	f.faults.BeforeUpload(func(key string) {
		if strings.HasSuffix(key, ".index") && indexes.Add(1) == 2 {
			close(paused)
			<-resume
		}
	})
	deposed := make(chan error, 1)
	go func() { deposed <- f.work() }()
	<-paused

	leader, second, newEpoch := takeOver(f, 30)
	second.tick(f.ctx, time.Now())
	second.wg.Wait()
	if entries := f.entries(); len(entries) < 3 || entries[len(entries)-1].State != metadata.SegmentCopyFinished {
		t.Fatalf("broker 2's pass left the manifest %+v", entries)
	}

	// Broker 1 wakes up.
	close(resume)
	if err := <-deposed; !errors.Is(err, metadata.ErrFencedLeaderEpoch) {
		t.Fatalf("the deposed uploader's pass: %v, want its commit fenced", err)
	}
	snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
	if err != nil || snapshot.Epoch != newEpoch || len(snapshot.Segments) != len(f.entries()) {
		t.Fatalf("newest manifest snapshot after the deposed leader's late one: %v, epoch %d with %d segments; want broker 2's (epoch %d, %d segments)",
			err, snapshot.Epoch, len(snapshot.Segments), newEpoch, len(f.entries()))
	}
	report, err := Scrub(f.ctx, f.tier, f.store.State())
	if err != nil || len(report.Orphans) != 6 || len(report.Missing) != 0 {
		t.Fatalf("scrub after the deposed leader woke: %v %+v; want its 5 late objects and its late snapshot as orphans", err, report)
	}

	second.mu.Lock()
	task := second.tasks[leader]
	second.mu.Unlock()
	task.sweptAt = time.Time{} // the next sweep is due
	second.tick(f.ctx, time.Now())
	second.wg.Wait()
	if report, err := Scrub(f.ctx, f.tier, f.store.State()); err != nil || !report.Clean() {
		t.Fatalf("scrub after broker 2's next sweep: %v %+v", err, report)
	}
}

// TestDeposedSnapshotWriterLosesToTheNewLeader: broker 1 reads the
// manifest for its snapshot and stops before writing it; broker 2 takes
// over, uploads more segments and writes its snapshot; broker 1 wakes up
// and writes its stale one. The bucket must serve broker 2's (a recovery
// from the bucket alone must see every segment broker 2 uploaded), and
// broker 2's next snapshot deletes broker 1's.
func TestDeposedSnapshotWriterLosesToTheNewLeader(t *testing.T) {
	f := newFixture(t, 30, 2)
	f.followerAt(2, f.part.LogEndOffset())
	paused, resume := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	f.faults.BeforeUpload(func(key string) {
		if strings.Contains(key, "/manifest") && !first.Swap(true) {
			close(paused)
			<-resume
		}
	})
	deposed := make(chan error, 1)
	go func() { deposed <- f.work() }()
	<-paused
	stale := len(f.entries())

	leader, second, newEpoch := takeOver(f, 60) // twice the records: more segments
	second.tick(f.ctx, time.Now())
	second.wg.Wait()
	if len(f.entries()) <= stale {
		t.Fatalf("broker 2 uploaded nothing more than broker 1's %d segments", stale)
	}
	close(resume)
	if err := <-deposed; err != nil {
		t.Fatal(err)
	}
	snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
	if err != nil || snapshot.Epoch != newEpoch || len(snapshot.Segments) != len(f.entries()) {
		t.Fatalf("newest manifest snapshot: %v, epoch %d with %d segments; want broker 2's (epoch %d, %d segments, not broker 1's %d)",
			err, snapshot.Epoch, len(snapshot.Segments), newEpoch, len(f.entries()), stale)
	}
	all, err := f.tier.ManifestSnapshots(f.ctx)
	if err != nil || len(all) != 1 || len(all[0].Segments) != len(f.entries()) {
		t.Fatalf("recovery's view: %v %+v", err, all)
	}
	appendBatches(t, leader, 10, 42)
	if _, err := leader.FollowerFetched(1, leader.LogEndOffset(), time.Now()); err != nil {
		t.Fatal(err)
	}
	second.tick(f.ctx, time.Now()) // uploads, then writes its snapshot again
	second.wg.Wait()
	if report, err := Scrub(f.ctx, f.tier, f.store.State()); err != nil || !report.Clean() {
		t.Fatalf("scrub after broker 2's next snapshot: %v %+v", err, report)
	}
}

// takeOver moves the fixture's partition to broker 2 (broker 1 stays in
// the ISR): a replica of broker 2 with batches of its own, all committed,
// and broker 2's Manager, which has not run yet.
func takeOver(f *fixture, batches int) (*partition.Partition, *Manager, int32) {
	t := f.t
	t.Helper()
	topic, _ := f.store.State().TopicByID(f.topic.ID)
	if _, err := f.store.ChangePartition(f.ctx, metadata.PartitionChange{TopicID: f.topic.ID, Partition: 0,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, Leader: 2, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	topic, _ = f.store.State().TopicByID(f.topic.ID)
	f.part.ApplyAssignment(topic.Partitions[0], time.Now())
	leader, err := partition.Open(partition.Config{Dir: filepath.Join(t.TempDir(), "orders-0"), Topic: topic.Name, TopicID: topic.ID,
		Self: 2, Values: topicconfig.Typed(nil, tieredConfigs), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Close() })
	leader.ApplyAssignment(topic.Partitions[0], time.Now())
	appendBatches(t, leader, batches, 42)
	if _, err := leader.FollowerFetched(1, leader.LogEndOffset(), time.Now()); err != nil {
		t.Fatal(err)
	}
	second, err := New(Config{Tier: f.tier, Store: f.store, NodeID: 2,
		Partitions: func() []*partition.Partition { return []*partition.Partition{leader} },
		StagingDir: filepath.Join(t.TempDir(), "staging"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return leader, second, topic.Partitions[0].LeaderEpoch
}
