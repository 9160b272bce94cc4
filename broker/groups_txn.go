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
// AddOffsetsToTxn, or a TxnOffsetCommit v5, added the group), when the
// partition has no transaction of p open at its epoch: a TxnOffsetCommit
// arriving after its transaction ended (a late retry, a zombie) is then
// refused instead of opening a transaction that no marker would ever end.
// StartTxnVerification runs before each question, so a marker landing
// while it is in flight voids the answer.
func (s *Server) verifyOffsetsTxn(part *partition.Partition, p group.TxnProducer) error {
	if !part.NeedsTxnVerification(p.ProducerID, p.ProducerEpoch) {
		return nil // its transaction is open here: the append is part of it
	}
	ctx, cancel := context.WithTimeout(s.ctx, offsetCommitTimeout)
	defer cancel()
	topic, index := part.Topic(), part.Index()
	codes := s.txnVerifier.askRetrying(ctx, s.cfg.Metadata.State(), p.TransactionalID, p.ProducerID, p.ProducerEpoch,
		map[string][]int32{topic: {index}}, false, func() { part.StartTxnVerification(p.ProducerID, p.ProducerEpoch) })
	code := txnOffsetCommitCode(codes[topic][index])
	if code == 0 {
		return nil
	}
	if code == kerr.TransactionAbortable.Code {
		// TxnOffsetCommit before v5 knows no TRANSACTION_ABORTABLE: Kafka
		// answers INVALID_TXN_STATE. (A v5 commit was added to the
		// transaction just before, by handleTxnOffsetCommit: refused here,
		// its transaction ended meanwhile.)
		code = kerr.InvalidTxnState.Code
	}
	part.AbandonTxnVerification(p.ProducerID)
	return kerr.ErrorForCode(code)
}

// txnOffsetCommitCode is the code TxnOffsetCommit answers for a
// transaction coordinator's answer about the group's partition, as Kafka's
// group coordinator maps them: COORDINATOR_NOT_AVAILABLE (retriable) when
// the transaction coordinator cannot answer now, INVALID_PRODUCER_EPOCH
// for a fenced producer, the coordinator's other refusals
// (INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING...) as they are.
func txnOffsetCommitCode(code int16) int16 {
	switch code {
	case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code, kerr.ConcurrentTransactions.Code:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
