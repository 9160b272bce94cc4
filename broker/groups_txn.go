package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
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
// of the producer, appended like Append (acks=all). VerifyTxn ran first:
// the partition takes the batch as the start of the producer's
// transaction here only while that verification stands (a marker voids
// it), or as part of the transaction it has open.
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
	return l.write(batch, len(records))
}

// VerifyTxn implements group.Log (KIP-890 part 1 for TxnOffsetCommit).
func (l *offsetsLog) VerifyTxn(p group.TxnProducer) error {
	if l.verifyTxn == nil {
		return kerr.CoordinatorNotAvailable
	}
	return l.verifyTxn(l.p, p)
}

// verifyOffsetsTxn asks p's transaction coordinator, as the produce path
// does for a producer's first batch on a partition (txnVerifier), whether
// the offsets partition part is in p's ongoing transaction (it is once
// AddOffsetsToTxn added the group), when the partition has no transaction
// of p open: a TxnOffsetCommit arriving after its transaction ended (a
// late retry, a zombie) is then refused instead of opening a transaction
// that no marker would ever end. StartTxnVerification comes first, so a
// marker landing while the question is in flight voids the answer.
//
// The errors are what Kafka's group coordinator answers TxnOffsetCommit
// with: the coordinator's INVALID_TXN_STATE and INVALID_PRODUCER_EPOCH
// (PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, as Kafka's verification
// reports it), and COORDINATOR_NOT_AVAILABLE when the transaction
// coordinator cannot answer now (the produce path's NOT_ENOUGH_REPLICAS),
// which clients retry or abort on.
func (s *Server) verifyOffsetsTxn(part *partition.Partition, p group.TxnProducer) error {
	if !part.NeedsTxnVerification(p.ProducerID) {
		return nil // its transaction is open here: the append is part of it
	}
	part.StartTxnVerification(p.ProducerID)
	ctx, cancel := context.WithTimeout(s.ctx, offsetCommitTimeout)
	defer cancel()
	topic, index := part.Topic(), part.Index()
	code := s.txnVerifier.verify(ctx, s.cfg.Metadata.State(), p.TransactionalID, p.ProducerID, p.ProducerEpoch, map[string][]int32{topic: {index}})[topic][index]
	if code == 0 {
		return nil
	}
	part.AbandonTxnVerification(p.ProducerID)
	switch code {
	case kerr.NotEnoughReplicas.Code:
		code = kerr.CoordinatorNotAvailable.Code
	case kerr.ProducerFenced.Code:
		code = kerr.InvalidProducerEpoch.Code
	}
	return kerr.ErrorForCode(code)
}
