package broker

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// ElectLeaders (KIP-183, KIP-460): an operator asks for the preferred
// replica (the first of the assignment) to lead, or for an unclean
// election of a partition that has no leader. The election is a
// ChangePartition through the quorum, checked against the partition epoch
// it was computed from, as the controller's own elections are. Needs ALTER
// on the CLUSTER, as in Kafka.

func init() {
	register(0, 2, handleElectLeaders)
}

// Election types of ElectLeaders v1+ (v0 is always preferred).
const (
	electionPreferred int8 = 0
	electionUnclean   int8 = 1
)

func handleElectLeaders(c *clientConn, _ requestHeader, req *kmsg.ElectLeadersRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.Topics = make([]kmsg.ElectLeadersResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	electionType := req.ElectionType
	if req.Version == 0 {
		electionType = electionPreferred
	}
	authorized := c.authorizedCluster(authz.OpAlter)
	if !authorized {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	}
	if authorized && electionType != electionPreferred && electionType != electionUnclean {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	topics := req.Topics
	if topics == nil && authorized {
		// Null: every partition (Kafka answers for those that needed an
		// election; the others are left out).
		for _, t := range s.cfg.Metadata.State().Topics() {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = t.Name
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, p.Index)
			}
			topics = append(topics, rt)
		}
	}
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	for _, rt := range topics {
		out := kmsg.NewElectLeadersResponseTopic()
		out.Topic = rt.Topic
		for _, index := range rt.Partitions {
			result := kmsg.NewElectLeadersResponseTopicPartition()
			result.Partition = index
			code, msg := kerr.ClusterAuthorizationFailed.Code, "not authorized to ALTER the cluster"
			if authorized {
				code, msg = s.electLeader(ctx, rt.Topic, index, electionType)
			}
			if req.Topics == nil && code == kerr.ElectionNotNeeded.Code {
				continue
			}
			if code != 0 {
				result.ErrorCode = code
				result.ErrorMessage = &msg
			}
			out.Partitions = append(out.Partitions, result)
		}
		if len(out.Partitions) > 0 || req.Topics != nil {
			resp.Topics = append(resp.Topics, out)
		}
	}
	return resp, nil
}

// electLeader runs one election and returns Kafka's error code and
// message. It retries while the partition changes under it.
func (s *Server) electLeader(ctx context.Context, topicName string, index int32, electionType int8) (int16, string) {
	for {
		state := s.cfg.Metadata.State()
		topic, ok := state.Topic(topicName)
		if !ok || !topic.HasPartition(index) {
			return kerr.UnknownTopicOrPartition.Code, "topic '" + topicName + "' partition " + itoa(int(index)) + " does not exist"
		}
		p := topic.Partitions[index]
		where := "topic '" + topicName + "' partition " + itoa(int(index))
		alive := func(id int32) bool {
			b, ok := state.Broker(id)
			return ok && !b.Fenced
		}
		change := metadata.PartitionChange{TopicID: topic.ID, Partition: index, PartitionEpoch: p.PartitionEpoch}
		switch electionType {
		case electionPreferred:
			preferred := p.Replicas[0]
			if p.Leader == preferred {
				return kerr.ElectionNotNeeded.Code, where + ": the preferred replica " + itoa(int(preferred)) + " already leads"
			}
			if !slices.Contains(p.ISR, preferred) || !alive(preferred) {
				return kerr.PreferredLeaderNotAvailable.Code, where + ": the preferred replica " + itoa(int(preferred)) + " is not alive and in sync"
			}
			change.Leader, change.ISR = preferred, p.ISR
		default: // unclean
			if p.Leader >= 0 && alive(p.Leader) {
				return kerr.ElectionNotNeeded.Code, where + " has a live leader " + itoa(int(p.Leader))
			}
			var isr []int32
			for _, r := range p.ISR {
				if alive(r) {
					isr = append(isr, r)
				}
			}
			leader := int32(-1)
			for _, r := range p.Replicas {
				if slices.Contains(isr, r) {
					leader = r
					break
				}
			}
			if leader == -1 {
				// Only an out-of-sync replica could lead: what the ISR had
				// is lost. Never on a tiered topic (see
				// metadata.controller.uncleanAllowed).
				if topicconfig.Typed(s.cfg.TopicDefaults, topic.Configs).RemoteStorage {
					return kerr.InvalidRequest.Code, where + " is tiered (remote.storage.enable=true): an unclean election would splice an out-of-sync replica's history into the remote data; it stays offline until an in-sync replica returns"
				}
				for _, r := range p.Replicas {
					if alive(r) {
						leader, isr = r, []int32{r}
						break
					}
				}
			}
			if leader == -1 {
				return kerr.EligibleLeadersNotAvailable.Code, where + ": no replica is alive"
			}
			change.Leader, change.ISR = leader, isr
		}
		if s.beforeElectionProposed != nil {
			s.beforeElectionProposed(topicName, index)
		}
		next, err := s.cfg.Metadata.ChangePartition(ctx, change)
		switch {
		case err == nil:
			s.log.Info("leader elected on request", "topic", topicName, "partition", index, "leader", next.Leader,
				"leader_epoch", next.LeaderEpoch, "unclean", electionType == electionUnclean)
			return 0, ""
		case errors.Is(err, metadata.ErrStalePartitionEpoch) && ctx.Err() == nil:
			continue // changed meanwhile: decide again on the new state
		case errors.Is(err, metadata.ErrUnknownTopic), errors.Is(err, metadata.ErrUnknownPartition):
			return kerr.UnknownTopicOrPartition.Code, err.Error()
		case errors.Is(err, metadata.ErrIneligibleReplica):
			// The chosen replica was fenced after the decision (the
			// controller refuses a fenced broker joining the ISR or
			// becoming the leader): no replica is eligible, as Kafka's
			// controller answers when its election finds none.
			if electionType == electionPreferred {
				return kerr.PreferredLeaderNotAvailable.Code, where + ": the preferred replica is not eligible: " + err.Error()
			}
			return kerr.EligibleLeadersNotAvailable.Code, where + ": no eligible replica: " + err.Error()
		default:
			return kerr.RequestTimedOut.Code, "electing a leader: " + err.Error()
		}
	}
}
