package txn

import (
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestV2EndTxnBumpsEpochEveryTransaction: in Transactions V2 each EndTxn
// bumps the producer epoch, answers the bumped epoch, and writes the
// markers with it; the next transaction runs at the bumped epoch, and the
// old epoch is fenced. A retry of the EndTxn (old epoch) gets the same
// answer.
func TestV2EndTxnBumpsEpochEveryTransaction(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	for i, commit := range []bool{true, false, true} {
		wantErr(t, "implicit add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
		npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, commit, V2)
		wantErr(t, "end", err, nil)
		if npid != pid || nepoch != epoch+1 {
			t.Fatalf("txn %d: EndTxn answered %d/%d, want %d/%d", i, npid, nepoch, pid, epoch+1)
		}
		h.settle()
		last := h.markers.written[len(h.markers.written)-1]
		if last.ProducerEpoch != epoch+1 || last.Version != V2 || last.Commit != commit {
			t.Fatalf("txn %d: marker %+v, want epoch %d, V2", i, last, epoch+1)
		}
		rpid, repoch, err := h.shard.EndTxn("t", pid, epoch, commit, V2)
		wantErr(t, "retried end", err, nil)
		if rpid != pid || repoch != epoch+1 {
			t.Fatalf("retry answered %d/%d", rpid, repoch)
		}
		wantErr(t, "end with the other outcome at the old epoch", func() *kerr.Error { _, _, e := h.shard.EndTxn("t", pid, epoch, !commit, V2); return e }(), kerr.InvalidTxnState)
		wantErr(t, "add at the old epoch", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), kerr.ProducerFenced)
		epoch = nepoch
	}
	if d := h.describe("t"); d.ProducerEpoch != epoch || d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("after three transactions: %+v", d)
	}
	// The records say V2 (ClientTransactionVersion), and a new leader
	// loads them.
	recs := h.log.records(t)
	if last := recs[len(recs)-1].t; last.version != V2 || last.producerEpoch != epoch {
		t.Fatalf("last record %+v", last)
	}
	h.load()
	if d := h.describe("t"); d.ProducerEpoch != epoch || d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("after a reload: %+v", d)
	}
	wantErr(t, "add after reload", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
}

// TestV2AbortWithoutTransaction: a V2 producer may abort when no
// transaction is open (its produces failed, a partition may have been
// added anyway): the epoch is bumped, no marker is written; a commit with
// nothing open is INVALID_TXN_STATE.
func TestV2AbortWithoutTransaction(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	_, _, err := h.shard.EndTxn("t", pid, epoch, true, V2)
	wantErr(t, "commit nothing", err, kerr.InvalidTxnState)
	npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, false, V2)
	wantErr(t, "abort nothing", err, nil)
	if npid != pid || nepoch != epoch+1 {
		t.Fatalf("answered %d/%d", npid, nepoch)
	}
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteAbort || d.ProducerEpoch != epoch+1 {
		t.Fatalf("%+v", d)
	}
	if len(h.markers.written) != 0 {
		t.Fatalf("markers written for an empty transaction: %+v", h.markers.written)
	}
}

// TestV2EpochOverflowGetsNextProducerID: a V2 transaction ending at an
// exhausted epoch writes its markers at epoch MaxInt16 and hands the
// producer a new producer id with epoch 0 (NextProducerId in the Prepare
// record); the new id is usable once the transaction completes, a retry
// with the old id and epoch is answered with the new ones.
func TestV2EpochOverflowGetsNextProducerID(t *testing.T) {
	h := newHarness(t, nil)
	pid, _ := h.mustInit("t")
	h.shard.mu.Lock()
	h.shard.txns["t"].producerEpoch = math.MaxInt16 - 1
	h.shard.mu.Unlock()
	epoch := int16(math.MaxInt16 - 1)
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
	block := make(chan struct{})
	h.markers.mu.Lock()
	h.markers.block = block
	h.markers.mu.Unlock()
	npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, true, V2)
	wantErr(t, "end", err, nil)
	if npid == pid || npid < 0 || nepoch != 0 {
		t.Fatalf("answered %d/%d, want a new producer id with epoch 0", npid, nepoch)
	}
	recs := h.log.records(t)
	if prep := recs[len(recs)-1].t; prep.state != kmsg.TransactionStatePrepareCommit || prep.producerID != pid ||
		prep.producerEpoch != math.MaxInt16 || prep.nextProducerID != npid {
		t.Fatalf("prepare record %+v", prep)
	}
	wantErr(t, "the new id while markers are written", h.shard.AddPartitions("t", npid, 0, tps("a", 0), V2), kerr.ConcurrentTransactions)
	h.markers.mu.Lock()
	h.markers.block = nil
	h.markers.mu.Unlock()
	close(block)
	h.settle()
	if m := h.markers.written[0]; m.ProducerID != pid || m.ProducerEpoch != math.MaxInt16 {
		t.Fatalf("marker %+v", m)
	}
	recs = h.log.records(t)
	if done := recs[len(recs)-1].t; done.state != kmsg.TransactionStateCompleteCommit || done.producerID != npid || done.producerEpoch != 0 ||
		done.lastProducerID != pid || done.nextProducerID != -1 {
		t.Fatalf("complete record %+v", done)
	}
	rpid, repoch, err := h.shard.EndTxn("t", pid, epoch, true, V2)
	wantErr(t, "retry with the old id", err, nil)
	if rpid != npid || repoch != 0 {
		t.Fatalf("retry answered %d/%d", rpid, repoch)
	}
	wantErr(t, "old id fenced", h.shard.AddPartitions("t", pid, math.MaxInt16, tps("a", 0), V2), kerr.InvalidProducerIDMapping)
	wantErr(t, "new id", h.shard.AddPartitions("t", npid, 0, tps("a", 0), V2), nil)
}

// TestV1EndTxnKeepsEpoch: V1 (EndTxn v0-v4) does not bump.
func TestV1EndTxnKeepsEpoch(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, true, V1)
	wantErr(t, "end", err, nil)
	h.settle()
	if npid != pid || nepoch != epoch || h.markers.written[0].ProducerEpoch != epoch || h.markers.written[0].Version != V1 {
		t.Fatalf("answered %d/%d, marker %+v", npid, nepoch, h.markers.written[0])
	}
	wantErr(t, "next add at the same epoch", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
}

// TestV2EndTxnRetryAcrossLoadAndFence: a retried EndTxn reaching a new
// coordinator (which loaded the state, and with it no memory of the epoch
// before the bump) gets the first answer rather than PRODUCER_FENCED; the
// old epoch of a producer the coordinator fenced (a timeout) is no retry.
func TestV2EndTxnRetryAcrossLoadAndFence(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
	if _, _, err := h.shard.EndTxn("t", pid, epoch, true, V2); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.load()
	npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, true, V2)
	wantErr(t, "retry after a load", err, nil)
	if npid != pid || nepoch != epoch+1 {
		t.Fatalf("retry answered %d/%d", npid, nepoch)
	}

	epoch++
	wantErr(t, "next transaction", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
	h.clock.Advance(2 * time.Minute)
	if n := h.shard.AbortTimedOut(h.clock.Now()); n != 1 {
		t.Fatalf("aborted %d", n)
	}
	h.settle()
	_, _, err = h.shard.EndTxn("t", pid, epoch, false, V2)
	wantErr(t, "abort by the timed-out producer", err, kerr.ProducerFenced)
}

// TestEndTxnVersionDecides: a transaction whose partition came by an
// implicit (V2) add but which ends with a V1 EndTxn (v4) is a V1 one: no
// bump, V1 markers, as Kafka takes the EndTxn's version.
func TestEndTxnVersionDecides(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "implicit add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
	npid, nepoch, err := h.shard.EndTxn("t", pid, epoch, true, V1)
	wantErr(t, "end", err, nil)
	h.settle()
	if m := h.markers.written[0]; npid != pid || nepoch != epoch || m.ProducerEpoch != epoch || m.Version != V1 {
		t.Fatalf("answered %d/%d, marker %+v", npid, nepoch, m)
	}
}

// TestV2EndTxnOfAFencedProducerAfterALoad: a coordinator that loaded the
// state does not know the epoch before the last bump, and takes an EndTxn
// v5 at the epoch just below for a retry. When another instance's
// InitProducerId made that bump (Empty), or the other instance's
// transaction is open (Ongoing), it is no retry: the old instance is
// PRODUCER_FENCED, as Kafka answers (its V2 retry check takes Ongoing and
// Empty only at the current epoch) and as this coordinator answers before
// the load. INVALID_TXN_STATE would be a fatal error where a fenced
// producer (Kafka Streams: a migrated task) expects PRODUCER_FENCED.
func TestV2EndTxnOfAFencedProducerAfterALoad(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t") // the old instance
	if npid, nepoch := h.mustInit("t"); npid != pid || nepoch != epoch+1 {
		t.Fatalf("second instance got %d/%d", npid, nepoch)
	}
	_, _, err := h.shard.EndTxn("t", pid, epoch, false, V2)
	wantErr(t, "old instance's abort before a load", err, kerr.ProducerFenced)
	h.load()
	_, _, err = h.shard.EndTxn("t", pid, epoch, false, V2)
	wantErr(t, "old instance's abort after a load (Empty)", err, kerr.ProducerFenced)

	wantErr(t, "new instance's add", h.shard.AddPartitions("t", pid, epoch+1, tps("a", 0), V2), nil)
	h.load()
	_, _, err = h.shard.EndTxn("t", pid, epoch, true, V2)
	wantErr(t, "old instance's commit after a load (Ongoing)", err, kerr.ProducerFenced)
	if d := h.describe("t"); d.State != kmsg.TransactionStateOngoing || d.ProducerEpoch != epoch+1 {
		t.Fatalf("the new instance's transaction: %+v", d)
	}
}

// TestV2FencedProducerStaysFencedAfterALoad: a coordinator fence of a V2
// transaction (its timeout, or another instance's InitProducerId) bumps
// the epoch twice, as Kafka's TV2 fence does (PrepareEpochFence's bump,
// then the bump of every V2 transaction end). The epoch just below the
// current one is what a loaded coordinator takes for a retry of the
// EndTxn that bumped it (lastProducerEpoch is not in the record): with a
// single bump, the fenced producer's EndTxn(abort) after a load was
// answered as that retry, NONE with the current epoch, and the producer
// went on, where before the load (and in Kafka) it is PRODUCER_FENCED.
func TestV2FencedProducerStaysFencedAfterALoad(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), nil)
	h.clock.Advance(2 * time.Minute)
	if n := h.shard.AbortTimedOut(h.clock.Now()); n != 1 {
		t.Fatalf("aborted %d", n)
	}
	h.settle()
	if m := h.markers.written[len(h.markers.written)-1]; m.Commit || m.ProducerEpoch <= epoch || m.Version != V2 {
		t.Fatalf("fence marker %+v", m)
	}
	h.load()
	_, _, err := h.shard.EndTxn("t", pid, epoch, false, V2)
	wantErr(t, "abort by the timed-out producer after a load", err, kerr.ProducerFenced)
	wantErr(t, "add by the timed-out producer after a load", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V2), kerr.ProducerFenced)

	// Another instance's InitProducerId fencing an open V2 transaction.
	pid, epoch = h.mustInit("u")
	wantErr(t, "add u", h.shard.AddPartitions("u", pid, epoch, tps("a", 1), V2), nil)
	if _, _, err := h.init("u", 60_000, -1, -1); err != kerr.ConcurrentTransactions {
		t.Fatalf("InitProducerId over an open transaction: %v", err)
	}
	h.settle()
	h.load()
	_, _, err = h.shard.EndTxn("u", pid, epoch, false, V2)
	wantErr(t, "abort by the fenced instance after a load", err, kerr.ProducerFenced)
	npid, nepoch := h.mustInit("u")
	if npid != pid || nepoch <= epoch {
		t.Fatalf("the new instance got %d/%d", npid, nepoch)
	}
}
