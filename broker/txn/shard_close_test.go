package txn

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestStateWrittenAfterCloseDoesNotRegressTheNextTerm (forced
// interleaving): a shard's write was in flight when the shard closed (a
// new leadership term of its partition on this broker). Close did not
// wait for it, so it could land after the new term's shard had replayed
// the log, and after that shard had written newer state for the same
// transactional id: the stale record was then the latest in the log, and
// the shard of the term after replayed it. Here a new producer instance's
// InitProducerId (epoch bump) lands after the instance, retrying with the
// coordinator in charge, got its epoch and began a transaction: the next
// term forgot the open transaction (never aborted, its partitions' last
// stable offset stuck) and took an older state as current.
func TestStateWrittenAfterCloseDoesNotRegressTheNextTerm(t *testing.T) {
	h := newHarness(t, nil)
	h.mustInit("t")
	waiting, release := h.log.holdNextAppend()
	old := h.shard
	answered := make(chan *kerr.Error, 1)
	go func() {
		_, _, err := old.InitProducerID(context.Background(), "t", 60_000, -1, -1)
		answered <- err
	}()
	<-waiting
	// The client, retrying with the coordinator in charge, begins a
	// transaction.
	retry := func() {
		pid, epoch, err := h.init("t", 60_000, -1, -1)
		if err != nil {
			t.Fatalf("retried InitProducerId: %v", err)
		}
		wantErr(t, "AddPartitions", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	}
	if h.newTermWhileHeld(release) {
		retry()
		release()
	} else {
		retry()
	}
	wantErr(t, "InitProducerId of the closed shard", <-answered, kerr.NotCoordinator)
	inCharge := h.describe("t")
	h.load() // the term after
	if got := h.describe("t"); !reflect.DeepEqual(got, inCharge) {
		t.Fatalf("the next term has %+v, the coordinator in charge had %+v", got, inCharge)
	}
}

// newTermWhileHeld starts a new term (load) while an append of the
// current shard is held by holdNextAppend, whose release it is. It reports
// whether the new shard loaded with that append still held (Close did not
// wait for it): the caller then releases it. Otherwise it has released it
// (after giving Close a second to return without it) and the new shard
// has loaded.
func (h *harness) newTermWhileHeld(release func()) (stillHeld bool) {
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		h.load()
	}()
	select {
	case <-loaded:
		return true
	case <-time.After(time.Second):
	}
	release()
	<-loaded
	return false
}

// TestCloseDoesNotWaitForTheReplay (forced interleaving): a shard closed
// (its partition's leadership moved, applied with the cluster's metadata)
// while it replays its log. Load held the shard's mutex across the whole
// replay, so Close, and with it the broker's handling of every other
// partition's metadata, waited for the replay to end. Close returns at
// once now, and the replay stops without the shard ever serving.
func TestCloseDoesNotWaitForTheReplay(t *testing.T) {
	h := newHarness(t, nil)
	h.mustInit("a")
	h.mustInit("b")
	h.log.mu.Lock()
	gate, replaying := make(chan struct{}), make(chan struct{})
	h.log.replayGate, h.log.replaying = gate, replaying
	h.log.mu.Unlock()
	sh, err := NewShard(ShardConfig{Partition: 3, CoordinatorEpoch: coordinatorEpoch + 1, Log: h.log,
		ProducerIDs: func(context.Context) (int64, error) { return 0, nil }, Markers: h.markers, workers: h.workers})
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(chan struct{})
	go func() { sh.Load(); close(loaded) }()
	<-replaying
	closed := make(chan struct{})
	go func() { sh.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		close(gate) // let the test end
		t.Fatal("Close waited for the shard's replay to end")
	}
	close(gate)
	<-loaded
	if _, err := sh.Describe("a"); err != kerr.NotCoordinator {
		t.Fatalf("Describe on a shard closed while loading: %v, want NOT_COORDINATOR", err)
	}
}
