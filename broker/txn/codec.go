package txn

import (
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
)

// The record codec of __transaction_state: Kafka's TransactionLogKey and
// TransactionLogValue schemas (kmsg's TxnMetadataKey and TxnMetadataValue),
// so Kafka's tools reading the topic understand it. The byte layouts are in
// the package doc ("Record format"); testdata/ holds golden encodings.

// Part of the format: do not change.
const (
	// keyVersion is the only TransactionLogKey version Kafka has.
	keyVersion int16 = 0
	// valueVersionWritten is the TransactionLogValue version written: 1
	// (flexible, with the tagged fields of KIP-890 part 2), as Kafka 4
	// writes it from transaction.version 1 on. Version 0 is still read.
	valueVersionWritten int16 = 1
	// maxValueVersionRead is the newest TransactionLogValue version read.
	maxValueVersionRead int16 = 1
)

// ErrUnknownRecord is a __transaction_state record this version cannot
// read (another key version, a value version from the future): it is
// skipped on load with an error logged.
var ErrUnknownRecord = errors.New("txn: unknown __transaction_state record")

// encodeKey is the TransactionLogKey of a transactional id.
func encodeKey(transactionalID string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version = keyVersion
	k.TransactionalID = transactionalID
	return k.AppendTo(nil)
}

// encodeValue is the TransactionLogValue (valueVersionWritten) of a
// transaction's state. An Empty transaction has no partitions: its
// partition list is null, as Kafka writes it.
func encodeValue(t *transaction) []byte { return encodeValueVersion(t, valueVersionWritten) }

// encodeValueVersion is encodeValue in a given value version (0 has no
// tagged fields: the V2 state does not fit it).
func encodeValueVersion(t *transaction, version int16) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = version
	if version >= 1 {
		v.PreviousProducerID = t.lastProducerID
		v.NextProducerID = t.nextProducerID
		v.ClientTransactionVersion = int16(t.version)
	}
	v.ProducerID = t.producerID
	v.ProducerEpoch = t.producerEpoch
	v.TimeoutMillis = t.timeoutMillis
	v.State = t.state
	v.LastUpdateTimestamp = t.lastUpdate
	v.StartTimestamp = t.start
	if t.state != kmsg.TransactionStateEmpty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for _, tp := range t.sortedPartitions() {
			if n := len(v.Topics); n == 0 || v.Topics[n-1].Topic != tp.Topic {
				v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: tp.Topic, Partitions: []int32{}})
			}
			last := &v.Topics[len(v.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
	}
	return v.AppendTo(nil)
}

// decodeRecord reads one __transaction_state record: the transactional id
// and, unless the value is a tombstone (nil: the id expired), its state.
func decodeRecord(key, value []byte) (string, *transaction, error) {
	if len(key) < 2 {
		return "", nil, fmt.Errorf("%w: a key of %d bytes", ErrUnknownRecord, len(key))
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("%w: key: %v", ErrUnknownRecord, err)
	}
	if k.Version != keyVersion {
		return "", nil, fmt.Errorf("%w: key version %d", ErrUnknownRecord, k.Version)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	if len(value) < 2 {
		return "", nil, fmt.Errorf("%w: transactional id %q: a value of %d bytes", ErrUnknownRecord, k.TransactionalID, len(value))
	}
	if version := int16(value[0])<<8 | int16(value[1]); version < 0 || version > maxValueVersionRead {
		return "", nil, fmt.Errorf("%w: transactional id %q: value version %d", ErrUnknownRecord, k.TransactionalID, version)
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return "", nil, fmt.Errorf("%w: transactional id %q: value: %v", ErrUnknownRecord, k.TransactionalID, err)
	}
	if v.State < kmsg.TransactionStateEmpty || v.State > kmsg.TransactionStatePrepareEpochFence {
		return "", nil, fmt.Errorf("%w: transactional id %q: state %d", ErrUnknownRecord, k.TransactionalID, v.State)
	}
	t := &transaction{
		id:                k.TransactionalID,
		producerID:        v.ProducerID,
		producerEpoch:     v.ProducerEpoch,
		lastProducerID:    -1,
		lastProducerEpoch: -1,
		nextProducerID:    -1,
		timeoutMillis:     v.TimeoutMillis,
		state:             v.State,
		start:             v.StartTimestamp,
		lastUpdate:        v.LastUpdateTimestamp,
		partitions:        map[group.TopicPartition]struct{}{},
	}
	if v.Version >= 1 {
		if v.PreviousProducerID >= 0 {
			t.lastProducerID = v.PreviousProducerID
		}
		if v.NextProducerID >= 0 {
			t.nextProducerID = v.NextProducerID
		}
		if v.ClientTransactionVersion >= int16(V2) {
			t.version = V2
		}
	}
	for _, topic := range v.Topics {
		for _, p := range topic.Partitions {
			t.partitions[group.TopicPartition{Topic: topic.Topic, Partition: p}] = struct{}{}
		}
	}
	return k.TransactionalID, t, nil
}

// sortTopicPartitions sorts by topic, then partition.
func sortTopicPartitions(tps []group.TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}
