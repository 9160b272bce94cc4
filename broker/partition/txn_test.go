package partition

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
)

func transactional(producerID int64, epoch int16, sequence int32) recordbatch.BuildOptions {
	opts := idempotent(producerID, epoch, sequence)
	opts.Transactional = true
	return opts
}

// soleLeader is a partition led by broker 1 alone in its ISR: every append
// is committed at once.
func soleLeader(t *testing.T, dir string) *Partition {
	t.Helper()
	p := replica(t, dir, 1, nil)
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1}), t0)
	return p
}

// appendTxn verifies producerID and appends one transactional batch.
func appendTxn(t *testing.T, p *Partition, producerID int64, sequence int32) int64 {
	t.Helper()
	p.StartTxnVerification(producerID, 0)
	return mustAppend(t, p, batch(t, transactional(producerID, 0, sequence), "txn", 1))
}

func mustMarker(t *testing.T, p *Partition, producerID int64, commit bool) int64 {
	t.Helper()
	offset, err := p.AppendMarker(Marker{ProducerID: producerID, ProducerEpoch: 0, CoordinatorEpoch: 1, Commit: commit}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return offset
}

func TestTxnAppendRequiresVerification(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	_, _, err := p.Append(batch(t, transactional(7, 0, 0), "a", 1), 9, t0)
	wantCode(t, "unverified transactional batch", err, kerr.InvalidTxnState)
	if !p.NeedsTxnVerification(7, 0) {
		t.Fatal("no transaction open, yet no verification needed")
	}
	p.StartTxnVerification(7, 0)
	if base := mustAppend(t, p, batch(t, transactional(7, 0, 0), "a", 1)); base != 0 {
		t.Fatalf("base %d", base)
	}
	// The transaction is open: its next batches need no verification, and
	// a retry is still answered with the original offset.
	if p.NeedsTxnVerification(7, 0) {
		t.Fatal("an open transaction needs verification again")
	}
	if base := mustAppend(t, p, batch(t, transactional(7, 0, 1), "b", 1)); base != 1 {
		t.Fatalf("base %d", base)
	}
	if base := mustAppend(t, p, batch(t, transactional(7, 0, 1), "b", 1)); base != 1 {
		t.Fatalf("retry answered at %d", base)
	}
	// A non-transactional batch of the producer meanwhile is refused.
	_, _, err = p.Append(batch(t, idempotent(7, 0, 2), "c", 1), 9, t0)
	wantCode(t, "idempotent batch inside a transaction", err, kerr.InvalidTxnState)
	// The marker ends it; the next transaction needs a new verification.
	mustMarker(t, p, 7, true)
	_, _, err = p.Append(batch(t, transactional(7, 0, 2), "c", 1), 9, t0)
	wantCode(t, "first batch of the next transaction, unverified", err, kerr.InvalidTxnState)
}

// TestMarkerClearsVerification (forced interleaving, KIP-890 part 1): the
// produce path verified, then the coordinator aborted the transaction (a
// timeout) and its marker landed before the batch: the late batch must not
// open a new transaction that nobody will ever end.
func TestMarkerClearsVerification(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	p.StartTxnVerification(8, 0)
	mustMarker(t, p, 8, false)
	_, _, err := p.Append(batch(t, transactional(8, 0, 0), "late", 1), 9, t0)
	wantCode(t, "batch verified before the marker", err, kerr.InvalidTxnState)
	if open := p.OpenTransactions(); len(open) != 0 {
		t.Fatalf("open transactions %+v", open)
	}
}

func TestMarkerFencing(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	appendTxn(t, p, 7, 0)
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 1, CoordinatorEpoch: 5}, t0); err != nil {
		t.Fatal(err)
	}
	_, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 0, CoordinatorEpoch: 5}, t0)
	wantCode(t, "older producer epoch", err, kerr.InvalidProducerEpoch)
	_, err = p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 1, CoordinatorEpoch: 4}, t0)
	wantCode(t, "older coordinator epoch", err, kerr.TransactionCoordinatorFenced)
	// A retried marker (no transaction open) is written again.
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 1, CoordinatorEpoch: 5}, t0); err != nil {
		t.Fatal(err)
	}
	follower := replica(t, t.TempDir(), 2, nil)
	follower.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1}), t0)
	_, err = follower.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 1, CoordinatorEpoch: 5}, t0)
	wantCode(t, "marker on a follower", err, kerr.NotLeaderForPartition)
}

// interleavedTransactions writes, on a sole leader:
//
//	0 p7  1 p8  2 p7  3 COMMIT p7  4 ABORT p8
//	5 p9  6 p10  7 ABORT p10  8 ABORT p9  9 p11 (open)
func interleavedTransactions(t *testing.T, p *Partition) {
	t.Helper()
	appendTxn(t, p, 7, 0)
	appendTxn(t, p, 8, 0)
	appendTxn(t, p, 7, 1)
	if lso := p.LastStableOffset(); lso != 0 || p.HighWatermark() != 3 {
		t.Fatalf("LSO %d (high watermark %d), want 0", lso, p.HighWatermark())
	}
	mustMarker(t, p, 7, true)
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("LSO after p7's commit: %d, want 1", lso)
	}
	mustMarker(t, p, 8, false)
	if lso := p.LastStableOffset(); lso != 5 {
		t.Fatalf("LSO with nothing open: %d, want the high watermark 5", lso)
	}
	appendTxn(t, p, 9, 0)
	appendTxn(t, p, 10, 0)
	mustMarker(t, p, 10, false)
	mustMarker(t, p, 9, false)
	appendTxn(t, p, 11, 0)
}

var wantAborted = []segment.AbortedTxn{
	{ProducerID: 8, FirstOffset: 1, LastOffset: 4, LastStableOffset: 5},
	{ProducerID: 9, FirstOffset: 5, LastOffset: 8, LastStableOffset: 9},
	{ProducerID: 10, FirstOffset: 6, LastOffset: 7, LastStableOffset: 5},
}

func checkTxnState(t *testing.T, what string, p *Partition) {
	t.Helper()
	if lso := p.LastStableOffset(); lso != 9 {
		t.Fatalf("%s: LSO %d, want 9 (p11's open transaction)", what, lso)
	}
	if open := p.OpenTransactions(); !reflect.DeepEqual(open, []producer.OpenTxn{{ProducerID: 11, FirstOffset: 9}}) {
		t.Fatalf("%s: open transactions %+v", what, open)
	}
	// In first-offset order, though p10's marker came before p9's.
	if got := p.AbortedTransactions(0, 10); !sameAborted(got, wantAborted) {
		t.Fatalf("%s: aborted transactions\n got %+v\nwant %+v", what, got, wantAborted)
	}
	if got := p.AbortedTransactions(5, 6); !sameAborted(got, wantAborted[1:2]) {
		t.Fatalf("%s: aborted transactions in [5, 6): %+v", what, got)
	}
}

// sameAborted compares index entries; an entry's last stable offset may be
// lower than want's (never higher): a
// replica that appended the markers before its high watermark passed the
// earlier ones records a more conservative one (Kafka's followers do the
// same), which only makes a query read on where it could have stopped.
func sameAborted(got, want []segment.AbortedTxn) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ProducerID != w.ProducerID || g.FirstOffset != w.FirstOffset || g.LastOffset != w.LastOffset || g.LastStableOffset > w.LastStableOffset {
			return false
		}
	}
	return true
}

func TestLastStableOffsetAndAbortedIndex(t *testing.T) {
	dir := t.TempDir()
	p := soleLeader(t, dir)
	interleavedTransactions(t, p)
	checkTxnState(t, "leader", p)

	// A follower builds the same state from the replicated batches.
	data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	follower := replica(t, t.TempDir(), 2, nil)
	follower.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1}), t0)
	if err := follower.AppendReplicated(data, p.HighWatermark(), 1); err != nil {
		t.Fatal(err)
	}
	checkTxnState(t, "follower", follower)

	// Restart: from the producer snapshot and the .txnindex files.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := soleLeader(t, dir)
	checkTxnState(t, "reopened", reopened)
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}

	// Without snapshot and index (a crash before either was written):
	// rebuilt from the log.
	for _, pattern := range []string{"*.snapshot", "*.txnindex"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(files) == 0 {
			t.Fatalf("no %s file written", pattern)
		}
		for _, f := range files {
			os.Remove(f)
		}
	}
	rebuilt := soleLeader(t, dir)
	checkTxnState(t, "rebuilt from the log", rebuilt)

	// The open transaction goes on after the restart and can be aborted.
	mustAppend(t, rebuilt, batch(t, transactional(11, 0, 1), "more", 1))
	mustMarker(t, rebuilt, 11, false)
	if got := rebuilt.AbortedTransactions(9, 12); len(got) != 1 || got[0] != (segment.AbortedTxn{ProducerID: 11, FirstOffset: 9, LastOffset: 11, LastStableOffset: 12}) {
		t.Fatalf("p11's abort: %+v", got)
	}

	// A follower truncated below markers forgets their transactions'
	// outcome: p9's abort at 8 goes, its transaction is open again.
	if err := follower.TruncateTo(8); err != nil {
		t.Fatal(err)
	}
	if open := follower.OpenTransactions(); !reflect.DeepEqual(open, []producer.OpenTxn{{ProducerID: 9, FirstOffset: 5}}) {
		t.Fatalf("after truncation: open %+v", open)
	}
	if got := follower.AbortedTransactions(0, 8); !reflect.DeepEqual(got, []segment.AbortedTxn{wantAborted[0], wantAborted[2]}) {
		t.Fatalf("after truncation: aborted %+v", got)
	}
}

// TestCompactionStopsAtLastStableOffset: the log cleaner never uses or
// cleans records at or above the LSO: an open transaction's record of a
// key (which may yet be aborted) does not remove the committed one below.
func TestCompactionStopsAtLastStableOffset(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01"})
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	keyed := func(opts recordbatch.BuildOptions, key, value string) []byte {
		b, err := recordbatch.Build(opts, []recordbatch.Record{{Key: []byte(key), Value: []byte(value), Timestamp: t0.UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mustAppend(t, p, keyed(recordbatch.BuildOptions{}, "k", "committed")) // 0
	p.StartTxnVerification(7, 0)
	mustAppend(t, p, keyed(transactional(7, 0, 0), "k", "in-transaction")) // 1
	for i := range 6 {
		mustAppend(t, p, keyed(recordbatch.BuildOptions{}, "other", string(rune('a'+i)))) // 2-7, rolling segments
	}
	if len(p.Segments()) < 3 {
		t.Fatalf("only %d segments", len(p.Segments()))
	}
	if _, err := p.Compact(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	if h := headers(t, data); len(h) == 0 || h[0].BaseOffset != 0 || h[0].NumRecords != 1 {
		t.Fatalf("the committed record below the open transaction was cleaned: %+v", h)
	}
}

// TestCoordinatorBatchesAreNotDeduplicated: the group coordinator writes
// each TxnOffsetCommit of a transaction as a batch of the producer with
// its own sequence (0): two commits of one transaction with the same
// record count are two batches, not a retry of one (the second was once
// answered as a duplicate and never written), and the producer's epoch
// still fences them.
func TestCoordinatorBatchesAreNotDeduplicated(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	p.StartTxnVerification(9, 1)
	first, err := p.AppendFromCoordinator(batch(t, transactional(9, 1, 0), "commit-1", 1), t0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.AppendFromCoordinator(batch(t, transactional(9, 1, 0), "commit-2", 1), t0)
	if err != nil {
		t.Fatal(err)
	}
	if first != 0 || second != 1 || p.LogEndOffset() != 2 {
		t.Fatalf("coordinator batches at %d and %d, log end %d; want 0, 1 and 2", first, second, p.LogEndOffset())
	}
	_, err = p.AppendFromCoordinator(batch(t, transactional(9, 0, 0), "fenced", 1), t0)
	wantCode(t, "coordinator batch of an older epoch", err, kerr.InvalidProducerEpoch)
}

// TestMarkerHoldsTheLSOUntilCommitted: a completed transaction keeps the
// last stable offset at its first offset until its marker is below the
// high watermark (Kafka's unreplicated transactions), so read_committed
// never reads a transaction whose outcome a leader change could still
// undo, nor an aborted one before its index entry is in place.
func TestMarkerHoldsTheLSOUntilCommitted(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	mustAppend(t, p, batch(t, idempotent(3, 0, 0), "plain", 1)) // offset 0
	appendTxn(t, p, 7, 0)                                       // offset 1
	if _, err := p.FollowerFetched(2, 2, t0); err != nil {
		t.Fatal(err)
	}
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 2 || lso != 1 {
		t.Fatalf("open transaction: high watermark %d, LSO %d; want 2 and 1", hw, lso)
	}
	marker := mustMarker(t, p, 7, false) // offset 2, not yet on the follower
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("LSO %d with the ABORT marker at %d not committed (high watermark %d); want 1", lso, marker, p.HighWatermark())
	}
	if _, err := p.FollowerFetched(2, marker+1, t0); err != nil {
		t.Fatal(err)
	}
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 3 || lso != 3 {
		t.Fatalf("marker committed: high watermark %d, LSO %d; want 3 and 3", hw, lso)
	}
	if got := p.AbortedTransactions(0, 3); len(got) != 1 || got[0].ProducerID != 7 || got[0].FirstOffset != 1 || got[0].LastOffset != 2 {
		t.Fatalf("aborted transactions %+v", got)
	}
}

// TestV2MarkerBumpsTheEpoch: a Transactions V2 marker carries the epoch the
// coordinator bumped at EndTxn, one above the transaction's batches: the
// partition takes it (the transaction ends, the LSO moves past it), the
// old epoch's late batches are fenced (a zombie's retry cannot join the
// next transaction), and the next transaction runs at the bumped epoch
// from sequence 0. Its first batch, arriving before the marker, is not
// part of the old epoch's transaction: it needs its own verification.
func TestV2MarkerBumpsTheEpoch(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	p.StartTxnVerification(7, 3)
	mustAppend(t, p, batch(t, transactional(7, 3, 0), "a", 1))
	mustAppend(t, p, batch(t, transactional(7, 3, 1), "b", 1))
	if p.NeedsTxnVerification(7, 3) {
		t.Fatal("the open transaction's epoch needs verification")
	}
	if !p.NeedsTxnVerification(7, 4) {
		t.Fatal("a batch of the next epoch would join the transaction still open at the old one")
	}
	_, _, err := p.Append(batch(t, transactional(7, 4, 0), "early", 1), 12, t0)
	wantCode(t, "next transaction's batch before the marker, unverified", err, kerr.InvalidTxnState)

	marker, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true}, t0)
	if err != nil {
		t.Fatalf("marker at the bumped epoch: %v", err)
	}
	if open := p.OpenTransactions(); len(open) != 0 {
		t.Fatalf("open after the marker: %+v", open)
	}
	if lso := p.LastStableOffset(); lso != marker+1 {
		t.Fatalf("LSO %d, want %d", lso, marker+1)
	}
	_, _, err = p.Append(batch(t, transactional(7, 3, 2), "zombie", 1), 12, t0)
	wantCode(t, "the old epoch's late batch", err, kerr.InvalidProducerEpoch)
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 3, CoordinatorEpoch: 1, Commit: false}, t0); err == nil {
		t.Fatal("a marker of the old epoch was taken after the bumped one")
	}
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true}, t0); err != nil {
		t.Fatalf("a retried marker: %v", err)
	}

	if !p.NeedsTxnVerification(7, 4) {
		t.Fatal("no transaction open, yet no verification needed")
	}
	p.StartTxnVerification(7, 4)
	first := mustAppend(t, p, batch(t, transactional(7, 4, 0), "next", 1))
	if open := p.OpenTransactions(); len(open) != 1 || open[0].Epoch != 4 || open[0].FirstOffset != first {
		t.Fatalf("next transaction: %+v", open)
	}
}

// TestV2MarkerKeepsTheNextTransactionsVerification (forced interleaving):
// Transactions V2 bumps the epoch at every transaction's end and the
// marker carries the bumped epoch. A producer that commits and at once
// begins the next transaction has that transaction's first batch verified
// (at the bumped epoch) while the previous transaction's marker is still
// being written: the marker must not take the new verification with it
// (it did: every back-to-back V2 transaction then failed with
// INVALID_TXN_STATE). A V2 marker of a later epoch still ends it.
func TestV2MarkerKeepsTheNextTransactionsVerification(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	p.StartTxnVerification(7, 3)
	mustAppend(t, p, batch(t, transactional(7, 3, 0), "first", 1))
	// EndTxn v5 answered with epoch 4; the next transaction's batch is
	// verified before the marker (epoch 4) lands.
	p.StartTxnVerification(7, 4)
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true, TransactionVersion: 2}, t0); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, batch(t, transactional(7, 4, 0), "next", 1))
	if open := p.OpenTransactions(); len(open) != 1 || open[0].Epoch != 4 {
		t.Fatalf("open transactions %+v, want the next one at epoch 4", open)
	}

	// A timeout abort bumps past the verified epoch: the verification of
	// the transaction it ended is gone.
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 5, CoordinatorEpoch: 1, TransactionVersion: 2}, t0); err != nil {
		t.Fatal(err)
	}
	p.StartTxnVerification(7, 5)
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 6, CoordinatorEpoch: 1, TransactionVersion: 2}, t0); err != nil {
		t.Fatal(err)
	}
	_, _, err := p.Append(batch(t, transactional(7, 5, 0), "late", 1), 12, t0)
	wantCode(t, "batch verified at an epoch a later marker ended", err, kerr.InvalidProducerEpoch)
}

// TestV2LateMarkerDoesNotEndTheNextTransaction (forced interleaving,
// KIP-1228): a Transactions V2 marker carries the epoch its coordinator
// bumped at EndTxn, which is the next transaction's epoch. A late copy of
// the previous transaction's marker (a WriteTxnMarkers overtaken by its
// own retry, answered and completed meanwhile) arriving once the next
// transaction is open here at that epoch was taken as that transaction's
// marker: it committed the next transaction's first batches before the
// producer ended it, and the rest of it would then open a transaction of
// its own. A V2 marker must be above the epoch of the transaction it ends
// (INVALID_PRODUCER_EPOCH otherwise); a retried marker with nothing open
// here is still written, and a V1 marker of the current epoch still ends
// its transaction.
func TestV2LateMarkerDoesNotEndTheNextTransaction(t *testing.T) {
	p := soleLeader(t, t.TempDir())
	p.StartTxnVerification(7, 3)
	mustAppend(t, p, batch(t, transactional(7, 3, 0), "first", 1))
	v2Commit := Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true, TransactionVersion: 2}
	if _, err := p.AppendMarker(v2Commit, t0); err != nil {
		t.Fatal(err)
	}
	// The coordinator's retry of the same marker, nothing open here: written.
	if _, err := p.AppendMarker(v2Commit, t0); err != nil {
		t.Fatalf("a retried V2 marker with no transaction open: %v", err)
	}
	p.StartTxnVerification(7, 4)
	next := mustAppend(t, p, batch(t, transactional(7, 4, 0), "next", 1))

	_, err := p.AppendMarker(v2Commit, t0)
	wantCode(t, "the previous transaction's late V2 marker", err, kerr.InvalidProducerEpoch)
	if open := p.OpenTransactions(); len(open) != 1 || open[0].Epoch != 4 || open[0].FirstOffset != next {
		t.Fatalf("open transactions %+v, want the next one at epoch 4 from %d", open, next)
	}
	if lso := p.LastStableOffset(); lso != next {
		t.Fatalf("LSO %d, want %d (the next transaction is still open)", lso, next)
	}

	// Transactions V1 markers carry the transaction's own epoch.
	if _, err := p.AppendMarker(Marker{ProducerID: 7, ProducerEpoch: 4, CoordinatorEpoch: 1, Commit: true}, t0); err != nil {
		t.Fatalf("a V1 marker of the open transaction's epoch: %v", err)
	}
	if open := p.OpenTransactions(); len(open) != 0 {
		t.Fatalf("open after the V1 marker: %+v", open)
	}
}
