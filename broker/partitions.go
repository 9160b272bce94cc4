package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
)

type partitionManagerConfig struct {
	dataDir              string
	nodeID               int32
	store                *metadata.Store
	defaults             topicconfig.Defaults
	producerIDExpiration time.Duration
	retentionInterval    time.Duration
	cleanerBackoff       time.Duration // log.cleaner.backoff.ms
	metrics              *metrics
	log                  *slog.Logger
	// files bounds the partitions opened by the file descriptors left.
	files fileBudget
	// syncs bounds the partitions fsyncing at once in durable mode
	// (flush.messages=1).
	syncs *partition.SyncPool
	// syncFault fails partition logs' fsyncs (tests only;
	// Config.SegmentSyncFault).
	syncFault func(topic string, index int32) error
	// writeFault is asked before partition logs' writes (tests only;
	// Config.SegmentWriteFault).
	writeFault func(topic string, index int32, size int) (written int, err error)
	// onLeadership is called when a partition's leadership term changes
	// (and after it is opened), onClose before it is closed or removed (the
	// group coordinators follow __consumer_offsets leadership);
	// onReconciled after every reconcile pass (the replica fetchers).
	onLeadership, onClose func(*partition.Partition)
	onReconciled          func(*metadata.State, []*partition.Partition)
	// onTopicsDeleted is called by the pass that first sees topics gone
	// from the state (deleted, or re-created under a new id since the
	// previous pass), with their names, before the pass counts as
	// reconciled: the group coordinators drop their committed offsets,
	// as Kafka's do from every broker's metadata (handleDeletedPartitions),
	// whichever broker the DeleteTopics went to.
	onTopicsDeleted func(names []string)
	// active reports whether this process may act on the partitions the
	// state assigns it: its own registration (this incarnation's) is in
	// the state and unfenced. Until then (a restart replays metadata that
	// may name the previous incarnation leader) every partition is opened
	// but leads and follows nothing. Nil means always.
	active func(*metadata.State) bool
}

type topicPartition struct {
	topic string
	index int32
}

// partitionManager keeps the set of open partitions equal to what the
// metadata state assigns to this node: it opens logs for new partitions,
// deletes the directories of deleted topics, applies config changes, and
// runs retention in the background.
type partitionManager struct {
	cfg partitionManagerConfig

	reconcileMu    sync.Mutex    // serializes reconcile passes
	lastReconciled atomic.Uint64 // applied index of the state last reconciled
	// reconciled receives a token after a pass that moved lastReconciled
	// (the membership reports the new position to the controller).
	reconciled chan struct{}
	// topicIDs are the topics of the state the last pass reconciled, by
	// name (guarded by reconcileMu; nil before the first pass).
	topicIDs map[string][16]byte

	mu         sync.RWMutex // guards partitions
	partitions map[topicPartition]*partition.Partition

	// localBytes is the size of every local log, summed each second.
	localBytes atomic.Int64
}

func newPartitionManager(cfg partitionManagerConfig) (*partitionManager, error) {
	if err := os.MkdirAll(cfg.dataDir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	m := &partitionManager{cfg: cfg, partitions: make(map[topicPartition]*partition.Partition), reconciled: make(chan struct{}, 1)}
	if err := m.removeStaleDirectories(cfg.store.State()); err != nil {
		return nil, err
	}
	if err := m.reconcile(); err != nil {
		// A partition that cannot be opened stays offline (clients see
		// LEADER_NOT_AVAILABLE); the others are served.
		cfg.log.Error("some partitions could not be opened and are offline", "err", err)
	}
	return m, nil
}

// parsePartitionDir splits "<topic>-<partition>".
func parsePartitionDir(name string) (topicPartition, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return topicPartition{}, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || n < 0 {
		return topicPartition{}, false
	}
	return topicPartition{topic: name[:i], index: int32(n)}, true
}

// removeStaleDirectories deletes partition directories whose topic no longer
// exists or whose topic id differs from the current topic of that name (the
// topic was deleted and re-created while this node was down), so a
// re-created topic never serves the old one's data.
func (m *partitionManager) removeStaleDirectories(state *metadata.State) error {
	entries, err := os.ReadDir(m.cfg.dataDir)
	if err != nil {
		return fmt.Errorf("broker: read data dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		tp, ok := parsePartitionDir(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(m.cfg.dataDir, e.Name())
		id, err := segment.ReadPartitionMetadata(dir)
		if err != nil {
			if errors.Is(err, segment.ErrNoPartitionMetadata) {
				continue // not a partition directory of ours
			}
			return fmt.Errorf("broker: %s: %w", dir, err)
		}
		topic, exists := state.Topic(tp.topic)
		switch {
		case !exists:
			m.cfg.log.Info("removing partition directory of a deleted topic", "dir", dir)
		case topic.ID != id:
			m.cfg.log.Info("removing partition directory of an earlier topic with the same name", "dir", dir)
		case tp.index >= int32(len(topic.Partitions)):
			m.cfg.log.Info("removing partition directory beyond the topic's partition count", "dir", dir)
		case !containsBroker(topic.Partitions[tp.index].Replicas, m.cfg.nodeID):
			// Reassigned away while this node was down: its replica is no
			// longer part of the partition (tiered data stays: it belongs
			// to the partition, not the replica).
			m.cfg.log.Info("removing partition directory of a replica reassigned away from this broker", "dir", dir)
		default:
			continue
		}
		if err := segment.RemoveLogDirectory(dir); err != nil {
			return fmt.Errorf("broker: remove stale %s: %w", dir, err)
		}
	}
	return nil
}

// get returns the open partition of a topic, or nil. The topic id must
// match too, so a log of an earlier topic with the same name is never
// served for the current one.
func (m *partitionManager) get(t metadata.Topic, index int32) *partition.Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := m.partitions[topicPartition{t.Name, index}]
	if p == nil || p.TopicID() != t.ID {
		return nil
	}
	return p
}

func (m *partitionManager) getByName(topic string, index int32) *partition.Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.partitions[topicPartition{topic, index}]
}

// reconcile brings the open partitions in line with the metadata state.
// Once it returns, this broker's Metadata answers reflect the state it
// reconciled (a partition it leads is open): reconciledIndex says which.
func (m *partitionManager) reconcile() error {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	state := m.cfg.store.State()
	defer m.markReconciled(state.AppliedIndex())
	// A broker leads or follows nothing until its current registration is
	// accepted and unfenced (as in KRaft): the replayed state may name an
	// earlier incarnation leader, whose unsynced tail this one may have
	// lost. Such a partition is held with no leader, so it refuses
	// produce and replica fetches, and no fetcher follows for it.
	active := m.cfg.active == nil || m.cfg.active(state)
	want := make(map[topicPartition]metadata.Topic)
	topics := state.Topics()
	for _, t := range topics {
		if err := metadata.ValidateTopicName(t.Name); err != nil {
			// Applied by a version that did not check names on apply: its
			// partitions would be directories outside <topic>-<n> of the
			// data dir, so they are never opened here.
			m.cfg.log.Error("not hosting a topic whose name is not a legal Kafka topic name; delete it", "topic", t.Name, "err", err)
			continue
		}
		for _, p := range t.Partitions {
			if !containsBroker(p.Replicas, m.cfg.nodeID) {
				continue
			}
			want[topicPartition{t.Name, p.Index}] = t
		}
	}
	m.mu.RLock()
	var remove []*partition.Partition
	for tp, p := range m.partitions {
		t, ok := want[tp]
		if !ok || t.ID != p.TopicID() {
			remove = append(remove, p)
		}
	}
	m.mu.RUnlock()
	for _, p := range remove {
		_, exists := state.TopicByID(p.TopicID())
		// The appends waiting for its in-sync replicas fail first: those
		// may follow another leader by now (a reassignment finishes with
		// the leadership moved), and onClose closes the coordinator shards,
		// which waits for their writes in flight.
		p.Removing(!exists)
		if m.cfg.onClose != nil {
			m.cfg.onClose(p)
		}
		m.mu.Lock()
		delete(m.partitions, topicPartition{p.Topic(), p.Index()})
		m.mu.Unlock()
		if err := p.Remove(!exists); err != nil {
			m.cfg.log.Error("removing partition failed", "topic", p.Topic(), "partition", p.Index(), "err", err)
		} else {
			m.cfg.log.Info("removed partition", "topic", p.Topic(), "partition", p.Index())
		}
	}
	var errs []error
	// Partitions are opened only while file descriptors are left beside
	// fdReserve, so that a node asked to host more than it can keeps the
	// descriptors its connections and the controller need; the others
	// stay offline (retried on the next pass), and clients are refused
	// before this by CreateTopics' own check. Recounted every so often:
	// an opened partition may hold more than one segment's files.
	var files fdCheck
	opened, notOpened := 0, 0
	var firstNotOpened topicPartition
	for tp, t := range want {
		values := topicconfig.Typed(m.cfg.defaults, t.Configs)
		assigned := t.Partitions[tp.index]
		if !active {
			assigned.Leader = -1
		}
		if p := m.getByName(tp.topic, tp.index); p != nil {
			if p.Config() != values {
				if err := p.SetConfig(values, state); err != nil {
					errs = append(errs, err)
				}
			}
			p.ObserveRegistrations(assigned.Replicas, state)
			if p.ApplyAssignmentAfterRemote(assigned, time.Now(), state) {
				if m.cfg.onLeadership != nil {
					m.cfg.onLeadership(p)
				}
			}
			continue
		}
		if opened%100 == 0 {
			files = m.cfg.files.check(0)
		}
		if files.known && files.available < fdsPerPartition {
			m.cfg.metrics.fdRefusals.Inc()
			if notOpened++; notOpened == 1 {
				firstNotOpened = tp
			}
			continue
		}
		opened++
		files.available -= fdsPerPartition
		dir := filepath.Join(m.cfg.dataDir, fmt.Sprintf("%s-%d", tp.topic, tp.index))
		var syncFault func() error
		if fault := m.cfg.syncFault; fault != nil {
			syncFault = func() error { return fault(tp.topic, tp.index) }
		}
		var writeFault func(size int) (int, error)
		if fault := m.cfg.writeFault; fault != nil {
			writeFault = func(size int) (int, error) { return fault(tp.topic, tp.index, size) }
		}
		p, err := partition.Open(partition.Config{Dir: dir, Topic: tp.topic, TopicID: t.ID, Index: tp.index, Self: m.cfg.nodeID, Values: values, Logger: m.cfg.log, Syncs: m.cfg.syncs,
			SegmentSyncFault: syncFault, SegmentWriteFault: writeFault})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.RefreshRetentionLimit(state)
		p.ObserveRegistrations(assigned.Replicas, state)
		p.ApplyAssignmentAfterRemote(assigned, time.Now(), state)
		m.mu.Lock()
		m.partitions[tp] = p
		m.mu.Unlock()
		if m.cfg.onLeadership != nil {
			m.cfg.onLeadership(p)
		}
	}
	if notOpened > 0 {
		errs = append(errs, fmt.Errorf("%d partitions (%s-%d among them) not opened: %d of the %d file descriptors (RLIMIT_NOFILE) are open and %d are kept free; raise the limit (ulimit -n, systemd LimitNOFILE=)",
			notOpened, firstNotOpened.topic, firstNotOpened.index, files.open, files.limit, fdReserve))
	}
	m.topicsDeleted(topics)
	if m.cfg.onReconciled != nil {
		parts := m.all()
		if !active {
			parts = nil // follow nothing
		}
		m.cfg.onReconciled(state, parts)
	}
	return errors.Join(errs...)
}

// topicsDeleted calls onTopicsDeleted with the topics of the previous
// pass's state that this pass's (topics) no longer has under the same id.
// Called with reconcileMu held.
func (m *partitionManager) topicsDeleted(topics []metadata.Topic) {
	ids := make(map[string][16]byte, len(topics))
	for _, t := range topics {
		ids[t.Name] = t.ID
	}
	var deleted []string
	for name, id := range m.topicIDs {
		if current, ok := ids[name]; !ok || current != id {
			deleted = append(deleted, name)
		}
	}
	m.topicIDs = ids
	if len(deleted) > 0 && m.cfg.onTopicsDeleted != nil {
		m.cfg.onTopicsDeleted(deleted)
	}
}

func (m *partitionManager) reconciledIndex() uint64 { return m.lastReconciled.Load() }

// markReconciled publishes the applied index of the state a finished pass
// reconciled, and signals reconciled when it moved.
func (m *partitionManager) markReconciled(index uint64) {
	if m.lastReconciled.Swap(index) == index {
		return
	}
	select {
	case m.reconciled <- struct{}{}:
	default:
	}
}

func containsBroker(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (m *partitionManager) all() []*partition.Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*partition.Partition, 0, len(m.partitions))
	for _, p := range m.partitions {
		out = append(out, p)
	}
	return out
}

// highWatermarkCheckpointInterval is how often moved high watermarks are
// checkpointed (Kafka's replica.high.watermark.checkpoint.interval.ms).
const highWatermarkCheckpointInterval = 5 * time.Second

// run follows metadata changes and runs periodic maintenance until ctx
// ends. The maintenance has a goroutine of its own: a round fsyncs
// partition after partition (high watermark checkpoints, due flushes,
// producer snapshots) and may take seconds, which leadership changes do
// not wait for.
func (m *partitionManager) run(ctx context.Context) {
	var maintaining sync.WaitGroup
	maintaining.Go(func() { m.runMaintenance(ctx) })
	defer maintaining.Wait()
	for {
		// The state and its change channel are read together, so a change
		// that lands while reconciling is not missed.
		state, changed := m.cfg.store.Watch()
		if state.AppliedIndex() != m.reconciledIndex() {
			if err := m.reconcile(); err != nil {
				m.cfg.log.Error("applying metadata change to local partitions failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// runMaintenance runs the periodic maintenance of every partition until
// ctx ends. A partition removed during a round (by a reconcile pass) is
// left alone by its remaining steps (partition.Partition.Remove).
func (m *partitionManager) runMaintenance(ctx context.Context) {
	maintenance := time.NewTicker(time.Second)
	defer maintenance.Stop()
	lastRetention := time.Now()
	lastSnapshot := time.Now()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-maintenance.C:
			retention := now.Sub(lastRetention) >= m.cfg.retentionInterval
			snapshot := now.Sub(lastSnapshot) >= time.Minute
			if retention {
				lastRetention = now
			}
			if snapshot {
				lastSnapshot = now
			}
			checkpoint := now.Sub(lastCheckpoint) >= highWatermarkCheckpointInterval
			if checkpoint {
				lastCheckpoint = now
			}
			total := int64(0)
			for _, p := range m.all() {
				p.Maintain(now, partition.Maintenance{ProducerIDExpiration: m.cfg.producerIDExpiration, Retention: retention, Snapshot: snapshot,
					CheckpointHighWatermark: checkpoint})
				total += p.Size()
			}
			m.localBytes.Store(total)
			m.cfg.metrics.localLogBytes.Set(float64(total))
		}
	}
}

// runCleaner is the log cleaner (one thread, as Kafka's default
// log.cleaner.threads): every cleanerBackoff it offers each partition of a
// compacted topic one pass. It runs apart from run, so a long pass delays
// neither metadata changes nor retention, and appends go on during it.
func (m *partitionManager) runCleaner(ctx context.Context) {
	ticker := time.NewTicker(m.cfg.cleanerBackoff)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for _, p := range m.all() {
			if ctx.Err() != nil {
				return
			}
			m.cleanPartition(p)
		}
	}
}

func (m *partitionManager) cleanPartition(p *partition.Partition) {
	if !p.Config().Compact {
		return
	}
	stats, err := p.Compact(time.Now())
	switch {
	case errors.Is(err, segment.ErrClosed):
		return // deleted or closing meanwhile
	case err != nil:
		m.cfg.metrics.cleanerPasses.WithLabelValues(p.Topic(), "failed").Inc()
		p.Logger().Error("log cleaner pass failed; the partition is retried next pass", "err", err)
	case stats.Skipped:
		m.cfg.metrics.cleanerPasses.WithLabelValues(p.Topic(), "skipped").Inc()
	default:
		m.cfg.metrics.cleanerPasses.WithLabelValues(p.Topic(), "cleaned").Inc()
		m.cfg.metrics.cleanerBytesReclaimed.WithLabelValues(p.Topic()).Add(float64(stats.BytesBefore - stats.BytesAfter))
		m.cfg.metrics.cleanerRecordsRemoved.WithLabelValues(p.Topic()).Add(float64(stats.RecordsRemoved))
		if stats.SegmentsRewritten > 0 {
			p.Logger().Info("log cleaner compacted segments", "segments", stats.SegmentsRewritten, "segments_merged", stats.SegmentsMerged,
				"batches_removed", stats.BatchesRemoved,
				"bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter,
				"records_removed", stats.RecordsRemoved, "tombstones_removed", stats.TombstonesRemoved,
				"dirty_ratio", fmt.Sprintf("%.2f", stats.DirtyRatio))
		}
	}
}

func (m *partitionManager) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for tp, p := range m.partitions {
		if m.cfg.onClose != nil {
			m.cfg.onClose(p)
		}
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s-%d: %w", tp.topic, tp.index, err))
		}
		delete(m.partitions, tp)
	}
	return errors.Join(errs...)
}
