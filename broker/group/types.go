package group

import (
	"strings"
	"time"
)

// State is the state of a group; see the package documentation for the
// transitions.
type State int8

// Group states, named as Kafka names them in DescribeGroups and ListGroups.
const (
	StateEmpty State = iota
	StatePreparingRebalance
	StateCompletingRebalance
	StateStable
	StateDead
)

var stateNames = [...]string{
	StateEmpty:               "Empty",
	StatePreparingRebalance:  "PreparingRebalance",
	StateCompletingRebalance: "CompletingRebalance",
	StateStable:              "Stable",
	StateDead:                "Dead",
}

// String returns Kafka's name for s ("Stable", "PreparingRebalance", ...).
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "Unknown"
	}
	return stateNames[s]
}

// ParseState returns the state named name, ignoring case as Kafka's
// ListGroups states filter does.
func ParseState(name string) (State, bool) {
	for s, n := range stateNames {
		if strings.EqualFold(n, name) {
			return State(s), true
		}
	}
	return 0, false
}

// Protocol is one entry of a member's protocol list: a name (for consumers,
// an assignor such as "range" or "cooperative-sticky") and metadata that
// only the members interpret (for consumers, the subscription and owned
// partitions).
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup for one group. Strings that Kafka sends as
// null (GroupInstanceID) are empty here.
type JoinRequest struct {
	GroupID string
	// MemberID is empty on a member's first join.
	MemberID string
	// GroupInstanceID makes the member static (group.instance.id, v5+).
	GroupInstanceID string
	ClientID        string
	ClientHost      string
	ProtocolType    string
	// Protocols in the member's order of preference.
	Protocols      []Protocol
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for the member to
	// rejoin in a rebalance. JoinGroup v0 has none: zero or negative means
	// the session timeout, as Kafka uses for v0.
	RebalanceTimeout time.Duration
	// RequireKnownMemberID is set for JoinGroup v4+: a dynamic member
	// joining without a member id is given one with MEMBER_ID_REQUIRED and
	// must join again with it (KIP-394).
	RequireKnownMemberID bool
	// SupportsSkipAssignment is set for JoinGroup v9+ (KIP-814); it only
	// changes the answer to a static leader that rejoins a stable group.
	SupportsSkipAssignment bool
}

// JoinMember is a member as the leader sees it in its JoinGroup response.
type JoinMember struct {
	MemberID        string
	GroupInstanceID string
	// Metadata is the member's metadata for the selected protocol.
	Metadata []byte
}

// JoinResult answers a JoinRequest. Err is nil or a *kerr.Error; on error
// GenerationID is -1 and MemberID is the id the member should use next
// (empty to start over).
type JoinResult struct {
	Err          error
	MemberID     string
	GenerationID int32
	ProtocolType string
	ProtocolName string
	LeaderID     string
	// SkipAssignment tells a static leader that rejoined a stable group to
	// not compute a new assignment (JoinGroup v9, KIP-814); Members is
	// still filled so it can update its view of the group.
	SkipAssignment bool
	// Members is filled for the leader only, in join order.
	Members []JoinMember
}

// MemberAssignment is the leader's assignment for one member.
type MemberAssignment struct {
	MemberID   string
	Assignment []byte
}

// SyncRequest is a SyncGroup. ProtocolType and ProtocolName are checked
// when not empty (v5+ sends them).
type SyncRequest struct {
	GroupID         string
	GenerationID    int32
	MemberID        string
	GroupInstanceID string
	ProtocolType    string
	ProtocolName    string
	// Assignments is sent by the leader only. Members it leaves out get an
	// empty assignment; ids that are not members are ignored.
	Assignments []MemberAssignment
}

// SyncResult answers a SyncRequest. Err is nil or a *kerr.Error.
type SyncResult struct {
	Err          error
	ProtocolType string
	ProtocolName string
	Assignment   []byte
}

// HeartbeatRequest is a Heartbeat.
type HeartbeatRequest struct {
	GroupID         string
	GenerationID    int32
	MemberID        string
	GroupInstanceID string
}

// LeaveMember names one member leaving: by member id, or by instance id
// alone (an administrator removing a static member, LeaveGroup v3+).
type LeaveMember struct {
	MemberID        string
	GroupInstanceID string
}

// LeaveMemberResult is the outcome for one LeaveMember.
type LeaveMemberResult struct {
	MemberID        string
	GroupInstanceID string
	Err             error
}

// LeaveResult answers a batched LeaveGroup. Err is the top-level error;
// when it is nil each member has its own. (LeaveGroup v0–v2 carry one
// member and only a top-level error: the caller uses that member's error.)
type LeaveResult struct {
	Err     error
	Members []LeaveMemberResult
}

// MemberDescription describes a member in DescribeGroups.
type MemberDescription struct {
	MemberID        string
	GroupInstanceID string
	ClientID        string
	ClientHost      string
	// Metadata and Assignment are only filled while the group is Stable,
	// as in Kafka.
	Metadata   []byte
	Assignment []byte
}

// Description describes a group in DescribeGroups.
type Description struct {
	GroupID      string
	State        State
	ProtocolType string
	// Protocol is the selected protocol, only while the group is Stable.
	Protocol string
	Members  []MemberDescription
	// StateTimestamp is when the group entered its current state (offsets
	// of an Empty group expire counting from it).
	StateTimestamp time.Time
	// subscribed is the topics the current generation subscribes to,
	// nil if not known (group.subscribed), for OffsetDelete.
	subscribed map[string]bool
}

// Listing is a group in ListGroups.
type Listing struct {
	GroupID      string
	ProtocolType string
	State        State
}

// OffsetCommitRequest identifies who commits offsets to a group, for
// ValidateOffsetCommit and the writes that check it again
// (Shard.CommitOffsets, CommitTxnOffsets). A client that manages its partitions itself (no
// group membership) sends generation -1 and no member id.
type OffsetCommitRequest struct {
	GroupID         string
	GenerationID    int32
	MemberID        string
	GroupInstanceID string
	// Transactional marks a TxnOffsetCommit (KIP-447): without a member
	// (versions before 3 carry none) it is accepted in any state of the
	// group, and a member's commit is accepted while the group completes
	// a rebalance, as Kafka does.
	Transactional bool
	// TopicIDs holds the id each topic was named by, for an OffsetCommit
	// that names its topics by id (v10+). Shard.CommitOffsets writes
	// their commits only while the id is still the topic's
	// (ShardConfig.TopicID), else refuses them all with
	// *UnknownTopicIDError: the topic was deleted, maybe re-created under
	// its name, since the id was resolved. Commits of other topics get
	// the id their topic has as they are written.
	TopicIDs map[string][16]byte
}

// Record is the group metadata a Store persists, field for field Kafka's
// GroupMetadataValue (the value of a group record in __consumer_offsets).
type Record struct {
	GroupID      string
	ProtocolType string
	GenerationID int32
	// Protocol is the selected protocol; empty for an empty group.
	Protocol string
	LeaderID string
	// StateTimestamp is when the group entered its current state.
	StateTimestamp time.Time
	Members        []RecordMember
}

// RecordMember is one member of a Record.
type RecordMember struct {
	MemberID         string
	GroupInstanceID  string
	ClientID         string
	ClientHost       string
	RebalanceTimeout time.Duration
	SessionTimeout   time.Duration
	// Subscription is the member's metadata for the selected protocol.
	Subscription []byte
	Assignment   []byte
}
