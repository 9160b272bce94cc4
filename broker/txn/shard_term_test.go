package txn

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A shard's writes are not made under its mutex. When this broker starts a
// new leadership term of the partition (a reassignment bumps the leader
// epoch while it keeps leading), the old shard closes and the new one
// replays the log; a write of the old shard in flight meanwhile (Close
// waits for it, so it lands before that replay) must not be answered as
// done (Kafka answers NOT_COORDINATOR when the coordinator epoch changed
// during the append), or the client acts on a state the coordinator in
// charge does not have.

// TestEndTxnLandingAfterANewTermIsNotAnswered (forced interleaving): an
// EndTxn(commit) whose PrepareCommit lands after the new term's shard
// loaded was answered as committed, while the new shard still had the
// transaction Ongoing — and aborted it at its timeout.
func TestEndTxnLandingAfterANewTermIsNotAnswered(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	waiting, release := h.log.holdNextAppend()
	old := h.shard
	answered := make(chan *kerr.Error, 1)
	go func() { answered <- h.endV1Of(old, "t", pid, epoch, true) }()
	<-waiting
	if h.newTermWhileHeld(release) { // the old shard is closed, the new one loaded
		release()
	}
	err := <-answered
	if err == nil {
		if d := h.describe("t"); d.State != kmsg.TransactionStatePrepareCommit && d.State != kmsg.TransactionStateCompleteCommit {
			h.clock.Advance(2 * time.Minute)
			aborted := h.shard.AbortTimedOut(h.clock.Now())
			t.Fatalf("EndTxn(commit) answered as committed, but the coordinator now in charge has the transaction %v (its timeout pass aborted %d)", d.State, aborted)
		}
		return
	}
	wantErr(t, "EndTxn whose write landed after the shard closed", err, kerr.NotCoordinator)
	// The client retries with the coordinator in charge, which commits
	// (or has committed: it replayed the PrepareCommit, written before
	// Close returned, and finished it).
	h.settle()
	wantErr(t, "retried commit", h.endV1("t", pid, epoch, true), nil)
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("after the retried commit: %v", d.State)
	}
}

// TestInitProducerIDLandingAfterANewTermIsNotAnswered (forced
// interleaving): a new producer instance's InitProducerId whose epoch bump
// lands after the new term's shard loaded got the bumped epoch, yet the new
// shard still took the old instance's epoch as current: the zombie could
// go on (and commit) while the new instance was fenced.
func TestInitProducerIDLandingAfterANewTermIsNotAnswered(t *testing.T) {
	h := newHarness(t, nil)
	pid, zombie := h.mustInit("t")
	waiting, release := h.log.holdNextAppend()
	old := h.shard
	type answer struct {
		epoch int16
		err   *kerr.Error
	}
	answered := make(chan answer, 1)
	go func() {
		_, epoch, err := old.InitProducerID(context.Background(), "t", 60_000, -1, -1)
		answered <- answer{epoch, err}
	}()
	<-waiting
	if h.newTermWhileHeld(release) {
		release()
	}
	a := <-answered
	if a.err == nil {
		zombieErr := h.shard.AddPartitions("t", pid, zombie, tps("a", 0), V1)
		newErr := h.shard.AddPartitions("t", pid, a.epoch, tps("a", 0), V1)
		if zombieErr != kerr.ProducerFenced || newErr != nil {
			t.Fatalf("the new instance got epoch %d, but the coordinator now in charge answers the old instance (epoch %d) %v and the new one %v", a.epoch, zombie, zombieErr, newErr)
		}
		return
	}
	wantErr(t, "InitProducerId whose write landed after the shard closed", a.err, kerr.NotCoordinator)
	// The new instance retries with the coordinator in charge: the old one
	// is fenced.
	_, epoch, err := h.init("t", 60_000, -1, -1)
	if err != nil || epoch <= zombie {
		t.Fatalf("retried InitProducerId: epoch %d, %v", epoch, err)
	}
	wantErr(t, "the old instance", h.shard.AddPartitions("t", pid, zombie, tps("a", 0), V1), kerr.ProducerFenced)
}

// endV1Of is endV1 on a given shard.
func (h *harness) endV1Of(sh *Shard, id string, pid int64, epoch int16, commit bool) *kerr.Error {
	_, _, err := sh.EndTxn(id, pid, epoch, commit, V1)
	return err
}
