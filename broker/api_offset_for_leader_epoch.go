package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// OffsetForLeaderEpoch v0-v4: for each partition, the largest leader epoch
// at or below the one asked for and the offset where it ends in the
// leader's log (the next epoch's start, or the log end for the current
// one); -1 and -1 for an epoch newer than the leader's latest, which it
// cannot end (as Kafka's leader-epoch cache answers). Followers truncate
// to it before fetching from a new leader; clients use it to detect log
// truncation (KIP-320). Only the leader answers
// (NOT_LEADER_OR_FOLLOWER elsewhere); an older current leader epoch is
// FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH; a failed log
// (LogFailed) KAFKA_STORAGE_ERROR.
func init() { register(0, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(c *clientConn, h requestHeader, req *kmsg.OffsetForLeaderEpochRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	state := s.cfg.Metadata.State()
	// A follower (replica id >= 0, v3+) must be a broker (or, under
	// --authorizer acl, have CLUSTER_ACTION on the cluster, as in Kafka;
	// interbroker.go), a client needs DESCRIBE on each topic.
	replica := req.Version >= 3 && req.ReplicaID >= 0
	replicaAllowed := !replica || c.replicaAllowed(req.ReplicaID)
	for _, rt := range req.Topics {
		out := kmsg.NewOffsetForLeaderEpochResponseTopic()
		out.Topic = rt.Topic
		topic, _ := state.Topic(rt.Topic) // the zero Topic when it does not exist
		allowed := replicaAllowed && (replica || c.authorized(authz.OpDescribe, authz.ResourceTopic, rt.Topic))
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			p.Partition = rp.Partition
			p.LeaderEpoch, p.EndOffset = -1, -1
			switch part, code := s.leaderPartition(topic, rp.Partition, rp.CurrentLeaderEpoch); {
			case !allowed:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case part == nil:
				p.ErrorCode = code
			case part.LogFailed() != nil:
				// Offline on this broker, as ListOffsets answers: its log
				// end may hold records that failed, and its metadata may
				// be stalled by the same disk.
				p.ErrorCode = kerr.KafkaStorageError.Code
			default:
				p.LeaderEpoch, p.EndOffset = part.EpochEndOffset(rp.LeaderEpoch)
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}
