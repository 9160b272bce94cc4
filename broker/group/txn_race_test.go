package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// heldWrite is a TxnOffsetCommit write a test holds in flight: before its
// batch is appended (beforeTxn) or after, while it awaits the in-sync
// replicas (afterTxn).
type heldWrite struct {
	reached chan struct{} // closed when the write reaches the hook
	release chan struct{} // the test closes it to let the write go on
	done    chan error    // the write's result
}

// holdTxnWrite starts a CommitTxnOffsets and returns once it is held at the
// hook (appended: after the batch is in the log; else before).
func holdTxnWrite(t *testing.T, sh *Shard, log *memLog, appended bool, groupID string, producerID int64, commits map[TopicPartition]CommittedOffset) *heldWrite {
	t.Helper()
	w := &heldWrite{reached: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
	hook := func() {
		close(w.reached)
		<-w.release
	}
	log.set(func(l *memLog) {
		if appended {
			l.afterTxn = hook
		} else {
			l.beforeTxn = hook
		}
	})
	go func() {
		w.done <- sh.CommitTxnOffsets(standalone(groupID), TxnProducer{"tx", producerID, epoch}, commits)
	}()
	<-w.reached
	log.set(func(l *memLog) { l.beforeTxn, l.afterTxn = nil, nil })
	return w
}

// completeDuring runs CompleteTransaction for the marker while w is held
// in flight, as the WriteTxnMarkers handler does once the marker is
// committed, then lets w finish; it returns once both have.
func completeDuring(t *testing.T, sh *Shard, w *heldWrite, producerID, markerOffset int64, commit bool) {
	t.Helper()
	completing := make(chan struct{})
	completed := make(chan struct{})
	go func() {
		close(completing)
		sh.CompleteTransaction(producerID, markerOffset, commit)
		close(completed)
	}()
	<-completing
	close(w.release)
	if err := <-w.done; err != nil {
		t.Fatalf("the held write: %v", err)
	}
	<-completed
}

// TestTxnOffsetsMarkerWhileCommitInFlight: a transaction's marker written
// and completed while a TxnOffsetCommit write of its producer is in flight
// completes the write's commits if its batch is below the marker, and not
// if the batch landed above it (there, as a replay of the log says, they
// are the producer's next transaction's, and its next marker decides);
// the commits of the transaction below the marker are completed either
// way. The live state equals a replay after every step.
func TestTxnOffsetsMarkerWhileCommitInFlight(t *testing.T) {
	both := func(t *testing.T, log *memLog, sh *Shard, check func(s *Shard)) {
		t.Helper()
		check(sh)
		check(loadedShard(t, log, newFakeClock()))
	}

	t.Run("batch below the marker, awaiting the replicas", func(t *testing.T) {
		log := newMemLog()
		sh := loadedShard(t, log, newFakeClock())
		w := holdTxnWrite(t, sh, log, true, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 7, LeaderEpoch: -1}})
		completeDuring(t, sh, w, pidA, log.marker(t, pidA, epoch, true), true)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), 7)
			wantPending(t, s, "g", tp("a", 0), false)
		})
	})

	t.Run("batch above a commit marker", func(t *testing.T) {
		log := newMemLog()
		sh := loadedShard(t, log, newFakeClock())
		// The transaction committed a-0 once already, below its marker.
		txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 5, LeaderEpoch: -1}})
		w := holdTxnWrite(t, sh, log, false, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 6, LeaderEpoch: -1}, tp("a", 1): {Offset: 9, LeaderEpoch: -1}})
		completeDuring(t, sh, w, pidA, log.marker(t, pidA, epoch, true), true)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), 5)
			wantOffset(t, s, "g", tp("a", 1), -1)
			wantPending(t, s, "g", tp("a", 0), true)
			wantPending(t, s, "g", tp("a", 1), true)
		})
		// The producer's next marker ends what landed above the first.
		sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, false), false)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), 5)
			wantOffset(t, s, "g", tp("a", 1), -1)
			wantPending(t, s, "g", tp("a", 0), false)
			wantPending(t, s, "g", tp("a", 1), false)
		})
	})

	t.Run("batch above an abort marker", func(t *testing.T) {
		log := newMemLog()
		sh := loadedShard(t, log, newFakeClock())
		plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1, LeaderEpoch: -1}})
		txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 5, LeaderEpoch: -1}})
		w := holdTxnWrite(t, sh, log, false, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 6, LeaderEpoch: -1}})
		completeDuring(t, sh, w, pidA, log.marker(t, pidA, epoch, false), false)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), 1)
			wantPending(t, s, "g", tp("a", 0), true)
		})
		sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, false), false)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), 1)
			wantPending(t, s, "g", tp("a", 0), false)
		})
	})

	t.Run("failed write", func(t *testing.T) {
		log := newMemLog()
		sh := loadedShard(t, log, newFakeClock())
		w := holdTxnWrite(t, sh, log, false, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 6, LeaderEpoch: -1}})
		log.set(func(l *memLog) { l.fail = kerr.InvalidTxnState })
		marker := log.marker(t, pidA, epoch, true)
		completed := make(chan struct{})
		go func() {
			sh.CompleteTransaction(pidA, marker, true)
			close(completed)
		}()
		close(w.release)
		if err := <-w.done; ErrorCode(err) != kerr.InvalidTxnState.Code {
			t.Fatalf("write refused by the partition: %v, want INVALID_TXN_STATE", err)
		}
		<-completed
		log.set(func(l *memLog) { l.fail = nil })
		// The producer's next marker finds nothing of it either.
		sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
		both(t, log, sh, func(s *Shard) {
			wantOffset(t, s, "g", tp("a", 0), -1)
			wantPending(t, s, "g", tp("a", 0), false)
		})
	})
}

// TestTxnOffsetsDelayedCompletion: a CompleteTransaction of an earlier
// transaction that arrives late (its WriteTxnMarkers was slow; a retry
// wrote the marker again and completed the transaction, and the producer
// went on with its next one) does not end the producer's newer
// transaction's commits: not commit them, not drop them.
func TestTxnOffsetsDelayedCompletion(t *testing.T) {
	for _, commit := range []bool{true, false} {
		log, clock := newMemLog(), newFakeClock()
		sh := loadedShard(t, log, clock)
		plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1, LeaderEpoch: -1}})
		txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 10, LeaderEpoch: -1}})
		first := log.marker(t, pidA, epoch, commit)
		sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, commit), commit) // the retry's
		firstOutcome := int64(1)
		if commit {
			firstOutcome = 10
		}
		// The next transaction.
		txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 20, LeaderEpoch: -1}})
		sh.CompleteTransaction(pidA, first, commit) // the late one
		for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
			wantOffset(t, s, "g", tp("a", 0), firstOutcome)
			wantPending(t, s, "g", tp("a", 0), true)
		}
		sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
		for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
			wantOffset(t, s, "g", tp("a", 0), 20)
			wantPending(t, s, "g", tp("a", 0), false)
		}
	}
}

// TestTxnOffsetCommitVerified: a TxnOffsetCommit is verified with the
// producer's transaction coordinator (Log.VerifyTxn) before anything is
// written; a refusal (the transaction ended) is the caller's error and
// writes nothing.
func TestTxnOffsetCommitVerified(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	p := TxnProducer{"tx", pidA, epoch}
	log.set(func(l *memLog) { l.verify = kerr.InvalidTxnState })
	if err := sh.CommitTxnOffsets(standalone("g"), p, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1}}); ErrorCode(err) != kerr.InvalidTxnState.Code {
		t.Fatalf("commit of an ended transaction: %v, want INVALID_TXN_STATE", err)
	}
	if n := log.appends(); n != 0 {
		t.Fatalf("%d batches written for a refused commit", n)
	}
	wantPending(t, sh, "g", tp("a", 0), false)
	log.set(func(l *memLog) { l.verify = nil })
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 2}})
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.verified) != 2 || log.verified[0] != p || log.verified[1] != p {
		t.Fatalf("verified %+v, want %+v twice", log.verified, p)
	}
}
