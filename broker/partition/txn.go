package partition

import "time"

// Transactions (KIP-98) at the partition: the seam the transaction work
// builds on. The bodies are placeholders until the partition-side
// transaction support lands; nothing calls them yet.

// Marker is a transaction marker a transaction coordinator writes to a
// partition through WriteTxnMarkers: a control batch ending the producer's
// open transaction here, committing or aborting it.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
}

// AppendMarker appends m as a control batch, as leader, and returns its
// offset; a failure is an *Error with the Kafka code the coordinator gets.
func (p *Partition) AppendMarker(m Marker, now time.Time) (offset int64, err error) {
	return -1, &Error{Code: -1, Message: "transaction markers are not supported yet"}
}

// StartTxnVerification records that the caller verified (KIP-890 part 1:
// the transaction coordinator confirmed, or the caller is that coordinator)
// that producerID's current transaction includes this partition. Append
// accepts the producer's first transactional batch of a transaction here
// only while such a verification stands: a marker for the producer clears
// it, so a batch verified before the transaction ended cannot open a new,
// hanging one.
func (p *Partition) StartTxnVerification(producerID int64) {}

// LastStableOffset is the first offset of the earliest open transaction,
// or the high watermark when none is open: what read_committed consumers
// may read up to.
func (p *Partition) LastStableOffset() int64 { return p.HighWatermark() }
