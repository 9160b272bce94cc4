package broker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

// DescribeQuorum v0-v2 (Kafka 4.2's range; what kafka-metadata-quorum
// describe --status/--replication shows): the metadata quorum's one
// partition, __cluster_metadata-0, with its leader, Raft term (leader
// epoch), commit index (high watermark), and its voters and observers (the
// other registered brokers) with the Raft index each last reported
// applied (log end offset) and when (v1). v2 lists the voters' controller
// endpoints. Only the metadata leader knows the members' positions: the
// other brokers ask it (as Kafka's brokers forward the request to the
// controller), and answer NOT_LEADER_OR_FOLLOWER when no leader is known.
func init() { register(0, 2, handleDescribeQuorum) }

// describeQuorumTimeout bounds asking the metadata leader.
const describeQuorumTimeout = 10 * time.Second

// Kafka's metadata log.
const (
	clusterMetadataTopic     = "__cluster_metadata"
	controllerListenerName   = "CONTROLLER"
	clusterMetadataPartition = 0
)

func handleDescribeQuorum(c *clientConn, h requestHeader, req *kmsg.DescribeQuorumRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	for _, rt := range req.Topics {
		out := kmsg.NewDescribeQuorumResponseTopic()
		out.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewDescribeQuorumResponseTopicPartition()
			p.Partition = rp.Partition
			if rt.Topic != clusterMetadataTopic || rp.Partition != clusterMetadataPartition {
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.Partitions = append(out.Partitions, p)
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, describeQuorumTimeout)
			quorum, err := s.cfg.Metadata.DescribeQuorum(ctx)
			cancel()
			if err != nil {
				p.ErrorCode = kerr.UnknownServerError.Code
				if errors.Is(err, metadata.ErrNotLeader) {
					p.ErrorCode = kerr.NotLeaderForPartition.Code
				}
				msg := err.Error()
				p.ErrorMessage = &msg
				out.Partitions = append(out.Partitions, p)
				continue
			}
			p.LeaderID, p.LeaderEpoch, p.HighWatermark = quorum.LeaderID, int32(quorum.LeaderEpoch), quorum.HighWatermark
			p.CurrentVoters = replicaStates(quorum.Voters)
			p.Observers = replicaStates(quorum.Observers)
			if req.Version >= 2 {
				for _, v := range quorum.Voters {
					host, portText, err := net.SplitHostPort(v.Address)
					port, portErr := strconv.ParseUint(portText, 10, 16)
					if err != nil || portErr != nil {
						continue
					}
					node := kmsg.NewDescribeQuorumResponseNode()
					node.NodeID = v.NodeID
					node.Listeners = []kmsg.DescribeQuorumResponseNodeListener{{Name: controllerListenerName, Host: host, Port: uint16(port)}}
					resp.Nodes = append(resp.Nodes, node)
				}
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

func replicaStates(replicas []metadata.QuorumReplica) []kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
	out := make([]kmsg.DescribeQuorumResponseTopicPartitionReplicaState, 0, len(replicas))
	for _, r := range replicas {
		state := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		state.ReplicaID, state.LogEndOffset = r.NodeID, r.LogEndOffset
		state.LastFetchTimestamp, state.LastCaughtUpTimestamp = r.LastFetchMillis, r.LastCaughtUpMillis
		out = append(out, state)
	}
	return out
}
