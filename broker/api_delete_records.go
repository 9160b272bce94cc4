package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// DeleteRecords v0-v2 (Kafka 4.2's range; v2 is flexible): moves each
// partition's log start offset up to the offset asked (-1: the high
// watermark), on its leader. The local log start is persisted in the
// partition directory before the answer (a restart keeps it); followers
// follow the log start their leader answers in Fetch responses. On a
// tiered partition (remote.storage.enable, or tiered segments left) the
// log start is committed to the quorum first (SetLogStartOffset), so that
// the remote records below it are hidden at once from every broker and
// the tier manager deletes the tiered segments entirely below it.
//
// The answer's low watermark is the partition's log start offset after the
// request, given once the in-sync followers have moved their own log start
// that far (they state it in their fetches), as Kafka waits for its live
// replicas; past the request's timeout the partition answers
// REQUEST_TIMED_OUT, the log start moved on the leader all the same.
func init() { register(0, 2, handleDeleteRecords) }

func handleDeleteRecords(c *clientConn, h requestHeader, req *kmsg.DeleteRecordsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		out := kmsg.NewDeleteRecordsResponseTopic()
		out.Topic = rt.Topic
		allowed := c.authorized(authz.OpDelete, authz.ResourceTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewDeleteRecordsResponseTopicPartition()
			p.Partition = rp.Partition
			p.LowWatermark = -1
			if !allowed {
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else {
				p.LowWatermark, p.ErrorCode = s.deleteRecords(ctx, rt.Topic, rp.Partition, rp.Offset)
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// deleteRecords moves one partition's log start offset to offset and
// returns the new low watermark, or -1 and an error code.
func (s *Server) deleteRecords(ctx context.Context, topicName string, index int32, offset int64) (int64, int16) {
	state := s.cfg.Metadata.State()
	topic, _ := state.Topic(topicName) // the zero Topic when it does not exist
	part, code := s.leaderPartition(topic, index, -1)
	if part == nil {
		return -1, code
	}
	if topic.Internal {
		// As Kafka: the coordinators own their topics' retention.
		return -1, kerr.InvalidTopicException.Code
	}
	cfg := part.Config()
	if !cfg.Delete {
		// A compacted-only log keeps every key's latest record.
		return -1, kerr.PolicyViolation.Code
	}
	if part.LogFailed() != nil {
		return -1, kerr.KafkaStorageError.Code
	}
	highWatermark := part.HighWatermark()
	if offset == -1 {
		offset = highWatermark
	}
	if offset < 0 || offset > highWatermark {
		return -1, kerr.OffsetOutOfRange.Code
	}
	// The log start from the metadata read after the local one: state may
	// lack an upload whose local copies local retention has deleted since.
	starts := part.ReadLogStarts(s.cfg.Metadata.State)
	if offset <= starts.Log {
		// The quorum's log start may be above the local one: an earlier
		// request's commit outlived it (REQUEST_TIMED_OUT, committed
		// after), or its leader lost the partition right after the
		// commit. The local log follows it now, as it would have then:
		// no record below the log start stays, and the local log start
		// (EARLIEST_LOCAL) is never below the log start.
		offset = min(starts.Log, highWatermark)
		if offset <= starts.Local {
			return starts.Log, 0 // nothing below it is left
		}
	}
	if cfg.RemoteStorage || starts.State.PartitionSegmentCount(topic.ID, index) > 0 {
		if _, err := s.cfg.Metadata.SetLogStartOffset(ctx, topic.ID, index, part.LeaderEpoch(), offset); err != nil {
			part.Logger().Warn("DeleteRecords: committing the log start offset to the quorum failed", "offset", offset, "err", err)
			return -1, deleteRecordsErrorCode(err)
		}
	}
	if _, err := part.DeleteRecordsBefore(offset); err != nil {
		part.Logger().Warn("DeleteRecords failed", "offset", offset, "err", err)
		return -1, deleteRecordsErrorCode(err)
	}
	if code := awaitLowWatermark(ctx, part, offset); code != 0 {
		part.Logger().Warn("DeleteRecords: the in-sync followers did not move their log start", "offset", offset, "err", kerr.ErrorForCode(code))
		return -1, code
	}
	// The local log start, or the quorum's on a tiered partition whose
	// local log starts above it.
	start := part.LogStartOffsetIn(s.cfg.Metadata.State())
	part.Logger().Info("records deleted: log start offset advanced (DeleteRecords)", "log_start_offset", start)
	return start, 0
}

// deleteRecordsErrorCode is the answer to a log start move that failed.
func deleteRecordsErrorCode(err error) int16 {
	switch {
	case errors.Is(err, partition.ErrNotLeader), errors.Is(err, metadata.ErrFencedLeaderEpoch),
		errors.Is(err, metadata.ErrUnknownTopic), errors.Is(err, metadata.ErrUnknownPartition):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, segment.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, metadata.ErrNotLeader):
		return kerr.RequestTimedOut.Code
	default:
		return kerr.KafkaStorageError.Code
	}
}

// awaitLowWatermark waits until the partition's in-sync replicas have all
// moved their log start to offset (or beyond: a replica's local log may
// start there already): 0, or NOT_LEADER_OR_FOLLOWER when this broker
// stops leading, REQUEST_TIMED_OUT when ctx ends first.
func awaitLowWatermark(ctx context.Context, part *partition.Partition, offset int64) int16 {
	wake := make(chan struct{}, 1)
	part.AddWaiter(wake)
	defer part.RemoveWaiter(wake)
	for {
		switch {
		case !part.Leading():
			return kerr.NotLeaderForPartition.Code
		case part.LowWatermark() >= offset:
			return 0
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return kerr.RequestTimedOut.Code
		}
	}
}
