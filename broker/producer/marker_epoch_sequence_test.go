package producer

import (
	"errors"
	"testing"
)

// TestSequenceAfterMarkerEpochBump: a transaction marker at a newer epoch
// (Transactions V2 bumps the epoch in the marker; a coordinator abort
// bumps it too) leaves the producer at that epoch with no cached batch.
// Its next batch at that epoch starts a fresh sequence, so it must be
// sequence 0: Kafka's checkSequence compares it with NO_SEQUENCE (-1) and
// answers OUT_OF_ORDER_SEQUENCE_NUMBER to anything else, which is how a
// lost first batch of the epoch is detected. The same holds for a producer
// first seen through a marker.
func TestSequenceAfterMarkerEpochBump(t *testing.T) {
	s := NewState()
	s.Update(BatchMeta{ProducerID: 1, Epoch: 4, FirstSeq: 0, LastSeq: 9, FirstOffset: 0, LastOffset: 9, Transactional: true})
	s.CompleteTxn(Marker{ProducerID: 1, Epoch: 5, CoordinatorEpoch: 0, Commit: true}, 10, 1000)

	// Sequence 3 at the bumped epoch: batches 0..2 are missing.
	gap := BatchMeta{ProducerID: 1, Epoch: 5, FirstSeq: 3, LastSeq: 5, FirstOffset: -1, LastOffset: -1}
	if _, err := s.Check(gap); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence 3 as the first batch of epoch 5 after its marker: got %v, want %v", err, ErrOutOfOrderSequence)
	}
	if _, err := s.Check(BatchMeta{ProducerID: 1, Epoch: 5, FirstSeq: 0, LastSeq: 2}); err != nil {
		t.Fatalf("sequence 0 as the first batch of epoch 5: %v", err)
	}

	// A producer known only from a marker.
	s.CompleteTxn(Marker{ProducerID: 2, Epoch: 7, CoordinatorEpoch: 0}, 11, 1000)
	if _, err := s.Check(BatchMeta{ProducerID: 2, Epoch: 7, FirstSeq: 42, LastSeq: 42}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence 42 at the epoch of the producer's marker: got %v, want %v", err, ErrOutOfOrderSequence)
	}
}
