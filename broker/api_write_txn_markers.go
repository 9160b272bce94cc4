package broker

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
)

// WriteTxnMarkers v0-v2: a transaction coordinator (inter-broker), or an
// admin client aborting a hanging transaction (KIP-664, as
// kafka-transactions.sh --abort does), ends a producer's transaction on
// partitions this broker leads. v2 (Kafka 4.2, KIP-1228) adds the
// marker's transaction version; a Transactions V2 marker carries the
// producer epoch its coordinator bumped at EndTxn, one above the
// transaction's batches, which the partition takes as the producer's new
// epoch like any newer one, and refuses at the epoch of a transaction open
// there (a late marker of the previous transaction: partition.AppendMarker).
func init() { register(0, 2, handleWriteTxnMarkers) }

// markerCommitTimeout bounds how long a marker waits to be committed (the
// in-sync replicas have it), as Kafka's request.timeout.ms does for the
// markers it appends with acks=all.
const markerCommitTimeout = 30 * time.Second

func handleWriteTxnMarkers(c *clientConn, h requestHeader, req *kmsg.WriteTxnMarkersRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	if !c.authorizedCluster(authz.OpClusterAction) {
		// As Kafka: brokers (a super user) and admins aborting a hanging
		// transaction need CLUSTER_ACTION; every partition is refused.
		return writeTxnMarkersRefused(req, kerr.ClusterAuthorizationFailed.Code), nil
	}
	state := s.cfg.Metadata.State()
	now := time.Now()
	// A written marker waits to be committed (acks=all) before it counts,
	// and, on a __consumer_offsets partition, before the group coordinator
	// applies the transaction's offsets.
	type written struct {
		marker, topic, partition int
		offsetsPartition         int32 // -1: not a __consumer_offsets partition
		offset                   int64 // the marker's
		producerID               int64
		producerEpoch            int16
		commit                   bool
	}
	var pending []partition.Pending
	var waiting []written
	for mi, rm := range req.Markers {
		out := kmsg.NewWriteTxnMarkersResponseMarker()
		out.ProducerID = rm.ProducerID
		for ti, rt := range rm.Topics {
			ot := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			ot.Topic = rt.Topic
			topic, _ := state.Topic(rt.Topic) // the zero Topic when it does not exist
			for _, index := range rt.Partitions {
				op := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				op.Partition = index
				part, code := s.leaderPartition(topic, index, -1)
				if part == nil {
					op.ErrorCode = code
					ot.Partitions = append(ot.Partitions, op)
					continue
				}
				leaderEpoch := part.LeaderEpoch() // the term the marker is appended in
				offset, err := part.AppendMarker(partition.Marker{
					ProducerID: rm.ProducerID, ProducerEpoch: rm.ProducerEpoch,
					CoordinatorEpoch: rm.CoordinatorEpoch, Commit: rm.Committed,
					TransactionVersion: rm.TransactionVersion,
				}, now)
				if err != nil {
					var pe *partition.Error
					if errors.As(err, &pe) && pe.Code > 0 {
						op.ErrorCode = pe.Code
					} else {
						op.ErrorCode = kerr.UnknownServerError.Code
					}
					c.log.Debug("transaction marker refused", "topic", rt.Topic, "partition", index, "producer_id", rm.ProducerID, "err", err)
					ot.Partitions = append(ot.Partitions, op)
					continue
				}
				offsetsPartition := int32(-1)
				if rt.Topic == offsetsTopic {
					offsetsPartition = index
				}
				pending = append(pending, partition.Pending{Partition: part, End: offset + 1, LeaderEpoch: leaderEpoch})
				waiting = append(waiting, written{marker: mi, topic: ti, partition: len(ot.Partitions),
					offsetsPartition: offsetsPartition, offset: offset, producerID: rm.ProducerID, producerEpoch: rm.ProducerEpoch, commit: rm.Committed})
				ot.Partitions = append(ot.Partitions, op)
			}
			out.Topics = append(out.Topics, ot)
		}
		resp.Markers = append(resp.Markers, out)
	}
	if len(pending) == 0 {
		return resp, nil
	}
	c.releaseRequestMemory()
	for i, outcome := range partition.WaitAll(pending, time.Now().Add(markerCommitTimeout), s.ctx.Done()) {
		w := waiting[i]
		if outcome.Code != 0 {
			resp.Markers[w.marker].Topics[w.topic].Partitions[w.partition].ErrorCode = outcome.Code
			continue
		}
		if w.offsetsPartition >= 0 {
			// The marker ends the producer's offset commits written below
			// it, not a later transaction's (this answer may come late).
			s.groups.CompleteTransaction(w.offsetsPartition, w.producerID, w.producerEpoch, w.offset, w.commit)
		}
	}
	return resp, nil
}
