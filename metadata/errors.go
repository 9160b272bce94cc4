package metadata

import "errors"

// Sentinel errors. Callers classify failures with errors.Is; the messages are
// for people and may change.
var (
	// ErrNotFormatted means the data directory has no meta.properties: it has
	// never been prepared with Format.
	ErrNotFormatted = errors.New("metadata: data directory is not formatted")
	// ErrAlreadyFormatted means Format was asked to prepare a directory that
	// already holds meta.properties.
	ErrAlreadyFormatted = errors.New("metadata: data directory is already formatted")
	// ErrNodeIDMismatch means the node id a Store was opened with differs
	// from the one recorded in meta.properties.
	ErrNodeIDMismatch = errors.New("metadata: node id does not match the data directory")
	// ErrClusterIDMismatch means the replicated state belongs to another
	// cluster than the one recorded in meta.properties.
	ErrClusterIDMismatch = errors.New("metadata: cluster id does not match")
	// ErrDataDirLocked means another Store (in this or another process) has
	// the data directory open.
	ErrDataDirLocked = errors.New("metadata: data directory is in use")
	// ErrCorrupt marks a file or stream that does not decode: a bad magic, a
	// checksum mismatch, a truncated record. Test with IsCorrupt.
	ErrCorrupt = errors.New("metadata: corrupt data")

	// ErrNotLeader means a command was proposed on a node that is not the
	// Raft leader; the caller should retry against the leader (Kafka's
	// NOT_CONTROLLER).
	ErrNotLeader = errors.New("metadata: not the leader")
	// ErrClosed means the Store has been closed.
	ErrClosed = errors.New("metadata: store is closed")

	// ErrTopicExists rejects CreateTopic for a name that is taken.
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrTopicIDExists rejects CreateTopic with a topic id that is taken.
	ErrTopicIDExists = errors.New("metadata: topic id already exists")
	// ErrUnknownTopic rejects a command naming a topic that does not exist
	// (or, when an id is given, whose id differs).
	ErrUnknownTopic = errors.New("metadata: unknown topic")
	// ErrInvalidTopic rejects a malformed topic: an empty or illegal name, a
	// zero topic id.
	ErrInvalidTopic = errors.New("metadata: invalid topic")
	// ErrInvalidPartitions rejects malformed partitions or replica
	// assignments (also a new partition with a replica that is not a
	// registered broker), and a partition count that does not increase.
	ErrInvalidPartitions = errors.New("metadata: invalid partitions")
	// ErrInvalidTopicConfig means a command carries topic configs that
	// are not config names and short values.
	ErrInvalidTopicConfig = errors.New("metadata: invalid topic configs")
	// ErrStaleTopicConfigs rejects a change of a topic's configs computed
	// from a set that is no longer the topic's: another change came
	// first (Kafka's controller applies each change to the current set;
	// here the proposer computes again from the new one).
	ErrStaleTopicConfigs = errors.New("metadata: topic configs changed since they were read")
	// ErrStaleBrokerConfigs rejects a change of a broker's dynamic
	// configs computed from a set that is no longer the broker's.
	ErrStaleBrokerConfigs = errors.New("metadata: broker configs changed since they were read")
	// ErrUnknownPartition rejects a command naming a partition index the
	// topic does not have (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
	ErrUnknownPartition = errors.New("metadata: unknown partition")
	// ErrStalePartitionEpoch rejects a ChangePartition based on a partition
	// epoch that is no longer the current one: the partition changed since
	// the proposer read it (Kafka's INVALID_UPDATE_VERSION).
	ErrStalePartitionEpoch = errors.New("metadata: stale partition epoch")
	// ErrIneligibleReplica rejects a ChangePartition that names an ISR
	// member at a broker epoch that is not its current registration's
	// (Kafka's INELIGIBLE_REPLICA, KIP-903), that adds a fenced broker to
	// the ISR (KIP-841), or that makes a fenced broker the leader or keeps
	// one (a fenced broker does not lead), and a reassignment's finish
	// whose leader is not a registered, unfenced, in-sync replica or
	// whose target replicas include a fenced broker.
	ErrIneligibleReplica = errors.New("metadata: ineligible replica")
	// ErrInvalidReplicaAssignment rejects a reassignment target that is
	// empty, repeats a broker or names an unregistered one, and a finish
	// before the target replicas are in sync (Kafka's
	// INVALID_REPLICA_ASSIGNMENT).
	ErrInvalidReplicaAssignment = errors.New("metadata: invalid replica assignment")
	// ErrNoReassignmentInProgress rejects cancelling a partition's
	// reassignment when none is in progress (Kafka's
	// NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignmentInProgress = errors.New("metadata: no reassignment in progress")
	// ErrFencedLeaderEpoch rejects a tiered-segment command whose leader
	// epoch is not the partition's current one: the proposer is no longer
	// (or not) the leader (Kafka's FENCED_LEADER_EPOCH).
	ErrFencedLeaderEpoch = errors.New("metadata: fenced leader epoch")
	// ErrInvalidSegment rejects a malformed tiered-segment manifest entry:
	// a zero segment id, bad offsets, size or epoch ranges.
	ErrInvalidSegment = errors.New("metadata: invalid tiered segment")
	// ErrSegmentExists rejects SegmentCopyStarted or SegmentsImported at a
	// base offset the partition's manifest already has an entry for (or
	// that an import names twice).
	ErrSegmentExists = errors.New("metadata: tiered segment already exists")
	// ErrSegmentOverlap rejects SegmentCopyStarted or SegmentsImported for
	// offsets that overlap a segment being copied or readable (or another
	// segment of the same import).
	ErrSegmentOverlap = errors.New("metadata: tiered segment overlaps another")
	// ErrUnknownSegment rejects a command naming a manifest entry that does
	// not exist (no entry at the base offset, or one of another segment id).
	ErrUnknownSegment = errors.New("metadata: unknown tiered segment")
	// ErrInvalidSegmentTransition rejects a tiered-segment command that
	// would not move the entry forward (CopyStarted -> CopyFinished ->
	// DeleteStarted -> deleted, or CopyStarted -> DeleteStarted).
	ErrInvalidSegmentTransition = errors.New("metadata: invalid tiered segment state transition")
	// ErrInvalidProducerIDs rejects a producer-id block request with a bad
	// size, or one that would run past the largest producer id.
	ErrInvalidProducerIDs = errors.New("metadata: invalid producer id allocation")
	// ErrInvalidClusterID rejects an empty or malformed cluster id.
	ErrInvalidClusterID = errors.New("metadata: invalid cluster id")
	// ErrInvalidACL: an ACL binding or filter that Kafka's rules refuse
	// (authz.Binding.Validate, authz.Filter.Validate), or too many.
	ErrInvalidACL = errors.New("metadata: invalid ACL")
	// ErrInvalidLogStartOffset rejects a negative log start offset.
	ErrInvalidLogStartOffset = errors.New("metadata: invalid log start offset")

	// ErrInvalidBroker rejects a malformed broker registration: a negative
	// id, a zero incarnation id, missing or duplicate endpoints.
	ErrInvalidBroker = errors.New("metadata: invalid broker registration")
	// ErrUnknownBroker rejects a command naming a broker id that is not
	// registered.
	ErrUnknownBroker = errors.New("metadata: unknown broker")
	// ErrStaleBrokerEpoch rejects a command aimed at a registration the
	// broker no longer has (its broker epoch is not the current one).
	ErrStaleBrokerEpoch = errors.New("metadata: stale broker epoch")
	// ErrDuplicateBroker: another live process is registered with the
	// broker id (its session with the controller has not ended).
	ErrDuplicateBroker = errors.New("metadata: duplicate broker registration")

	// ErrHandshakeRefused means the peer at the other end of a controller
	// connection refused the handshake (another cluster, an unexpected node
	// id, an unknown protocol version) or is not a Strata controller.
	ErrHandshakeRefused = errors.New("metadata: controller handshake refused")
)

// IsCorrupt reports whether err stems from data that failed to decode
// (meta.properties, a snapshot, a command, a handshake).
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }
