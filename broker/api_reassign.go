package broker

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

// AlterPartitionReassignments and ListPartitionReassignments (KIP-455): a
// reassignment is state in the metadata quorum (metadata.Partition's
// adding and removing replicas) that the controller drives to its end;
// these handlers start, cancel and list it. Both need the CLUSTER
// resource (ALTER, DESCRIBE), as in Kafka.

func init() {
	register(0, 1, handleAlterPartitionReassignments)
	register(0, 0, handleListPartitionReassignments)
}

func handleAlterPartitionReassignments(c *clientConn, _ requestHeader, req *kmsg.AlterPartitionAssignmentsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.Topics = make([]kmsg.AlterPartitionAssignmentsResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	// v0 has no such field: a v0 reassignment may change the replication
	// factor (KIP-860's default).
	allowReplicationFactorChange := req.AllowReplicationFactorChange || req.Version < 1
	resp.AllowReplicationFactorChange = allowReplicationFactorChange
	authorized := c.authorizedCluster(authz.OpAlter)
	if !authorized {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	}
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		out := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		out.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			result := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			result.Partition = rp.Partition
			code, msg := kerr.ClusterAuthorizationFailed.Code, "not authorized to ALTER the cluster"
			if authorized {
				code, msg = s.alterReassignment(ctx, rt.Topic, rp.Partition, rp.Replicas, allowReplicationFactorChange)
			}
			if code != 0 {
				result.ErrorCode = code
				result.ErrorMessage = &msg
			}
			out.Partitions = append(out.Partitions, result)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// alterReassignment starts (replicas) or cancels (nil) the reassignment of
// one partition and returns Kafka's error code and message.
func (s *Server) alterReassignment(ctx context.Context, topicName string, index int32, replicas []int32, allowReplicationFactorChange bool) (int16, string) {
	topic, ok := s.cfg.Metadata.State().Topic(topicName)
	if !ok || !topic.HasPartition(index) {
		return kerr.UnknownTopicOrPartition.Code, "topic '" + topicName + "' partition " + itoa(int(index)) + " does not exist"
	}
	current := topic.Partitions[index]
	var err error
	if replicas == nil {
		_, err = s.cfg.Metadata.CancelReassignment(ctx, topic.ID, index)
	} else {
		original := current.Replicas
		if current.Reassigning() {
			original = slices.DeleteFunc(slices.Clone(current.Replicas), func(r int32) bool { return slices.Contains(current.AddingReplicas, r) })
		}
		if !allowReplicationFactorChange && len(replicas) != len(original) {
			return kerr.InvalidReplicationFactor.Code, "the reassignment would change the replication factor from " + itoa(len(original)) + " to " + itoa(len(replicas)) + " and the request does not allow it"
		}
		_, err = s.cfg.Metadata.StartReassignment(ctx, topic.ID, index, replicas)
	}
	switch {
	case err == nil:
		s.log.Info("partition reassignment", "topic", topicName, "partition", index, "target", replicas, "cancel", replicas == nil)
		return 0, ""
	case errors.Is(err, metadata.ErrNoReassignmentInProgress):
		return kerr.NoReassignmentInProgress.Code, "no reassignment of topic '" + topicName + "' partition " + itoa(int(index)) + " is in progress"
	case errors.Is(err, metadata.ErrInvalidReplicaAssignment):
		return kerr.InvalidReplicaAssignment.Code, err.Error()
	case errors.Is(err, metadata.ErrUnknownTopic), errors.Is(err, metadata.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code, err.Error()
	default:
		return kerr.RequestTimedOut.Code, "reassigning: " + err.Error()
	}
}

func handleListPartitionReassignments(c *clientConn, _ requestHeader, req *kmsg.ListPartitionReassignmentsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		msg := "not authorized to DESCRIBE the cluster"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	// Null topics: every reassignment in progress; otherwise only those of
	// the partitions named (others, and unknown ones, are left out, as in
	// Kafka).
	var wanted map[string][]int32
	if req.Topics != nil {
		wanted = map[string][]int32{}
		for _, t := range req.Topics {
			wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
		}
	}
	var current *kmsg.ListPartitionReassignmentsResponseTopic
	for _, r := range c.server.cfg.Metadata.State().Reassignments() {
		if wanted != nil && !slices.Contains(wanted[r.Topic], r.Partition) {
			continue
		}
		if current == nil || current.Topic != r.Topic {
			resp.Topics = append(resp.Topics, kmsg.NewListPartitionReassignmentsResponseTopic())
			current = &resp.Topics[len(resp.Topics)-1]
			current.Topic = r.Topic
		}
		p := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		p.Partition = r.Partition
		p.Replicas = nonNil(r.Replicas)
		p.AddingReplicas = nonNil(r.AddingReplicas)
		p.RemovingReplicas = nonNil(r.RemovingReplicas)
		current.Partitions = append(current.Partitions, p)
	}
	return resp, nil
}

func nonNil(values []int32) []int32 {
	if values == nil {
		return []int32{}
	}
	return slices.Clone(values)
}
