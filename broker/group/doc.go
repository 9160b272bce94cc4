// Package group is the group coordinator's membership state machine: the
// classic rebalance protocol of Kafka's JoinGroup, SyncGroup, Heartbeat and
// LeaveGroup (plus what DescribeGroups, ListGroups, DeleteGroups and
// OffsetCommit need from it), as Kafka's GroupCoordinator runs it. It
// knows nothing of the wire or the log: the broker decodes requests into
// the types here, and a Store persists group metadata to
// __consumer_offsets. Any protocol type works (consumer, connect, custom);
// protocol metadata and assignments are opaque bytes, which is all that
// eager and cooperative (KIP-429) clients need from the coordinator.
//
// A Coordinator holds the groups of one __consumer_offsets partition
// (coordinator.Partition maps a group id to its partition, as Kafka
// does). A Shard pairs it with that partition's committed offsets and persists both to
// the partition through a small Log interface, in Kafka's own record
// schemas (OffsetsTopic): it replays the log when loaded, writes commits,
// deletions and group metadata with acks=all before answering, and expires
// offsets as Kafka's KIP-211 does. Transactional offset commits
// (TxnOffsetCommit, KIP-447) stay pending per producer until the
// transaction's marker commits or aborts them (txn.go). The Manager holds
// the shards of the partitions this broker leads (Lead when a leadership
// term starts, Resign when it ends), loads each in a goroutine it owns,
// finds a group's shard (ShardFor, CoordinatorOf), runs offset expiry and
// hands transaction markers to their shard (CompleteTransaction); it holds
// them in a broker/coordinator Set and each shard's life (loading,
// serving, closed) is a coordinator.Lifecycle, as in the transaction
// coordinator. The
// broker gives it the offsets topic (Topic) and each partition's log.
//
// # States
//
//	                   member joins (after group.initial.rebalance.delay.ms)
//	       +-------+ -------------------------------------+
//	       | Empty |                                      v
//	       +-------+ <-- join phase ends     +--------------------+
//	         |   ^       with no members --- | PreparingRebalance | <-------+
//	Delete   |   |                           +--------------------+         |
//	         v   |                                      | join phase ends:  |
//	       +------+                                     | every member      |
//	       | Dead |  (also: Close)                      | rejoined, or the  | member joins or
//	       +------+                                     | rebalance timeout | leaves, changes
//	                                                    v                   | its metadata,
//	                                      +---------------------+           | expires, or the
//	                                      | CompletingRebalance | ----------+ leader rejoins;
//	                                      +---------------------+           | the assignment
//	                                                    | leader's SyncGroup| cannot be stored;
//	                                                    | stored            | a member does not
//	                                                    v                   | sync in time
//	                                             +--------+                 |
//	                                             | Stable | ----------------+
//	                                             +--------+
//
// Each join phase ends with a new generation: dynamic members that did not
// rejoin are dropped (static ones stay until their session expires), the
// leader is kept if it rejoined (else the first member that did; the first
// member of an empty group leads), and a protocol is selected: every member
// votes for its most preferred protocol that all members support, the most
// votes win, and ties go to the leader's preference. Every waiting
// JoinGroup is then answered, the leader's with all members' metadata for
// that protocol. The leader's SyncGroup carries the assignment; once the
// Store has it, every waiting SyncGroup gets its member's part (members
// the leader left out get an empty one) and the group is Stable. Members
// that do not send SyncGroup within the rebalance timeout are removed.
//
// # Timeouts
//
//   - Session timeout (bounded by Config.MinSessionTimeout and
//     MaxSessionTimeout, else INVALID_SESSION_TIMEOUT): restarted by every
//     Heartbeat, SyncGroup answer, join answer and offset commit; a member
//     that lets it pass is removed. A member waiting in a rebalance (its
//     JoinGroup or SyncGroup pending) does not expire; its timeout restarts
//     when it is answered.
//   - Rebalance timeout: the longest of the members' bounds the join phase
//     and the wait for SyncGroups.
//   - Initial rebalance delay: the first join phase of an Empty group waits
//     Config.InitialRebalanceDelay, again as long as members keep arriving,
//     up to the rebalance timeout, so that a starting fleet of consumers
//     lands in one generation instead of one rebalance each.
//   - New member join timeout: a member whose first JoinGroup is still
//     waiting after Config.NewMemberJoinTimeout is removed (its client gave
//     up or retried under another id).
//   - Pending member ids (KIP-394, JoinGroup v4+): a dynamic member joining
//     without an id gets one with MEMBER_ID_REQUIRED and is expected back
//     with it within its session timeout. Until it comes back it is no
//     member, but a join phase waits for it (or its expiry).
//
// # Group size (group.max.size)
//
// A group takes at most Config.MaxSize members (default unlimited). A
// member joining a group that has that many (members still to rejoin a
// rebalance included) is answered GROUP_MAX_SIZE_REACHED, without a
// member id and without a rebalance, both when it asks for a KIP-394
// member id and when it comes back with one. Members rejoin whatever the
// size, and a static member replacing its instance's previous member is
// not new. A group restored with more members than MaxSize (the limit
// was lowered) rebalances at once, as Kafka's onGroupLoaded does: once
// MaxSize members have rejoined, each further member that rejoins is
// removed with GROUP_MAX_SIZE_REACHED, and the dynamic members that do
// not rejoin are dropped as always.
//
// # Static membership (KIP-345)
//
// A member with a group instance id that joins without a member id while
// that instance id is taken replaces the old member: the old member id is
// fenced (FENCED_INSTANCE_ID on anything it sends, including its waiting
// requests), the new one inherits its assignment, and a Stable group stays
// Stable with the same generation when the selected protocol would not
// change (otherwise, and during CompletingRebalance, the group
// rebalances). JoinGroup v9+ tells a static leader to skip the assignment;
// older versions are told the previous leader id so they do not run it.
// If the Store fails the replacement is undone.
//
// # Errors
//
// Results carry Kafka error codes as *kerr.Error values (never a panic for
// bad input): INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT,
// INCONSISTENT_GROUP_PROTOCOL (protocol type or no common protocol; empty
// type or list for a new group), MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,
// ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID,
// GROUP_MAX_SIZE_REACHED, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP,
// COORDINATOR_NOT_AVAILABLE (a group deleted under a request, a Store
// failure), NOT_COORDINATOR (after Close). Version differences (LeaveGroup v0–v2 carrying one member's error
// at the top level, DescribeGroups before v6 answering an unknown group
// without error) are the caller's.
//
// # Concurrency
//
// A Coordinator is safe for concurrent use. Its mutex guards the set of
// groups; each group has its own mutex guarding all of its state, so
// groups never wait for each other. The coordinator's mutex may be held
// while a group's is taken, never the other way round. Requests on one
// group are serialised by its mutex; timers (Config.Clock) and Store
// completions take the same mutex and check that what they were armed for
// is still current, so a late one does nothing. Store.DeleteGroupData
// (Delete) is the exception: it is made with the group's mutex held, so
// that no join of the group comes between its deletion and its
// tombstones. A Shard's offset commit writes are serialized with it, and
// with offset expiry's and OffsetDelete's decisions about the group
// (each decided and written in one step, from the group's state then),
// by a second, per-group writeMu (taken before the mutex), not by the
// mutex: a commit awaits its replicas, and the group's heartbeats must
// not. A commit is checked (its member, its generation) under writeMu as
// it is written, so one checked against a generation the group has since
// left is refused, never written over the new generation's commits.
//
// Join and Sync answer through a callback, which is called exactly once per
// request, never with a lock held: from the call itself, from another
// request's call (the JoinGroup that completes a join phase answers
// everybody's), from a timer's goroutine, from a Store completion, or from
// Close. A callback may call back into the Coordinator, but it should not
// block: it delays the other answers made with it. A request replaced by a
// retry of the same member is answered REBALANCE_IN_PROGRESS. Byte slices
// given to the Coordinator are copied; byte slices in results are shared
// and must not be modified.
package group
