// Package metadata holds the cluster's truth — cluster id, registered
// brokers, topics with their ids, configs and partition assignments
// (leader, epochs, ISR), producer-id blocks, tiered-segment manifests — in
// a Raft state machine (hashicorp/raft). A single node runs it with one
// voter; a cluster runs it with three or five. There is no other metadata
// path.
//
// # Architecture
//
// A Store is one node's Raft replica. Format prepares a data directory and
// bootstraps Raft exactly once; Open starts Raft on a formatted directory:
//
//	<data-dir>/meta.properties           node identity (format below)
//	<data-dir>/metadata/.lock            flock held while a Store has the directory open
//	<data-dir>/metadata/raft/raft.db     hashicorp/raft-boltdb: the Raft log and stable store
//	                                     (raft-wal files of earlier versions are migrated at open)
//	<data-dir>/metadata/snapshots/       raft.FileSnapshotStore: state snapshots (format below)
//
// Everything here survives a power loss once the call that wrote it
// returns: Format fsyncs every directory it created (children first, the
// data dir's parent last) before it writes meta.properties, the identity,
// last; bbolt fsyncs each Raft log commit, and metadata/raft is fsynced
// when raft.db is created (at Format, or at a non-voter's first start, as
// metadata/ is for its snapshots directory); a snapshot's directory and
// the snapshots directory are fsynced before raft may trim its log
// (durableSnapshotStore: raft's own store does not fsync the former).
//
// Raft talks over a stream layer of our own on the controller address: TCP,
// with hostnames allowed in advertised addresses, where every connection
// starts with a handshake (format below) so that a node of another cluster,
// or a node that is not the one the dialer expected, is refused before any
// Raft message. Raft server ids are decimal node ids.
//
// The state is a State value: immutable, built from persistent radix trees
// (hashicorp/go-immutable-radix) keyed by topic name, topic id, broker id,
// and (topic id, partition) for the tiered-segment manifests. A
// partition's manifest is a list of immutable chunks of up to 64 entries
// each, so a change copies one chunk and the list of chunk headers rather
// than the whole manifest, and an entry costs about its own size (a radix
// node per entry would cost several times more). Applying a command
// creates a new State that shares every untouched node with the previous
// one, so a reader holding a State never sees it change, FSM.Snapshot is
// O(1), and Persist streams a captured State record by record while Apply
// goes on.
//
// # Threading contract
//
// Raft calls Apply/ApplyBatch, Snapshot and Restore one at a time on its FSM
// goroutine; Persist runs on another goroutine concurrently with Apply.
// Readers on any goroutine load the current State through an atomic pointer
// (Store.State, Store.Watch); Store.Changed's channel is closed whenever a
// newer State is published. Commands are proposed only on the leader
// (ErrNotLeader elsewhere) and the proposer gets the state machine's result.
//
// # Commands
//
// Apply is deterministic: no clocks, randomness or I/O (times such as
// CreatedAtUnixMilli travel in the command). A command the state rejects
// (ErrTopicExists, ErrUnknownTopic, ErrInvalidPartitions, …) is a result: the
// state is unchanged and the proposer gets the error. Data that does not
// decode stops the node rather than let it diverge from the others (below).
// Every command is registered in one table (commandTable) with the
// payload version this build writes. A Raft log entry (raft.LogCommand) is:
//
//	+--------+---------+------------------------------+
//	| type   | version | payload (version-specific)   |
//	| 1 byte | 1 byte  | rest of the entry            |
//	+--------+---------+------------------------------+
//	type:    bit 7 = ignore-unknown; bits 0-6 = command type
//	version: 1..255, the payload encoding
//
// A node that does not know the type or the version of an entry skips it if
// the ignore-unknown bit is set, and otherwise stops: the state machine
// halts at the state before the entry, applies and snapshots nothing more,
// and the node exits (code 3) with an UnappliableEntryError naming the
// entry's index, type and version; it stops there again after every restart
// until it is upgraded, or wiped and rejoined from the quorum. A leader
// refuses to append a proposal that does not decode, so only a newer
// build's command or corruption gets there. Command types (part of the format):
//
//	1 InitCluster          v1: cluster id string
//	2 CreateTopic          v1: topic (below)
//	3 DeleteTopic          v1: name string, topic id uuid (zero = any id)
//	4 AlterTopicConfigs    v2: name string, topic id uuid (zero = any id),
//	                           configs map (full replacement), checked bool,
//	                           from map (checked: refused with
//	                           ErrStaleTopicConfigs unless the current set)
//	                       v1 (read): up to the configs, unchecked
//	5 CreatePartitions     v1: name string, topic id uuid (zero = any id),
//	                           new total int32, new partitions list
//	6 AllocateProducerIDs  v1: broker id int32, block size int64
//	7 ReserveProducerIDs   v1: below int64 (the next producer id becomes
//	                           at least below; negative is refused)
//	16 RegisterBroker      v3: broker id int32, incarnation id uuid,
//	                           endpoints list, rack string ("" = none),
//	                           directory id uuid (zero = unknown),
//	                           clean shutdown bool
//	                       v2 (read, applied as before): the same fields;
//	                           a clean shutdown of any directory kept ISRs
//	                       v1 (read, applied as before): up to rack
//	17 UnregisterBroker    v1: broker id int32, broker epoch int64 (-1 = any)
//	18 SetBrokerFenced     v1: broker id int32, broker epoch int64, fenced bool
//	19 ChangePartition     v4: topic id uuid, partition int32,
//	                           expected partition epoch int32,
//	                           leader int32 (-1 = none, -2 = unchanged),
//	                           bump leader epoch bool, ISR int32 list,
//	                           ISR broker epochs int64 list (empty = none;
//	                           else one per ISR member, -1 = not checked)
//	                       v3 (read, applied as before): the same fields;
//	                           fenced brokers could lead
//	                       v2 (read, applied as before): the same fields;
//	                           fenced brokers could also join the ISR
//	                       v1 (read): up to the ISR, no broker epochs
//	20 AlterPartitionReassignment v3: kind uint8 (1 start, 2 cancel,
//	                           3 finish), topic id uuid, partition int32,
//	                           expected partition epoch int32 (-1 = not
//	                           checked), target replicas int32 list (start),
//	                           leader int32 (finish); a finish is refused
//	                           (ErrIneligibleReplica) unless the leader is
//	                           registered, unfenced and in the ISR and no
//	                           target replica is registered and fenced;
//	                           commands_reassign.go
//	                       v2 (read, applied as before): the same fields;
//	                           a finish did not check the brokers
//	                       v1 (read, applied as before): the same fields;
//	                           a start during a reassignment also started
//	                           from the union replica set
//	21 AlterBrokerConfigs  v2: broker id int32 (-1 = every broker),
//	                           configs string map (empty = none), checked
//	                           bool, from map (checked: refused with
//	                           ErrStaleBrokerConfigs unless the current set)
//	                       v1 (read): up to the configs, unchecked
//	22-31 reserved for brokers and partition leadership
//	32 SegmentCopyStarted  v2: topic id uuid, partition int32, segment
//	                       v1 (read): a segment v1 (txn index unknown)
//	33 SegmentCopyFinished v1: segment ref
//	34 SegmentDeleteStarted v1: segment ref
//	35 SegmentDeleted      v1: segment ref
//	36 SegmentsImported    v2: topic id uuid, partition int32, segments list
//	                       v1 (read): segments v1 (txn index unknown)
//	37 SetLogStartOffset   v1: topic id uuid, partition int32, leader epoch
//	                           int32, offset int64 (DeleteRecords; only moves
//	                           forward; fenced by the leader epoch)
//	38-47 reserved for tiered-segment manifests
//	48 AlterScramCredentials v1: uvarint count, then count scram
//	                           credentials (upserts), uvarint count, then
//	                           count (user string, mechanism uint8)
//	                           (deletions); all or none apply (scram.go)
//	49 CreateAcls          v1: acl bindings list
//	50 DeleteAcls          v1: acl filters list
//	51 AlterClientQuotas   v1: uvarint count, then count (quota entity,
//	                       uvarint op count, then op count (key string,
//	                       remove bool, value float64))
//	52-63 reserved for security
//
// Topics: CreateTopic and CreatePartitions are checked when they are
// applied, whoever proposed them, against the state they apply to: a name
// by Kafka's rules, a topic id no topic uses (nor a deleted topic's tiered
// segments), configs that are config names with short UTF-8 values, 1 to
// MaxPartitionsPerTopic partitions, and new partitions whose replicas are
// distinct, registered brokers (fenced or not), with the leader and the
// ISR among them (ErrInvalidTopic, ErrTopicExists, ErrTopicIDExists,
// ErrInvalidTopicConfig, ErrInvalidPartitions). UnregisterBroker leaves
// the partitions a broker holds alone. Internal topics are not held to
// registered replicas: earlier builds created __consumer_offsets before
// their node registered, and every entry must replay as it first applied.
//
// ACLs: CreateAcls adds 1..1000 bindings, each valid by Kafka's rules
// (authz.Binding.Validate: a concrete resource type, LITERAL or PREFIXED,
// a name, kafka-cluster for CLUSTER, a Type:Name principal, a host, a
// concrete operation, ALLOW or DENY), else ErrInvalidACL and none is
// added; a binding already present stays once; at most 100000 in all.
// DeleteAcls removes, filter by filter, the bindings each of its 1..1000
// filters matches (authz.Filter.Matches) and answers, per filter, the
// bindings it removed; a filter with an unknown value refuses the command
// (ErrInvalidACL).
//
// Client quotas: AlterClientQuotas changes 1..1000 distinct entities at
// once, all or none: each a user, a client id or both (named, non-empty
// UTF-8 of at most 1024 bytes, or the default), each op a distinct key,
// producer_byte_rate or consumer_byte_rate (request_percentage and
// controller_mutation_rate are refused: not enforced), set to a whole
// number of bytes per second from 1 to 2^53, or removed (a removal of a
// key not set does nothing; an entity left without keys is dropped); at
// most 100000 entities (ErrInvalidClientQuota).
//
// InitCluster records the cluster id of meta.properties in the replicated
// state; a Store proposes it when it leads and finds the state without one
// (right after Format). WaitReady waits for it.
// AllocateProducerIDs answers with the first id of the block and advances
// the next producer id by the block size, so blocks never overlap.
// ReserveProducerIDs raises the next producer id to the id it names (never
// lowers it): a recovery from the object store reserves every producer id
// its data holds, so no new producer is given the id of a recovered one.
//
// Brokers: RegisterBroker answers with the broker epoch, which is the Raft
// log index of the command that created the registration (the same on
// every node, and increasing). A registration starts fenced. Registering
// the same incarnation with the same endpoints and rack again is a retry:
// nothing changes and the answer is the epoch already recorded; anything
// else (a new incarnation, changed endpoints) replaces the record with a
// new, fenced one. SetBrokerFenced and UnregisterBroker name the broker
// epoch they mean, so a decision about an earlier incarnation never hits a
// later one (ErrStaleBrokerEpoch). Sessions and heartbeats are not in the
// replicated state: the controller keeps them in memory and turns their
// expiry into SetBrokerFenced, as Kafka's controller does. Moving
// leaderships off a fenced or unregistered broker is the controller's job
// (ChangePartition), with one exception: a new incarnation (RegisterBroker
// v2 or later that is not a retry) takes back, in the same entry, what the
// broker's earlier incarnation held, since nothing it did counts for the
// new process: every partition the broker leads gets no leader and the
// next leader epoch, and after an unclean shutdown (no clean-shutdown
// marker), or from v3 on a clean one of a directory other than the
// current registration's, it leaves every ISR it shares with another
// replica (KIP-966), each change increasing the partition epoch. A build
// before v3 stops at a v3 entry, as at any unknown version: upgrade every
// controller before a broker of the new build registers. Before the entry is
// proposed, the controller refuses (ErrDuplicateBroker) a new incarnation
// from another data directory (directory id) while the current
// registration's session lives; one from the same directory is admitted
// at once (the directory is locked by the one process that runs on it).
//
// ChangePartition is Kafka's AlterPartition, for the controller's leader
// elections and the leaders' ISR changes alike. It names the partition
// epoch it was computed from and is rejected (ErrStalePartitionEpoch)
// unless that is still current. The new ISR replaces the old one and must
// be a subset of the replicas without duplicates that holds the leader
// (unless the leader is -1). Broker epochs given with the ISR (a leader
// adding a follower names the epoch the follower fetched with, KIP-903)
// must be the members' current registrations' (ErrIneligibleReplica): a
// replica that caught up as an earlier incarnation does not join as the
// next one. From v3 on, a broker that is registered and fenced does not
// join an ISR (ErrIneligibleReplica, KIP-841: a leader whose metadata is
// behind must not put back a broker the controller fenced); members that
// stay are not checked (as at v2, a build before v3 stops at a v3 entry:
// upgrade every controller first). From v4 on, a broker that is
// registered and fenced does not lead either (ErrIneligibleReplica), as
// Kafka's controller fences a broker and moves its leaderships in one
// record: a new leader (a change to a broker id, not -1) must not be
// fenced, so an election or preferred-leader move decided on a state from
// before the broker's fencing or new registration is refused and decided
// again; and an effective change that keeps the leader is refused while
// that leader is fenced, so a leader that was paused past its fencing
// cannot shrink the ISR to itself before the controller moves the
// leadership (which would leave no live in-sync replica to elect). A
// change away from a fenced leader (to another broker or -1) is accepted
// (as at v3, a build before v4 stops at a v4 entry: upgrade every
// controller first). A new leader always increases the leader epoch; the
// bump flag increases it with the same leader. Any effective change
// increases the partition epoch; a change to what the partition already
// is is a no-op. The answer is the partition afterwards. Whether the
// leader is registered at all is the controller's policy, not checked
// here (a single node proposes no registrations before it serves, and
// earlier builds created internal topics before their node registered);
// only a registered leader is held to being unfenced, as ISR members are.
//
// Tiered-segment manifests: each partition has a manifest of the segments
// copied to the object store, keyed by base offset. An entry moves only
// forward: SegmentCopyStarted adds it (CopyStarted) before the uploader
// writes objects; SegmentCopyFinished makes it readable (CopyFinished);
// SegmentDeleteStarted (from CopyStarted, for an abandoned upload, or from
// CopyFinished) stops serving it before its objects are deleted
// (DeleteStarted); SegmentDeleted drops it. Every command carries the
// proposer's leader epoch of the partition and is rejected
// (ErrFencedLeaderEpoch) unless it is the partition's current one, so a
// deposed leader cannot change the manifest. SegmentCopyStarted is
// rejected for a base offset that has an entry (ErrSegmentExists) and for
// offsets that overlap an entry being copied or readable
// (ErrSegmentOverlap): readable segments never overlap, and offsets of a
// segment being deleted can be copied again. The other three name the
// entry by base offset and segment id (ErrUnknownSegment for another
// upload of the same offsets). An entry records, from SegmentCopyStarted
// v2 or SegmentsImported v2 on, whether the segment's .txnindex holds
// aborted transactions (TxnIndexState, Kafka's txnIdxEmpty of KIP-1058),
// so a read_committed fetch from tiered data skips the indexes known to
// be empty; entries of v1 commands and 0x04 snapshot records have it
// unknown and are read as before. A value other than 0..2 does not decode
// (and apply refuses it, ErrInvalidSegment). A build before v2 stops at a
// v2 entry, as at any unknown version: upgrade every node before the
// leader's uploads write them.
//
// SegmentsImported is for disaster recovery: it rebuilds the manifest of a
// topic re-created with its old topic id from the object-store bucket,
// adding entries of segments whose objects are already there straight in
// CopyFinished. It carries no proposer's epoch (no leader uploaded them);
// each entry keeps the uploader's leader epoch of the old cluster. The
// entries must be valid as for SegmentCopyStarted, sorted by base offset
// (else ErrInvalidSegment), at most 10000 (MaxImportedSegments; else
// ErrInvalidSegment: callers import in batches), and must not share a base
// offset with each other or an existing entry (ErrSegmentExists) nor
// overlap each other or an entry being copied or readable
// (ErrSegmentOverlap). When the partition's leader epoch is not above the
// highest leader epoch of the entries (which is also the highest of their
// epoch ranges), it becomes that epoch plus one and the partition epoch
// increases, leader and ISR unchanged, as a ChangePartition would change
// them; so records appended after recovery carry a higher epoch than any
// recovered one. Any rejected entry rejects the whole command.
//
// DeleteTopic leaves the topic's manifest entries in place: their objects
// still exist, and an entry is what lets them be found and deleted in
// order (the entry marked DeleteStarted, the objects deleted, the entry
// dropped). State.EachSegmentPartition lists them (TopicByID no longer
// finds their topic); SegmentDeleteStarted and SegmentDeleted are then
// accepted at any leader epoch, and SegmentCopyStarted/SegmentCopyFinished
// fail with ErrUnknownTopic. Until the last entry is gone, CreateTopic
// refuses the old topic id (ErrTopicIDExists), so a new topic never
// inherits them.
//
// # Primitive encodings
//
// Shared by command payloads and snapshot records. All integers are
// big-endian.
//
//	int32, int64, uint64   4, 8, 8 bytes, two's complement
//	uvarint                unsigned LEB128 (encoding/binary.AppendUvarint)
//	bool                   1 byte, 0 or 1
//	string                 uvarint length, then that many bytes
//	uuid                   16 raw bytes
//	float64                IEEE 754 bits as a uint64
//	quota name             kind uint8 (0 absent, 1 named, 2 default), then
//	                       for 1 the name string
//	quota entity           user quota name, client id quota name
//	int32 list             uvarint count, then count int32s
//	map                    uvarint count, then count (key string, value string)
//	                       pairs in strictly increasing key order
//	endpoints list         uvarint count, then count (listener string,
//	                       host string, port int32, security protocol string)
//	partition              replicas int32 list, leader int32 (-1: none),
//	                       leader epoch int32, ISR int32 list, partition epoch int32
//	                       (the partition index is its position in its list)
//	partitions list        uvarint count, then count partitions
//	topic                  name string, id uuid, internal bool,
//	                       created-at int64 (Unix milliseconds), configs map,
//	                       partitions list
//	segment v1             segment id uuid, base offset int64,
//	                       last offset int64, size bytes int64,
//	                       first timestamp int64, max timestamp int64
//	                       (Unix milliseconds), uploader's leader epoch int32,
//	                       epoch ranges: uvarint count, then count
//	                       (epoch int32, start offset int64)
//	segment                segment v1, then txn index uint8: whether the
//	                       segment's .txnindex object holds aborted
//	                       transactions (Kafka's txnIdxEmpty, KIP-1058):
//	                       0 unknown (read it), 1 empty (never read),
//	                       2 not empty; other values do not decode
//	segments list          uvarint count, then count segments
//	segments v1 list       uvarint count, then count segments v1
//	segment ref            topic id uuid, partition int32, base offset int64,
//	                       segment id uuid, proposer's leader epoch int32
//	acl binding            resource type uint8, pattern type uint8,
//	                       resource name string, principal string,
//	                       host string, operation uint8, permission uint8
//	                       (Kafka's enum values: authz)
//	acl filter             resource type uint8, name (present bool, then
//	                       string if present), pattern type uint8,
//	                       principal (likewise), host (likewise),
//	                       operation uint8, permission uint8
//	scram credential       user string, mechanism uint8 (1 SHA-256,
//	                       2 SHA-512), salt string (raw bytes), iterations
//	                       int32, stored key string, server key string
//	acl bindings list      uvarint count, then count acl bindings
//	acl filters list       uvarint count, then count acl filters
//
// For example CreateTopic v1 of topic "t" with one partition on broker 1:
//
//	02 01                                 type 2, version 1
//	01 74                                 name "t"
//	xx*16                                 topic id
//	00                                    internal false
//	00 00 01 8b cf e5 68 00               created at 1700000000000
//	00                                    no configs
//	01                                    1 partition:
//	   01 00 00 00 01                       replicas [1]
//	   00 00 00 01 00 00 00 00              leader 1, leader epoch 0
//	   01 00 00 00 01                       ISR [1]
//	   00 00 00 00                          partition epoch 0
//
// # Snapshot format
//
// A snapshot is a header followed by records, streamed one by one so that
// neither writing nor reading needs the whole state in memory:
//
//	header:  +-----------------+----------------+
//	         | magic "STRATAMS"| version uint16 |   version 1
//	         | 8 bytes         | 2 bytes        |
//	         +-----------------+----------------+
//	record:  +--------+----------------+-----------------+------------------+
//	         | type   | length uint32  | payload         | CRC-32C uint32   |
//	         | 1 byte | 4 bytes        | length bytes    | of type..payload |
//	         +--------+----------------+-----------------+------------------+
//
// Record types (bit 7 = ignore-unknown, as for commands; part of the format):
//
//	0x01 cluster  first and exactly once: applied index uint64,
//	              cluster id string, next producer id int64
//	0x02 topic    one per topic, in name order: topic (as above)
//	0x03 broker   (read only; written before directory ids) one per
//	              registered broker, in strictly increasing id order:
//	              broker id int32, incarnation id uuid, endpoints list,
//	              rack string, fenced bool, broker epoch int64
//	0x05 broker   what 0x03 holds, then directory id uuid; written for
//	              every broker since directory ids
//	0x04 segments (read only; written before manifest entries recorded
//	              their txn index) tiered-segment manifest entries of one
//	              partition: topic id uuid, partition int32, uvarint count
//	              (1 or more), then count (state uint8, segment v1);
//	              1 CopyStarted, 2 CopyFinished, 3 DeleteStarted. In
//	              (topic id, partition, base offset) order; a partition's
//	              entries may span several consecutive records (the writer
//	              writes one per in-memory chunk of at most 64 entries)
//	0x0a segments what 0x04 holds with each entry a segment (segment v1,
//	              then txn index uint8); written for every chunk since
//	              entries record their txn index. Entries of 0x04 records
//	              restore with txn index unknown
//	0x06 scram    one per SCRAM credential, in (user, mechanism)
//	              order: scram credential (as above)
//	0x07 acl      one per ACL binding, in the order of their encodings:
//	              acl binding (as above)
//	0x08 quota    one per entity with client quotas, in the order of
//	              their quota entity encodings: quota entity, uvarint
//	              count (1 or more), then count (key string, value
//	              float64) in strictly increasing key order
//	0x0b extension kind uint8, then by kind: 1 a partition's reassignment
//	              in progress (after every topic record; topic id uuid,
//	              partition int32, adding replicas int32 list, removing
//	              replicas int32 list), 2 one broker's dynamic configs
//	              (broker id int32, -1 = every broker; configs string map).
//	              Written only when there are some, so a state without
//	              them snapshots as before
//	0x09 logstart one per partition whose log start offset was set in the
//	              quorum (SetLogStartOffset): topic id uuid, partition
//	              int32, offset int64, in (topic id, partition) order
//	0x7f end      last: uint64 count of the records before it
//
// Record types were added to version 1 without bumping it (broker,
// segments, directory-id broker and txn-index segment records): a snapshot without them is exactly the original version 1, and
// a build that does not know them stops at them (they do not carry the
// ignore-unknown bit, because skipping them would lose state) just as it
// would stop at a higher version.
//
// A reader rejects (ErrCorrupt) a wrong magic or version, a bad checksum, a
// record longer than 64 MiB, a payload with bytes left over, a missing or
// misplaced cluster record, a duplicate topic name or id, brokers or
// segments out of order, an empty segments record, an unknown segment
// state, a record count that does not match, and anything after the end
// record, a client quota record that AlterClientQuotas could not have
// produced (or a repeated entity); so truncation anywhere is detected. Records of unknown types with
// the ignore-unknown bit are skipped. raft.FileSnapshotStore adds its own
// metadata file and CRC-64.
//
// # meta.properties
//
// Like Kafka's, a Java-style properties file, written to a temporary file,
// fsynced, renamed over meta.properties, and the directory fsynced:
//
//	#Written by Strata's metadata.Format. Do not edit.
//	version=1
//	cluster.id=<cluster id>
//	node.id=<node id>
//	directory.id=<directory id>
//
// Blank lines and lines starting with '#' or '!' are comments; unknown keys
// are ignored. directory.id (Kafka's name) identifies the directory: a
// random UUID in the cluster id's encoding, written by Format, or by the
// first Open of a directory formatted before it existed (rewriting the
// file the same way); brokers register with it (RegisterBroker). Its presence is what makes a directory formatted: Format
// writes it last, after bootstrapping Raft, and Open refuses a directory
// without it (ErrNotFormatted). Cluster ids are 1..255 characters from
// [a-zA-Z0-9._-]; NewClusterID makes Kafka-style ones (22 characters of
// URL-safe base64 of a random UUID).
//
// # Bootstrap commands
//
// <data-dir>/metadata/bootstrap.commands, written by Format when given
// commands (WithScramCredentials: `strata format --add-scram`), holds
// commands in their Raft encoding that the first leader proposes before
// InitCluster, on the cluster's first start only; its byte layout is in
// bootstrap.go.
//
// # Controller handshake
//
// The dialer of every controller connection sends a request and waits for
// the response before the connection is used; the listener hands the
// connection on only after accepting it. Handshakes time out after
// Config.HandshakeTimeout, or sooner when the dial's own deadline comes
// first (a forwarded request's: a paused node accepts the connection and
// never answers). Both ends prove that they hold the cluster
// secret (secret.go) without sending it:
//
//	request:   +--------+---------+---------------+---------------+--------+------------+---------+-------------+
//	           | "STRH" | version | dialer node id| target node id| id len | cluster id | channel | dialer nonce|
//	           | 4 bytes| 1 byte  | int32         | int32         | 1 byte | id len     | 1 byte  | 32 bytes    |
//	           +--------+---------+---------------+---------------+--------+------------+---------+-------------+
//	response:  +--------+---------+--------+------------------+
//	           | "STRH" | version | status | responder node id|
//	           | 4 bytes| 1 byte  | 1 byte | int32            |
//	           +--------+---------+--------+------------------+
//	           then, when status is 0: listener nonce (32 bytes), listener proof (32 bytes)
//	dialer:    dialer proof (32 bytes), sent only if the listener's proof checked out
//	listener:  verdict (1 byte: 0 accepted, 4 wrong cluster secret)
//
//	proof = HMAC-SHA256(secret, label || transcript), where the label is
//	"strata controller handshake v3: listener" or "...: dialer", and the
//	transcript is the request as sent, the response's first 10 bytes and
//	the listener nonce. Each side proves with the first secret of its file
//	and accepts a proof under any of them (two during a rotation).
//
// Version 3 (this build; versions 1 and 2, which did not authenticate, are
// answered status 1 and closed). status 0 accepted so far, 1 unsupported
// version or channel, 2 wrong cluster id, 3 wrong node id (the target node
// id is not the listener's), 4 wrong cluster secret, 5 certificate does
// not name the node (controller TLS, below). channel 0 Raft
// (hashicorp/raft's transport), 1 controller RPCs (below).
//
// With controller TLS (Config.TLS, strata serve's
// --listener-security-protocol-map CONTROLLER:SSL) every connection is TLS
// 1.2+ from its first byte, both sides present a certificate that must
// chain to the other's CA, and the handshake above runs inside the TLS
// session, unchanged. The dialer checks, before sending the request, that
// the listener's certificate names the node id it expects (URI SAN
// urn:strata:node:<id>); the listener checks that the dialer's names the
// dialer node id of the request, or answers status 5 and closes. A
// listener without TLS that reads a TLS record (0x16) closes the
// connection without an answer and logs that the peer speaks TLS.
//
// The target node id is the one Raft's configuration lists at the dialed
// address. A refusing listener answers and closes the connection; a request
// with a wrong magic is closed without an answer. The dialer also checks
// that the responder node id is the one it expected. On the Raft channel
// every request must carry, as its header's server id, the node id the
// dialer authenticated as (raftpeer.go), or the connection is closed: a
// node can vote, lead and send snapshots only in its own name.
//
// # Controller RPCs
//
// A node that does not lead forwards to the leader, on the RPC channel:
// proposals (every Store write: the caller's code is the same on every
// node), broker heartbeats and voter changes. Requests and responses are
// frames (uint32 length, then that many bytes, at most 16 MiB), answered
// one at a time in order on each connection. A node sends each request on
// a connection of its own (idle ones are reused, up to four), so one the
// leader does not answer delays no other. A request is sent once: an idle
// connection is checked open (a peek that does not wait finds neither the
// peer's close nor stray bytes) before the request is written, and a
// failure after it was written is returned, not retried, since the leader
// may have appended it (only failures before sending, or a leader's
// refusal before appending, are retried, by proposeRemote). A request
// ends by its deadline or when its caller's context ends, whichever is
// first: a cancelled caller gets the context's error at once, during the
// dial as well, and a connection whose request was under way is closed,
// never reused (the answer may still arrive on it); such a request, once
// written, is neither resent nor taken as not applied:
//
//	request:   kind uint8, then
//	           1 propose       a Raft log entry as above (checked to decode
//	                           before the leader appends it)
//	           2 heartbeat     broker id int32, broker epoch int64,
//	                           shutting down bool, applied metadata index
//	                           uint64 (absent from older nodes: unknown)
//	           3 add voter     node id int32, controller address string
//	           4 remove voter  node id int32 (demoted to non-voter: it
//	                           keeps following the log)
//	           5 add non-voter node id int32, controller address string
//	                           (sent by a joining node to any voter, which
//	                           passes it on to the leader)
//	           6 report applied broker id int32, broker epoch int64,
//	                           applied metadata index uint64 (the broker
//	                           has applied and acted on the state up to it)
//	           7 applied floor (no payload) answers, in the log index
//	                           field, the lowest index the live brokers
//	                           reported, and in the message the ids of the
//	                           brokers at it, space-separated
//	           8 check registration  a RegisterBroker command (type and
//	                           version bytes, payload): answered 0 if the
//	                           leader would admit it, 3 if another live
//	                           process on another data directory holds the
//	                           broker id; any node passes it on to the
//	                           leader (the asking node may have none yet)
//	           9 describe quorum (no payload) answers, in the message,
//	                           the leader's view of the quorum: leader id
//	                           int32, leader epoch int64, high watermark
//	                           int64, then voters and observers, each a
//	                           uvarint count of (node id int32, log end
//	                           offset int64, last fetch int64, last caught
//	                           up int64, address string); see quorum.go
//	response:  status uint8 (0 ok, 1 not the leader, 2 failed,
//	           3 duplicate broker registration: ErrDuplicateBroker,
//	           16+i rejected with the i-th sentinel of rpcRejections,
//	           e.g. 17 ErrStaleBrokerEpoch, so errors.Is works across a
//	           forward; older nodes answered 2 for all of them),
//	           log index uint64 (propose: where the entry was applied;
//	           with status 1: 0 when refused before appending, so a retry
//	           is safe, all ones when leadership was lost after),
//	           message string (why, when not ok)
//
// A proposal's result is not sent back: Apply is deterministic, so the
// forwarding node waits until it has applied the entry at that index
// itself and reads the result its own state machine computed (the last
// 4096 command results are kept by index). A rejected command is a result
// too, so it answers "ok" with the index, and the caller gets the error.
//
// # Controller
//
// The leader also runs the controller (controller.go): brokers register
// (RegisterBroker; a registration starts fenced) and heartbeat; the
// controller keeps their sessions in memory (a new leader gives every
// broker a fresh session of Config.BrokerSessionTimeout), unfences brokers
// that heartbeat, fences brokers whose session ends or that are in
// controlled shutdown and lead nothing, and elects partition leaders: a
// partition whose leader is fenced, unregistered (after the grace of one
// session) or shutting down gets the first live in-sync replica in replica
// order and an ISR without the dead ones, or no leader (-1) with its ISR
// kept when none is alive; it gets that replica back when one returns. No
// unclean election.
package metadata
