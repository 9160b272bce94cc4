package metadata

import (
	"context"
	"maps"
	"slices"
)

// StartReassignment moves a partition to target replicas (Kafka's
// AlterPartitionReassignments with replicas): the new ones are added and
// catch up, and the controller finishes the move once all of target is in
// sync. A target equal to the replicas as a set only reorders them. It
// returns the partition as committed, and fails with ErrUnknownTopic,
// ErrUnknownPartition or ErrInvalidReplicaAssignment.
func (s *Store) StartReassignment(ctx context.Context, topicID [16]byte, partition int32, target []int32) (Partition, error) {
	return s.alterReassignment(ctx, &alterPartitionReassignmentCommand{kind: reassignStart, topicID: topicID, partition: partition,
		partitionEpoch: -1, target: slices.Clone(target), leader: -1})
}

// CancelReassignment reverts a partition's reassignment in progress
// (AlterPartitionReassignments with null replicas). It fails with
// ErrNoReassignmentInProgress when there is none.
func (s *Store) CancelReassignment(ctx context.Context, topicID [16]byte, partition int32) (Partition, error) {
	return s.alterReassignment(ctx, &alterPartitionReassignmentCommand{kind: reassignCancel, topicID: topicID, partition: partition,
		partitionEpoch: -1, leader: -1})
}

// finishReassignment completes the reassignment of a partition at
// partitionEpoch with leader leading (the controller's step). It fails
// with ErrStalePartitionEpoch when the partition changed since, and with
// ErrIneligibleReplica when leader, or another target replica, was fenced
// since (nothing is committed: the next pass decides again).
func (s *Store) finishReassignment(ctx context.Context, topicID [16]byte, p Partition, leader int32) (Partition, error) {
	return s.alterReassignment(ctx, &alterPartitionReassignmentCommand{kind: reassignFinish, topicID: topicID, partition: p.Index,
		partitionEpoch: p.PartitionEpoch, leader: leader})
}

func (s *Store) alterReassignment(ctx context.Context, c *alterPartitionReassignmentCommand) (Partition, error) {
	result, err := s.propose(ctx, c)
	if err != nil {
		return Partition{}, err
	}
	return result.(Partition), nil
}

// SetBrokerConfigs replaces the dynamic configs of broker id (or of
// ClusterDefaultBroker), from (as read from State.BrokerConfigs), with
// configs; nil or empty removes them. It fails with ErrStaleBrokerConfigs
// when the broker's configs are no longer from: another change came first;
// compute the change again from the new State. The caller validates the
// names and values.
func (s *Store) SetBrokerConfigs(ctx context.Context, id int32, from, configs map[string]string) error {
	_, err := s.propose(ctx, &alterBrokerConfigsCommand{broker: id, configs: maps.Clone(configs), checked: true, from: maps.Clone(from)})
	return err
}
