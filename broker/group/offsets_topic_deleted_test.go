package group

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// gatedLog is a memLog whose Appends, once closeGate has made a gate, wait
// for it to open: writes waiting for a slow in-sync follower.
type gatedLog struct {
	*memLog
	mu      sync.Mutex    // guards gate and waiting
	gate    chan struct{} // if not nil, Append waits for it to be closed
	waiting chan struct{} // closed when an Append first waits on gate
}

func (l *gatedLog) closeGate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate, l.waiting = make(chan struct{}), make(chan struct{})
}

// openGate lets the waiting Appends and every later one through.
func (l *gatedLog) openGate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gate != nil {
		close(l.gate)
		l.gate = nil
	}
}

func (l *gatedLog) Append(records []recordbatch.Record) (int64, error) {
	l.mu.Lock()
	gate, waiting := l.gate, l.waiting
	if gate != nil {
		select {
		case <-waiting:
		default:
			close(waiting)
		}
	}
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return l.memLog.Append(records)
}

// tombstoned reports whether the log holds a tombstone of a group's
// committed offset of tp.
func (l *memLog) tombstoned(t *testing.T, groupID string, tp TopicPartition) bool {
	t.Helper()
	l.mu.Lock()
	batches := append([][]byte(nil), l.batches...)
	l.mu.Unlock()
	for _, b := range batches {
		recs, err := recordbatch.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var k kmsg.OffsetCommitKey
			if r.Value == nil && len(r.Key) >= 2 && r.Key[1] <= 1 && k.ReadFrom(r.Key) == nil &&
				k.Group == groupID && k.Topic == tp.Topic && k.Partition == tp.Partition {
				return true
			}
		}
	}
	return false
}

// TestTopicsDeletedDoesNotWaitForTombstones: TopicsDeleted, which the
// broker's metadata reconcile pass calls (every other partition's
// leadership change, and the DeleteTopics answer, waiting behind it),
// wrote the tombstones of every group's offsets of the deleted topics
// before it returned, one write after the other, each waiting for the
// in-sync replicas (up to offsets.commit.timeout.ms with a slow follower).
// It returns at once now, the offsets gone for readers already, a commit
// to the topic re-created under the same name seen; the tombstones are
// written in the background (and the Empty group left without offsets
// deleted).
func TestTopicsDeletedDoesNotWaitForTombstones(t *testing.T) {
	log := &gatedLog{memLog: newMemLog()}
	clock := newFakeClock()
	sh := loadedShard(t, log, clock)
	t.Cleanup(log.openGate) // before the shard's Close, which waits for the removal
	now := clock.Now().UnixMilli()
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("keep", 0): {Offset: 1, Timestamp: now}, tp("drop", 0): {Offset: 2, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	if err := sh.CommitOffsets(standalone("h"), map[TopicPartition]CommittedOffset{tp("drop", 0): {Offset: 3, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}

	// The removal is held before its first group, holding no lock, so
	// that what readers see meanwhile can be checked.
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sh.beforeExpiring = func(string) {
		once.Do(func() {
			close(paused)
			<-resume
		})
	}
	log.closeGate()
	deleted := make(chan struct{})
	go func() { sh.TopicsDeleted("drop"); close(deleted) }()
	select {
	case <-deleted:
	case <-time.After(10 * time.Second):
		close(resume)
		log.openGate()
		t.Fatal("TopicsDeleted waited for the tombstones of the deleted topic's offsets")
	}
	<-paused
	if got := sh.GroupOffsets("g"); len(got) != 1 || got[tp("keep", 0)].Offset != 1 {
		t.Fatalf("GroupOffsets(g) once topic drop was deleted: %v, want only keep-0", got)
	}
	for _, id := range []string{"g", "h"} {
		if c, ok := sh.FetchOffset(id, tp("drop", 0)); ok {
			t.Fatalf("FetchOffset(%s, drop-0) once topic drop was deleted: %+v", id, c)
		}
	}
	if log.tombstoned(t, "g", tp("drop", 0)) {
		t.Fatal("tombstone written before the removal was let go")
	}

	// The topic re-created: a commit to it, after the deletion, is seen
	// and stays.
	log.openGate()
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("drop", 1): {Offset: 4, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	if c, ok := sh.FetchOffset("g", tp("drop", 1)); !ok || c.Offset != 4 {
		t.Fatalf("FetchOffset(g, drop-1) committed after the deletion: %+v, %v", c, ok)
	}

	// The removal's writes wait for the in-sync replicas.
	log.closeGate()
	close(resume)
	<-log.waiting
	log.openGate()
	sh.awaitRemoval()
	for _, id := range []string{"g", "h"} {
		if !log.tombstoned(t, id, tp("drop", 0)) {
			t.Fatalf("no tombstone of %s's drop-0 in the log", id)
		}
	}
	sh.mu.Lock()
	_, gKept := sh.offsets["g"][tp("drop", 0)]
	_, hKept := sh.offsets["h"]
	left := len(sh.deletedTopics)
	sh.mu.Unlock()
	if gKept || hKept || left != 0 {
		t.Fatalf("after the removal: g's drop-0 kept %v, h's offsets kept %v, %d deleted topics left to remove", gKept, hKept, left)
	}
	if _, err := sh.Coordinator().Describe("h"); err != kerr.GroupIDNotFound {
		t.Fatal("the Empty group h, left without offsets, was not deleted")
	}
	again := loadedShard(t, log.memLog, clock)
	if got := again.GroupOffsets("g"); len(got) != 2 || got[tp("keep", 0)].Offset != 1 || got[tp("drop", 1)].Offset != 4 {
		t.Fatalf("offsets replayed from the log: %v, want keep-0 and the re-created drop-1", got)
	}
	if got := again.GroupOffsets("h"); len(got) != 0 {
		t.Fatalf("h's offsets replayed from the log: %v", got)
	}
}
