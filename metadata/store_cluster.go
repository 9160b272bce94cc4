package metadata

import "context"

// RegisterBroker records a broker process's registration and returns its
// broker epoch. A new incarnation (or changed endpoints or rack) creates a
// new, fenced registration; repeating the current one returns the epoch it
// already has. It fails with ErrInvalidBroker for a malformed registration.
func (s *Store) RegisterBroker(ctx context.Context, registration BrokerRegistration) (brokerEpoch int64, err error) {
	if err := validateBrokerRegistration(&registration); err != nil {
		return 0, err
	}
	result, err := s.propose(ctx, &registerBrokerCommand{registration: registration})
	if err != nil {
		return 0, err
	}
	return result.(int64), nil
}

// UnregisterBroker removes a broker's registration. brokerEpoch must be its
// current epoch, or AnyBrokerEpoch. It fails with ErrUnknownBroker or
// ErrStaleBrokerEpoch.
func (s *Store) UnregisterBroker(ctx context.Context, id int32, brokerEpoch int64) error {
	_, err := s.propose(ctx, &unregisterBrokerCommand{id: id, epoch: brokerEpoch})
	return err
}

// SetBrokerFenced fences or unfences the registration of broker id with
// the given epoch. It fails with ErrUnknownBroker, or ErrStaleBrokerEpoch
// when the broker has registered again since.
func (s *Store) SetBrokerFenced(ctx context.Context, id int32, brokerEpoch int64, fenced bool) error {
	_, err := s.propose(ctx, &setBrokerFencedCommand{id: id, epoch: brokerEpoch, fenced: fenced})
	return err
}

// ChangePartition changes a partition's leader and ISR (Kafka's
// AlterPartition) and returns the partition as committed. It fails with
// ErrUnknownTopic or ErrUnknownPartition, ErrStalePartitionEpoch when the
// partition changed since change.PartitionEpoch, and ErrInvalidPartitions
// when the ISR is not a subset of the replicas or lacks the leader.
func (s *Store) ChangePartition(ctx context.Context, change PartitionChange) (Partition, error) {
	change.ISR = cloneInt32s(change.ISR)
	result, err := s.propose(ctx, &changePartitionCommand{change: change})
	if err != nil {
		return Partition{}, err
	}
	return result.(Partition), nil
}
