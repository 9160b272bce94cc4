package producer

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
)

// CachedBatches is how many of a producer's latest batches are kept to
// recognise retries: a client has at most five requests in flight.
const CachedBatches = 5

// Sentinel errors. Classify with errors.Is, ErrorCode or IsCorruptSnapshot;
// the messages are for people and may change.
var (
	// ErrInvalidProducerEpoch refuses a batch from an epoch older than the
	// producer's current one. Kafka's INVALID_PRODUCER_EPOCH.
	ErrInvalidProducerEpoch = errors.New("producer: invalid producer epoch")
	// ErrOutOfOrderSequence refuses a batch whose first sequence does not
	// follow the producer's last one. Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("producer: out of order sequence number")
	// ErrInvalidTxnState refuses a non-transactional batch from a producer
	// with a transaction open here, or a transactional batch that would
	// open one without verification (the partition checks that).
	// Kafka's INVALID_TXN_STATE.
	ErrInvalidTxnState = errors.New("producer: invalid transaction state")
	// ErrCoordinatorFenced refuses a transaction marker from a
	// coordinator epoch older than one already seen for the producer.
	// Kafka's TRANSACTION_COORDINATOR_FENCED.
	ErrCoordinatorFenced = errors.New("producer: transaction coordinator fenced")
	// ErrCorruptSnapshot marks a snapshot that cannot be read.
	ErrCorruptSnapshot = errors.New("producer: corrupt snapshot")
)

// IsCorruptSnapshot reports whether err stems from an unreadable snapshot.
func IsCorruptSnapshot(err error) bool { return errors.Is(err, ErrCorruptSnapshot) }

// ErrorCode maps an error from Check to the Kafka error code of a produce
// response: 0 for nil, INVALID_PRODUCER_EPOCH (47), OUT_OF_ORDER_SEQUENCE_NUMBER
// (45), and UNKNOWN_SERVER_ERROR (-1) for anything else.
func ErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, ErrCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	default:
		return kerr.UnknownServerError.Code
	}
}

// BatchMeta describes one batch of an idempotent producer.
type BatchMeta struct {
	ProducerID int64
	Epoch      int16
	// FirstSeq and LastSeq are the sequences of the batch's first and last
	// record (LastSeq wraps past math.MaxInt32 to 0).
	FirstSeq, LastSeq int32
	// FirstOffset and LastOffset are where the batch was appended; Check
	// ignores them.
	FirstOffset, LastOffset int64
	// MaxTimestamp is the batch's max timestamp, which becomes the
	// producer's last timestamp for expiration, as in Kafka.
	MaxTimestamp int64
	// Transactional: the batch belongs to a transaction; the producer's
	// first one after a marker (or ever) opens a transaction at
	// FirstOffset.
	Transactional bool
}

// Marker ends a producer's transaction on the partition (a COMMIT or ABORT
// control batch).
type Marker struct {
	ProducerID       int64
	Epoch            int16
	CoordinatorEpoch int32
	Commit           bool
	// TransactionVersion is the transaction's protocol as the coordinator
	// names it (WriteTxnMarkers v2, KIP-1228; 0 when unknown: a replicated
	// or recovered marker). A Transactions V2 (2) marker carries the epoch
	// its coordinator bumped at EndTxn, above the transaction it ends.
	TransactionVersion int8
}

// CompletedTxn is what a marker ended: the transaction's first offset (the
// marker's own when no transaction was open, as Kafka records it) and the
// marker's offset.
type CompletedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
	Aborted     bool
}

// OpenTxn is a transaction open on the partition.
type OpenTxn struct {
	ProducerID  int64
	Epoch       int16
	FirstOffset int64
}

// Producer is the state of one producer, for DescribeProducers and tests.
type Producer struct {
	ProducerID    int64
	Epoch         int16
	LastSequence  int32 // -1 when no batch is cached
	LastOffset    int64 // -1 when no batch is cached
	LastTimestamp int64
	// CoordinatorEpoch is the coordinator epoch of the producer's last
	// marker here (-1: none); CurrentTxnStartOffset the first offset of
	// its open transaction (-1: none).
	CoordinatorEpoch      int32
	CurrentTxnStartOffset int64
	// Batches are the cached batches, oldest first.
	Batches []BatchMeta
}

// State is the idempotent-producer state of one partition. It is not safe
// for concurrent use: the partition's append lock guards it (see the package
// doc).
type State struct {
	producers map[int64]*entry
	// open maps the producers with a transaction open here to its first
	// offset (the entries' txnFirstOffset, indexed for the LSO).
	open map[int64]int64
}

// entry is one producer's state.
type entry struct {
	epoch            int16
	lastTimestamp    int64
	coordinatorEpoch int32                    // of the last marker, -1 when none
	txnFirstOffset   int64                    // first offset of the open transaction, -1 when none
	count            int                      // cached batches in use
	batches          [CachedBatches]BatchMeta // oldest first
}

func (e *entry) last() *BatchMeta {
	if e.count == 0 {
		return nil
	}
	return &e.batches[e.count-1]
}

// add caches b, dropping the oldest batch when all slots are taken.
func (e *entry) add(b BatchMeta) {
	if e.count == CachedBatches {
		copy(e.batches[:], e.batches[1:])
		e.count--
	}
	e.batches[e.count] = b
	e.count++
}

// NewState returns an empty State.
func NewState() *State {
	return &State{producers: make(map[int64]*entry), open: make(map[int64]int64)}
}

func newEntry(epoch int16) *entry {
	return &entry{epoch: epoch, coordinatorEpoch: -1, txnFirstOffset: -1}
}

// Check decides what to do with an incoming batch before it is appended
// (see the package doc for the rules). A duplicate returns the original
// batch's metadata and no error: answer with its offsets, append nothing.
// A nil duplicate and nil error mean: append, then Update. Batches without a
// producer id pass unchecked.
// CheckCoordinator decides on a batch that a coordinator writes on the
// producer's behalf (the group coordinator's TxnOffsetCommit records, as
// Kafka's AppendOrigin.COORDINATOR): it is fenced by the producer's epoch
// alone; its sequence is the coordinator's, neither checked nor
// de-duplicated (a retried TxnOffsetCommit writes its records again, and
// the later record of a partition wins).
func (s *State) CheckCoordinator(b BatchMeta) error {
	e, known := s.producers[b.ProducerID]
	if b.ProducerID < 0 || !known {
		return nil
	}
	if b.Epoch < e.epoch {
		return fmt.Errorf("%w: producer %d sent epoch %d, its current epoch is %d", ErrInvalidProducerEpoch, b.ProducerID, b.Epoch, e.epoch)
	}
	if !b.Transactional && e.txnFirstOffset >= 0 {
		return fmt.Errorf("%w: producer %d sent a non-transactional batch while its transaction from offset %d is open", ErrInvalidTxnState, b.ProducerID, e.txnFirstOffset)
	}
	return nil
}

func (s *State) Check(b BatchMeta) (duplicate *BatchMeta, err error) {
	if b.ProducerID < 0 {
		return nil, nil
	}
	e, known := s.producers[b.ProducerID]
	if !known {
		// KIP-360: nothing left to compare the sequence with.
		return nil, nil
	}
	if b.Epoch < e.epoch {
		return nil, fmt.Errorf("%w: producer %d sent epoch %d, its current epoch is %d", ErrInvalidProducerEpoch, b.ProducerID, b.Epoch, e.epoch)
	}
	if !b.Transactional && e.txnFirstOffset >= 0 {
		return nil, fmt.Errorf("%w: producer %d sent a non-transactional batch while its transaction from offset %d is open", ErrInvalidTxnState, b.ProducerID, e.txnFirstOffset)
	}
	if b.Epoch != e.epoch {
		if b.FirstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d starts new epoch %d at sequence %d, want 0", ErrOutOfOrderSequence, b.ProducerID, b.Epoch, b.FirstSeq)
		}
		return nil, nil
	}
	for i := e.count - 1; i >= 0; i-- {
		if cached := e.batches[i]; cached.FirstSeq == b.FirstSeq && cached.LastSeq == b.LastSeq {
			return &cached, nil
		}
	}
	last := e.last()
	if last == nil {
		// An epoch without batches: a marker started it (a Transactions
		// V2 or coordinator epoch bump, or the producer's first event
		// here). Its sequences start at 0, as Kafka's checkSequence
		// requires (it compares with NO_SEQUENCE): anything else means the
		// epoch's first batches are missing.
		if b.FirstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d as its first batch of the epoch, want 0", ErrOutOfOrderSequence, b.ProducerID, b.Epoch, b.FirstSeq)
		}
		return nil, nil
	}
	if !inSequence(last.LastSeq, b.FirstSeq) {
		return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, want %d", ErrOutOfOrderSequence, b.ProducerID, b.Epoch, b.FirstSeq, nextSequence(last.LastSeq))
	}
	return nil, nil
}

// inSequence reports whether next follows last, wrapping after MaxInt32.
func inSequence(last, next int32) bool { return next == nextSequence(last) }

func nextSequence(last int32) int32 {
	if last == math.MaxInt32 {
		return 0
	}
	return last + 1
}

// Update records an appended batch: after Check passed and the append
// succeeded, and when rebuilding the state from the log. A new epoch
// replaces the producer's cached batches. Batches without a producer id are
// ignored.
func (s *State) Update(b BatchMeta) {
	if b.ProducerID < 0 {
		return
	}
	e, known := s.producers[b.ProducerID]
	if !known {
		e = newEntry(b.Epoch)
		s.producers[b.ProducerID] = e
	}
	if b.Epoch != e.epoch {
		e.epoch, e.count = b.Epoch, 0
	}
	e.add(b)
	e.lastTimestamp = b.MaxTimestamp
	if b.Transactional && e.txnFirstOffset < 0 {
		e.txnFirstOffset = b.FirstOffset
		s.open[b.ProducerID] = b.FirstOffset
	}
}

// InTransaction reports whether producerID has a transaction open here: a
// transactional batch from a producer without one opens one.
func (s *State) InTransaction(producerID int64) bool {
	_, open := s.open[producerID]
	return open
}

// InTransactionAt reports whether producerID has a transaction open here
// at epoch (Kafka's hasOngoingTransaction with the epoch, KIP-890 part 2):
// a Transactions V2 producer's next transaction runs at the epoch its
// last EndTxn bumped, so its first batch of it, arriving before the last
// transaction's marker (which carries the bumped epoch), is not part of
// the transaction still open here at the old epoch.
func (s *State) InTransactionAt(producerID int64, epoch int16) bool {
	_, open := s.open[producerID]
	return open && s.producers[producerID].epoch == epoch
}

// CheckMarker decides whether a marker may be appended: not from an epoch
// older than the producer's (ErrInvalidProducerEpoch), nor from a
// coordinator epoch older than its last marker's (ErrCoordinatorFenced). A
// marker for a producer without an open transaction (or unknown) passes:
// a retried marker is written again, as Kafka does.
//
// A Transactions V2 marker must also be above the epoch of the transaction
// open here (KIP-1228): one at that epoch is a late copy of the previous
// transaction's marker (whose epoch bump the open one runs at), and would
// end the open transaction before its producer did. Kafka refuses every
// V2 marker at the current epoch; a retry with nothing open here is
// harmless and is written again, so that a coordinator resending the
// markers a previous coordinator wrote (or whose answer was lost) is not
// taken for fenced.
func (s *State) CheckMarker(m Marker) error {
	e, known := s.producers[m.ProducerID]
	if !known {
		return nil
	}
	if m.Epoch < e.epoch {
		return fmt.Errorf("%w: marker for producer %d at epoch %d, its current epoch is %d", ErrInvalidProducerEpoch, m.ProducerID, m.Epoch, e.epoch)
	}
	if _, open := s.open[m.ProducerID]; open && m.TransactionVersion >= 2 && m.Epoch == e.epoch {
		return fmt.Errorf("%w: Transactions V2 marker for producer %d at epoch %d, the epoch of its open transaction: a late marker of the previous transaction", ErrInvalidProducerEpoch, m.ProducerID, m.Epoch)
	}
	if m.CoordinatorEpoch < e.coordinatorEpoch {
		return fmt.Errorf("%w: marker for producer %d from coordinator epoch %d, already saw %d", ErrCoordinatorFenced, m.ProducerID, m.CoordinatorEpoch, e.coordinatorEpoch)
	}
	return nil
}

// CompleteTxn records a marker appended at offset (after CheckMarker
// passed, and when rebuilding the state from the log): the producer's
// open transaction ends. A newer epoch drops the cached batches, as a new
// epoch's first batch does.
func (s *State) CompleteTxn(m Marker, offset, timestamp int64) CompletedTxn {
	e, known := s.producers[m.ProducerID]
	if !known {
		e = newEntry(m.Epoch)
		s.producers[m.ProducerID] = e
	}
	if m.Epoch != e.epoch {
		e.epoch, e.count = m.Epoch, 0
	}
	first := offset
	if e.txnFirstOffset >= 0 {
		first = e.txnFirstOffset
	}
	e.txnFirstOffset = -1
	delete(s.open, m.ProducerID)
	e.coordinatorEpoch = m.CoordinatorEpoch
	e.lastTimestamp = timestamp
	return CompletedTxn{ProducerID: m.ProducerID, FirstOffset: first, LastOffset: offset, Aborted: !m.Commit}
}

// FirstUnstableOffset is the first offset of the earliest open
// transaction; ok is false when none is open.
func (s *State) FirstUnstableOffset() (offset int64, ok bool) {
	for _, first := range s.open {
		if !ok || first < offset {
			offset, ok = first, true
		}
	}
	return offset, ok
}

// OpenTransactions returns the open transactions, by first offset.
func (s *State) OpenTransactions() []OpenTxn {
	out := make([]OpenTxn, 0, len(s.open))
	for id, first := range s.open {
		out = append(out, OpenTxn{ProducerID: id, Epoch: s.producers[id].epoch, FirstOffset: first})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstOffset < out[j].FirstOffset })
	return out
}

// ExpireBefore drops every producer whose last timestamp is before
// timestampMillis (now minus producer.id.expiration.ms) and returns how many
// it dropped. A dropped producer's next batch is accepted with any sequence.
// A producer with an open transaction stays (as in Kafka): the LSO needs it.
func (s *State) ExpireBefore(timestampMillis int64) int {
	expired := 0
	for id, e := range s.producers {
		if e.lastTimestamp < timestampMillis && e.txnFirstOffset < 0 {
			delete(s.producers, id)
			expired++
		}
	}
	return expired
}

// Len is the number of producers held.
func (s *State) Len() int { return len(s.producers) }

// Lookup returns one producer's state.
func (s *State) Lookup(producerID int64) (Producer, bool) {
	e, known := s.producers[producerID]
	if !known {
		return Producer{}, false
	}
	return e.describe(producerID), true
}

// Producers returns every producer's state, ordered by producer id.
func (s *State) Producers() []Producer {
	out := make([]Producer, 0, len(s.producers))
	for _, id := range s.sortedIDs() {
		out = append(out, s.producers[id].describe(id))
	}
	return out
}

func (s *State) sortedIDs() []int64 {
	ids := make([]int64, 0, len(s.producers))
	for id := range s.producers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (e *entry) describe(producerID int64) Producer {
	p := Producer{
		ProducerID: producerID, Epoch: e.epoch, LastTimestamp: e.lastTimestamp,
		LastSequence: -1, LastOffset: -1,
		CoordinatorEpoch: e.coordinatorEpoch, CurrentTxnStartOffset: e.txnFirstOffset,
		Batches: append([]BatchMeta(nil), e.batches[:e.count]...),
	}
	if last := e.last(); last != nil {
		p.LastSequence, p.LastOffset = last.LastSeq, last.LastOffset
	}
	return p
}
