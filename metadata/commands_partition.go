package metadata

import (
	"fmt"
	"math"
	"slices"
)

// NoLeaderChange, as PartitionChange.Leader, keeps the current leader.
const NoLeaderChange int32 = -2

// PartitionChange is a change of a partition's leader and in-sync replicas:
// Kafka's AlterPartition, used by the controller for leader elections and
// by partition leaders to shrink or expand their ISR.
type PartitionChange struct {
	TopicID   [16]byte
	Partition int32
	// PartitionEpoch is the partition epoch the proposer based the change
	// on; the change is rejected (ErrStalePartitionEpoch) unless it is still
	// the current one, so concurrent changes never overwrite each other.
	PartitionEpoch int32
	// Leader is the new leader (one of the new ISR), -1 for none, or
	// NoLeaderChange.
	Leader int32
	// ISR is the new in-sync replica set, replacing the current one: a
	// subset of the replicas without duplicates that holds the leader.
	ISR []int32
	// BumpLeaderEpoch increases the leader epoch although the leader stays
	// (so that followers truncate and re-fetch), and so makes a change
	// whose ISR is the current one no no-op: the partition epoch moves, as
	// a leader needs to fence an earlier ISR change whose outcome it does
	// not know (the broker's lag check). A leader change always increases
	// it.
	BumpLeaderEpoch bool
	// ISRBrokerEpochs, when set, has one entry per ISR member: the broker
	// epoch the proposer knew it by (a leader adding a follower: the
	// epoch the follower's fetches carry, KIP-903), or -1 for "not
	// checked". A member whose entry is not its current registration's
	// epoch makes the change fail with ErrIneligibleReplica, so a replica
	// that caught up as an earlier incarnation never joins an ISR as the
	// later one (which may have lost what the earlier one had).
	ISRBrokerEpochs []int64
}

// changePartitionCommand applies a PartitionChange. Any effective change
// increases the partition epoch; a change to what the partition already is
// (same leader and ISR, no bump) is a no-op. The result is the partition as
// it is afterwards. From version 3 on, a change that adds to the ISR a
// registered broker that is fenced fails with ErrIneligibleReplica
// (KIP-841): a leader whose view of the registrations is behind must not
// put back a broker the controller has fenced (members that stay are not
// checked, so a shrink never fails on one). From version 4 on, a fenced
// broker does not lead either, as in Kafka's KRaft, which fences a broker
// and moves its leaderships in one record: a change that makes a
// registered, fenced broker the leader fails with ErrIneligibleReplica (an
// election decided on a state from before the broker's fencing or new
// registration), and so does an effective change that keeps a registered,
// fenced leader (its own ISR change, proposed before it saw the fence: a
// shrink to itself would leave the controller no live in-sync replica to
// elect). Unregistered brokers are not checked, as for the ISR. Entries of
// earlier versions apply as they did then.
//
// Payload, version 4 (versions 2 and 3 have the same fields; version 1
// ends after the ISR, and has no broker epochs):
//
//	uuid topic id | int32 partition | int32 partition epoch | int32 leader |
//	bool bump leader epoch | int32 list ISR | uvarint count, int64 each:
//	ISR broker epochs (count 0: none)
type changePartitionCommand struct {
	change PartitionChange
	// version is the payload version of a decoded entry written by an
	// earlier build (1 to 3), which applies as it did then; 0 for the
	// current version.
	version uint8
}

// since reports whether the rules of payload version v apply to c: it is
// of version v or later, or of the current version.
func (c *changePartitionCommand) since(v uint8) bool {
	return c.version == 0 || c.version >= v
}

func (c *changePartitionCommand) commandType() commandType { return commandChangePartition }
func (c *changePartitionCommand) encode(e *encoder) {
	e.uuid(c.change.TopicID)
	e.int32(c.change.Partition)
	e.int32(c.change.PartitionEpoch)
	e.int32(c.change.Leader)
	e.bool(c.change.BumpLeaderEpoch)
	e.int32s(c.change.ISR)
	e.uvarint(uint64(len(c.change.ISRBrokerEpochs)))
	for _, epoch := range c.change.ISRBrokerEpochs {
		e.int64(epoch)
	}
}

func decodeChangePartition(version uint8, d *decoder) (command, bool) {
	if version < 1 || version > 4 {
		return nil, false
	}
	c := &changePartitionCommand{change: PartitionChange{
		TopicID:         d.uuid(),
		Partition:       d.int32(),
		PartitionEpoch:  d.int32(),
		Leader:          d.int32(),
		BumpLeaderEpoch: d.bool(),
		ISR:             d.int32s(),
	}}
	if version < 4 {
		c.version = version
	}
	if version >= 2 {
		if n := d.length(8); n > 0 {
			c.change.ISRBrokerEpochs = make([]int64, n)
			for i := range c.change.ISRBrokerEpochs {
				c.change.ISRBrokerEpochs[i] = d.int64()
			}
		}
	}
	return c, true
}

// lookupPartition finds a partition by topic id and index.
func lookupPartition(b *stateBuilder, topicID [16]byte, index int32) (*Topic, error) {
	name, ok := b.topicNameByID(topicID)
	if !ok {
		return nil, fmt.Errorf("topic id %s: %w", formatTopicID(topicID), ErrUnknownTopic)
	}
	topic, _ := b.topic(name)
	if !topic.HasPartition(index) {
		return nil, fmt.Errorf("topic %q has %d partitions, no partition %d: %w", name, len(topic.Partitions), index, ErrUnknownPartition)
	}
	return topic, nil
}

func (c *changePartitionCommand) apply(b *stateBuilder) (any, error) {
	change := &c.change
	topic, err := lookupPartition(b, change.TopicID, change.Partition)
	if err != nil {
		return nil, err
	}
	current := topic.Partitions[change.Partition]
	// where describes the target in error messages; only rejections pay for it.
	where := func() string { return fmt.Sprintf("topic %q partition %d", topic.Name, change.Partition) }
	if change.PartitionEpoch != current.PartitionEpoch {
		return nil, fmt.Errorf("%s has partition epoch %d, the change expects %d: %w", where(), current.PartitionEpoch, change.PartitionEpoch, ErrStalePartitionEpoch)
	}
	leader := change.Leader
	if leader == NoLeaderChange {
		leader = current.Leader
	}
	if leader < -1 {
		return nil, fmt.Errorf("%s: %w: leader %d", where(), ErrInvalidPartitions, change.Leader)
	}
	for i, replica := range change.ISR {
		if !slices.Contains(current.Replicas, replica) {
			return nil, fmt.Errorf("%s: %w: in-sync replica %d is not a replica", where(), ErrInvalidPartitions, replica)
		}
		if slices.Contains(change.ISR[:i], replica) {
			return nil, fmt.Errorf("%s: %w: in-sync replica %d appears twice", where(), ErrInvalidPartitions, replica)
		}
	}
	if leader != -1 && !slices.Contains(change.ISR, leader) {
		return nil, fmt.Errorf("%s: %w: leader %d is not in the ISR %v", where(), ErrInvalidPartitions, leader, change.ISR)
	}
	if len(change.ISRBrokerEpochs) != 0 && len(change.ISRBrokerEpochs) != len(change.ISR) {
		return nil, fmt.Errorf("%s: %w: %d broker epochs for %d in-sync replicas", where(), ErrInvalidPartitions, len(change.ISRBrokerEpochs), len(change.ISR))
	}
	for i, epoch := range change.ISRBrokerEpochs {
		if epoch < 0 {
			continue
		}
		if broker, ok := b.broker(change.ISR[i]); !ok || broker.Epoch != epoch {
			return nil, fmt.Errorf("%s: in-sync replica %d at broker epoch %d is not its current registration: %w", where(), change.ISR[i], epoch, ErrIneligibleReplica)
		}
	}
	if c.since(3) {
		for _, r := range change.ISR {
			if broker, ok := b.broker(r); ok && broker.Fenced && !slices.Contains(current.ISR, r) {
				return nil, fmt.Errorf("%s: broker %d is fenced and cannot join the ISR: %w", where(), r, ErrIneligibleReplica)
			}
		}
	}
	leaderChanged := leader != current.Leader
	if c.since(4) && leaderChanged && leader >= 0 {
		if broker, ok := b.broker(leader); ok && broker.Fenced {
			return nil, fmt.Errorf("%s: broker %d is fenced and cannot lead: %w", where(), leader, ErrIneligibleReplica)
		}
	}
	if !leaderChanged && !change.BumpLeaderEpoch && slices.Equal(change.ISR, current.ISR) {
		return current, nil
	}
	if c.since(4) && !leaderChanged && leader >= 0 {
		// Checked past the no-op: a change to what the partition already
		// is changes nothing a fenced leader could do harm with.
		if broker, ok := b.broker(leader); ok && broker.Fenced {
			return nil, fmt.Errorf("%s: leader %d is fenced and cannot change the ISR or its leader epoch: %w", where(), leader, ErrIneligibleReplica)
		}
	}
	if current.LeaderEpoch == math.MaxInt32 {
		return nil, fmt.Errorf("%s: %w: epochs exhausted", where(), ErrInvalidPartitions)
	}
	next := Partition{
		Index:       current.Index,
		Leader:      leader,
		LeaderEpoch: current.LeaderEpoch,
		ISR:         cloneInt32s(change.ISR),
	}
	if leaderChanged || change.BumpLeaderEpoch {
		next.LeaderEpoch++
	}
	next, err = b.advancePartition(topic, next)
	if err != nil {
		return nil, err
	}
	return next, nil
}

// advancePartition stores next (its leader, leader epoch and ISR) as
// partition next.Index of topic, with the replicas kept and the partition
// epoch increased, and returns it: the one way commands change an existing
// partition (ChangePartition, SegmentsImported). It fails with
// ErrInvalidPartitions when the partition epoch is exhausted. next must not
// share slices a caller will change.
func (b *stateBuilder) advancePartition(topic *Topic, next Partition) (Partition, error) {
	current := topic.Partitions[next.Index]
	if current.PartitionEpoch == math.MaxInt32 {
		return Partition{}, fmt.Errorf("topic %q partition %d: %w: epochs exhausted", topic.Name, next.Index, ErrInvalidPartitions)
	}
	next.Replicas = current.Replicas
	next.AddingReplicas, next.RemovingReplicas = current.AddingReplicas, current.RemovingReplicas
	next.PartitionEpoch = current.PartitionEpoch + 1
	changed := *topic
	changed.Partitions = slices.Clone(topic.Partitions)
	changed.Partitions[next.Index] = next
	// The name and id are unchanged: only the topics tree needs the new
	// value.
	b.topics.Insert([]byte(changed.Name), &changed)
	return next, nil
}
