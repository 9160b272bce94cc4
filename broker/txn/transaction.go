package txn

import (
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
)

// Version is a transaction protocol, as Kafka's ClientTransactionVersion
// numbers it (the transaction.version feature levels).
type Version int16

const (
	// V1 is Transactions V1 (KIP-98, with KIP-890 part 1): partitions are
	// added with AddPartitionsToTxn, the producer epoch changes only with
	// InitProducerId or a fence.
	V1 Version = 0
	// V2 is Transactions V2 (KIP-890 part 2): Produce v12 and
	// TxnOffsetCommit v5 add their partition implicitly, and EndTxn v5
	// bumps the producer epoch at the end of every transaction (the
	// markers carry the bumped epoch, fencing a zombie's late batches).
	V2 Version = 2
)

// noProducerEpoch and noProducerID are Kafka's "none" values (RecordBatch
// NO_PRODUCER_EPOCH, NO_PRODUCER_ID).
const (
	noProducerEpoch int16 = -1
	noProducerID    int64 = -1
)

// transaction is the coordinator's state of one transactional id (Kafka's
// TransactionMetadata). It is owned by its Shard: read and written with the
// shard's mutex held, and only while pending is false may a request start
// changing it.
type transaction struct {
	id string

	producerID    int64
	producerEpoch int16
	// lastProducerID and lastProducerEpoch are the producer id and epoch
	// before the last InitProducerId (KIP-360: a retried InitProducerId is
	// answered with the current epoch, not bumped again). Not in the log
	// record version 0: after a load they are unknown (-1), as in Kafka.
	lastProducerID    int64
	lastProducerEpoch int16

	// nextProducerID is the producer id a Transactions V2 transaction
	// ending at an exhausted epoch hands its producer (Kafka's
	// NextProducerId): set from its Prepare* record, which carries the
	// bumped epoch math.MaxInt16 (for the markers), until its Complete*
	// record makes it the producer id with epoch 0. -1: none.
	nextProducerID int64
	// version is the transaction protocol of the transaction's requests
	// (Kafka's ClientTransactionVersion): V1, or V2 once a V2 request
	// touched it.
	version Version

	timeoutMillis int32
	state         kmsg.TransactionState
	partitions    map[group.TopicPartition]struct{}
	start         int64 // first partition added, Unix ms; -1: none
	lastUpdate    int64 // Unix ms

	// fresh: created by an InitProducerId whose write has not landed yet;
	// not visible to Describe or List, removed if the write fails.
	fresh bool
	// pending: a write of this transaction's next state is in flight (or
	// its markers are being completed): requests that would change it get
	// CONCURRENT_TRANSACTIONS until it lands.
	pending bool
}

// clone copies t (the partition set too), without pending.
func (t *transaction) clone() *transaction {
	c := *t
	c.pending = false
	c.partitions = make(map[group.TopicPartition]struct{}, len(t.partitions))
	for tp := range t.partitions {
		c.partitions[tp] = struct{}{}
	}
	return &c
}

func (t *transaction) sortedPartitions() []group.TopicPartition {
	out := make([]group.TopicPartition, 0, len(t.partitions))
	for tp := range t.partitions {
		out = append(out, tp)
	}
	sortTopicPartitions(out)
	return out
}

// epochFenced is lastProducerEpoch after the coordinator bumped the epoch
// to fence the producer (a timeout, an InitProducerId of another
// instance): no request of the old epoch is a retry of one answered.
const epochFenced int16 = -2

// endTxnRetry reports whether a V2 EndTxn with producerID and epoch is a
// retry of the one that bumped the epoch (or, at an exhausted epoch, moved
// the producer to its next producer id). After a load lastProducerEpoch is
// unknown (-1, as in Kafka): the epoch just below is taken as the retry,
// unless the coordinator fenced it since it knows.
func (t *transaction) endTxnRetry(producerID int64, epoch int16) bool {
	switch t.lastProducerEpoch {
	case epochFenced:
		return false
	case noProducerEpoch:
	default:
		if epoch != t.lastProducerEpoch {
			return false
		}
	}
	switch {
	case producerID == t.producerID:
		return epoch >= 0 && t.producerEpoch == epoch+1
	case producerID == t.lastProducerID && t.producerEpoch == 0:
		return epochExhausted(epoch)
	}
	return false
}

// epochExhausted: the epoch cannot be bumped any more and the producer
// gets a new id instead (Kafka's isEpochExhausted).
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// timedOut: an Ongoing transaction older than its timeout.
func (t *transaction) timedOut(now time.Time) bool {
	return t.state == kmsg.TransactionStateOngoing && t.start >= 0 &&
		now.UnixMilli() > t.start+int64(t.timeoutMillis)
}

// completed: no transaction is open (a new one may start).
func completed(s kmsg.TransactionState) bool {
	return s == kmsg.TransactionStateEmpty || s == kmsg.TransactionStateCompleteCommit || s == kmsg.TransactionStateCompleteAbort
}

// preparing: the outcome is decided and markers are being written.
func preparing(s kmsg.TransactionState) bool {
	return s == kmsg.TransactionStatePrepareCommit || s == kmsg.TransactionStatePrepareAbort
}
