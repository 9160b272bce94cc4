package broker

import (
	"github.com/strata-log/strata/broker/group"
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
const coordinatorSequence = 0 // see Partition.AppendFromCoordinator

// AppendTxn implements group.Log: the records as one transactional batch
// of the producer, appended like Append (acks=all). The group coordinator
// checked the TxnOffsetCommit; that the partition is in the producer's
// transaction (AddOffsetsToTxn) is the transaction coordinator's record,
// and StartTxnVerification lets the partition take the batch as part of
// it (KIP-890 part 1: Kafka's coordinator first asks the transaction
// coordinator with AddPartitionsToTxn VerifyOnly, as the produce path
// does; p.TransactionalID is what that question needs).
func (l *offsetsLog) AppendTxn(records []recordbatch.Record, p group.TxnProducer) (int64, error) {
	batch, err := recordbatch.Build(recordbatch.BuildOptions{
		Transactional: true,
		Idempotent:    true,
		ProducerID:    p.ProducerID,
		ProducerEpoch: p.ProducerEpoch,
		BaseSequence:  coordinatorSequence,
	}, records)
	if err != nil {
		return 0, err
	}
	l.p.StartTxnVerification(p.ProducerID, p.ProducerEpoch)
	return l.write(batch, len(records))
}
