package producer

import (
	"errors"
	"math"
	"testing"
)

// batch makes the metadata of a batch of count records from producer 1.
func batch(epoch int16, firstSeq, count int32, firstOffset int64) BatchMeta {
	last := int64(firstSeq) + int64(count) - 1
	if last > math.MaxInt32 {
		last -= math.MaxInt32 + 1
	}
	return BatchMeta{
		ProducerID: 1, Epoch: epoch, FirstSeq: firstSeq, LastSeq: int32(last),
		FirstOffset: firstOffset, LastOffset: firstOffset + int64(count) - 1, MaxTimestamp: 1000 + firstOffset,
	}
}

// history appends n batches of 10 records in epoch 0, sequences 0, 10, ...
func history(n int) []BatchMeta {
	out := make([]BatchMeta, n)
	for i := range out {
		out[i] = batch(0, int32(i*10), 10, int64(i*10))
	}
	return out
}

func TestCheck(t *testing.T) {
	six := history(6)
	tests := []struct {
		name      string
		appended  []BatchMeta
		incoming  BatchMeta
		duplicate *BatchMeta
		err       error
	}{
		{"unknown producer at sequence 0", nil, batch(0, 0, 5, 0), nil, nil},
		{"unknown producer at any sequence", nil, batch(3, 12345, 5, 0), nil, nil},
		{"no producer id", six, BatchMeta{ProducerID: -1, FirstSeq: -1, LastSeq: -1}, nil, nil},
		{"in order", six, batch(0, 60, 10, 60), nil, nil},
		{"in order, one record", six, batch(0, 60, 1, 60), nil, nil},
		{"gap", six, batch(0, 61, 10, 60), nil, ErrOutOfOrderSequence},
		{"sequence behind, not cached", six, batch(0, 55, 10, 60), nil, ErrOutOfOrderSequence},
		{"duplicate of the newest", six, six[5], &six[5], nil},
		{"duplicate of the 2nd newest", six, six[4], &six[4], nil},
		{"duplicate of the 3rd newest", six, six[3], &six[3], nil},
		{"duplicate of the 4th newest", six, six[2], &six[2], nil},
		{"duplicate of the 5th newest", six, six[1], &six[1], nil},
		{"duplicate older than 5 batches", six, six[0], nil, ErrOutOfOrderSequence},
		{"same first sequence, other last", six, batch(0, 50, 5, 60), nil, ErrOutOfOrderSequence},
		{"epoch bump to sequence 0", six, batch(1, 0, 10, 60), nil, nil},
		{"epoch bump with a nonzero sequence", six, batch(1, 60, 10, 60), nil, ErrOutOfOrderSequence},
		{"epoch jump by several", six, batch(9, 0, 10, 60), nil, nil},
		{"old epoch fenced", []BatchMeta{batch(2, 0, 10, 0)}, batch(1, 10, 10, 10), nil, ErrInvalidProducerEpoch},
		{"old epoch fenced, even a duplicate of its batch", []BatchMeta{batch(1, 0, 10, 0), batch(2, 0, 10, 10)}, batch(1, 0, 10, 0), nil, ErrInvalidProducerEpoch},
		{"duplicate across epochs is not a duplicate", []BatchMeta{batch(1, 0, 10, 0)}, batch(2, 0, 10, 0), nil, nil},
		{"wraparound", []BatchMeta{batch(0, math.MaxInt32-9, 10, 0)}, batch(0, 0, 10, 10), nil, nil},
		{"batch spanning the wrap", []BatchMeta{batch(0, math.MaxInt32-19, 10, 0)}, batch(0, math.MaxInt32-9, 20, 10), nil, nil},
		{"after a batch spanning the wrap", []BatchMeta{batch(0, math.MaxInt32-9, 20, 0)}, batch(0, 10, 5, 20), nil, nil},
		{"no wrap to 1", []BatchMeta{batch(0, math.MaxInt32-9, 10, 0)}, batch(0, 1, 10, 10), nil, ErrOutOfOrderSequence},
		{"sequence restart without an epoch bump", six, batch(0, 0, 10, 60), nil, ErrOutOfOrderSequence},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			state := NewState()
			for _, b := range test.appended {
				if _, err := state.Check(b); err != nil {
					t.Fatalf("setup: Check(%+v): %v", b, err)
				}
				state.Update(b)
			}
			duplicate, err := state.Check(test.incoming)
			if !errors.Is(err, test.err) || (test.err == nil) != (err == nil) {
				t.Fatalf("Check: %v, want %v", err, test.err)
			}
			switch {
			case test.duplicate == nil && duplicate != nil:
				t.Fatalf("Check reported duplicate %+v", *duplicate)
			case test.duplicate != nil && (duplicate == nil || *duplicate != *test.duplicate):
				t.Fatalf("Check duplicate %v, want %+v", duplicate, *test.duplicate)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	state := NewState()
	for _, b := range history(7) {
		state.Update(b)
	}
	state.Update(BatchMeta{ProducerID: -1})
	p, ok := state.Lookup(1)
	if !ok || state.Len() != 1 {
		t.Fatalf("Lookup: %v, Len %d", ok, state.Len())
	}
	if p.Epoch != 0 || p.LastSequence != 69 || p.LastOffset != 69 || p.LastTimestamp != 1060 || len(p.Batches) != CachedBatches || p.Batches[0].FirstSeq != 20 {
		t.Fatalf("producer state %+v", p)
	}
	// A new epoch replaces the cached batches.
	state.Update(batch(1, 0, 3, 70))
	p, _ = state.Lookup(1)
	if p.Epoch != 1 || len(p.Batches) != 1 || p.LastSequence != 2 || p.LastOffset != 72 {
		t.Fatalf("after the epoch bump: %+v", p)
	}
	if _, ok := state.Lookup(2); ok {
		t.Fatal("Lookup found a producer never seen")
	}
}

func TestExpireBefore(t *testing.T) {
	state := NewState()
	for id, timestamp := range map[int64]int64{1: 100, 2: 200, 3: 300} {
		state.Update(BatchMeta{ProducerID: id, FirstSeq: 0, LastSeq: 0, MaxTimestamp: timestamp})
	}
	tests := []struct {
		name    string
		before  int64
		expired int
		left    int
	}{
		{"nothing older", 100, 0, 3},
		{"one older", 101, 1, 2},
		{"again: nothing more", 200, 0, 2},
		{"all", 1000, 2, 0},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if got := state.ExpireBefore(test.before); got != test.expired || state.Len() != test.left {
				t.Fatalf("ExpireBefore(%d) = %d leaving %d, want %d leaving %d", test.before, got, state.Len(), test.expired, test.left)
			}
		})
	}
	// An expired producer is unknown again: any sequence is accepted.
	if _, err := state.Check(BatchMeta{ProducerID: 1, FirstSeq: 500, LastSeq: 500}); err != nil {
		t.Fatalf("Check after expiry: %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int16
	}{
		{"nil", nil, 0},
		{"epoch", ErrInvalidProducerEpoch, 47},
		{"sequence", ErrOutOfOrderSequence, 45},
		{"wrapped", errors.Join(errors.New("context"), ErrOutOfOrderSequence), 45},
		{"other", ErrCorruptSnapshot, -1},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if got := ErrorCode(test.err); got != test.want {
				t.Fatalf("ErrorCode = %d, want %d", got, test.want)
			}
		})
	}
}

func TestTransactionTransitions(t *testing.T) {
	s := NewState()
	txn := func(id int64, epoch int16, seq int32, offset int64) BatchMeta {
		return BatchMeta{ProducerID: id, Epoch: epoch, FirstSeq: seq, LastSeq: seq, FirstOffset: offset, LastOffset: offset, Transactional: true}
	}
	if _, ok := s.FirstUnstableOffset(); ok {
		t.Fatal("an empty state has an open transaction")
	}
	// Two producers interleave; the first transactional batch opens each.
	s.Update(txn(1, 0, 0, 10))
	s.Update(txn(2, 0, 0, 11))
	s.Update(txn(1, 0, 1, 12))
	if first, ok := s.FirstUnstableOffset(); !ok || first != 10 {
		t.Fatalf("first unstable = %d, %v; want 10", first, ok)
	}
	if !s.InTransaction(1) || !s.InTransaction(2) || s.InTransaction(3) {
		t.Fatal("InTransaction wrong")
	}
	// A non-transactional batch while the transaction is open.
	nonTxn := txn(1, 0, 2, -1)
	nonTxn.Transactional = false
	if _, err := s.Check(nonTxn); !errors.Is(err, ErrInvalidTxnState) || ErrorCode(err) != 48 {
		t.Fatalf("non-transactional batch in a transaction: %v", err)
	}
	// Producer 1 aborts: its transaction spanned 10..13.
	if err := s.CheckMarker(Marker{ProducerID: 1, Epoch: 0, CoordinatorEpoch: 3}); err != nil {
		t.Fatal(err)
	}
	done := s.CompleteTxn(Marker{ProducerID: 1, Epoch: 0, CoordinatorEpoch: 3}, 13, 0)
	if done != (CompletedTxn{ProducerID: 1, FirstOffset: 10, LastOffset: 13, Aborted: true}) {
		t.Fatalf("completed %+v", done)
	}
	if first, ok := s.FirstUnstableOffset(); !ok || first != 11 {
		t.Fatalf("first unstable after abort = %d, %v; want 11", first, ok)
	}
	if got := s.OpenTransactions(); len(got) != 1 || got[0] != (OpenTxn{ProducerID: 2, Epoch: 0, FirstOffset: 11}) {
		t.Fatalf("open transactions %+v", got)
	}
	// Fencing of markers: older producer epoch, older coordinator epoch.
	if err := s.CheckMarker(Marker{ProducerID: 1, Epoch: 0, CoordinatorEpoch: 2}); !errors.Is(err, ErrCoordinatorFenced) {
		t.Fatalf("older coordinator epoch: %v", err)
	}
	s.CompleteTxn(Marker{ProducerID: 1, Epoch: 1, CoordinatorEpoch: 3, Commit: true}, 14, 0) // a bumped epoch (abort on timeout)
	if err := s.CheckMarker(Marker{ProducerID: 1, Epoch: 0, CoordinatorEpoch: 3}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("older producer epoch: %v", err)
	}
	// A marker without an open transaction is recorded at its own offset.
	if done := s.CompleteTxn(Marker{ProducerID: 1, Epoch: 1, CoordinatorEpoch: 3}, 15, 0); done.FirstOffset != 15 {
		t.Fatalf("marker without transaction: %+v", done)
	}
	// Open transactions are not expired; a committed producer is.
	if n := s.ExpireBefore(1 << 40); n != 1 || !s.InTransaction(2) {
		t.Fatalf("expired %d; producer 2 in transaction %v", n, s.InTransaction(2))
	}
	s.CompleteTxn(Marker{ProducerID: 2, Epoch: 0, CoordinatorEpoch: 3, Commit: true}, 16, 0)
	if _, ok := s.FirstUnstableOffset(); ok {
		t.Fatal("transactions still open after both markers")
	}
	if p, _ := s.Lookup(2); p.CurrentTxnStartOffset != -1 || p.CoordinatorEpoch != 3 {
		t.Fatalf("producer 2 after commit: %+v", p)
	}
}
