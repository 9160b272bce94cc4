package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/group"
)

// TxnOffsetCommit v0–v4 (KIP-98; KIP-447 adds the group generation, member
// id and instance id in v3): a transactional producer commits a consumer
// group's offsets as part of its transaction. The group's coordinator
// checks the sender like OffsetCommit (ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID; before v3 there is no member to
// check), writes the offsets to the group's __consumer_offsets partition
// in a transactional batch of the producer, and keeps them pending until
// the transaction's marker commits or aborts them (broker/group/txn.go).
// That the partition is in the transaction (AddOffsetsToTxn) is the
// transaction coordinator's business. v5 is Transactions V2 (KIP-890 part
// 2): a V2 producer sends no AddOffsetsToTxn, and this coordinator adds
// the group's __consumer_offsets partition to the transaction itself
// (AddPartitionsToTxn's broker form, as the produce path does for Produce
// v12) before writing. v6 names topics by id: not served.
//
// TxnOffsetCommitResponse has no top-level error: a failure of the whole
// request (INVALID_GROUP_ID, NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS, a fenced member or producer) is every
// partition's.
func init() { register(0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(c *clientConn, h requestHeader, req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	answer := func(code func(topic string, partition int32) int16) kmsg.Response {
		for _, rt := range req.Topics {
			t := kmsg.NewTxnOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = code(rt.Topic, rp.Partition)
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
	all := func(code int16) kmsg.Response {
		return answer(func(string, int32) int16 { return code })
	}
	if req.Group == "" {
		return all(kerr.InvalidGroupID.Code), nil
	}
	if req.ProducerID < 0 || req.ProducerEpoch < 0 {
		// No transactional producer sends these.
		return all(kerr.InvalidProducerIDMapping.Code), nil
	}
	switch {
	case !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID):
		return all(kerr.TransactionalIDAuthorizationFailed.Code), nil
	case !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group):
		return all(kerr.GroupAuthorizationFailed.Code), nil
	}
	sh, kerrCode := s.groups.ShardFor(req.Group)
	if kerrCode != nil {
		return all(kerrCode.Code), nil
	}
	generation, memberID, instanceID := req.Generation, req.MemberID, deref(req.InstanceID)
	if req.Version < 3 {
		generation, memberID, instanceID = -1, "", ""
	}
	committer := group.OffsetCommitRequest{
		GroupID:         req.Group,
		GenerationID:    generation,
		MemberID:        memberID,
		GroupInstanceID: instanceID,
		Transactional:   true,
	}
	// Checked here for the whole request, and again as the commits are
	// written: the group may rebalance in between.
	if err := sh.Coordinator().ValidateOffsetCommit(committer); err != nil {
		return all(group.ErrorCode(err)), nil
	}
	now := time.Now().UnixMilli()
	commits := newOffsetCommits(c, s.cfg.Metadata.State())
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			co := group.CommittedOffset{Offset: rp.Offset, LeaderEpoch: -1, Metadata: deref(rp.Metadata), Timestamp: now}
			if req.Version >= 2 {
				co.LeaderEpoch = rp.LeaderEpoch
			}
			commits.add(group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, co)
		}
	}
	var writeCode int16
	if len(commits.valid) > 0 && req.Version >= 5 {
		writeCode = s.addOffsetsPartitionToTxn(req, sh.Partition())
	}
	if len(commits.valid) > 0 && writeCode == 0 {
		err := sh.CommitTxnOffsets(committer, group.TxnProducer{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch}, commits.valid)
		if writeCode = group.ErrorCode(err); writeCode != 0 {
			c.log.Debug("transactional offset commit failed", "group", req.Group, "transactional_id", req.TransactionalID, "producer_id", req.ProducerID, "producer_epoch", req.ProducerEpoch, "err", err)
		}
	}
	return answer(func(topic string, partition int32) int16 {
		return commits.code(group.TopicPartition{Topic: topic, Partition: partition}, writeCode)
	}), nil
}

// addOffsetsPartitionToTxn adds the group's __consumer_offsets partition
// to the producer's transaction for a TxnOffsetCommit v5 (Transactions V2,
// Kafka's addPartition operation for the group coordinator's writes) and
// returns the code the commit's partitions get: 0 once added; the
// coordinator's refusal (INVALID_PRODUCER_EPOCH for a fenced producer,
// INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE...), or
// COORDINATOR_NOT_AVAILABLE (retriable) when the transaction coordinator
// cannot answer now, as Kafka's group coordinator maps them.
func (s *Server) addOffsetsPartitionToTxn(req *kmsg.TxnOffsetCommitRequest, partition int32) int16 {
	if req.TransactionalID == "" {
		return kerr.InvalidRequest.Code
	}
	ctx, cancel := context.WithTimeout(s.ctx, txnOffsetCommitAddTimeout)
	defer cancel()
	codes := s.txnVerifier.askRetrying(ctx, s.cfg.Metadata.State(), req.TransactionalID, req.ProducerID, req.ProducerEpoch,
		map[string][]int32{offsetsTopic: {partition}}, true, nil)
	return txnOffsetCommitCode(codes[offsetsTopic][partition])
}

// txnOffsetCommitAddTimeout bounds the round trip to the transaction
// coordinator of a TxnOffsetCommit v5.
const txnOffsetCommitAddTimeout = 10 * time.Second
