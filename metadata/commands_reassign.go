package metadata

import (
	"fmt"
	"math"
	"slices"
)

// Partition reassignment (Kafka's KIP-455, as KRaft's controller runs it).
//
// A reassignment of a partition to target replicas T, started while its
// replicas are C, sets:
//
//	Replicas         = T followed by the members of C not in T
//	AddingReplicas   = T − C
//	RemovingReplicas = C − T
//
// The adding replicas are followers from then on: they fetch from the
// leader and join the ISR through the normal path (the leader expands the
// ISR once they caught up). When every member of T is in the ISR the
// controller finishes it: Replicas = T, the ISR loses the removing
// replicas, the leader moves into T if it was being removed, and the
// leader epoch is bumped so the removed replicas are fenced. A cancel
// reverts to the replicas without the adding ones. A new target while
// one is in progress starts from the replicas the partition had before
// it (C = the replicas without the adding ones), as KRaft reverts the
// reassignment in progress first: the same target again (a client's
// retry) changes nothing, and an adding replica the new target drops
// leaves the replicas and the ISR at once (the leader epoch is bumped to
// fence it; if it led, the first in-sync, unfenced replica takes over).
// Version 1 entries, written by earlier builds, started from the current
// (union) replica set, turning the adding replicas into ordinary ones.
// The state is in the quorum, so a new controller or a restarted
// broker continues where the previous one stopped.

// Reassignment kinds in AlterPartitionReassignment's payload. Part of the
// format: do not change.
const (
	reassignStart  uint8 = 1
	reassignCancel uint8 = 2
	reassignFinish uint8 = 3
)

// Reassigning reports whether a reassignment of p is in progress.
func (p Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas returns the replicas p will have once its reassignment
// finishes (its replicas when none is in progress).
func (p Partition) TargetReplicas() []int32 {
	if len(p.RemovingReplicas) == 0 {
		return p.Replicas
	}
	target := make([]int32, 0, len(p.Replicas))
	for _, r := range p.Replicas {
		if !slices.Contains(p.RemovingReplicas, r) {
			target = append(target, r)
		}
	}
	return target
}

// ReassignmentComplete reports whether every target replica of p is in
// its ISR, so the controller may finish the reassignment.
func (p Partition) ReassignmentComplete() bool {
	if !p.Reassigning() {
		return false
	}
	for _, r := range p.TargetReplicas() {
		if !slices.Contains(p.ISR, r) {
			return false
		}
	}
	return true
}

// alterPartitionReassignmentCommand starts, cancels or finishes the
// reassignment of one partition. Start and cancel are proposed by the
// broker serving AlterPartitionReassignments and apply to the partition
// as it is when applied (partition epoch -1); finish is proposed by the
// controller and checks the partition epoch it was based on. From version
// 3 on, a finish also checks the brokers as they are when applied: the
// leader it names must be eligible (registered, unfenced, in the ISR) and
// no target replica may be registered and fenced, or it fails with
// ErrIneligibleReplica. The controller decides on a state read before its
// pass, and fencing a broker touches no partition, so the partition epoch
// does not tell of a fence applied in between: the finish made the fenced
// broker the leader, or dropped the live replicas being removed for a
// fenced target replica. Refused, it is decided again on the next pass.
// Entries of earlier versions apply as they did then.
//
// Payload, version 3 (versions 1 and 2 have the same fields; a version 1
// start applies against the current replica set, see above):
//
//	uint8 kind (1 start, 2 cancel, 3 finish) | uuid topic id |
//	int32 partition | int32 partition epoch (-1: not checked) |
//	int32 list target replicas (start) | int32 leader (finish)
type alterPartitionReassignmentCommand struct {
	kind           uint8
	topicID        [16]byte
	partition      int32
	partitionEpoch int32
	target         []int32
	leader         int32
	// version is the payload version of a decoded entry written by an
	// earlier build (1 or 2), which applies as it did then; 0 for the
	// current version.
	version uint8
}

// since reports whether the rules of payload version v apply to c: it is
// of version v or later, or of the current version.
func (c *alterPartitionReassignmentCommand) since(v uint8) bool {
	return c.version == 0 || c.version >= v
}

func (c *alterPartitionReassignmentCommand) commandType() commandType {
	return commandAlterPartitionReassignment
}

func (c *alterPartitionReassignmentCommand) encode(e *encoder) {
	e.uint8(c.kind)
	e.uuid(c.topicID)
	e.int32(c.partition)
	e.int32(c.partitionEpoch)
	e.int32s(c.target)
	e.int32(c.leader)
}

func decodeAlterPartitionReassignment(version uint8, d *decoder) (command, bool) {
	if version < 1 || version > 3 {
		return nil, false
	}
	c := &alterPartitionReassignmentCommand{
		kind:           d.uint8(),
		topicID:        d.uuid(),
		partition:      d.int32(),
		partitionEpoch: d.int32(),
		target:         d.int32s(),
		leader:         d.int32(),
	}
	if version < 3 {
		c.version = version
	}
	return c, true
}

func (c *alterPartitionReassignmentCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupPartition(b, c.topicID, c.partition)
	if err != nil {
		return nil, err
	}
	current := topic.Partitions[c.partition]
	where := func() string { return fmt.Sprintf("topic %q partition %d", topic.Name, c.partition) }
	if c.partitionEpoch != -1 && c.partitionEpoch != current.PartitionEpoch {
		return nil, fmt.Errorf("%s has partition epoch %d, the change expects %d: %w", where(), current.PartitionEpoch, c.partitionEpoch, ErrStalePartitionEpoch)
	}
	if current.PartitionEpoch == math.MaxInt32 || current.LeaderEpoch == math.MaxInt32 {
		return nil, fmt.Errorf("%s: %w: epochs exhausted", where(), ErrInvalidPartitions)
	}
	var next Partition
	switch c.kind {
	case reassignStart:
		if !c.since(2) {
			next, err = startReassignment(b, current, c.target)
			break
		}
		var changed bool
		next, changed, err = restartReassignment(b, current, c.target)
		if err == nil && !changed {
			return current, nil // the reassignment in progress already
		}
	case reassignCancel:
		next, err = cancelReassignment(b, current)
	case reassignFinish:
		next, err = finishReassignment(current, c.leader)
		if err == nil && c.since(3) {
			err = finishBrokersAvailable(b, current, c.leader)
		}
	default:
		err = fmt.Errorf("%w: unknown reassignment kind %d", ErrInvalidReplicaAssignment, c.kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where(), err)
	}
	next.Index = current.Index
	next.PartitionEpoch = current.PartitionEpoch + 1
	changed := *topic
	changed.Partitions = slices.Clone(topic.Partitions)
	changed.Partitions[next.Index] = next
	b.topics.Insert([]byte(changed.Name), &changed)
	return next, nil
}

// startReassignment validates target (registered brokers, no duplicates)
// and returns current moving to it.
func startReassignment(b *stateBuilder, current Partition, target []int32) (Partition, error) {
	if len(target) == 0 {
		return Partition{}, fmt.Errorf("%w: no target replicas", ErrInvalidReplicaAssignment)
	}
	for i, r := range target {
		if r < 0 {
			return Partition{}, fmt.Errorf("%w: negative replica id %d", ErrInvalidReplicaAssignment, r)
		}
		if slices.Contains(target[:i], r) {
			return Partition{}, fmt.Errorf("%w: replica %d appears twice", ErrInvalidReplicaAssignment, r)
		}
		if _, ok := b.broker(r); !ok {
			return Partition{}, fmt.Errorf("%w: replica %d is not a registered broker", ErrInvalidReplicaAssignment, r)
		}
	}
	next := current
	var adding, removing []int32
	merged := slices.Clone(target)
	for _, r := range target {
		if !slices.Contains(current.Replicas, r) {
			adding = append(adding, r)
		}
	}
	for _, r := range current.Replicas {
		if !slices.Contains(target, r) {
			removing = append(removing, r)
			merged = append(merged, r)
		}
	}
	next.Replicas, next.AddingReplicas, next.RemovingReplicas = merged, adding, removing
	next.ISR = cloneInt32s(current.ISR)
	return next, nil
}

// restartReassignment is startReassignment from the replicas current had
// before the reassignment in progress, if any (KRaft's revert, then the
// new target): the adding replicas the target keeps stay adding, those
// it drops leave the replicas and the ISR (the leader epoch is bumped to
// fence them; if one led, the first in-sync, unfenced replica takes over,
// none: the controller elects), and changed is false when the result is
// the reassignment in progress (the same target again). A target that
// would leave no in-sync replica is refused, as a cancel is.
func restartReassignment(b *stateBuilder, current Partition, target []int32) (next Partition, changed bool, err error) {
	if !current.Reassigning() {
		next, err = startReassignment(b, current, target)
		return next, err == nil, err
	}
	original := current
	original.Replicas = nil
	for _, r := range current.Replicas {
		if !slices.Contains(current.AddingReplicas, r) {
			original.Replicas = append(original.Replicas, r)
		}
	}
	next, err = startReassignment(b, original, target)
	if err != nil {
		return Partition{}, false, err
	}
	if slices.Equal(next.Replicas, current.Replicas) && slices.Equal(next.AddingReplicas, current.AddingReplicas) &&
		slices.Equal(next.RemovingReplicas, current.RemovingReplicas) {
		return current, false, nil
	}
	dropped := func(r int32) bool { return !slices.Contains(next.Replicas, r) }
	next.ISR = slices.DeleteFunc(cloneInt32s(current.ISR), dropped)
	if len(next.ISR) == 0 {
		return Partition{}, false, fmt.Errorf("%w: only replicas the new target drops (%v) are in sync: let the reassignment in progress finish", ErrInvalidReplicaAssignment, current.ISR)
	}
	if next.Leader >= 0 && dropped(next.Leader) {
		next.Leader = firstEligibleLeader(b, next)
	}
	if slices.ContainsFunc(current.Replicas, dropped) || next.Leader != current.Leader {
		next.LeaderEpoch++
	}
	return next, true, nil
}

// eligibleLeader reports whether replica r may lead p as the state
// machine sees it: it is in p's ISR, on a registered, unfenced broker.
func eligibleLeader(b *stateBuilder, p Partition, r int32) bool {
	broker, ok := b.broker(r)
	return ok && !broker.Fenced && slices.Contains(p.ISR, r)
}

// firstEligibleLeader is the leader of p once its leader left it: the
// first of its replicas that is an eligibleLeader; -1 for none (the
// controller elects once one is).
func firstEligibleLeader(b *stateBuilder, p Partition) int32 {
	for _, r := range p.Replicas {
		if eligibleLeader(b, p, r) {
			return r
		}
	}
	return -1
}

// cancelReassignment reverts current to its replicas without the adding
// ones (Kafka's revert). The adding replicas leave the ISR; if one of them
// led, the first in-sync, unfenced replica left takes over (none: the
// partition waits for the controller's election). Replicas leave, so the
// leader epoch is bumped to fence them. A cancel that would leave no
// in-sync replica (only adding replicas are in sync) is refused.
func cancelReassignment(b *stateBuilder, current Partition) (Partition, error) {
	if !current.Reassigning() {
		return Partition{}, ErrNoReassignmentInProgress
	}
	keep := func(r int32) bool { return !slices.Contains(current.AddingReplicas, r) }
	next := Partition{Leader: current.Leader, LeaderEpoch: current.LeaderEpoch}
	for _, r := range current.Replicas {
		if keep(r) {
			next.Replicas = append(next.Replicas, r)
		}
	}
	for _, r := range current.ISR {
		if keep(r) {
			next.ISR = append(next.ISR, r)
		}
	}
	if len(next.ISR) == 0 {
		// Only adding replicas are in sync: reverting would drop every
		// copy of what is committed.
		return Partition{}, fmt.Errorf("%w: only the replicas being added (%v) are in sync; cancelling would leave no in-sync replica: let the reassignment finish", ErrInvalidReplicaAssignment, current.ISR)
	}
	if next.Leader >= 0 && !keep(next.Leader) {
		next.Leader = firstEligibleLeader(b, next)
	}
	if len(current.AddingReplicas) > 0 || next.Leader != current.Leader {
		next.LeaderEpoch++
	}
	return next, nil
}

// finishReassignment completes current once every target replica is in
// the ISR, with leader (a target replica, chosen by the controller among
// the live ones) leading.
func finishReassignment(current Partition, leader int32) (Partition, error) {
	if !current.Reassigning() {
		return Partition{}, ErrNoReassignmentInProgress
	}
	if !current.ReassignmentComplete() {
		return Partition{}, fmt.Errorf("%w: target replicas %v are not all in the ISR %v", ErrInvalidReplicaAssignment, current.TargetReplicas(), current.ISR)
	}
	target := cloneInt32s(current.TargetReplicas())
	if !slices.Contains(target, leader) {
		return Partition{}, fmt.Errorf("%w: leader %d is not a target replica %v", ErrInvalidReplicaAssignment, leader, target)
	}
	next := Partition{Replicas: target, Leader: leader, LeaderEpoch: current.LeaderEpoch}
	for _, r := range current.ISR {
		if slices.Contains(target, r) {
			next.ISR = append(next.ISR, r)
		}
	}
	if len(current.RemovingReplicas) > 0 || leader != current.Leader {
		next.LeaderEpoch++
	}
	return next, nil
}

// finishBrokersAvailable checks, for a finish of current with leader
// leading (version 3 on), what the controller checked on the state it
// read: leader is an eligibleLeader of current, and no target replica is
// registered and fenced. A broker fenced since fails it with
// ErrIneligibleReplica.
func finishBrokersAvailable(b *stateBuilder, current Partition, leader int32) error {
	if !eligibleLeader(b, current, leader) {
		return fmt.Errorf("leader %d is not a registered, unfenced, in-sync replica: %w", leader, ErrIneligibleReplica)
	}
	for _, r := range current.TargetReplicas() {
		if broker, ok := b.broker(r); ok && broker.Fenced {
			return fmt.Errorf("target replica %d is fenced: %w", r, ErrIneligibleReplica)
		}
	}
	return nil
}

// Reassignment is a partition reassignment in progress, as
// ListPartitionReassignments reports it.
type Reassignment struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
	// Replicas is the current replica set (target first, then the
	// replicas being removed).
	Replicas, AddingReplicas, RemovingReplicas []int32
}

// Reassignments returns the reassignments in progress in topic and
// partition order.
func (s *State) Reassignments() []Reassignment {
	var out []Reassignment
	s.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			if p.Reassigning() {
				out = append(out, Reassignment{Topic: t.Name, TopicID: t.ID, Partition: p.Index,
					Replicas: p.Replicas, AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas})
			}
		}
		return true
	})
	return out
}

// encodeReassignmentRecord writes the reassignment state of one partition
// as snapshot record recordExtension, kind extensionReassignment:
//
//	uint8 kind (1) | uuid topic id | int32 partition |
//	int32 list adding replicas | int32 list removing replicas
//
// The partition's replicas (with both) are in its topic record, which
// precedes it.
func encodeReassignmentRecord(e *encoder, topicID [16]byte, p Partition) {
	e.uint8(extensionReassignment)
	e.uuid(topicID)
	e.int32(p.Index)
	e.int32s(p.AddingReplicas)
	e.int32s(p.RemovingReplicas)
}
