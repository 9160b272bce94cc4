package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/txn"
)

// The transaction coordinator's APIs (broker/txn does the work; these
// decode and encode), in Kafka 4.2's version ranges. Transactions V2
// (KIP-890 part 2) is EndTxn v5 (the epoch bumped at every transaction's
// end, the new producer id and epoch answered) and AddPartitionsToTxn's
// broker form (v4+) without VerifyOnly, which a partition leader sends for
// a Produce v12 (and a group coordinator for a TxnOffsetCommit v5) to add
// the partition implicitly. AddPartitionsToTxn v5 and AddOffsetsToTxn v4
// let the coordinator answer TRANSACTION_ABORTABLE (a verified partition
// that is not in the transaction).
func init() {
	register(0, 5, handleAddPartitionsToTxn)
	register(0, 4, handleAddOffsetsToTxn)
	register(0, 5, handleEndTxn)
}

// producerFencedFor is a coordinator error as a client of this version
// knows it: PRODUCER_FENCED (KIP-588) is INVALID_PRODUCER_EPOCH before
// version since.
func producerFencedFor(err *kerr.Error, version, since int16) int16 {
	if err == kerr.ProducerFenced && version < since {
		return kerr.InvalidProducerEpoch.Code
	}
	return err.Code
}

// addPartitions adds (or, verifyOnly, verifies) a transaction's partitions
// and returns each one's error code. Partitions of topics that do not
// exist get UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED,
// as in Kafka.
//
// v is the transaction protocol the request speaks (V2: an implicit add by
// a partition leader or group coordinator).
func (s *Server) addPartitions(id string, producerID int64, epoch int16, tps []group.TopicPartition, verifyOnly bool, v txn.Version, version, fencedSince int16) map[group.TopicPartition]int16 {
	out := make(map[group.TopicPartition]int16, len(tps))
	all := func(code int16) map[group.TopicPartition]int16 {
		for _, tp := range tps {
			out[tp] = code
		}
		return out
	}
	if id == "" {
		return all(kerr.InvalidRequest.Code)
	}
	shard, kerrCode := s.txns.ShardFor(id)
	if kerrCode != nil {
		return all(kerrCode.Code)
	}
	if verifyOnly {
		results, kerrCode := shard.VerifyPartitions(id, producerID, epoch, tps)
		if kerrCode != nil {
			return all(producerFencedFor(kerrCode, version, fencedSince))
		}
		for tp, e := range results {
			if e == kerr.InvalidTxnState && version >= 5 {
				// Not in the transaction: the producer can abort it and
				// go on (KIP-890), where older versions make it fatal.
				out[tp] = kerr.TransactionAbortable.Code
			} else if e != nil {
				out[tp] = e.Code
			} else {
				out[tp] = 0
			}
		}
		return out
	}
	state := s.cfg.Metadata.State()
	unknown := false
	for _, tp := range tps {
		if t, ok := state.Topic(tp.Topic); !ok || !t.HasPartition(tp.Partition) {
			out[tp] = kerr.UnknownTopicOrPartition.Code
			unknown = true
		}
	}
	if unknown {
		for _, tp := range tps {
			if _, ok := out[tp]; !ok {
				out[tp] = kerr.OperationNotAttempted.Code
			}
		}
		return out
	}
	if kerrCode := shard.AddPartitions(id, producerID, epoch, tps, v); kerrCode != nil {
		return all(producerFencedFor(kerrCode, version, fencedSince))
	}
	return all(0)
}

// AddPartitionsToTxn v0–v3 (clients: one transaction) and v4–v5 (brokers:
// batched transactions, VerifyOnly for KIP-890 part 1's verification of a
// producer's first transactional batch on a partition).
func handleAddPartitionsToTxn(c *clientConn, h requestHeader, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	const fencedSince = 2
	if req.Version <= 3 {
		var tps []group.TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		codes := c.addPartitionsAuthorization(req.TransactionalID, tps, c.clientTxnTopic)
		if codes == nil {
			codes = s.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, tps, false, txn.V1, req.Version, fencedSince)
		}
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition = p
				rp.ErrorCode = codes[group.TopicPartition{Topic: t.Topic, Partition: p}]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	// v4+ is the brokers' form, which Kafka authorizes by CLUSTER_ACTION
	// on the cluster (the broker principal is a super user). On a
	// PLAINTEXT inter-broker listener a partition leader asks as
	// User:ANONYMOUS, so without CLUSTER_ACTION each transaction is
	// authorized as v3 is: WRITE on its transactional id and topics, no
	// internal topic but the group coordinator's __consumer_offsets
	// (relayedTxnTopic).
	clusterAction := c.authorizedCluster(authz.OpClusterAction)
	for _, tx := range req.Transactions {
		var tps []group.TopicPartition
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		// The broker form without VerifyOnly is Transactions V2's
		// implicit add (Kafka's addPartition operation).
		var codes map[group.TopicPartition]int16
		if !clusterAction {
			codes = c.addPartitionsAuthorization(tx.TransactionalID, tps, c.relayedTxnTopic)
		}
		if codes == nil {
			codes = s.addPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tps, tx.VerifyOnly, txn.V2, req.Version, fencedSince)
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition = p
				rp.ErrorCode = codes[group.TopicPartition{Topic: t.Topic, Partition: p}]
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp, nil
}

// AddOffsetsToTxn adds the __consumer_offsets partition of a group to the
// producer's transaction, so TxnOffsetCommit may write there and the
// transaction's markers reach it.
func handleAddOffsetsToTxn(c *clientConn, h requestHeader, req *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	switch {
	case !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	case !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	leaders, err := s.offsets.Leaders()
	if err != nil || len(leaders) == 0 {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	tp := group.TopicPartition{Topic: offsetsTopic, Partition: coordinator.Partition(req.Group, int32(len(leaders)))}
	codes := s.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []group.TopicPartition{tp}, false, txn.V1, req.Version, 2)
	resp.ErrorCode = codes[tp]
	return resp, nil
}

// EndTxn v0–v4 (Transactions V1) and v5 (V2: the producer epoch is bumped,
// and the producer id and epoch to use next are answered): commit or abort
// the producer's transaction. Answered once the decision is written; the
// markers follow.
func handleEndTxn(c *clientConn, h requestHeader, req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	if !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID) {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	v := txn.V1
	if req.Version >= 5 {
		v = txn.V2
	}
	shard, kerrCode := s.txns.ShardFor(req.TransactionalID)
	if kerrCode == nil {
		resp.ProducerID, resp.ProducerEpoch, kerrCode = shard.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, v)
	}
	if kerrCode != nil {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		resp.ErrorCode = producerFencedFor(kerrCode, req.Version, 2)
	}
	return resp, nil
}
