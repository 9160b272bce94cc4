package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// RegisterBroker records a broker process's registration and returns its
// broker epoch. A new incarnation (or changed endpoints or rack) creates a
// new, fenced registration; repeating the current one returns the epoch it
// already has. It fails with ErrInvalidBroker for a malformed registration.
func (s *Store) RegisterBroker(ctx context.Context, registration BrokerRegistration) (brokerEpoch int64, err error) {
	if err := validateBrokerRegistration(&registration); err != nil {
		return 0, err
	}
	// Admitted by the leader (proposeLocal, or handleRPC for a forwarded
	// one).
	result, err := s.propose(ctx, &registerBrokerCommand{registration: registration})
	if err != nil {
		return 0, err
	}
	return result.(int64), nil
}

// CheckRegistration asks the quorum's leader whether registration would
// be admitted, without registering: it fails with ErrDuplicateBroker when
// another live process, on another data directory, holds the broker id.
// It works before this node has a leader of its own (it asks the voters
// in turn, which pass the question on to the leader), so a node whose
// Raft never gets going because another process holds its node id can
// say so. Any other failure (no voter reachable, no leader) is returned
// as it is: the answer is unknown.
func (s *Store) CheckRegistration(ctx context.Context, registration BrokerRegistration) error {
	request := append([]byte{rpcCheckRegistration}, encodeCommand(&registerBrokerCommand{registration: registration})...)
	// The members this node knows: its Raft configuration, or the
	// configured voters of a node that has not joined yet.
	members := map[int32]string{}
	if voters, err := s.Voters(); err == nil {
		for _, v := range voters {
			members[v.NodeID] = v.Address
		}
	}
	for id, address := range s.config.Voters {
		if _, known := members[id]; !known {
			members[id] = address
		}
	}
	errs := []error{errors.New("no other member to ask")}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		if id == s.config.NodeID {
			continue
		}
		deadline := time.Now().Add(rpcTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn, err := s.layer.dial(ctx, raft.ServerAddress(members[id]), id, channelRPC, time.Until(deadline))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		response, err := exchange(ctx, conn, request, deadline)
		conn.Close()
		switch {
		case err != nil:
			errs = append(errs, err)
		case response.status == rpcOK:
			return nil
		case response.status == rpcDuplicateBroker:
			return fmt.Errorf("metadata: voter %d: %s: %w", id, response.message, ErrDuplicateBroker)
		default:
			errs = append(errs, fmt.Errorf("voter %d: %s", id, response.message))
		}
	}
	if len(errs) > 1 {
		errs = errs[1:]
	}
	return fmt.Errorf("metadata: check registration of broker %d: %w", registration.ID, errors.Join(errs...))
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
// partition changed since change.PartitionEpoch, ErrInvalidPartitions
// when the ISR is not a subset of the replicas or lacks the leader, and
// ErrIneligibleReplica when change.ISRBrokerEpochs names a registration a
// member no longer has, a fenced broker would join the ISR or become the
// leader, or the leader is fenced and the change keeps it (nothing is
// committed: the proposer decides again on a later state).
func (s *Store) ChangePartition(ctx context.Context, change PartitionChange) (Partition, error) {
	change.ISR = cloneInt32s(change.ISR)
	if len(change.ISRBrokerEpochs) != 0 {
		change.ISRBrokerEpochs = slices.Clone(change.ISRBrokerEpochs)
	}
	result, err := s.propose(ctx, &changePartitionCommand{change: change})
	if err != nil {
		return Partition{}, err
	}
	return result.(Partition), nil
}

// StartSegmentCopy adds a tiered segment to a partition's manifest in state
// SegmentCopyStarted, before its objects are written. segment.LeaderEpoch
// is the uploader's leader epoch and must be the partition's current one
// (ErrFencedLeaderEpoch); segment.State is ignored. It fails with
// ErrInvalidSegment, ErrSegmentExists or ErrSegmentOverlap.
func (s *Store) StartSegmentCopy(ctx context.Context, topicID [16]byte, partition int32, segment SegmentManifest) error {
	segment.State = SegmentCopyStarted
	if err := validateSegment(&segment); err != nil {
		return err
	}
	_, err := s.propose(ctx, &segmentCopyStartedCommand{topicID: topicID, partition: partition, segment: segment})
	return err
}

// ImportSegments adds tiered segments whose objects are already in the
// object store to a partition's manifest, readable (SegmentCopyFinished):
// disaster recovery rebuilds the manifest of a topic re-created with its
// old topic id (CreateTopic with TopicSpec.ID) from the bucket. segments
// must be sorted by base offset, at most MaxImportedSegments of them (a
// longer manifest goes in several calls), and must not overlap each other
// or the partition's entries being copied or readable. Their LeaderEpoch
// is the uploader's in the cluster that wrote them and is kept; their
// State is ignored. When the partition's leader epoch is not above every
// imported epoch, it becomes the highest one plus one and the partition
// epoch increases (leader and ISR stay), so that what is appended after
// the import carries a higher epoch than anything imported. The import is
// atomic: it fails, changing nothing, with ErrUnknownTopic,
// ErrUnknownPartition, ErrInvalidSegment, ErrSegmentExists or
// ErrSegmentOverlap.
func (s *Store) ImportSegments(ctx context.Context, topicID [16]byte, partition int32, segments []SegmentManifest) error {
	if err := validateImportedSegments(segments); err != nil {
		return err
	}
	_, err := s.propose(ctx, &segmentsImportedCommand{topicID: topicID, partition: partition, segments: segments})
	return err
}

// FinishSegmentCopy marks a tiered segment readable (SegmentCopyFinished)
// once all its objects are written.
func (s *Store) FinishSegmentCopy(ctx context.Context, ref SegmentRef) error {
	_, err := s.propose(ctx, &segmentTransitionCommand{typ: commandSegmentCopyFinished, ref: ref})
	return err
}

// StartSegmentDelete marks a tiered segment as being deleted
// (SegmentDeleteStarted): it is no longer served, and its objects may be
// deleted once this returns.
func (s *Store) StartSegmentDelete(ctx context.Context, ref SegmentRef) error {
	_, err := s.propose(ctx, &segmentTransitionCommand{typ: commandSegmentDeleteStarted, ref: ref})
	return err
}

// DeleteSegment drops a tiered segment in state SegmentDeleteStarted from
// the manifest, after its objects are deleted.
func (s *Store) DeleteSegment(ctx context.Context, ref SegmentRef) error {
	_, err := s.propose(ctx, &segmentTransitionCommand{typ: commandSegmentDeleted, ref: ref})
	return err
}
