package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Partition is one partition replica on this broker (see the package doc
// for the locking contract).
type Partition struct {
	topic   string
	topicID [16]byte
	index   int32
	self    int32 // this broker's id
	dir     string
	log     *slog.Logger

	segments *segment.Log
	config   atomic.Pointer[topicconfig.Values]
	// segmentWriteFault is Config.SegmentWriteFault, segmentSyncFault
	// Config.SegmentSyncFault (tests only).
	segmentWriteFault func(size int) (written int, err error)
	segmentSyncFault  func() error

	// leading and leaderEpoch follow the metadata state (ApplyAssignment,
	// on every change): appends are accepted only while this broker leads,
	// and stamped with the leader epoch. highWatermark: consumers read
	// below it, acks=all waits for it.
	leading       atomic.Bool
	leaderEpoch   atomic.Int32
	highWatermark atomic.Int64
	// leaderStart is the log end when this replica's current leadership
	// began (KIP-207's epoch start offset; OffsetsAvailable).
	leaderStart atomic.Int64

	// checkpointMu guards checkpointed, the high watermark last written to
	// the checkpoint, and serializes the checkpoint's writes. Taken inside
	// appendMu, never the other way round.
	checkpointMu sync.Mutex
	checkpointed int64
	// removed is set by Removing and Remove (with appendMu and
	// checkpointMu held): the directory is no longer this partition's (a
	// topic re-created under the same name may have it now, or will), so
	// nothing is written to it any more: no producer snapshot, high watermark or leader epoch
	// checkpoint of a removed partition's state, which a work in progress
	// that listed the partition before (a maintenance round, a tier
	// manager pass) would otherwise leave in its successor's directory.
	removed atomic.Bool
	// topicDeleted tells why the partition was removed (appendMu): its
	// topic was deleted, rather than this broker no longer hosting it.
	topicDeleted bool

	// appendMu guards producers, txnVerified, snapshotEnd, seenRolls, epochs, assignment, followers,
	// isrChanging, isrPending, isrInFlight, isrRetry, isrInFlightEpochs, isrRetryEpochs,
	// isrInFlightBump, isrRetryBump, isrUnknown, isrBasis, brokerEpochs and
	// storageFailed, and
	// serializes check →
	// append → update.
	appendMu  sync.Mutex
	producers *producer.State
	// txnVerified holds the producers whose transaction a verification
	// (StartTxnVerification) says includes this partition, until a marker
	// for the producer or the transaction's first batch (txn.go).
	txnVerified map[int64]int16 // producer id → the epoch verified
	// firstUnstable is the first offset of the earliest open transaction
	// (math.MaxInt64: none), published under appendMu for
	// LastStableOffset.
	firstUnstable atomic.Int64
	// held are the completed transactions whose marker is not yet below
	// the high watermark: each still holds the LSO at its first offset
	// (txn.go). Replaced under appendMu, read without it.
	held   atomic.Pointer[[]heldTxn]
	epochs epochCache
	// assignment is the partition's replicated state as last applied;
	// followers what the leader knows of each follower (leader only).
	assignment  metadata.Partition
	followers   map[int32]*followerState
	isrChanging bool // an ISR change proposed by this leader is in flight
	// isrPending holds the members of ISR changes this leader proposed
	// whose outcome its assignment does not show yet: they count for the
	// high watermark (Kafka's maximal ISR) until an assignment at partition
	// epoch isrPendingUntil or later is applied (or a new term begins).
	isrPending      []int32
	isrPendingUntil int32
	// isrInFlight is the ISR of the change in flight; isrRetry that of a
	// change whose outcome is unknown (a timeout), proposed again as is
	// before any other (as Kafka's AlterPartition is retried) until the
	// controller answers or an assignment past its partition epoch is
	// applied.
	isrInFlight []int32
	isrRetry    []int32
	// isrInFlightEpochs and isrRetryEpochs are those changes' ISR broker
	// epochs (metadata.PartitionChange.ISRBrokerEpochs; nil: none): an
	// expansion names the epoch the added follower fetched with, and a
	// retry names it again (KIP-903).
	isrInFlightEpochs []int64
	isrRetryEpochs    []int64
	// isrInFlightBump and isrRetryBump: those changes bump the leader
	// epoch with the ISR kept (metadata.PartitionChange.BumpLeaderEpoch;
	// LaggingISR), which moves the partition epoch past proposals whose
	// outcome is unknown.
	isrInFlightBump bool
	isrRetryBump    bool
	// isrUnknown: a proposal counted in isrPending had an unknown outcome
	// (it may still commit).
	isrUnknown bool
	// isrBasis is the assignment the change in flight was computed from
	// (ISRChangeBasis).
	isrBasis metadata.Partition
	// brokerEpochs is the broker epoch (registration) of each replica's
	// broker as last observed (ObserveRegistrations); -1: not registered.
	brokerEpochs map[int32]int64
	// liveReplicas are the replicas whose broker was registered and
	// unfenced when last observed (ObserveRegistrations): Kafka's alive
	// brokers, whose log start DeleteRecords waits for (LowWatermark).
	liveReplicas map[int32]bool
	assigned     bool // applyAssignment ran at least once
	// snapshotEnd is the log end offset the newest producer snapshot was
	// taken at (-1: none); an unchanged partition is not snapshotted again.
	snapshotEnd int64
	// seenRolls is the log's roll count (segment.Log.Rolls) when the
	// producer state was last snapshotted for a roll (snapshotAtRollLocked).
	seenRolls int64
	// storageFailed: an append failed on this broker's disk during the
	// current leadership term (StorageResignation hands the term over).
	storageFailed bool

	waitersMu sync.Mutex // guards waiters, appendHolds and appendWakeup
	waiters   map[chan struct{}]struct{}
	// appendHolds counts the HoldAppendWakeups in force: an Append then
	// leaves its wakeup to the last release (appendWakeup: one is owed).
	appendHolds  int
	appendWakeup bool

	// Durable mode (sync.go): syncs bounds the fsyncs running at once;
	// syncMu guards syncRunning (a goroutine is syncing this partition) and
	// syncAgain (appends came while it ran: sync once more). A failed
	// fsync fails the log (LogFailed). syncLog is segments.Sync (tests
	// wrap it).
	syncs       *SyncPool
	syncMu      sync.Mutex
	syncRunning bool
	syncAgain   bool
	syncLog     func() (int64, error)

	// afterLeaderCheckLocked, when set (tests only), runs in Append with
	// appendMu held, after the leadership check and before the append:
	// tests force interleavings there.
	afterLeaderCheckLocked func()

	cleanMu     sync.Mutex // guards lastCleaned
	lastCleaned time.Time  // when the log cleaner last cleaned (or first looked at) this log

	// retentionMu serializes config changes with retention-limit updates,
	// so local retention never runs with a tiered topic's local retention
	// and no limit (which would delete segments not yet uploaded).
	retentionMu sync.Mutex
}

// producerSnapshotSuffix names producer-state snapshots in a partition
// directory: <log end offset, 20 digits>.snapshot, as in Kafka. The
// snapshot holds the state of every producer for the log below that offset;
// recovery loads the newest one at or below the log end and replays the
// batch headers after it.
const producerSnapshotSuffix = ".snapshot"

// producerSnapshotPath is the file of the producer snapshot at offset.
func (p *Partition) producerSnapshotPath(offset int64) string {
	return filepath.Join(p.dir, fmt.Sprintf("%020d%s", offset, producerSnapshotSuffix))
}

// producerSnapshotFile is a producer snapshot in the partition directory.
type producerSnapshotFile struct {
	path   string
	offset int64 // the log offset it covers the batches below
}

// producerSnapshotFiles lists the partition's producer snapshots, oldest
// first (files whose names are not an offset are left out).
func (p *Partition) producerSnapshotFiles() []producerSnapshotFile {
	paths, _ := filepath.Glob(filepath.Join(p.dir, "*"+producerSnapshotSuffix))
	sort.Strings(paths) // 20-digit names sort by offset
	files := make([]producerSnapshotFile, 0, len(paths))
	for _, path := range paths {
		offset, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(path), producerSnapshotSuffix), 10, 64)
		if err == nil {
			files = append(files, producerSnapshotFile{path: path, offset: offset})
		}
	}
	return files
}

func segmentConfig(v topicconfig.Values, log *slog.Logger) segment.Config {
	ms := func(n int64) time.Duration {
		if n < 0 {
			return -1
		}
		if n >= math.MaxInt64/int64(time.Millisecond) {
			return 0 // "never" in segment.Config
		}
		return time.Duration(n) * time.Millisecond
	}
	flushMessages := v.FlushMessages
	if flushMessages == math.MaxInt64 || isDurable(&v) {
		// flush.messages=1 is the durable mode: the partition fsyncs
		// outside the append lock (group commit, sync.go), not the log
		// inside every append.
		flushMessages = 0
	}
	retentionMs, retentionBytes := v.RetentionMs, v.RetentionBytes
	if v.RemoteStorage && !v.RemoteLogCopyDisable {
		// Local retention of a tiered topic: uploaded segments leave local
		// disk past local.retention.*; the tier keeps them up to
		// retention.* (and nothing not uploaded leaves: the partition's
		// retention limit).
		retentionMs, retentionBytes = v.LocalRetentionMs, v.LocalRetentionBytes
	}
	retention := ms(retentionMs)
	switch {
	case retentionMs < 0 || !v.Delete:
		retention = -1 // cleanup.policy=compact alone deletes nothing by age
	case retention == 0 && retentionMs > 0:
		// Beyond a time.Duration (Long.MAX_VALUE): never. 0 in
		// segment.Config is the 7-day default.
		retention = -1
	case retentionMs == 0:
		// As Kafka: whatever is older than now goes (0 in segment.Config
		// is the default).
		retention = time.Nanosecond
	}
	switch {
	case !v.Delete:
		retentionBytes = -1
	case retentionBytes == 0:
		retentionBytes = segment.NoRetainedBytes // 0 in segment.Config is the default, no limit
	}
	segmentAge := ms(v.SegmentMs)
	if segmentAge == 0 {
		segmentAge = time.Duration(math.MaxInt64) // 0 would mean the default
	}
	if lag := ms(v.MaxCompactionLagMs); v.Compact && lag > 0 {
		// Kafka's maxSegmentMs (KIP-354): the cleaner never cleans the
		// active segment, so it rolls within max.compaction.lag.ms.
		segmentAge = min(segmentAge, lag)
	}
	return segment.Config{
		SegmentBytes:       v.SegmentBytes,
		SegmentAge:         segmentAge,
		IndexIntervalBytes: v.IndexIntervalBytes,
		// segment.index.bytes may be as low as 8 (topicconfig), below one
		// time index entry, which the log refuses: such an index holds one
		// entry, so the log rolls after every indexed batch, as Kafka's
		// does, instead of failing to open.
		MaxIndexBytes:  max(v.SegmentIndexBytes, index.TimeEntrySize),
		RetentionAge:   retention,
		RetentionBytes: retentionBytes,
		FlushMessages:  flushMessages,
		FlushInterval:  ms(v.FlushMs),
		Logger:         log,
	}
}

// Config describes a partition replica to open.
type Config struct {
	// Dir is the partition's directory (created if missing): the log,
	// its indexes, partition.metadata with TopicID, the leader-epoch
	// checkpoint and producer snapshots.
	Dir     string
	Topic   string
	TopicID [16]byte
	Index   int32
	// Self is this broker's id: the replica ApplyAssignment compares the
	// leader with.
	Self int32
	// Values are the topic's resolved configs.
	Values topicconfig.Values
	// Logger gets the partition's events; default slog.Default().
	Logger *slog.Logger
	// Syncs is the broker's pool of durable-mode fsyncs; default a pool
	// shared by the partitions opened without one.
	Syncs *SyncPool
	// SegmentWriteFault, when set (tests only), fails appends' writes as a
	// full or failing disk does (segment.Config.WriteFault).
	SegmentWriteFault func(size int) (written int, err error)
	// SegmentSyncFault, when set (tests only), fails the log's fsyncs as a
	// failing disk does (segment.Config.SyncFault).
	SegmentSyncFault func() error
}

// Open opens (recovering) or creates a partition replica: the log is
// checked and its torn tail cut, the producer state is loaded from the
// newest snapshot and the batch headers after it, and the leader-epoch
// cache from its checkpoint (or the batch headers). The replica neither
// leads nor follows until ApplyAssignment; its high watermark starts at its
// checkpoint (replication-offset-checkpoint) within the recovered log, or
// at the log start without one (nothing is known to be committed yet).
func Open(cfg Config) (p *Partition, err error) {
	topic, index, dir := cfg.Topic, cfg.Index, cfg.Dir
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("topic", topic, "partition", index)
	created, err := claimDir(dir, cfg.TopicID)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	defer func() {
		// A partition that was never here leaves nothing behind: a failed
		// creation (out of file descriptors, a full disk) must not leave
		// a directory that no topic owns.
		if err != nil && created {
			if removeErr := segment.RemoveLogDirectory(dir); removeErr != nil {
				log.Error("removing the directory of a partition that failed to open", "dir", dir, "err", removeErr)
			}
		}
	}()
	if err := segment.WritePartitionMetadata(dir, cfg.TopicID); err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	values := cfg.Values
	segmentCfg := segmentConfig(values, log)
	segmentCfg.WriteFault, segmentCfg.SyncFault = cfg.SegmentWriteFault, cfg.SegmentSyncFault
	segs, err := segment.Open(dir, 0, segmentCfg)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: open log: %w", topic, index, err)
	}
	p = &Partition{
		topic:       topic,
		topicID:     cfg.TopicID,
		index:       index,
		self:        cfg.Self,
		dir:         dir,
		log:         log,
		segments:    segs,
		waiters:     make(map[chan struct{}]struct{}),
		syncs:       cfg.Syncs,
		txnVerified: map[int64]int16{},
		syncLog:     segs.Sync,
	}
	if p.syncs == nil {
		p.syncs = defaultSyncPool
	}
	p.segmentWriteFault, p.segmentSyncFault = cfg.SegmentWriteFault, cfg.SegmentSyncFault
	p.config.Store(&values)
	if err := p.recoverProducers(); err != nil {
		segs.Close()
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	if err := p.loadEpochCache(); err != nil {
		segs.Close()
		return nil, fmt.Errorf("partition %s-%d: %w", topic, index, err)
	}
	// The high watermark restarts where it was checkpointed, within the
	// recovered log; without a checkpoint nothing is known to be committed
	// until the leader says so (or, as a leader, the ISR has it).
	highWatermark := segs.StartOffset()
	p.checkpointed = -1
	if checkpointed, ok := readHighWatermarkCheckpoint(dir, topic, index); ok {
		highWatermark = min(max(checkpointed, segs.StartOffset()), segs.EndOffset())
		p.checkpointed = checkpointed
	}
	p.highWatermark.Store(highWatermark)
	if p.checkpointed > highWatermark {
		// The log lost records the checkpoint counted (an unsynced tail
		// cut by recovery): lower the checkpoint too, as a truncation
		// does, or a later crash brings the old value back over records
		// that will have replaced them.
		if err := p.checkpointHighWatermark(); err != nil {
			log.Warn("writing the high watermark checkpoint failed", "err", err)
		}
	}
	return p, nil
}

// ErrNotOurDirectory marks a partition directory that exists but is not
// this partition's: its partition.metadata names another topic id, or it
// has none and holds files. Such a directory is neither used nor deleted.
var ErrNotOurDirectory = errors.New("partition: directory belongs to something else")

// claimDir makes dir this partition's directory: it creates it (created
// reports that), or checks that the existing one is this partition's — it
// holds partition.metadata with topicID, or nothing but the leftovers of
// a creation that crashed before partition.metadata was written.
func claimDir(dir string, topicID [16]byte) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	id, err := segment.ReadPartitionMetadata(dir)
	switch {
	case err == nil && id == topicID:
		return false, nil
	case err == nil:
		return false, fmt.Errorf("%w: %s holds partition.metadata of topic id %x", ErrNotOurDirectory, dir, id)
	case !errors.Is(err, segment.ErrNoPartitionMetadata):
		return false, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), atomicfile.TempSuffix) {
			return false, fmt.Errorf("%w: %s exists without partition.metadata and holds %s; move it out of the data dir", ErrNotOurDirectory, dir, e.Name())
		}
	}
	return false, nil
}

// recoverProducers loads the newest usable producer snapshot and replays the
// batch headers after it.
func (p *Partition) recoverProducers() error {
	end := p.segments.EndOffset()
	snapshots := p.producerSnapshotFiles()
	p.snapshotEnd = -1
	for i := len(snapshots) - 1; i >= 0; i-- {
		if snapshots[i].offset > end {
			// Taken before the log lost its tail (an unsynced tail cut by
			// recovery): it describes batches that are gone. As Kafka does,
			// delete it so it is never loaded once the log grows back.
			// The removal is made durable before anything is appended: a
			// power loss after the log has grown past the snapshot's
			// offset again would otherwise bring it back, and it would be
			// loaded.
			p.log.Warn("removing a producer snapshot above the recovered log end", "file", snapshots[i].path, "log_end_offset", end)
			if err := os.Remove(snapshots[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove producer snapshot above the log end: %w", err)
			}
			if err := atomicfile.SyncDir(p.dir); err != nil {
				return fmt.Errorf("remove producer snapshot above the log end: %w", err)
			}
		}
	}
	state, from, loaded := p.loadProducerSnapshot(p.segments.StartOffset(), end)
	if loaded {
		p.snapshotEnd = from
	}
	// The aborted-transaction index above the snapshot is rebuilt from the
	// markers replayed: what a crash lost of it is written again.
	if err := p.segments.TruncateAbortedTxns(from); err != nil {
		return fmt.Errorf("rebuild aborted transaction index from offset %d: %w", from, err)
	}
	var aborted []segment.AbortedTxn
	replayed, err := p.replayProducers(state, from, math.MaxInt64, &aborted)
	if err != nil {
		return fmt.Errorf("rebuild producer state from offset %d: %w", from, err)
	}
	for _, t := range aborted {
		if err := p.segments.AppendAbortedTxn(t); err != nil {
			return fmt.Errorf("rebuild aborted transaction index: %w", err)
		}
	}
	p.producers = state
	p.updateFirstUnstableLocked()
	p.dropHeldAboveLocked(end)
	if replayed > 0 {
		p.log.Info("rebuilt producer state from the log", "from_offset", from, "batches", replayed, "producers", state.Len())
	}
	return nil
}

// loadProducerSnapshot reads the newest readable producer snapshot at an
// offset in from..to and returns its state and offset (loaded); without
// one, a new state and from. Snapshots below the log start (from, for the
// callers) cannot be used: the records between them and the log start are
// gone, and replaying from the log start instead would forget the producers
// known only from the deleted records.
func (p *Partition) loadProducerSnapshot(from, to int64) (state *producer.State, offset int64, loaded bool) {
	snapshots := p.producerSnapshotFiles()
	for i := len(snapshots) - 1; i >= 0; i-- {
		if snapshots[i].offset < from || snapshots[i].offset > to {
			continue
		}
		f, err := os.Open(snapshots[i].path)
		if err != nil {
			continue // pruned since it was listed
		}
		state, err := producer.ReadSnapshot(f)
		f.Close()
		if err != nil {
			p.log.Warn("ignoring unreadable producer snapshot; rebuilding from the log", "file", snapshots[i].path, "err", err)
			continue
		}
		return state, snapshots[i].offset, true
	}
	return producer.NewState(), from, false
}

// ProducerStateAt returns the producer state of the log below offset (a
// batch boundary from the log start to the log end): the local snapshot
// newest at or below it, with the batches after that snapshot replayed, as
// recovery builds it. It holds the producers known only from records
// retention deleted, which the snapshots keep. Safe to call concurrently
// with appends; the records from the log start to offset must not be
// deleted meanwhile (the tier manager's are protected by the retention
// limit until uploaded).
func (p *Partition) ProducerStateAt(offset int64) (*producer.State, error) {
	state, from, _ := p.loadProducerSnapshot(p.segments.StartOffset(), offset)
	if err := p.ReplayProducers(state, from, offset); err != nil {
		return nil, fmt.Errorf("producer state from %d to %d: %w", from, offset, err)
	}
	return state, nil
}

// ReplayProducers applies to state the producer batches and transaction
// markers of the log from offset from up to (not including) end: the
// producer state a snapshot at end holds, given the state at from.
func (p *Partition) ReplayProducers(state *producer.State, from, end int64) error {
	_, err := p.replayProducers(state, from, end, nil)
	return err
}

// errStopScan ends a Scan early.
var errStopScan = errors.New("stop scan")

// replayProducers is ReplayProducers; with aborted, it also collects the
// aborted-transaction index entries of the ABORT markers replayed.
func (p *Partition) replayProducers(state *producer.State, from, end int64, aborted *[]segment.AbortedTxn) (replayed int, err error) {
	err = p.segments.ScanWithControl(from, func(h recordbatch.Header, control []byte) error {
		if h.BaseOffset >= end {
			return errStopScan
		}
		if h.BaseOffset < from || !h.HasProducerID() {
			return nil
		}
		replayed++
		if control == nil {
			state.Update(batchMeta(h, h.BaseOffset))
			return nil
		}
		done, ok, err := replayMarker(state, h, control)
		if err != nil {
			return fmt.Errorf("control batch at offset %d: %w", h.BaseOffset, err)
		}
		if ok && done.Aborted && aborted != nil {
			*aborted = append(*aborted, abortedEntry(done, state))
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return replayed, err
}

func batchMeta(h recordbatch.Header, baseOffset int64) producer.BatchMeta {
	return producer.BatchMeta{
		ProducerID:   h.ProducerID,
		Epoch:        h.ProducerEpoch,
		FirstSeq:     h.BaseSequence,
		LastSeq:      h.LastSequence(),
		FirstOffset:  baseOffset,
		LastOffset:   baseOffset + int64(h.LastOffsetDelta),
		MaxTimestamp: h.MaxTimestamp,
		// Control batches are transactional too, but end transactions
		// (replayMarker) rather than open them.
		Transactional: h.IsTransactional() && !h.IsControl(),
	}
}

// replayMarker applies the transaction marker of a control batch (the
// whole batch, header h) to state; ok is false for a control batch that is
// not a transaction marker.
func replayMarker(state *producer.State, h recordbatch.Header, control []byte) (done producer.CompletedTxn, ok bool, err error) {
	marker, ok, err := recordbatch.ParseMarker(control)
	if err != nil || !ok {
		return producer.CompletedTxn{}, false, err
	}
	m := producer.Marker{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, CoordinatorEpoch: marker.CoordinatorEpoch, Commit: marker.Type == recordbatch.ControlCommit}
	return state.CompleteTxn(m, h.BaseOffset, h.MaxTimestamp), true, nil
}

// writeProducerSnapshot persists the producer state at the current log end
// and prunes the snapshots: those below the log start go, and of the rest
// the newest and the oldest in each segment's offsets stay (so a
// truncation within a segment finds one at or below its offset, as
// Kafka's snapshot at every segment roll does: snapshotAtRollLocked).
// Called with appendMu held.
func (p *Partition) writeProducerSnapshotLocked() error {
	return p.writeProducerSnapshotAtLocked(p.segments.EndOffset())
}

// writeEpochsLocked writes the leader epoch checkpoint, unless the
// partition was removed. Called with appendMu held.
func (p *Partition) writeEpochsLocked() error {
	if p.removed.Load() {
		return nil
	}
	return p.epochs.write(p.dir)
}

// writeProducerSnapshotAtLocked is writeProducerSnapshotLocked for a
// producer state that covers the batches below end (which may be below
// the log end: snapshotAtRollLocked). Called with appendMu held.
func (p *Partition) writeProducerSnapshotAtLocked(end int64) error {
	if end == p.snapshotEnd || p.removed.Load() {
		return nil // nothing appended since the last snapshot, or the directory is gone
	}
	if err := atomicfile.Write(p.producerSnapshotPath(end), fsperm.File, p.producers.WriteSnapshot); err != nil {
		return err
	}
	p.snapshotEnd = end
	p.pruneProducerSnapshotsLocked()
	return nil
}

// pruneProducerSnapshotsLocked removes the producer snapshots below the
// log start and, of the others, all but the newest and the oldest in
// each segment. Called with appendMu held.
func (p *Partition) pruneProducerSnapshotsLocked() {
	snapshots := p.producerSnapshotFiles()
	var bases []int64
	for _, s := range p.segments.Segments() {
		bases = append(bases, s.BaseOffset)
	}
	start := p.segments.StartOffset()
	kept := map[int]bool{} // segment index -> its oldest snapshot is kept
	for i, f := range snapshots {
		segment := sort.Search(len(bases), func(j int) bool { return bases[j] > f.offset }) - 1
		switch {
		case f.offset < start:
		case i == len(snapshots)-1:
			continue
		case !kept[segment]:
			kept[segment] = true
			continue
		}
		os.Remove(f.path)
	}
}

// snapshotAtRollLocked writes a producer snapshot at base when the append
// just made at base rolled a segment (a segment rolls only at the start of
// an append, so base is the new segment's base offset), as Kafka
// snapshots at every roll. It must be called after the append and before
// the producer state takes the appended batches. Every segment then keeps
// a snapshot at its start, and a truncation (a follower agreeing with a
// new leader) rebuilds the state from the newest at or below its offset
// instead of from the log start, which would forget the producers known
// only from records retention deleted (KIP-360 keeps them). Called with
// appendMu held.
func (p *Partition) snapshotAtRollLocked(base int64) {
	rolls := p.segments.Rolls()
	if rolls == p.seenRolls {
		return
	}
	p.seenRolls = rolls
	if err := p.writeProducerSnapshotAtLocked(base); err != nil {
		p.log.Warn("producer snapshot at a segment roll failed", "offset", base, "err", err)
	}
}

// keepProducerSnapshotLocked writes a producer snapshot (at the log end)
// when the newest one (snapshotEnd: snapshots are written at increasing
// offsets, and recovery sets it to the one it loaded) lies below logStart,
// the log start offset retention or DeleteRecords moves to: recovery
// cannot replay the deleted records after such a snapshot and would skip
// it, rebuilding from the log start and forgetting the producers known
// only from the deleted records, whose state KIP-360 keeps until
// producer.id.expiration.ms. Called with appendMu held.
func (p *Partition) keepProducerSnapshotLocked(logStart int64) {
	if p.snapshotEnd >= logStart {
		return
	}
	if err := p.writeProducerSnapshotLocked(); err != nil {
		p.log.Warn("producer snapshot above the new log start failed", "log_start_offset", logStart, "err", err)
	}
}

// Error is a produce failure with the Kafka error code the client gets.
type Error struct {
	Code    int16
	Message string
}

func (e *Error) Error() string { return e.Message }

// Append validates one produced batch (records holds exactly one, as
// Produce v3+ carries), stamps it with the leader epoch (and the append
// time under LogAppendTime) and appends it, de-duplicating idempotent
// retries (the original's base offset is returned). It returns the batch's
// base offset and the log-append time (or -1); a failure is an *Error.
func (p *Partition) Append(records []byte, produceVersion int16, now time.Time) (baseOffset, appendTime int64, err error) {
	return p.appendBatch(records, produceVersion, now, false)
}

// AppendFromCoordinator appends one batch that a coordinator writes on a
// producer's behalf (the group coordinator's transactional offset
// commits): checked like a produced batch, except that the producer is
// fenced by its epoch alone — the batch's sequence is the coordinator's,
// neither checked nor de-duplicated (producer.State.CheckCoordinator).
func (p *Partition) AppendFromCoordinator(records []byte, now time.Time) (baseOffset int64, err error) {
	baseOffset, _, err = p.appendBatch(records, coordinatorProduceVersion, now, true)
	return baseOffset, err
}

// coordinatorProduceVersion is the Produce version a coordinator's batch
// is checked as: one that allows every codec.
const coordinatorProduceVersion = 9

func (p *Partition) appendBatch(records []byte, produceVersion int16, now time.Time, fromCoordinator bool) (baseOffset, appendTime int64, err error) {
	cfg := p.config.Load()
	spans, err := recordbatch.Split(records)
	if err != nil {
		return 0, -1, &Error{Code: recordbatch.ErrorCode(err), Message: err.Error()}
	}
	if len(spans) != 1 {
		return 0, -1, &Error{Code: kerr.InvalidRecord.Code, Message: fmt.Sprintf("produce requests v3+ must carry exactly one record batch per partition, got %d", len(spans))}
	}
	batch := records[spans[0].Position : spans[0].Position+spans[0].Length]
	limits := recordbatch.Limits{MaxBatchBytes: cfg.MaxMessageBytes, RequireKeys: cfg.Compact}
	if !cfg.LogAppendTime {
		limits.CheckTimestamps = true
		limits.EarliestTimestamp, limits.LatestTimestamp = recordbatch.TimestampWindow(now.UnixMilli(), cfg.TimestampBeforeMaxMs, cfg.TimestampAfterMaxMs)
	}
	h, err := recordbatch.Validate(batch, limits)
	if err != nil {
		return 0, -1, &Error{Code: recordbatch.ErrorCode(err), Message: err.Error()}
	}
	if h.Codec() == recordbatch.Zstd && produceVersion < 7 {
		return 0, -1, &Error{Code: kerr.UnsupportedCompressionType.Code, Message: "zstd-compressed batches need Produce v7 or later"}
	}
	if h.IsTransactional() && !h.HasProducerID() {
		return 0, -1, &Error{Code: kerr.InvalidRecord.Code, Message: "a transactional batch needs a producer id"}
	}
	if codec, ok := storedCodec(cfg.Compression); ok && codec != h.Codec() && !h.IsControl() {
		if batch, h, err = recode(batch, codec, cfg.MaxMessageBytes); err != nil {
			return 0, -1, err
		}
	}
	if int64(len(batch)) > cfg.SegmentBytes {
		return 0, -1, &Error{Code: kerr.RecordListTooLarge.Code, Message: fmt.Sprintf("batch of %d bytes is larger than segment.bytes (%d)", len(batch), cfg.SegmentBytes)}
	}
	appendTime = -1
	if cfg.LogAppendTime {
		appendTime = now.UnixMilli()
		recordbatch.SetLogAppendTime(batch, appendTime)
		h.MaxTimestamp = appendTime
	}

	p.appendMu.Lock()
	if !p.leading.Load() {
		p.appendMu.Unlock()
		return 0, -1, &Error{Code: kerr.NotLeaderForPartition.Code, Message: "this broker does not lead the partition (any more)"}
	}
	if p.afterLeaderCheckLocked != nil {
		p.afterLeaderCheckLocked()
	}
	recordbatch.SetPartitionLeaderEpoch(batch, p.leaderEpoch.Load())
	if h.HasProducerID() {
		var dup *producer.BatchMeta
		var err error
		if fromCoordinator {
			err = p.producers.CheckCoordinator(batchMeta(h, -1))
		} else {
			dup, err = p.producers.Check(batchMeta(h, -1))
		}
		if err != nil {
			p.appendMu.Unlock()
			return 0, -1, &Error{Code: producer.ErrorCode(err), Message: err.Error()}
		}
		if dup != nil {
			p.appendMu.Unlock()
			if cfg.LogAppendTime {
				// The stored batch's append time, as Kafka answers a
				// duplicate: its max timestamp was set to it.
				appendTime = dup.MaxTimestamp
			}
			return dup.FirstOffset, appendTime, nil
		}
		if err := p.checkTxnLocked(h); err != nil {
			p.appendMu.Unlock()
			return 0, -1, err
		}
	}
	base, _, err := p.segments.Append(batch, []segment.AppendBatch{{
		Position:        0,
		Length:          int32(len(batch)),
		LastOffsetDelta: h.LastOffsetDelta,
		MaxTimestamp:    h.MaxTimestamp,
		Records:         h.NumRecords,
	}})
	if err != nil {
		if errors.Is(err, segment.ErrClosed) {
			p.appendMu.Unlock()
			// The topic was deleted (or the broker is stopping) meanwhile.
			return 0, -1, &Error{Code: kerr.UnknownTopicOrPartition.Code, Message: "the partition is no longer hosted here"}
		}
		first := p.storageFailedLocked()
		p.appendMu.Unlock()
		if first {
			p.log.Error("append failed; handing leadership to another in-sync replica", "err", err)
		} else {
			p.log.Debug("append failed again; the partition is being handed over", "err", err)
		}
		return 0, -1, &Error{Code: kerr.KafkaStorageError.Code, Message: "append failed: " + err.Error()}
	}
	p.snapshotAtRollLocked(base)
	if h.HasProducerID() {
		p.producers.Update(batchMeta(h, base))
		if h.IsTransactional() {
			delete(p.txnVerified, h.ProducerID) // the transaction is open: no longer needed
			p.updateFirstUnstableLocked()
		}
	}
	p.advanceHighWatermarkLocked()
	p.appendMu.Unlock()
	if p.Durable() {
		p.requestSync()
	}
	p.notifyAppended()
	return base, appendTime, nil
}

// storedCodec is the codec compression.type makes the leader store
// produced batches with; ok is false for "producer" (each batch keeps the
// producer's codec).
func storedCodec(compression string) (codec recordbatch.Codec, ok bool) {
	switch compression {
	case "uncompressed":
		return recordbatch.None, true
	case "gzip":
		return recordbatch.Gzip, true
	case "snappy":
		return recordbatch.Snappy, true
	case "lz4":
		return recordbatch.LZ4, true
	case "zstd":
		return recordbatch.Zstd, true
	default:
		return 0, false
	}
}

// recode re-encodes a validated produced batch with codec, as Kafka's
// leader does when the topic's compression.type differs from the
// producer's codec: same header (offsets, producer id, epoch, sequences,
// attributes but the codec) and records. max.message.bytes applies to
// the batch as stored, as in Kafka; a failure is an *Error.
func recode(batch []byte, codec recordbatch.Codec, maxMessageBytes int32) ([]byte, recordbatch.Header, error) {
	recoded, err := recordbatch.Recode(batch, codec)
	if err != nil {
		return nil, recordbatch.Header{}, &Error{Code: recordbatch.ErrorCode(err), Message: "re-encode with compression.type " + codec.String() + ": " + err.Error()}
	}
	if maxMessageBytes > 0 && len(recoded) > int(maxMessageBytes) {
		return nil, recordbatch.Header{}, &Error{Code: kerr.MessageTooLarge.Code, Message: fmt.Sprintf("batch of %d bytes re-encoded with %v is larger than max.message.bytes (%d)", len(recoded), codec, maxMessageBytes)}
	}
	h, err := recordbatch.ParseHeader(recoded)
	if err != nil {
		return nil, recordbatch.Header{}, &Error{Code: recordbatch.ErrorCode(err), Message: err.Error()}
	}
	return recoded, h, nil
}

// HoldAppendWakeups defers the wakeups of Append (of long-polling fetches
// and waiters) until release, which sends one if an Append owed it. A
// produce request holds every partition it appends to while it appends,
// so that a follower's fetch woken by the first append finds the
// request's other partitions appended too: one replication round trip per
// request rather than one per partition — in durable mode, one follower
// fsync. The leader's own fsync is not deferred, nor are the wakeups of
// other events (a follower's fetch or an fsync moving the high
// watermark). release must be called once.
func (p *Partition) HoldAppendWakeups() (release func()) {
	p.waitersMu.Lock()
	p.appendHolds++
	p.waitersMu.Unlock()
	return func() {
		p.waitersMu.Lock()
		p.appendHolds--
		owed := p.appendHolds == 0 && p.appendWakeup
		if owed {
			p.appendWakeup = false
		}
		p.waitersMu.Unlock()
		if owed {
			p.notifyWaiters()
		}
	}
}

// notifyAppended wakes the waiters after an append, unless a
// HoldAppendWakeups is in force: then the last release does.
func (p *Partition) notifyAppended() {
	p.waitersMu.Lock()
	if p.appendHolds > 0 {
		p.appendWakeup = true
		p.waitersMu.Unlock()
		return
	}
	p.waitersMu.Unlock()
	p.notifyWaiters()
}

// AddWaiter registers ch to be signalled (non-blocking) when the high
// watermark moves, data is appended, or the assignment changes.
func (p *Partition) AddWaiter(ch chan struct{}) {
	p.waitersMu.Lock()
	p.waiters[ch] = struct{}{}
	p.waitersMu.Unlock()
}

// RemoveWaiter undoes AddWaiter.
func (p *Partition) RemoveWaiter(ch chan struct{}) {
	p.waitersMu.Lock()
	delete(p.waiters, ch)
	p.waitersMu.Unlock()
}

func (p *Partition) notifyWaiters() {
	p.waitersMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitersMu.Unlock()
}

// Maintenance is one round of a partition's periodic work.
type Maintenance struct {
	// ProducerIDExpiration is producer.id.expiration.ms: idle producers
	// older than this are forgotten (with Retention or Snapshot).
	ProducerIDExpiration time.Duration
	// Retention runs retention and producer expiry.
	Retention bool
	// Snapshot writes a producer-state snapshot if anything changed.
	Snapshot bool
	// CheckpointHighWatermark writes the high-watermark checkpoint if the
	// high watermark moved (Kafka's
	// replica.high.watermark.checkpoint.interval.ms, 5 s).
	CheckpointHighWatermark bool
}

// Maintain runs the periodic work: time-based flushes, and as asked
// retention, producer expiry and a producer-state snapshot.
func (p *Partition) Maintain(now time.Time, m Maintenance) {
	expiration, retention, snapshot := m.ProducerIDExpiration, m.Retention, m.Snapshot
	if retention {
		p.EnforceRetention()
	}
	if err := p.segments.FlushIfDue(); err != nil && !errors.Is(err, segment.ErrLogFailed) && !errors.Is(err, segment.ErrClosed) {
		// A failed fsync fails the log (LogFailed): a leader hands the
		// partition over (StorageResignation); the due flushes after it
		// answer ErrLogFailed, not logged again. A closed log was
		// removed during the round.
		p.log.Error("flush failed", "err", err)
	}
	if m.CheckpointHighWatermark {
		if err := p.checkpointHighWatermark(); err != nil {
			p.log.Warn("writing the high watermark checkpoint failed", "err", err)
		}
	}
	if !retention && !snapshot {
		return
	}
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if n := p.producers.ExpireBefore(now.Add(-expiration).UnixMilli()); n > 0 {
		p.log.Info("expired idle producers", "producers", n)
		p.snapshotEnd = -1 // the state changed without an append
	}
	if snapshot {
		if err := p.writeProducerSnapshotLocked(); err != nil {
			p.log.Warn("producer snapshot failed", "err", err)
		}
	}
}

// Compact runs one log-cleaner pass when the topic's cleanup.policy
// includes compact. Past max.compaction.lag.ms since the last pass that
// cleaned, the dirty ratio is ignored.
func (p *Partition) Compact(now time.Time) (segment.CompactStats, error) {
	v := p.config.Load()
	if !v.Compact {
		return segment.CompactStats{Skipped: true}, nil
	}
	ms := func(n int64) time.Duration {
		return time.Duration(min(n, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond
	}
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.lastCleaned.IsZero() {
		p.lastCleaned = now
	}
	// Never past the last stable offset (Kafka's bound): an open
	// transaction's records may yet be aborted.
	stableEnd := p.LastStableOffset()
	if stableEnd <= 0 {
		return segment.CompactStats{Skipped: true}, nil
	}
	producers := map[int64]segment.ProducerLast{}
	p.appendMu.Lock()
	for _, pr := range p.producers.Producers() {
		producers[pr.ProducerID] = segment.ProducerLast{LastOffset: pr.LastOffset, Epoch: pr.Epoch}
	}
	p.appendMu.Unlock()
	stats, err := p.segments.Compact(segment.CompactOptions{
		MinCompactionLag:       ms(v.MinCompactionLagMs),
		DeleteRetention:        ms(v.DeleteRetentionMs),
		MinCleanableDirtyRatio: v.MinCleanableDirtyRatio,
		Force:                  now.Sub(p.lastCleaned) >= ms(v.MaxCompactionLagMs),
		StableEnd:              stableEnd,
		Producers:              producers,
	})
	if err == nil && !stats.Skipped {
		p.lastCleaned = now
	}
	return stats, err
}

// SetConfig applies new topic configs. The retention limit moves with
// them: the tighter of the old and new limits holds while the config
// changes, so no retention pass sees the new retention with the old limit
// (turning uploads back on) or the old retention with the new limit
// (turning them off).
func (p *Partition) SetConfig(v topicconfig.Values, state *metadata.State) error {
	p.retentionMu.Lock()
	defer p.retentionMu.Unlock()
	limit := retentionLimit(v, state, p)
	p.segments.SetRetentionLimit(min(limit, p.segments.RetentionLimit()))
	p.config.Store(&v)
	segmentCfg := segmentConfig(v, p.log)
	segmentCfg.WriteFault, segmentCfg.SyncFault = p.segmentWriteFault, p.segmentSyncFault
	err := p.segments.SetConfig(segmentCfg)
	p.segments.SetRetentionLimit(limit)
	if isDurable(&v) {
		p.requestSync() // what was appended before counts from its fsync on
	}
	return err
}

// EnforceRetention deletes the segments past retention (local retention
// for a tiered topic, up to the retention limit) now: the periodic pass
// (Maintain), and the tier manager as soon as an upload moves the limit.
// As in Kafka, only segments below the high watermark go: records that
// followers do not have yet stay until they do.
func (p *Partition) EnforceRetention() {
	if n, err := p.segments.EnforceRetentionBelow(p.HighWatermark()); errors.Is(err, segment.ErrClosed) {
		return // removed meanwhile (Maintain runs apart from the removal)
	} else if err != nil {
		p.log.Error("retention failed", "err", err)
	} else if n > 0 {
		p.log.Info("retention deleted segments", "segments", n, "log_start_offset", p.segments.StartOffset())
		p.appendMu.Lock()
		p.keepProducerSnapshotLocked(p.segments.StartOffset())
		p.trimEpochsLocked()
		p.appendMu.Unlock()
	}
}

// RefreshRetentionLimit sets the retention limit from the manifest in
// state (after uploads or remote deletions) and reports whether it rose
// (retention may delete more now).
func (p *Partition) RefreshRetentionLimit(state *metadata.State) (raised bool) {
	p.retentionMu.Lock()
	defer p.retentionMu.Unlock()
	limit := retentionLimit(*p.config.Load(), state, p)
	raised = limit > p.segments.RetentionLimit()
	p.segments.SetRetentionLimit(limit)
	return raised
}

// UploadLag is the size of the sealed local segments past the end of the
// partition's uploaded data in state (all of them when nothing is
// uploaded): the bytes tiering has yet to copy to the object store.
func (p *Partition) UploadLag(state *metadata.State) int64 {
	next := int64(0)
	if _, end, ok := state.RemoteLogOffsets(p.topicID, p.index); ok {
		next = end + 1
	}
	lag := int64(0)
	for _, info := range p.segments.Segments() {
		if !info.Active && info.EndOffset > next {
			lag += info.Size
		}
	}
	return lag
}

// retentionLimit is how far local retention may delete: for a tiered topic
// that uploads, up to the end of the uploaded data; otherwise anywhere
// (with remote.log.copy.disable, local retention is the total one).
func retentionLimit(v topicconfig.Values, state *metadata.State, p *Partition) int64 {
	if !v.RemoteStorage || v.RemoteLogCopyDisable {
		return math.MaxInt64
	}
	if _, end, ok := state.RemoteLogOffsets(p.topicID, p.index); ok {
		return end + 1
	}
	return 0
}

// Close flushes the log, snapshots producer state, checkpoints the high
// watermark and closes the files.
func (p *Partition) Close() error {
	p.appendMu.Lock()
	snapErr := p.writeProducerSnapshotLocked()
	checkpointErr := p.checkpointHighWatermark()
	p.appendMu.Unlock()
	err := p.segments.Close()
	return errors.Join(err, snapErr, checkpointErr)
}

// Removing marks the partition as being removed (Remove follows): its
// topic was deleted (topicDeleted), or this broker no longer hosts a
// replica of it. The appends waiting to be committed fail at once
// (CommitStatus), and so do the waits of those made after it: the
// replicas that would commit them may follow another leader already, so
// that what waits for them (a coordinator shard's write, which its close
// waits for) would wait for nothing until its timeout.
func (p *Partition) Removing(topicDeleted bool) {
	defer p.notifyWaiters()
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	p.removingLocked(topicDeleted)
}

func (p *Partition) removingLocked(topicDeleted bool) {
	p.checkpointMu.Lock() // a high watermark checkpoint under way ends first
	p.removed.Store(true)
	p.topicDeleted = topicDeleted
	p.checkpointMu.Unlock()
}

// Remove deletes the partition's directory: its topic was deleted
// (topicDeleted), or this broker no longer hosts a replica of it. The
// appends waiting to be committed fail at once (CommitStatus).
func (p *Partition) Remove(topicDeleted bool) error {
	defer p.notifyWaiters()
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	p.removingLocked(topicDeleted)
	// The directory is deleted recursively only when its partition.metadata
	// still names this partition's topic: a directory that something else
	// put in its place is left alone.
	if id, err := segment.ReadPartitionMetadata(p.dir); err != nil || id != p.topicID {
		closeErr := p.segments.Close()
		if err == nil {
			err = fmt.Errorf("its partition.metadata names topic id %x", id)
		}
		return errors.Join(fmt.Errorf("%w: not deleting %s: %w", ErrNotOurDirectory, p.dir, err), closeErr)
	}
	return p.segments.Delete()
}
