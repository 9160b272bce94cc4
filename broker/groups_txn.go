package broker

import (
	"github.com/strata-log/strata/broker/recordbatch"
)

// The group coordinator's transactional writes (TxnOffsetCommit, KIP-447)
// to its __consumer_offsets partition.

// coordinatorSequence is the base sequence of the group coordinator's
// transactional batches, as Kafka's coordinator writes them (0: a batch
// with a producer id needs a sequence to be a valid batch at all). The
// producer's own sequences belong to its produce requests: a coordinator
// batch is fenced by the producer's epoch alone, its sequence is neither
// checked nor de-duplicated (a retried TxnOffsetCommit writes its records
// again, and the later record of a partition wins).
const coordinatorSequence = 0

// AppendTxn implements group.Log: the records as one transactional batch
// of the producer, appended as the group coordinator (which is where the
// TxnOffsetCommit was checked; AddOffsetsToTxn put the partition in the
// transaction) and waited for like Append.
func (l *offsetsLog) AppendTxn(records []recordbatch.Record, producerID int64, producerEpoch int16) (int64, error) {
	batch, err := recordbatch.Build(recordbatch.BuildOptions{
		Transactional: true,
		Idempotent:    true,
		ProducerID:    producerID,
		ProducerEpoch: producerEpoch,
		BaseSequence:  coordinatorSequence,
	}, records)
	if err != nil {
		return 0, err
	}
	l.p.StartTxnVerification(producerID)
	return l.write(batch, len(records))
}
