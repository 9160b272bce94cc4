package partition

import (
	"errors"
	"reflect"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// TestDeleteRecordsBefore: the leader moves its log start up to the high
// watermark (-1: to it), never back, never past it; the new start survives
// a restart; a follower follows its leader's log start, its high watermark
// raised to it when below, and a follower refuses DeleteRecords.
func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	leader, data := leaderOfFiveSegments(t, dir)
	if leader.HighWatermark() != 10 {
		t.Fatalf("high watermark %d, want 10", leader.HighWatermark())
	}
	for _, c := range []struct {
		offset, want int64
		err          error
	}{
		{offset: 3, want: 3},
		{offset: 1, want: 3}, // never back
		{offset: 11, err: segment.ErrOffsetOutOfRange},
		{offset: -2, err: segment.ErrOffsetOutOfRange},
		{offset: 6, want: 6},
	} {
		start, err := leader.DeleteRecordsBefore(c.offset)
		if !errors.Is(err, c.err) || (c.err == nil && start != c.want) {
			t.Fatalf("DeleteRecordsBefore(%d) = %d, %v; want %d, %v", c.offset, start, err, c.want, c.err)
		}
	}
	if _, err := leader.Read(4, 1<<20, 10, true); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("reading below the log start: %v", err)
	}
	if got := len(leader.Segments()); got > 3 {
		t.Fatalf("%d segments left; the ones below offset 6 should be gone", got)
	}

	leader.Close()
	leader = replica(t, dir, 1, map[string]string{"segment.bytes": "1"})
	if leader.LogStartOffset() != 6 {
		t.Fatalf("log start after a restart %d, want 6", leader.LogStartOffset())
	}
	leader.ApplyAssignment(assignment(1, 3, []int32{1, 2}, []int32{1}), t0)
	if start, err := leader.DeleteRecordsBefore(-1); err != nil || start != leader.HighWatermark() {
		t.Fatalf("DeleteRecordsBefore(-1) = %d, %v; want the high watermark %d", start, err, leader.HighWatermark())
	}

	follower := replica(t, t.TempDir(), 2, map[string]string{"segment.bytes": "1"})
	follower.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	if _, err := follower.DeleteRecordsBefore(1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower took DeleteRecords: %v", err)
	}
	if err := follower.AppendReplicated(data, 4, 2); err != nil {
		t.Fatal(err)
	}
	// The leader's log start is 6, this replica's high watermark 4: the
	// log start moves to 6 and the high watermark with it (never below
	// the log start, as Kafka's).
	if err := follower.FollowLogStart(6); err != nil || follower.LogStartOffset() != 6 || follower.HighWatermark() != 6 {
		t.Fatalf("follower log start %d, high watermark %d (%v), want 6 and 6", follower.LogStartOffset(), follower.HighWatermark(), err)
	}
	if err := follower.AppendReplicated(nil, 10, 2); err != nil {
		t.Fatal(err)
	}
	if err := follower.FollowLogStart(6); err != nil || follower.LogStartOffset() != 6 || follower.HighWatermark() != 10 {
		t.Fatalf("follower log start %d, high watermark %d (%v), want 6 and 10", follower.LogStartOffset(), follower.HighWatermark(), err)
	}
	if err := follower.FollowLogStart(2); err != nil || follower.LogStartOffset() != 6 {
		t.Fatalf("follower log start went back to %d (%v)", follower.LogStartOffset(), err)
	}
}

// fencing is a metadata state's brokers: id → whether it is fenced (an id
// not in it is not registered).
type fencing map[int32]bool

func (f fencing) Broker(id int32) (metadata.Broker, bool) {
	fenced, ok := f[id]
	return metadata.Broker{Epoch: 1, Fenced: fenced}, ok
}

// TestLowWatermark: the low watermark is the lowest log start of the leader
// and its live followers — registered and unfenced, in the ISR or not, as
// Kafka's DelayedDeleteRecords waits for — unknown (-1) until such a
// follower states its own; a fenced or unregistered replica does not count;
// a follower's stated log start never goes back; waiters are woken when it
// moves (DeleteRecords waits on them).
func TestLowWatermark(t *testing.T) {
	leader := replica(t, t.TempDir(), 1, nil)
	a := assignment(1, 2, []int32{1, 2, 3, 4, 5}, []int32{1, 2})
	leader.ObserveRegistrations(a.Replicas, fencing{1: false, 2: false, 3: false, 4: true}) // 5 unregistered
	leader.ApplyAssignment(a, t0)
	mustAppend(t, leader, batch(t, idempotent(7, 0, 0), "a", 4))
	if _, err := leader.FollowerFetched(2, 4, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	if low := leader.LowWatermark(); low != -1 {
		t.Fatalf("low watermark %d before the followers stated their log start, want -1", low)
	}
	wake := make(chan struct{}, 1)
	leader.AddWaiter(wake)
	defer leader.RemoveWaiter(wake)
	leader.FollowerLogStart(2, 3)
	select {
	case <-wake:
	default:
		t.Fatal("a follower's log start moving woke no waiter")
	}
	if low := leader.LowWatermark(); low != -1 {
		t.Fatalf("low watermark %d while live replica 3 (out of the ISR) has not stated its log start, want -1", low)
	}
	leader.FollowerLogStart(3, 3)
	if low := leader.LowWatermark(); low != 3 {
		t.Fatalf("low watermark %d once every live replica is at 3, want 3", low)
	}
	leader.FollowerLogStart(2, 1) // an older fetch
	if low := leader.LowWatermark(); low != 3 {
		t.Fatalf("low watermark %d after an older fetch, want 3", low)
	}
	// Replica 3 fenced: it no longer holds the answer back.
	leader.ObserveRegistrations(a.Replicas, fencing{1: false, 2: false, 3: true, 4: true})
	if _, err := leader.DeleteRecordsBefore(4); err != nil {
		t.Fatal(err)
	}
	leader.FollowerLogStart(2, 4)
	if low := leader.LowWatermark(); low != 4 {
		t.Fatalf("low watermark %d with replica 3 fenced, want 4", low)
	}
}

// TestDeleteRecordsTrimsLeaderEpochs: moving the log start forgets the
// leader epochs entirely below it, the one it falls in now starting at it
// (Kafka's LeaderEpochFileCache.truncateFromStart), in the checkpoint too.
func TestDeleteRecordsTrimsLeaderEpochs(t *testing.T) {
	dir := t.TempDir()
	leader := replica(t, dir, 1, map[string]string{"segment.bytes": "1"})
	for epoch := int32(1); epoch <= 3; epoch++ {
		leader.ApplyAssignment(assignment(1, epoch, []int32{1}, []int32{1}), t0)
		mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "a", 2))
	}
	// Epochs 1, 2, 3 start at 0, 2, 4.
	if _, err := leader.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	want := []epochEntry{{2, 3}, {3, 4}}
	if !reflect.DeepEqual(leader.epochs.entries, want) {
		t.Fatalf("epochs after the log start moved to 3: %+v, want %+v", leader.epochs.entries, want)
	}
	// As Kafka: an epoch older than the oldest kept answers itself and
	// the oldest kept epoch's start, where the asker truncates.
	if epoch, end := leader.epochs.endOffsetFor(1, leader.LogEndOffset()); epoch != 1 || end != 3 {
		t.Fatalf("epoch 1 (below the log start) answers %d, %d; want 1, 3", epoch, end)
	}
	read, ok := readEpochCache(dir)
	if !ok || !reflect.DeepEqual(read.entries, want) {
		t.Fatalf("checkpoint %+v (%v), want %+v", read.entries, ok, want)
	}
	if _, err := leader.DeleteRecordsBefore(4); err != nil {
		t.Fatal(err)
	}
	if want := []epochEntry{{3, 4}}; !reflect.DeepEqual(leader.epochs.entries, want) {
		t.Fatalf("epochs after the log start moved to 4: %+v, want %+v", leader.epochs.entries, want)
	}
}

// TestRetentionTrimsLeaderEpochs: retention deleting the oldest segments
// of a topic that is not tiered forgets the leader epochs below the new
// log start too.
func TestRetentionTrimsLeaderEpochs(t *testing.T) {
	leader := replica(t, t.TempDir(), 1, map[string]string{"segment.bytes": "1", "retention.bytes": "1"})
	for epoch := int32(1); epoch <= 3; epoch++ {
		leader.ApplyAssignment(assignment(1, epoch, []int32{1}, []int32{1}), t0)
		mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "a", 2))
	}
	leader.EnforceRetention()
	// Epochs 1, 2, 3 started at 0, 2, 4; only the empty active segment
	// (each batch filled one) is left.
	if start := leader.LogStartOffset(); start != 6 {
		t.Fatalf("log start %d after retention, want 6", start)
	}
	if want := []epochEntry{{3, 6}}; !reflect.DeepEqual(leader.epochs.entries, want) {
		t.Fatalf("epochs %+v after retention, want %+v", leader.epochs.entries, want)
	}
}

// leaderOfFiveSegments returns the leader (node 1, follower 2 out of the
// ISR) of a partition in dir holding five idempotent batches of two
// records, a segment each, and those batches as a follower fetches them.
func leaderOfFiveSegments(t *testing.T, dir string) (*Partition, []byte) {
	t.Helper()
	leader := replica(t, dir, 1, map[string]string{"segment.bytes": "1"})
	leader.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	for i := range 5 {
		mustAppend(t, leader, batch(t, idempotent(7, 0, int32(2*i)), "a", 2))
	}
	data, err := leader.Read(0, 1<<20, leader.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	return leader, data
}
