package partition

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Transactions (KIP-98) at the partition. The producer state
// (broker/producer) knows each producer's open transaction; markers end
// them; the last stable offset (LSO) is the first offset of the earliest
// open transaction, capped at the high watermark; every ABORT marker adds
// an entry to the segment's aborted-transaction index (broker/segment's
// .txnindex), on the leader (AppendMarker) and on followers
// (AppendReplicated) alike, and recovery rebuilds the entries above the
// producer snapshot it starts from. KIP-890 part 1: a transactional batch
// that would open a transaction here is accepted only while a verification
// (StartTxnVerification) stands; a marker clears it.

// Marker is a transaction marker a transaction coordinator writes to a
// partition through WriteTxnMarkers: a control batch ending the producer's
// open transaction here, committing or aborting it.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	// TransactionVersion is the transaction's protocol (WriteTxnMarkers
	// v2+; 0 or 1: Transactions V1, 2: V2). A V2 marker carries the epoch
	// the producer's next transaction uses (KIP-890 part 2).
	TransactionVersion int8
}

// AppendMarker appends m as a control batch, as leader, and returns its
// offset; a failure is an *Error with the Kafka code the coordinator gets:
// NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH (a producer epoch older
// than the producer's here, or a Transactions V2 marker at the epoch of the
// transaction open here: producer.State.CheckMarker), TRANSACTION_COORDINATOR_FENCED (a coordinator
// epoch older than the producer's last marker's), KAFKA_STORAGE_ERROR. A
// marker for a producer without an open transaction here is written too
// (a retried marker), as Kafka does. The caller waits for the marker to be
// committed (WaitAll) before reporting success.
func (p *Partition) AppendMarker(m Marker, now time.Time) (offset int64, err error) {
	pm := producer.Marker{ProducerID: m.ProducerID, Epoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch, Commit: m.Commit, TransactionVersion: m.TransactionVersion}
	controlType := recordbatch.ControlAbort
	if m.Commit {
		controlType = recordbatch.ControlCommit
	}
	p.appendMu.Lock()
	if !p.leading.Load() {
		p.appendMu.Unlock()
		return -1, &Error{Code: kerr.NotLeaderForPartition.Code, Message: "this broker does not lead the partition (any more)"}
	}
	if err := p.producers.CheckMarker(pm); err != nil {
		p.appendMu.Unlock()
		return -1, &Error{Code: producer.ErrorCode(err), Message: err.Error()}
	}
	timestamp := now.UnixMilli()
	batch := recordbatch.BuildMarker(recordbatch.MarkerOptions{
		PartitionLeaderEpoch: p.leaderEpoch.Load(),
		ProducerID:           m.ProducerID,
		ProducerEpoch:        m.ProducerEpoch,
		Timestamp:            timestamp,
		Marker:               recordbatch.Marker{Type: controlType, CoordinatorEpoch: m.CoordinatorEpoch},
	})
	base, _, err := p.segments.Append(batch, []segment.AppendBatch{{Length: int32(len(batch)), MaxTimestamp: timestamp, Records: 1}})
	if err == nil {
		p.snapshotAtRollLocked(base)
		err = p.completeTxnLocked(pm, base, timestamp, true)
	}
	if err != nil {
		defer p.appendMu.Unlock()
		if errors.Is(err, segment.ErrClosed) {
			return -1, &Error{Code: kerr.UnknownTopicOrPartition.Code, Message: "the partition is no longer hosted here"}
		}
		if p.storageFailedLocked() {
			p.log.Error("appending a transaction marker failed; handing leadership to another in-sync replica", "err", err)
		}
		return -1, &Error{Code: kerr.KafkaStorageError.Code, Message: "append transaction marker: " + err.Error()}
	}
	p.advanceHighWatermarkLocked()
	p.appendMu.Unlock()
	if p.Durable() {
		p.requestSync()
	}
	p.notifyWaiters()
	return base, nil
}

// completeTxnLocked applies a marker appended at offset to the producer
// state, clears the producer's verification and, for an ABORT, adds the
// transaction to the aborted-transaction index (when index: recovery
// collects the entries and adds them after its scan). Called with appendMu
// held.
//
// Until the marker is below the high watermark the transaction still holds
// the LSO at its first offset (Kafka's unreplicated transactions), so a
// read_committed fetch never returns a transaction's data before its
// marker is committed — and never an aborted transaction's data before its
// index entry is in place: the entry is written here, before the hold can
// be released.
func (p *Partition) completeTxnLocked(m producer.Marker, offset, timestamp int64, index bool) error {
	done := p.producers.CompleteTxn(m, offset, timestamp)
	p.clearVerificationLocked(m)
	if done.FirstOffset < offset {
		p.holdLocked(heldTxn{first: done.FirstOffset, marker: offset})
	}
	var err error
	if done.Aborted && index {
		entry := abortedEntry(done, p.producers)
		hw := p.HighWatermark()
		if held := p.held.Load(); held != nil {
			for _, h := range *held {
				if h.marker >= hw && h.marker != offset {
					entry.LastStableOffset = min(entry.LastStableOffset, h.first)
				}
			}
		}
		err = p.segments.AppendAbortedTxn(entry)
	}
	p.updateFirstUnstableLocked()
	return err
}

// heldTxn is a completed transaction whose marker is not yet below the
// high watermark.
type heldTxn struct{ first, marker int64 }

// holdLocked adds t to the held transactions, dropping those whose marker
// the high watermark has passed. Called with appendMu held; readers load
// the slice without it (LastStableOffset).
func (p *Partition) holdLocked(t heldTxn) {
	hw := p.HighWatermark()
	var next []heldTxn
	if old := p.held.Load(); old != nil {
		for _, h := range *old {
			if h.marker >= hw {
				next = append(next, h)
			}
		}
	}
	next = append(next, t)
	p.held.Store(&next)
}

// dropHeldAboveLocked forgets the held transactions whose marker is not
// below end (the log was cut there: those transactions, or at least their
// outcomes, are gone), as Kafka clears its unreplicated transactions when
// it truncates. Called with appendMu held.
func (p *Partition) dropHeldAboveLocked(end int64) {
	old := p.held.Load()
	if old == nil {
		return
	}
	var next []heldTxn
	for _, h := range *old {
		if h.marker < end {
			next = append(next, h)
		}
	}
	p.held.Store(&next)
}

// abortedEntry is the index entry of an aborted transaction just
// completed in state: its last stable offset is the first offset of the
// earliest transaction still open, or the one after the marker (Kafka's;
// completeTxnLocked lowers it to the first offset of any other completed
// transaction whose marker is not yet committed).
func abortedEntry(done producer.CompletedTxn, state *producer.State) segment.AbortedTxn {
	lastStable := done.LastOffset + 1
	if first, ok := state.FirstUnstableOffset(); ok {
		lastStable = first
	}
	return segment.AbortedTxn{ProducerID: done.ProducerID, FirstOffset: done.FirstOffset, LastOffset: done.LastOffset, LastStableOffset: lastStable}
}

// updateFirstUnstableLocked publishes the first offset of the earliest
// open transaction for LastStableOffset (readers do not take appendMu).
// Called with appendMu held, after every change of the producer state.
func (p *Partition) updateFirstUnstableLocked() {
	first, ok := p.producers.FirstUnstableOffset()
	if !ok {
		first = math.MaxInt64
	}
	p.firstUnstable.Store(first)
}

// StartTxnVerification records that the caller verified (KIP-890 part 1:
// the transaction coordinator confirmed, or the caller is that coordinator)
// that producerID's current transaction includes this partition. Append
// accepts the producer's first transactional batch of a transaction here
// only while such a verification stands: a marker for the producer clears
// it, so a batch verified before the transaction ended cannot open a new,
// hanging one. Call it BEFORE asking the coordinator, so a marker that
// lands while the question is in flight clears it.
//
// A verification is for the producer's epoch: it lets a batch of that
// epoch open a transaction. A marker ends the verifications it may have
// overtaken: those of an older epoch, and of its own epoch unless it is a
// Transactions V2 marker — V2 bumps the epoch at every transaction's end
// and the marker carries the bumped one, which is the NEXT transaction's
// epoch: the previous transaction's marker may land while the next one's
// first batch is being verified (the coordinator answers
// CONCURRENT_TRANSACTIONS until that marker is written), and must not
// refuse it.
func (p *Partition) StartTxnVerification(producerID int64, epoch int16) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	p.txnVerified[producerID] = epoch
}

// clearVerificationLocked ends the producer's verification if marker m may
// have ended the transaction it verified (see StartTxnVerification).
func (p *Partition) clearVerificationLocked(m producer.Marker) {
	verified, ok := p.txnVerified[m.ProducerID]
	if ok && (verified < m.Epoch || verified == m.Epoch && m.TransactionVersion < 2) {
		delete(p.txnVerified, m.ProducerID)
	}
}

// AbandonTxnVerification withdraws a verification the coordinator did not
// confirm, so no later batch is accepted on it. (The produce path handles
// one connection's requests in order, so it never withdraws another
// request's verification of the same producer.)
func (p *Partition) AbandonTxnVerification(producerID int64) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	delete(p.txnVerified, producerID)
}

// NeedsTxnVerification reports whether a transactional batch from
// producerID at epoch would open a transaction here (none is open at that
// epoch: in Transactions V2 the next transaction's epoch is one above the
// one its marker has not closed yet): the produce path then verifies
// with the coordinator first.
func (p *Partition) NeedsTxnVerification(producerID int64, epoch int16) bool {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return !p.producers.InTransactionAt(producerID, epoch)
}

// checkTxnLocked refuses a transactional batch that would open a
// transaction without a standing verification. Called with appendMu held,
// after the producer-state check.
func (p *Partition) checkTxnLocked(h recordbatch.Header) error {
	if !h.IsTransactional() || p.producers.InTransactionAt(h.ProducerID, h.ProducerEpoch) {
		return nil
	}
	if verified, ok := p.txnVerified[h.ProducerID]; ok && verified == h.ProducerEpoch {
		return nil
	}
	return &Error{Code: kerr.InvalidTxnState.Code, Message: fmt.Sprintf("producer %d's transactional batch would start a transaction on %s-%d that its transaction coordinator has not verified (or a marker ended since)", h.ProducerID, p.topic, p.index)}
}

// LastStableOffset is the first offset of the earliest open transaction,
// or the high watermark when none is open (never above it): what
// read_committed consumers may read up to.
func (p *Partition) LastStableOffset() int64 { return p.LastStableOffsetFrom(math.MinInt64) }

// LastStableOffsetFrom is LastStableOffset never below logStart, the log
// start (remote data included) a client is answered, as Kafka clamps its
// first unstable offset to the log start
// (UnifiedLog.maybeIncrementFirstUnstableOffset): DeleteRecords or
// retention may move the log start past an open transaction's first
// offset, and an LSO below the log would send a read_committed consumer
// that resets to the latest offset out of range. The log start wins over
// the high watermark: the partition keeps its high watermark at or above
// every log start it follows (raiseLogStartLocked), so it is above only
// for a log start this replica has not followed yet, and no record is
// read from below the log start anyway.
func (p *Partition) LastStableOffsetFrom(logStart int64) int64 {
	hw := p.HighWatermark()
	lso := min(hw, p.firstUnstable.Load())
	if held := p.held.Load(); held != nil {
		for _, h := range *held {
			if h.marker >= hw {
				lso = min(lso, h.first)
			}
		}
	}
	return max(min(lso, hw), logStart)
}

// OpenTransactions returns the transactions open on this replica, by first
// offset (DescribeProducers, tests).
func (p *Partition) OpenTransactions() []producer.OpenTxn {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.producers.OpenTransactions()
}

// Producers returns the state of every producer of this replica, by
// producer id (DescribeProducers).
func (p *Partition) Producers() []producer.Producer {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.producers.Producers()
}

// AbortedTransactions returns the aborted transactions overlapping
// [from, upTo), by first offset: what a read_committed Fetch returning
// records from from up to upTo lists.
func (p *Partition) AbortedTransactions(from, upTo int64) []segment.AbortedTxn {
	return p.segments.AbortedTxns(from, upTo)
}
