package group

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/recordbatch"
)

// OffsetsTopic is the internal topic holding committed offsets and group
// metadata, in Kafka's own key/value schemas:
//
//	key version 0/1: OffsetCommitKey{group, topic, partition}
//	                 value OffsetCommitValue, null = deleted (in a
//	                 transactional batch: pending until the producer's
//	                 COMMIT or ABORT marker, see txn.go); written as v4
//	                 with the id the topic had when the commit was
//	                 written (tagged field 0, TopicID, as Kafka 4.x
//	                 writes it), as v3 (no id) for a topic the broker
//	                 did not know then; v0-v3 values, and v4 ones
//	                 without the tag, load with the id unknown
//	key version 2:   GroupMetadataKey{group}
//	                 value GroupMetadataValue (written as v3), null = deleted
//
// A commit whose topic id is known is of that topic only: once the topic
// under its name has another id, or none, the commit is of a deleted
// topic (Shard.TopicsDeleted), judged at every read, however the broker
// learnt of the deletion (after a restart, or leading the partition only
// since, it saw no pass with the old topic gone).
//
// Each partition of it is one coordinator shard (coordinator.Partition
// maps a group id to its partition, as Kafka does). The topic is
// compacted, so it holds about one record per live key; a shard is rebuilt
// by replaying its partition.
const OffsetsTopic = "__consumer_offsets"

// OffsetMetadataMaxBytes is Kafka's offset.metadata.max.bytes default: a
// commit with longer metadata gets OFFSET_METADATA_TOO_LARGE.
const OffsetMetadataMaxBytes = 4096

// TopicPartition names a partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// CommittedOffset is one committed offset of a group.
type CommittedOffset struct {
	Offset      int64
	LeaderEpoch int32 // -1: unknown
	Metadata    string
	Timestamp   int64 // commit time, Unix milliseconds
}

// Log is the __consumer_offsets partition a Shard keeps its records in.
type Log interface {
	// Append writes records as one batch and returns once every in-sync
	// replica has it (acks=all, as Kafka writes commits), with the batch's
	// base offset (record i is at offset+i). A failure is the Kafka error
	// the client is to see: NOT_COORDINATOR when this broker no longer
	// leads the partition, COORDINATOR_NOT_AVAILABLE otherwise.
	Append(records []recordbatch.Record) (offset int64, err error)
	// AppendTxn is Append for a transactional producer's offset commit
	// (TxnOffsetCommit): one transactional batch with the producer's id and
	// epoch, which that producer's transaction marker later commits or
	// aborts. It may also fail with the producer's error
	// (INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, INVALID_TXN_STATE).
	AppendTxn(records []recordbatch.Record, p TxnProducer) (offset int64, err error)
	// VerifyTxn makes sure, before AppendTxn, that the partition is in the
	// producer's ongoing transaction (KIP-890 part 1: asked of the
	// transaction coordinator of p.TransactionalID, as Kafka's group
	// coordinator verifies a TxnOffsetCommit), so that a commit arriving
	// after its transaction ended is refused (INVALID_TXN_STATE,
	// INVALID_PRODUCER_EPOCH, ...) instead of opening a new transaction on
	// the partition; a transaction ending meanwhile voids the
	// verification (AppendTxn then fails). COORDINATOR_NOT_AVAILABLE when
	// the transaction coordinator cannot answer now. Called without the
	// shard's lock.
	VerifyTxn(p TxnProducer) error
	// Replay calls fn with each record batch from the log's start to its
	// end as it is when Replay starts, in offset order, and returns that
	// end (the offset after the last record replayed).
	Replay(fn func(batch []byte) error) (end int64, err error)
	// AwaitCommitted returns nil once every record below end is committed
	// (below the high watermark: on every in-sync replica, so no election
	// can truncate it), NOT_COORDINATOR when this broker stops leading the
	// partition first, or when stop is closed.
	AwaitCommitted(end int64, stop <-chan struct{}) error
	// Leading reports whether this broker still leads the partition.
	Leading() bool
}

// ShardConfig configures a Shard. Log is required; the other zero values
// mean defaults.
type ShardConfig struct {
	// Partition is the shard's __consumer_offsets partition.
	Partition int32
	Log       Log
	// Coordinator configures the shard's group coordinator; its Store is
	// the shard itself.
	Coordinator Config
	Logger      *slog.Logger
	// TopicID returns the id a topic has in the newest metadata this
	// broker applied, false if it has no such topic. It is to move only
	// forward (each call sees the metadata of the calls before it, or
	// newer), and the metadata to be at least as new as that of every
	// commit in the log when the shard loads, as it is for a broker that
	// leads the partition (its leadership is in that metadata). The id
	// is written with each commit; a commit of another id than the
	// topic's current one, or of a topic gone, is of a deleted topic.
	// Nil: no ids (commits are judged only by TopicsDeleted).
	TopicID func(topic string) (id [16]byte, ok bool)
}

// Shard is the coordinator of one __consumer_offsets partition: the group
// membership state machine and the committed offsets of its groups,
// persisted to and replayed from the partition's log.
//
// Every method may be called from any goroutine. Load must run once before
// the shard serves (Loaded is closed then).
type Shard struct {
	partition int32
	log       Log
	coord     *Coordinator
	clock     Clock
	logger    *slog.Logger
	topicID   func(topic string) ([16]byte, bool) // ShardConfig.TopicID; nil: none
	life      *coordinator.Lifecycle              // loaded, serving, closed (guarded by mu)

	// mu guards offsets, the transactional state and life's closed flag,
	// and serializes the shard's appends with the in-memory updates they
	// make, so both happen in the same order. Lock order: the coordinator
	// is never called with mu held (it may call StoreGroup); a group's
	// lock may be held when mu is taken (offset commits, a group's
	// deletion, its offsets' expiry and deletion are written under it:
	// Coordinator.withGroup, deleteWith, withDescription).
	mu      sync.Mutex
	offsets map[string]map[TopicPartition]storedOffset // group → partition → commit
	txns    txnOffsets                                 // pending transactional commits
	// deletedTopics are the deleted topics whose committed offsets the
	// shard has yet to remove (TopicsDeleted), each with the log offset
	// below which its commits are the deleted topic's (those recorded
	// since are of a topic re-created under its name). They are gone for
	// every reader at once (deletedLocked); the tombstones are written in
	// the background (removeDeletedTopics), and every expiry pass writes
	// them too; one that succeeds for every group forgets them.
	deletedTopics map[string]int64
	// logEnd is the log's end as far as the shard replayed and wrote it
	// (math.MaxInt64 until Load has replayed it: all it replays is older).
	logEnd int64

	// deleteMu guards restored, unmarked and the background removal's
	// state, apart from mu because mu is held across the shard's writes
	// (each waiting for the in-sync replicas, up to
	// offsets.commit.timeout.ms) and TopicsDeleted, called by the metadata reconcile pass that every
	// other partition's leadership change waits behind, must not wait
	// for them. TopicsDeleted records the topics in unmarked, which the
	// next holder of mu moves to deletedTopics at the log's end
	// (markDeletedLocked): every commit in memory then was recorded
	// before the deletion (a write in flight holds mu), and every write
	// after it lands above. restored is set once Load has restored the
	// groups; until then the topics stay unmarked (the log's end is not
	// known while replaying). Lock order: mu, then deleteMu.
	deleteMu sync.Mutex
	restored bool
	unmarked []string
	// removal is closed when the background removal of deleted topics'
	// offsets (runRemoval) ends, nil when none runs; removeAgain asks it
	// for another pass (topics deleted since its pass started); stopped
	// (Close) keeps a new one from starting.
	removal     chan struct{}
	removeAgain bool
	stopped     bool

	// beforeTombstones, if set, is called (tests only) when a group's
	// deletion tombstones are about to be written.
	beforeTombstones func(groupID string)
	// beforeExpiring, if set, is called (tests only) for each group an
	// expiry pass has listed, before it looks at the group's state and
	// offsets.
	beforeExpiring func(groupID string)
}

// storedOffset is a commit with the log offset of its record (of a
// transactional and a plain commit of one partition, the later record
// wins, txn.go) and the id of its topic when it was written, zero if
// unknown (written without one).
type storedOffset struct {
	CommittedOffset
	at      int64
	topicID [16]byte
}

var _ Store = (*Shard)(nil)

// NewShard makes a shard; it serves once Load has run.
func NewShard(cfg ShardConfig) (*Shard, error) {
	if cfg.Log == nil {
		return nil, fmt.Errorf("%w: a shard needs a Log", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sh := &Shard{
		partition: cfg.Partition,
		log:       cfg.Log,
		logger:    cfg.Logger,
		topicID:   cfg.TopicID,
		offsets:   map[string]map[TopicPartition]storedOffset{},
		txns:      newTxnOffsets(),

		deletedTopics: map[string]int64{},
		logEnd:        math.MaxInt64,
	}
	sh.life = coordinator.NewLifecycle(&sh.mu, cfg.Log)
	coordCfg := cfg.Coordinator
	coordCfg.Store = sh
	if coordCfg.Logger == nil {
		coordCfg.Logger = cfg.Logger
	}
	coord, err := New(coordCfg)
	if err != nil {
		return nil, err
	}
	sh.coord = coord
	sh.clock = coordCfg.withDefaults().Clock
	return sh, nil
}

// Partition is the shard's __consumer_offsets partition.
func (sh *Shard) Partition() int32 { return sh.partition }

// Coordinator is the shard's group membership state machine.
func (sh *Shard) Coordinator() *Coordinator { return sh.coord }

// Loaded is closed once the shard has replayed its log.
func (sh *Shard) Loaded() <-chan struct{} { return sh.life.Loaded() }

// Serving reports whether the shard is loaded, open and its partition
// still led here.
func (sh *Shard) Serving() bool { return sh.life.Serving() }

// Close stops the shard: its coordinator answers NOT_COORDINATOR and its
// writes fail with NOT_COORDINATOR. It waits for the background removal
// of deleted topics' offsets, if one runs, which its writes failing end.
func (sh *Shard) Close() {
	sh.life.Close()
	sh.coord.Close()
	sh.deleteMu.Lock()
	sh.stopped = true
	sh.deleteMu.Unlock()
	sh.awaitRemoval()
}

// Load replays the log from its start: the latest commit per group and
// partition wins and tombstones delete; the latest group metadata record
// of each group is restored into the coordinator; groups known only by
// their offsets (committed or pending in a transaction) come back Empty,
// as in Kafka. Transactional commits stay pending until their producer's
// marker appears in the log (txn.go). A batch that cannot be decoded is
// skipped with an error logged (its groups are incomplete).
//
// The shard serves only once everything it replayed is committed: a new
// leader's log may end with records of the previous leader's term that no
// other replica holds yet (a commit that was never acknowledged). Served
// at once, such an offset could be read by a consumer and then vanish when
// the leadership moves on to a replica without it, and the group's
// committed offset would go backwards. Until the high watermark reaches
// the replayed end, the shard answers COORDINATOR_LOAD_IN_PROGRESS (as
// Kafka's coordinator runtime reads only committed state); if the
// leadership moves first, it never serves.
func (sh *Shard) Load() {
	defer sh.life.SetLoaded()
	start := time.Now()
	groups := map[string]*kmsg.GroupMetadataValue{}
	records := 0
	// mu is taken batch by batch (coordinator.ErrClosedWhileLoading).
	end, err := sh.log.Replay(func(batch []byte) error {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.life.ClosedLocked() {
			return coordinator.ErrClosedWhileLoading
		}
		h, _ := recordbatch.ParseHeader(batch)
		recs, err := recordbatch.Records(batch)
		if err != nil {
			sh.logger.Error("undecodable batch in the offsets partition; skipped", "offset", h.BaseOffset, "err", err)
			return nil
		}
		if h.IsControl() {
			sh.replayMarkerLocked(h, recs)
			return nil
		}
		producerID := noProducerID
		if h.IsTransactional() {
			producerID = h.ProducerID
		}
		for _, r := range recs {
			records++
			sh.applyRecordLocked(r, producerID, groups)
		}
		return nil
	})
	if errors.Is(err, coordinator.ErrClosedWhileLoading) {
		sh.logger.Info("the offsets partition's shard closed while loading; not serving")
		return
	}
	sh.mu.Lock()
	offsetGroups := make([]string, 0, len(sh.offsets))
	for id := range sh.offsets {
		offsetGroups = append(offsetGroups, id)
	}
	for id := range sh.txns.byGroup {
		if _, ok := sh.offsets[id]; !ok {
			offsetGroups = append(offsetGroups, id)
		}
	}
	sh.logEnd = end
	sh.mu.Unlock()
	if err != nil {
		sh.logger.Error("reading the offsets partition failed; its groups are incomplete", "err", err)
	}
	if err := sh.log.AwaitCommitted(end, sh.life.Done()); err != nil {
		sh.logger.Info("the offsets partition's leadership moved before its replayed records were committed; not serving", "end", end, "err", err)
		sh.Close()
		return
	}
	restored := 0
	for id, v := range groups {
		rec := recordFromValue(id, v)
		if err := sh.coord.Restore(rec); err != nil {
			// Its members cannot be restored; the group comes back Empty
			// (keeping its type and generation), so that its offsets are
			// served, expire and can be deleted as any Empty group's.
			sh.logger.Error("restoring group failed; restored Empty", "group", id, "err", err)
			if err := sh.coord.Restore(Record{GroupID: id, ProtocolType: rec.ProtocolType, GenerationID: rec.GenerationID}); err != nil {
				sh.logger.Error("restoring group failed", "group", id, "err", err)
				continue
			}
		}
		restored++
	}
	for _, id := range offsetGroups {
		if groups[id] == nil {
			if err := sh.coord.Restore(Record{GroupID: id}); err == nil {
				restored++
			}
		}
	}
	if records > 0 {
		sh.logger.Info("loaded group coordinator shard", "records", records, "groups", restored, "took", time.Since(start).Round(time.Millisecond))
	}
	// Topics deleted while loading: their offsets are gone before the
	// shard serves (everything replayed is older than the deletion); the
	// tombstones are written in the background. So are those of topics
	// that have another id now, or are gone, deleted while this broker
	// was down or before it led the partition.
	sh.mu.Lock()
	sh.deleteMu.Lock()
	sh.restored = true
	sh.deleteMu.Unlock()
	sh.markDeletedLocked()
	deleted := len(sh.deletedTopics) > 0 || sh.anyDeletedLocked()
	sh.mu.Unlock()
	if deleted {
		sh.startRemoval()
	}
}

// TopicsDeleted removes every group's committed offsets of deleted topics
// recorded so far, whatever their age, as Kafka does
// (handleDeletedPartitions), so a topic re-created under the same name
// starts without them. It returns at once, waiting for no write and no
// lock held across one: the offsets are gone for every reader from now on
// (deletedLocked; for a shard still loading, from when it serves), and
// their tombstones are written in the background, one group after the
// other, as Kafka's cleanupGroupMetadata removes them in memory and does
// not wait for the replicas. A removal that fails is retried by each
// expiry pass (ExpireOffsets) until one succeeds.
func (sh *Shard) TopicsDeleted(names ...string) {
	sh.deleteMu.Lock()
	sh.unmarked = append(sh.unmarked, names...)
	restored := sh.restored
	sh.deleteMu.Unlock()
	if restored { // else Load starts the removal
		sh.startRemoval()
	}
}

// markDeletedLocked moves the topics TopicsDeleted recorded since the
// last call to deletedTopics, at the log's end as the shard wrote it:
// called with mu held, by every reader of the offsets, every write before
// it writes and every expiry pass, so that what was recorded before the
// deletion is below the mark and what is written after it, above. Until
// Load has restored the groups it leaves them to Load.
func (sh *Shard) markDeletedLocked() {
	sh.deleteMu.Lock()
	defer sh.deleteMu.Unlock()
	if !sh.restored {
		return
	}
	for _, name := range sh.unmarked {
		sh.deletedTopics[name] = sh.logEnd
	}
	sh.unmarked = nil
}

// deletedLocked reports whether a group's offsets of tp are of a deleted
// topic, judged by the committed offset's record if there is one, else by
// the first pending transactional commit's: written with the id of a
// topic that has another one now, or is gone (replacedLocked), or
// recorded before a deletion TopicsDeleted reported. They are gone for
// every reader, and an expiry pass writes their tombstones (which drop
// both). Called with mu held, after markDeletedLocked.
func (sh *Shard) deletedLocked(groupID string, tp TopicPartition) bool {
	c, ok := sh.offsets[groupID][tp]
	if !ok {
		if c, ok = sh.txns.first(groupID, tp); !ok {
			return false
		}
	}
	if sh.replacedLocked(tp.Topic, c.topicID) {
		return true
	}
	before, ok := sh.deletedTopics[tp.Topic]
	return ok && c.at < before
}

// replacedLocked reports whether a commit written with the topic id id
// is of a deleted topic: the topic has another id now, or is gone. The
// metadata it is judged by is at least as new as the commit's
// (ShardConfig.TopicID), so the other id is a newer topic's. A commit
// without an id (written by an older version, or when the broker did not
// know the topic) is never judged so.
func (sh *Shard) replacedLocked(topic string, id [16]byte) bool {
	if id == ([16]byte{}) || sh.topicID == nil {
		return false
	}
	current, ok := sh.topicID(topic)
	return !ok || current != id
}

// anyDeletedLocked reports whether some committed or pending offset is of
// a topic that has another id now, or is gone (replacedLocked). Called
// with mu held.
func (sh *Shard) anyDeletedLocked() bool {
	if sh.topicID == nil {
		return false
	}
	for groupID, offsets := range sh.offsets {
		for tp := range offsets {
			if sh.deletedLocked(groupID, tp) {
				return true
			}
		}
	}
	for groupID := range sh.txns.byGroup {
		for _, tp := range sh.txns.partitions(groupID) {
			if sh.deletedLocked(groupID, tp) {
				return true
			}
		}
	}
	return false
}

// startRemoval has the deleted topics' offsets removed in the background
// (runRemoval): it starts the removal, or has the one running make
// another pass, unless the shard is closed.
func (sh *Shard) startRemoval() {
	sh.deleteMu.Lock()
	defer sh.deleteMu.Unlock()
	switch {
	case sh.stopped:
	case sh.removal != nil:
		sh.removeAgain = true
	default:
		sh.removal = make(chan struct{})
		go sh.runRemoval(sh.removal)
	}
}

// runRemoval removes the deleted topics' offsets until no topic was
// deleted since its last pass began, then closes done.
func (sh *Shard) runRemoval(done chan struct{}) {
	for {
		sh.removeDeletedTopics()
		sh.deleteMu.Lock()
		again := sh.removeAgain && !sh.stopped
		sh.removeAgain = false
		if !again {
			sh.removal = nil
			close(done)
		}
		sh.deleteMu.Unlock()
		if !again {
			return
		}
	}
}

// awaitRemoval waits for the background removal of deleted topics'
// offsets, if one runs, to end.
func (sh *Shard) awaitRemoval() {
	sh.deleteMu.Lock()
	done := sh.removal
	sh.deleteMu.Unlock()
	if done != nil {
		<-done
	}
}

// removeDeletedTopics runs an expiry pass that expires nothing by age:
// it writes the tombstones of the deleted topics' offsets (and deletes the
// Empty groups it leaves without offsets, as every pass does).
func (sh *Shard) removeDeletedTopics() {
	offsets, groups, err := sh.ExpireOffsets(sh.clock.Now(), -1, func(TopicPartition) bool { return true })
	if err != nil {
		sh.logger.Warn("removing committed offsets of deleted topics failed; retried next expiry pass", "err", err)
	}
	if offsets > 0 || groups > 0 {
		sh.logger.Info("removed committed offsets of deleted topics", "offsets", offsets, "groups_deleted", groups)
	}
}

// applyRecordLocked applies one __consumer_offsets record while loading;
// producerID is the producer of a transactional batch, else noProducerID.
func (sh *Shard) applyRecordLocked(r recordbatch.Record, producerID int64, groups map[string]*kmsg.GroupMetadataValue) {
	key, value := r.Key, r.Value
	if len(key) < 2 {
		return
	}
	switch version := int16(key[0])<<8 | int16(key[1]); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(key) != nil {
			return
		}
		tp := TopicPartition{k.Topic, k.Partition}
		if value == nil {
			sh.deleteOffsetLocked(k.Group, tp)
			return
		}
		var v kmsg.OffsetCommitValue
		if v.ReadFrom(value) != nil {
			return
		}
		epoch := int32(-1)
		if v.Version >= 3 {
			epoch = v.LeaderEpoch
		}
		// v.TopicID is zero for a value of v3 or older, and for a v4
		// one without it: the id is unknown.
		sh.putOffsetLocked(k.Group, tp, producerID, storedOffset{CommittedOffset{Offset: v.Offset, LeaderEpoch: epoch, Metadata: v.Metadata, Timestamp: v.CommitTimestamp}, r.Offset, v.TopicID})
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			delete(groups, k.Group)
			return
		}
		v := new(kmsg.GroupMetadataValue)
		if v.ReadFrom(value) != nil {
			return
		}
		groups[k.Group] = v
	}
}

// putOffsetLocked applies an offset commit record: a plain one
// (producerID noProducerID) is the group's committed offset at once, a
// transactional one is pending until its producer's marker (txn.go).
func (sh *Shard) putOffsetLocked(groupID string, tp TopicPartition, producerID int64, c storedOffset) {
	if producerID != noProducerID {
		sh.txns.put(producerID, groupID, tp, c)
		return
	}
	sh.setOffsetLocked(groupID, tp, c)
}

func (sh *Shard) setOffsetLocked(groupID string, tp TopicPartition, c storedOffset) {
	g := sh.offsets[groupID]
	if g == nil {
		g = map[TopicPartition]storedOffset{}
		sh.offsets[groupID] = g
	}
	g[tp] = c
}

// deleteOffsetLocked applies an offset tombstone: it deletes the committed
// offset and, as Kafka does, the partition's pending transactional ones of
// the group.
func (sh *Shard) deleteOffsetLocked(groupID string, tp TopicPartition) {
	if g := sh.offsets[groupID]; g != nil {
		delete(g, tp)
		if len(g) == 0 {
			delete(sh.offsets, groupID)
		}
	}
	sh.txns.deletePartition(groupID, tp)
}

// appendLocked writes records to the log, stamped now, and returns the
// first one's offset. Called with sh.mu held.
func (sh *Shard) appendLocked(records []recordbatch.Record) (int64, error) {
	return sh.writeLocked(records, func() (int64, error) { return sh.log.Append(records) })
}

// writeLocked stamps records now and writes them with write, unless the
// shard is closed. Called with sh.mu held.
func (sh *Shard) writeLocked(records []recordbatch.Record, write func() (int64, error)) (int64, error) {
	sh.markDeletedLocked() // the records land above the deletions so far
	if sh.life.ClosedLocked() {
		return 0, kerr.NotCoordinator
	}
	if len(records) == 0 {
		return 0, nil
	}
	now := sh.clock.Now().UnixMilli()
	for i := range records {
		records[i].Timestamp = now
	}
	base, err := write()
	if err == nil {
		sh.logEnd = max(sh.logEnd, base+int64(len(records)))
	}
	return base, err
}

// StoreGroup implements Store: the group's metadata record is appended to
// the shard's log before the coordinator answers.
func (sh *Shard) StoreGroup(rec Record, done func(error)) {
	sh.mu.Lock()
	_, err := sh.appendLocked([]recordbatch.Record{{Key: groupMetadataKey(rec.GroupID), Value: groupMetadataValue(rec)}})
	sh.mu.Unlock()
	done(err)
}

// CommitOffsets writes the commits of req's sender (OffsetCommit) and
// applies them once written; on failure nothing changes. Who may commit
// (Coordinator.ValidateOffsetCommit's rules: a member of the current
// generation, anyone with generation -1 to an Empty group) is checked as
// the commits are written, with the group's writeMu held
// (Coordinator.withGroup), as Kafka checks and stores under the group's
// lock: a commit validated before a rebalance is refused
// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS) instead
// of written over the partition's new owner's, and a deletion of the
// group cannot come between and leave them for a group the coordinator
// does not know (a standalone commit creates the group, Empty, if the
// coordinator has none, e.g. deleted since the commit was first checked).
//
// A topic named by id (req.TopicIDs) whose id is no longer its topic's
// when the commits are written makes the call write nothing and return
// *UnknownTopicIDError, naming every such topic: the caller answers their
// partitions UNKNOWN_TOPIC_ID, as Kafka answers an id it does not know,
// and may commit the others again.
func (sh *Shard) CommitOffsets(req OffsetCommitRequest, commits map[TopicPartition]CommittedOffset) error {
	return sh.coord.withGroup(req, func() error {
		return sh.commitOffsets(req.GroupID, noProducerID, commits, req.TopicIDs, sh.log.Append)
	})
}

// UnknownTopicIDError is CommitOffsets' refusal of commits whose topics
// were named by ids that are no longer theirs (OffsetCommitRequest.TopicIDs):
// nothing was written. It is Kafka's UNKNOWN_TOPIC_ID (ErrorCode).
type UnknownTopicIDError struct {
	Topics []string // sorted
}

func (e *UnknownTopicIDError) Error() string {
	return fmt.Sprintf("topics %s: the id the commit named is no longer theirs", strings.Join(e.Topics, ", "))
}

func (e *UnknownTopicIDError) Unwrap() error { return kerr.UnknownTopicID }

// commitOffsets writes commits as one batch with write and applies them
// (committed, or pending for producerID) once written, at their records'
// log offsets, each with the id its topic has now (ShardConfig.TopicID,
// asked with mu held: every later reader judges it by metadata as new or
// newer). A topic the client named by id (named) is committed only if
// that is the id it has now, else nothing is written
// (*UnknownTopicIDError); without ShardConfig.TopicID ids are unknown and
// not checked. mu is held from before the append until they are applied,
// so the shard applies its writes in log order and a transaction's
// CompleteTransaction never sees a write in flight (txn.go).
func (sh *Shard) commitOffsets(groupID string, producerID int64, commits map[TopicPartition]CommittedOffset, named map[string][16]byte, write func([]recordbatch.Record) (int64, error)) error {
	tps := make([]TopicPartition, 0, len(commits))
	for tp := range commits {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ids := make(map[string][16]byte)
	var replaced []string
	if sh.topicID != nil {
		for _, tp := range tps {
			if _, ok := ids[tp.Topic]; !ok {
				id, _ := sh.topicID(tp.Topic) // zero if unknown
				ids[tp.Topic] = id
				if want, ok := named[tp.Topic]; ok && want != id {
					replaced = append(replaced, tp.Topic) // tps is sorted by topic
				}
			}
		}
	}
	if len(replaced) > 0 {
		return &UnknownTopicIDError{Topics: replaced}
	}
	records := make([]recordbatch.Record, 0, len(tps))
	for _, tp := range tps {
		records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp), Value: offsetCommitValue(commits[tp], ids[tp.Topic])})
	}
	base, err := sh.writeLocked(records, func() (int64, error) { return write(records) })
	if err != nil {
		return err
	}
	for i, tp := range tps {
		sh.putOffsetLocked(groupID, tp, producerID, storedOffset{commits[tp], base + int64(i), ids[tp.Topic]})
	}
	return nil
}

// FetchOffset returns a group's committed offset of a partition (not a
// pending transactional one, nor one of a deleted topic whose tombstone is
// yet to be written).
func (sh *Shard) FetchOffset(groupID string, tp TopicPartition) (CommittedOffset, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.markDeletedLocked()
	c, ok := sh.offsets[groupID][tp]
	if !ok || sh.deletedLocked(groupID, tp) {
		return CommittedOffset{}, false
	}
	return c.CommittedOffset, true
}

// GroupOffsets returns every committed offset of a group (not the pending
// transactional ones, nor those of deleted topics whose tombstones are yet
// to be written).
func (sh *Shard) GroupOffsets(groupID string) map[TopicPartition]CommittedOffset {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.markDeletedLocked()
	out := make(map[TopicPartition]CommittedOffset, len(sh.offsets[groupID]))
	for tp, c := range sh.offsets[groupID] {
		if !sh.deletedLocked(groupID, tp) {
			out[tp] = c.CommittedOffset
		}
	}
	return out
}

// DeleteOffsets deletes a group's committed offsets of the given
// partitions (OffsetDelete), deciding as Kafka's
// GroupCoordinator.handleDeleteOffsets does from the group's state: an
// Empty group's are deleted; a consumer group with members (Stable or
// rebalancing) keeps those of the topics its generation subscribes to
// (subscribedTo), each refused with GROUP_SUBSCRIBED_TO_TOPIC; a group of
// another protocol type with members refuses the whole request
// (NON_EMPTY_GROUP). The decision and the tombstones are made with
// the group's offset commits held back (Coordinator.withDescription), as
// Kafka decides and writes under the group's lock: a consumer that joined
// and committed after the decision would otherwise have its fresh commit
// deleted. It returns the refused partitions with their error (the others
// are deleted, or had no commit), or an error for the whole request:
// GROUP_ID_NOT_FOUND for a group the coordinator does not have,
// NON_EMPTY_GROUP, the coordinator's or the write's (then nothing is
// deleted).
func (sh *Shard) DeleteOffsets(groupID string, tps []TopicPartition) (refused map[TopicPartition]error, err error) {
	err = sh.coord.withDescription(groupID, func(d Description, known bool) error {
		if !known {
			return kerr.GroupIDNotFound
		}
		if d.State != StateEmpty && d.ProtocolType != "consumer" {
			return kerr.NonEmptyGroup
		}
		subscribed := subscribedTo(d)
		var deleted []TopicPartition
		for _, tp := range tps {
			if subscribed(tp.Topic) {
				if refused == nil {
					refused = map[TopicPartition]error{}
				}
				refused[tp] = kerr.GroupSubscribedToTopic
			} else {
				deleted = append(deleted, tp)
			}
		}
		return sh.deleteOffsets(groupID, deleted)
	})
	if err != nil {
		return nil, err
	}
	return refused, nil
}

// subscribedTo is whether a consumer group described by d subscribes to a
// topic, for OffsetDelete: an Empty group to none; one with members, Stable
// or rebalancing, to the topics its current generation's members subscribe
// to (Kafka's GroupMetadata.isSubscribedToTopic), or, when those are not
// known (no generation yet, a subscription that does not decode), to every
// topic, which errs on keeping offsets.
func subscribedTo(d Description) func(topic string) bool {
	switch {
	case d.State == StateEmpty || d.State == StateDead:
		return func(string) bool { return false }
	case d.subscribed == nil:
		return func(string) bool { return true }
	default:
		return func(topic string) bool { return d.subscribed[topic] }
	}
}

// deleteOffsets writes tombstones for the given commits of a group (those
// that exist) and forgets them.
func (sh *Shard) deleteOffsets(groupID string, tps []TopicPartition) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var records []recordbatch.Record
	var gone []TopicPartition
	for _, tp := range tps {
		if _, ok := sh.offsets[groupID][tp]; ok {
			records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp)})
			gone = append(gone, tp)
		}
	}
	if _, err := sh.appendLocked(records); err != nil {
		return err
	}
	for _, tp := range gone {
		sh.deleteOffsetLocked(groupID, tp)
	}
	return nil
}

// DeleteGroup deletes an Empty group (DeleteGroups) and tombstones its
// offsets and metadata, under the group's lock (Coordinator.Delete).
func (sh *Shard) DeleteGroup(groupID string) error { return sh.coord.Delete(groupID) }

// DeleteGroupData implements Store: it writes the tombstones of a deleted
// group, its offsets (committed, and as Kafka does, those only pending in
// a transaction, so that the transaction's commit does not bring them
// back) and its metadata record. The coordinator calls it with the
// group's lock held (Coordinator.Delete); a failure leaves the group and
// its offsets as they were.
func (sh *Shard) DeleteGroupData(groupID string) error { return sh.deleteGroupData(groupID, false) }

// errGroupHasOffsets: offset expiry does not delete a group that has
// offsets again (committed or pending) by the time it is deleted.
var errGroupHasOffsets = errors.New("group: the group has offsets")

func (sh *Shard) deleteGroupData(groupID string, onlyWithoutOffsets bool) error {
	if sh.beforeTombstones != nil {
		sh.beforeTombstones(groupID)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if onlyWithoutOffsets && (len(sh.offsets[groupID]) > 0 || sh.txns.open(groupID)) {
		return errGroupHasOffsets
	}
	tps := make([]TopicPartition, 0, len(sh.offsets[groupID]))
	for tp := range sh.offsets[groupID] {
		tps = append(tps, tp)
	}
	for _, tp := range sh.txns.partitions(groupID) {
		if _, ok := sh.offsets[groupID][tp]; !ok {
			tps = append(tps, tp)
		}
	}
	sortTopicPartitions(tps)
	records := make([]recordbatch.Record, 0, len(tps)+1)
	for _, tp := range tps {
		records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp)})
	}
	records = append(records, recordbatch.Record{Key: groupMetadataKey(groupID)})
	if _, err := sh.appendLocked(records); err != nil {
		return err
	}
	for _, tp := range tps {
		sh.deleteOffsetLocked(groupID, tp)
	}
	return nil
}

// ExpireOffsets removes, as Kafka's offset expiration does (KIP-211):
//   - every offset of a group that has been Empty for retention (counted
//     from when it became Empty);
//   - offsets not committed for retention, of a group that never had
//     members (standalone consumers committing with generation -1);
//   - offsets of partitions that no longer exist, committed or pending in
//     a transaction;
//   - offsets of deleted topics, whatever their age: recorded before a
//     deletion TopicsDeleted reported, or with the id of a topic that has
//     another id now, or is gone (deletedLocked).
//
// Offsets of groups with members are kept (Kafka also expires, for Stable
// consumer groups, offsets of topics the group no longer subscribes to;
// not done here), and so is an offset whose partition has a pending
// transactional commit of the group (it is not expired by age yet, as in
// Kafka). An Empty group without offsets (left without them by this pass,
// or that had none: its members left without committing) is deleted, as
// Kafka's cleanup does, once no transaction has commits of it pending (a
// later pass, if one has now). A negative retention expires nothing by
// age. Each group is decided on, and its tombstones written, from its
// state with its offset commits held back (Coordinator.withDescription),
// as Kafka decides under the group's lock. A group whose expiry or
// deletion fails is logged and left for the next pass, and the pass goes
// on with the others (as Kafka's cleanup handles each group on its own);
// err is then the first such failure. The pass stops at NOT_COORDINATOR:
// the shard is closed.
func (sh *Shard) ExpireOffsets(now time.Time, retention time.Duration, exists func(TopicPartition) bool) (offsets, groups int, err error) {
	sh.mu.Lock()
	seen := map[string]bool{}
	ids := make([]string, 0, len(sh.offsets)+len(sh.txns.byGroup)+len(sh.txns.held))
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for id := range sh.offsets {
		add(id)
	}
	for id := range sh.txns.byGroup {
		add(id)
	}
	for id := range sh.txns.held {
		add(id)
	}
	sh.markDeletedLocked()
	deleted := maps.Clone(sh.deletedTopics)
	sh.mu.Unlock()
	// Empty groups without offsets too: Kafka deletes them at each pass.
	for _, l := range sh.coord.List(StateEmpty) {
		add(l.GroupID)
	}
	sort.Strings(ids)
	var emptied []string
	var failed error // the first group's failure
	for _, id := range ids {
		if sh.beforeExpiring != nil {
			sh.beforeExpiring(id)
		}
		// Decided from the group's state as it is while no commit of it
		// can be written (Kafka decides under the group's lock), so that
		// a commit made after the group rejoined is never taken for one
		// of an Empty group's.
		var expired int
		var empty bool
		err := sh.coord.withDescription(id, func(d Description, known bool) error {
			var err error
			expired, empty, err = sh.expireGroupOffsets(id, d, known, now, retention, exists)
			return err
		})
		offsets += expired
		if err != nil {
			if errors.Is(err, kerr.NotCoordinator) {
				return offsets, groups, err // the shard is no longer ours
			}
			sh.logger.Warn("expiring a group's committed offsets failed; retried next pass", "group", id, "err", err)
			if failed == nil {
				failed = err
			}
			continue
		}
		if empty {
			emptied = append(emptied, id)
		}
	}
	for _, id := range emptied {
		// Deleted under the group's lock, unless it has members or offsets
		// again by then (Kafka's cleanup checks both under the lock too).
		err := sh.coord.deleteWith(id, func() error { return sh.deleteGroupData(id, true) })
		switch {
		case err == nil:
			groups++
		case errors.Is(err, kerr.NonEmptyGroup), errors.Is(err, kerr.GroupIDNotFound), errors.Is(err, errGroupHasOffsets),
			errors.Is(err, errStoresPending):
			// members joined or offsets were committed meanwhile, or already
			// gone; or a record of the group is still being stored (retried
			// next pass if the group is still to be deleted then)
		case errors.Is(err, kerr.NotCoordinator):
			return offsets, groups, err
		default:
			sh.logger.Warn("deleting an expired group failed; retried next pass", "group", id, "err", err)
			if failed == nil {
				failed = err
			}
		}
	}
	if failed == nil { // every group's offsets of the deleted topics are gone
		sh.mu.Lock()
		maps.DeleteFunc(sh.deletedTopics, func(name string, before int64) bool { return deleted[name] == before })
		sh.mu.Unlock()
	}
	return offsets, groups, failed
}

// expireGroupOffsets writes the tombstones of a group's expired offsets
// (ExpireOffsets' rules, from the group's description d; known is false
// when the coordinator has no such group) and forgets them. It returns how
// many there were and whether the group is to be deleted: Empty, and left
// without offsets, committed or pending. Called with the group's writeMu
// held (Coordinator.withDescription).
func (sh *Shard) expireGroupOffsets(groupID string, d Description, known bool, now time.Time, retention time.Duration, exists func(TopicPartition) bool) (expired int, empty bool, err error) {
	expiredByAge := func(tp TopicPartition, c CommittedOffset) bool {
		switch {
		case retention < 0 || sh.txns.pending(groupID, tp) || !known || d.State != StateEmpty:
			return false
		case d.ProtocolType != "" && !d.StateTimestamp.IsZero():
			return now.Sub(d.StateTimestamp) >= retention
		default:
			return now.Sub(time.UnixMilli(c.Timestamp)) >= retention
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	committed := sh.offsets[groupID]
	tps := make([]TopicPartition, 0, len(committed))
	for tp := range committed {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	var gone []TopicPartition
	for _, tp := range tps {
		if !exists(tp) || sh.deletedLocked(groupID, tp) || expiredByAge(tp, committed[tp].CommittedOffset) {
			gone = append(gone, tp)
		}
	}
	for _, tp := range sh.txns.partitions(groupID) {
		if _, ok := committed[tp]; !ok && (!exists(tp) || sh.deletedLocked(groupID, tp)) {
			gone = append(gone, tp)
		}
	}
	records := make([]recordbatch.Record, 0, len(gone))
	for _, tp := range gone {
		records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp)})
	}
	if _, err := sh.appendLocked(records); err != nil {
		return 0, false, err
	}
	for _, tp := range gone {
		sh.deleteOffsetLocked(groupID, tp)
	}
	_, left := sh.offsets[groupID]
	switch {
	case left:
		delete(sh.txns.held, groupID) // committed to again: expires as usual
	case sh.txns.open(groupID):
		if len(gone) > 0 {
			sh.txns.held[groupID] = true // deleted by a pass after the transaction
		}
	default:
		// An Empty group that has (or is left with) no offsets, committed
		// or pending, is deleted, as Kafka's cleanup does: one whose
		// members left without committing, one a refused standalone
		// commit created, one a transaction held back.
		delete(sh.txns.held, groupID)
		empty = known && d.State == StateEmpty
	}
	return len(gone), empty, nil
}

// ErrorCode converts an error of this package (or a Log's) into the Kafka
// error code a client is to see.
func ErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// sortTopicPartitions sorts by topic, then partition.
func sortTopicPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// The record codecs: Kafka's own schemas, via kmsg.

func recordFromValue(id string, v *kmsg.GroupMetadataValue) Record {
	rec := Record{GroupID: id, ProtocolType: v.ProtocolType, GenerationID: v.Generation}
	if v.Protocol != nil {
		rec.Protocol = *v.Protocol
	}
	if v.Leader != nil {
		rec.LeaderID = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		rec.StateTimestamp = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, m := range v.Members {
		rm := RecordMember{
			MemberID:       m.MemberID,
			ClientID:       m.ClientID,
			ClientHost:     m.ClientHost,
			SessionTimeout: time.Duration(m.SessionTimeoutMillis) * time.Millisecond,
			Subscription:   m.Subscription,
			Assignment:     m.Assignment,
		}
		if m.InstanceID != nil {
			rm.GroupInstanceID = *m.InstanceID
		}
		if m.RebalanceTimeoutMillis > 0 {
			rm.RebalanceTimeout = time.Duration(m.RebalanceTimeoutMillis) * time.Millisecond
		}
		rec.Members = append(rec.Members, rm)
	}
	return rec
}

func groupMetadataKey(id string) []byte {
	k := kmsg.GroupMetadataKey{Version: 2, Group: id}
	return k.AppendTo(nil)
}

func groupMetadataValue(rec Record) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = rec.ProtocolType
	v.Generation = rec.GenerationID
	if rec.Protocol != "" || len(rec.Members) > 0 {
		// A group with members has a protocol, whose name may be "": it
		// is written as "", not null, as Kafka writes it.
		p := rec.Protocol
		v.Protocol = &p
	}
	if rec.LeaderID != "" {
		l := rec.LeaderID
		v.Leader = &l
	}
	if !rec.StateTimestamp.IsZero() {
		v.CurrentStateTimestamp = rec.StateTimestamp.UnixMilli()
	} else {
		v.CurrentStateTimestamp = -1
	}
	for _, m := range rec.Members {
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID = m.MemberID
		if m.GroupInstanceID != "" {
			id := m.GroupInstanceID
			mv.InstanceID = &id
		}
		mv.ClientID = m.ClientID
		mv.ClientHost = m.ClientHost
		mv.RebalanceTimeoutMillis = int32(m.RebalanceTimeout / time.Millisecond)
		mv.SessionTimeoutMillis = int32(m.SessionTimeout / time.Millisecond)
		mv.Subscription = m.Subscription
		if mv.Subscription == nil {
			mv.Subscription = []byte{}
		}
		mv.Assignment = m.Assignment
		if mv.Assignment == nil {
			mv.Assignment = []byte{}
		}
		v.Members = append(v.Members, mv)
	}
	return v.AppendTo(nil)
}

func offsetCommitKey(groupID string, tp TopicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: 1, Group: groupID, Topic: tp.Topic, Partition: tp.Partition}
	return k.AppendTo(nil)
}

// offsetCommitValue encodes a commit: as v4 with the topic's id (tagged
// field 0, as Kafka 4.x writes it) when it is known, else as v3.
func offsetCommitValue(c CommittedOffset, topicID [16]byte) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	if topicID != ([16]byte{}) {
		v.Version = 4
		v.TopicID = topicID
	}
	v.Offset = c.Offset
	v.LeaderEpoch = c.LeaderEpoch
	v.Metadata = c.Metadata
	v.CommitTimestamp = c.Timestamp
	return v.AppendTo(nil)
}
