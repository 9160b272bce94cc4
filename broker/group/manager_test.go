package group

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/internal/clockwatch"
	"github.com/strata-log/strata/internal/clockwatch/clockwatchtest"
)

// fakeTopic is a Manager's offsets topic: leaders by partition, or an
// error; every partition of a user topic exists unless listed as gone.
type fakeTopic struct {
	mu      sync.Mutex // guards every field
	leaders []int32
	err     error
	gone    map[TopicPartition]bool
}

func (f *fakeTopic) Leaders() ([]int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int32(nil), f.leaders...), f.err
}

func (f *fakeTopic) PartitionExists(tp TopicPartition) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.gone[tp]
}

// TopicID: no ids (commits are judged by TopicsDeleted only).
func (f *fakeTopic) TopicID(string) ([16]byte, bool) { return [16]byte{}, false }

func newTestManager(t *testing.T, topic *fakeTopic) *Manager {
	m := NewManager(ManagerConfig{Topic: topic, Coordinator: Config{Clock: newFakeClock(), InitialRebalanceDelay: -1}, Logger: quiet})
	t.Cleanup(m.Close)
	return m
}

func waitServing(t *testing.T, m *Manager, groupID string) *Shard {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sh, err := m.ShardFor(groupID)
		if err == nil {
			return sh
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard of %s: %v", groupID, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestManagerShardFor: the errors a client acts on, in order of the
// lifecycle of a shard.
func TestManagerShardFor(t *testing.T) {
	topic := &fakeTopic{err: errors.New("no quorum")}
	m := newTestManager(t, topic)
	const groupID = "orders"
	if _, err := m.ShardFor(groupID); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("no offsets topic: %v", err)
	}
	if _, err := m.CoordinatorOf(groupID); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("coordinator without offsets topic: %v", err)
	}
	topic.mu.Lock()
	topic.err, topic.leaders = nil, []int32{1, 2, -1, 4}
	topic.mu.Unlock()
	index := coordinator.Partition(groupID, 4)
	if _, err := m.ShardFor(groupID); err != kerr.NotCoordinator {
		t.Fatalf("partition not led here: %v", err)
	}
	leader, err := m.CoordinatorOf(groupID)
	if want := []int32{1, 2, -1, 4}[index]; (want < 0 && err != kerr.CoordinatorNotAvailable) || (want >= 0 && (err != nil || leader != want)) {
		t.Fatalf("CoordinatorOf = %d, %v; partition %d led by %d", leader, err, index, want)
	}

	log := newMemLog()
	log.hold = make(chan struct{})
	if err := m.Lead(index, log); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ShardFor(groupID); err != kerr.CoordinatorLoadInProgress {
		t.Fatalf("while loading: %v", err)
	}
	if shards, all := m.Shards(); len(shards) != 0 || all {
		t.Fatalf("while loading: %d shards listed, all loaded %v", len(shards), all)
	}
	close(log.hold)
	sh := waitServing(t, m, groupID)
	if sh.Partition() != index {
		t.Fatalf("shard of partition %d, want %d", sh.Partition(), index)
	}
	if shards, all := m.Shards(); len(shards) != 1 || !all {
		t.Fatalf("after loading: %d shards, all loaded %v", len(shards), all)
	}
	log.set(func(l *memLog) { l.leading = false })
	if _, err := m.ShardFor(groupID); err != kerr.NotCoordinator {
		t.Fatalf("partition no longer led: %v", err)
	}
	log.set(func(l *memLog) { l.leading = true })

	// A new leadership term replaces the shard; resigning with another
	// term's log leaves the current one alone.
	next := newMemLog()
	if err := m.Lead(index, next); err != nil {
		t.Fatal(err)
	}
	if sh.Serving() {
		t.Fatal("the replaced shard still serves")
	}
	current := waitServing(t, m, groupID)
	m.Resign(index, log)
	if got, err := m.ShardFor(groupID); err != nil || got != current {
		t.Fatalf("resigning an old term's log removed the current shard: %v", err)
	}
	m.Resign(index, next)
	if _, err := m.ShardFor(groupID); err != kerr.NotCoordinator {
		t.Fatalf("after resigning: %v", err)
	}
}

// TestManagerCloseWaitsForLoaders: Close returns only once every shard
// still loading has finished.
func TestManagerCloseWaitsForLoaders(t *testing.T) {
	m := NewManager(ManagerConfig{Topic: &fakeTopic{leaders: []int32{1}}, Logger: quiet})
	log := newMemLog()
	log.hold = make(chan struct{})
	if err := m.Lead(0, log); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a shard was loading")
	case <-time.After(50 * time.Millisecond):
	}
	close(log.hold)
	<-closed
}

// TestManagerResignWhileShardReplays (forced interleaving): the offsets
// partition's leadership moves (applied with the cluster's metadata) while
// its shard replays the log. Load held the shard's mutex across the whole
// replay, so Resign, and with it the broker's handling of every other
// partition's metadata, waited for the replay to end. Resign returns at
// once now, and the shard never serves.
func TestManagerResignWhileShardReplays(t *testing.T) {
	m := newTestManager(t, &fakeTopic{leaders: []int32{1}})
	log := newMemLog()
	log.hold, log.replaying = make(chan struct{}), make(chan struct{})
	if err := m.Lead(0, log); err != nil {
		t.Fatal(err)
	}
	<-log.replaying
	resigned := make(chan struct{})
	go func() { m.Resign(0, log); close(resigned) }()
	select {
	case <-resigned:
	case <-time.After(10 * time.Second):
		close(log.hold) // let the test end
		t.Fatal("Resign waited for the shard's replay to end")
	}
	close(log.hold)
	if _, err := m.ShardFor("g"); err != kerr.NotCoordinator {
		t.Fatalf("ShardFor after the shard resigned while loading: %v, want NOT_COORDINATOR", err)
	}
}

// TestManagerTopicsDeleted: a deleted topic's offsets go at once whatever
// their age; other topics' stay. Offsets of partitions that are gone go
// with the periodic expiry.
func TestManagerTopicsDeleted(t *testing.T) {
	topic := &fakeTopic{leaders: []int32{1}, gone: map[TopicPartition]bool{}}
	m := newTestManager(t, topic)
	if err := m.Lead(0, newMemLog()); err != nil {
		t.Fatal(err)
	}
	sh := waitServing(t, m, "g")
	// Committed now: the group (created Empty by the commit) keeps them
	// until the retention has passed.
	now := time.Now().UnixMilli()
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("keep", 0): {Offset: 1, Timestamp: now}, tp("drop", 0): {Offset: 2, Timestamp: now}, tp("shrunk", 3): {Offset: 3, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	m.TopicsDeleted("drop")
	if got := sh.GroupOffsets("g"); len(got) != 2 {
		t.Fatalf("after deleting topic drop: %v", got)
	}
	topic.mu.Lock()
	topic.gone[tp("shrunk", 3)] = true
	topic.mu.Unlock()
	m.ExpireOffsets(time.Now())
	if got := sh.GroupOffsets("g"); len(got) != 1 || got[tp("keep", 0)].Offset != 1 {
		t.Fatalf("after expiry: %v, want only keep-0", got)
	}
}

// TestManagerTopicDeletedWhileShardLoads: a topic deleted while a shard
// is still loading (replaying its log, or waiting for the replayed records
// to be committed) loses its committed offsets there too, before the
// shard serves; other topics' stay.
func TestManagerTopicDeletedWhileShardLoads(t *testing.T) {
	for _, while := range []string{"replaying", "awaiting commit"} {
		t.Run(while, func(t *testing.T) {
			m := newTestManager(t, &fakeTopic{leaders: []int32{1}})
			first := newMemLog()
			if err := m.Lead(0, first); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UnixMilli()
			if err := waitServing(t, m, "g").CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("keep", 0): {Offset: 1, Timestamp: now}, tp("drop", 0): {Offset: 2, Timestamp: now}}); err != nil {
				t.Fatal(err)
			}
			// A new leadership term: the shard loads again.
			next := first.copyOf(first.appends())
			if while == "replaying" {
				next.hold, next.replaying = make(chan struct{}), make(chan struct{})
			} else {
				next.uncommitted, next.awaiting = 1, make(chan struct{})
			}
			if err := m.Lead(0, next); err != nil {
				t.Fatal(err)
			}
			// The deletion comes while Load is in Replay (holding the
			// shard's state) or in AwaitCommitted: it must not wait for
			// the load to end.
			if while == "replaying" {
				<-next.replaying
			} else {
				<-next.awaiting
			}
			deleted := make(chan struct{})
			go func() { m.TopicsDeleted("drop"); close(deleted) }()
			select {
			case <-deleted:
			case <-time.After(10 * time.Second):
				if while == "replaying" { // let the test's cleanup end
					close(next.hold)
				}
				t.Fatalf("TopicsDeleted waited for the shard's load (%s) to end", while)
			}
			if while == "replaying" {
				close(next.hold)
			} else {
				next.set(func(l *memLog) { l.uncommitted = 0 })
			}
			sh := waitServing(t, m, "g")
			if got := sh.GroupOffsets("g"); len(got) != 1 || got[tp("keep", 0)].Offset != 1 {
				t.Fatalf("offsets after the topic drop was deleted while the shard was %s: %v, want only keep-0", while, got)
			}
			sh.awaitRemoval() // started by Load
			if !next.tombstoned(t, "g", tp("drop", 0)) {
				t.Fatalf("no tombstone of drop-0 written after the shard was %s", while)
			}
		})
	}
}

// TestManagerTopicDeletedRemovalRetried: when the tombstones of a deleted
// topic's offsets cannot be written, the offsets are gone for readers all
// the same, and the next expiry pass writes them, but not those of the
// offsets committed since (of the topic re-created under the same name).
func TestManagerTopicDeletedRemovalRetried(t *testing.T) {
	m := newTestManager(t, &fakeTopic{leaders: []int32{1}})
	log := newMemLog()
	if err := m.Lead(0, log); err != nil {
		t.Fatal(err)
	}
	sh := waitServing(t, m, "g")
	now := time.Now().UnixMilli()
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("keep", 0): {Offset: 1, Timestamp: now}, tp("drop", 0): {Offset: 2, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	log.set(func(l *memLog) { l.fail = kerr.CoordinatorNotAvailable })
	m.TopicsDeleted("drop")
	sh.awaitRemoval()
	if got := sh.GroupOffsets("g"); len(got) != 1 || got[tp("keep", 0)].Offset != 1 {
		t.Fatalf("offsets after a failed removal: %v, want only keep-0", got)
	}
	if log.tombstoned(t, "g", tp("drop", 0)) {
		t.Fatal("tombstone of drop-0 written by a failed removal")
	}
	log.set(func(l *memLog) { l.fail = nil })
	// The topic re-created: its offsets are committed anew.
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("drop", 1): {Offset: 3, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m.ExpireOffsets(time.Now())
		if got := sh.GroupOffsets("g"); len(got) != 2 || got[tp("keep", 0)].Offset != 1 || got[tp("drop", 1)].Offset != 3 {
			t.Fatalf("offsets after an expiry pass: %v, want keep-0 and the re-created drop-1", got)
		}
	}
	if !log.tombstoned(t, "g", tp("drop", 0)) || log.tombstoned(t, "g", tp("drop", 1)) {
		t.Fatal("after the expiry passes: want a tombstone of drop-0, none of the re-created drop-1")
	}
}

// TestManagerExpiryPausedByClockJump: after a forward jump of the wall
// clock, offset expiry removes nothing until an operator confirms the
// clock (or it returns): a clock set a year ahead must not expire every
// group's offsets.
func TestManagerExpiryPausedByClockJump(t *testing.T) {
	for _, resume := range clockwatchtest.Resumes {
		t.Run(resume, func(t *testing.T) {
			wall := clockwatchtest.New(time.Unix(1_700_000_000, 0))
			watch, err := clockwatch.New(clockwatch.Config{Clock: wall, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			topic := &fakeTopic{leaders: []int32{1}}
			m := NewManager(ManagerConfig{Topic: topic, Coordinator: Config{Clock: newFakeClock(), InitialRebalanceDelay: -1}, OffsetsRetention: 24 * time.Hour, ExpiryPause: watch, Logger: quiet})
			t.Cleanup(m.Close)
			if err := m.Lead(0, newMemLog()); err != nil {
				t.Fatal(err)
			}
			sh := waitServing(t, m, "g")
			// A standalone consumer's group: its commits expire by age.
			if err := sh.Coordinator().Restore(Record{GroupID: "g"}); err != nil {
				t.Fatal(err)
			}
			committedAt, _ := wall.Now()
			if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 5, Timestamp: committedAt.UnixMilli()}}); err != nil {
				t.Fatal(err)
			}

			wall.Jump(365 * 24 * time.Hour)
			now, _ := wall.Now()
			m.ExpireOffsets(now)
			if _, ok := sh.FetchOffset("g", tp("t", 0)); !ok {
				t.Fatal("offset expired by a clock that jumped a year ahead")
			}

			clockwatchtest.Resume(t, watch, wall, resume, 365*24*time.Hour, 48*time.Hour) // 48 h: now really past retention
			now, _ = wall.Now()
			m.ExpireOffsets(now)
			if got, ok := sh.FetchOffset("g", tp("t", 0)); ok {
				t.Fatalf("offset %+v kept after the clock was trusted again", got)
			}
		})
	}
}
