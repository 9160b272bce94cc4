package txn

import (
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
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
