package txn

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/group"
)

// TopicName is the internal topic holding the coordinator's records.
const TopicName = "__transaction_state"

// Topic is the __transaction_state topic as the Manager needs it.
type Topic interface {
	// Leaders returns the leader broker of each of the topic's partitions
	// (-1 for none), creating the topic on first use.
	Leaders() ([]int32, error)
}

// ManagerConfig configures a Manager. Topic, ProducerIDs and Markers are
// required; the other zero values mean defaults.
type ManagerConfig struct {
	Topic       Topic
	ProducerIDs ProducerIDs
	Markers     MarkerWriter
	Config      Config
	Events      Events
	// ExpiryPause, when it reports paused (internal/clockwatch: the wall
	// clock jumped forward), holds back transactional id expiration; nil
	// never pauses.
	ExpiryPause group.Pauser
	Logger      *slog.Logger
}

// Manager holds the coordinator shards of the __transaction_state
// partitions this broker leads: Lead starts one (and loads it in the
// background), Resign stops it, ShardFor finds a transactional id's. It
// aborts timed-out transactions and expires transactional ids (Run), and
// owns the loading and marker goroutines (Close waits for them).
type Manager struct {
	cfg ManagerConfig

	workers        sync.WaitGroup // shards loading, markers being written
	pendingMarkers atomic.Int64

	mu     sync.RWMutex // guards shards
	shards map[int32]*Shard
}

// NewManager makes a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Topic == nil || cfg.ProducerIDs == nil || cfg.Markers == nil {
		return nil, fmt.Errorf("%w: a manager needs a Topic, ProducerIDs and a MarkerWriter", ErrInvalidConfig)
	}
	if err := cfg.Config.Validate(); err != nil {
		return nil, err
	}
	cfg.Config = cfg.Config.withDefaults()
	if cfg.Events == nil {
		cfg.Events = noEvents{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, shards: map[int32]*Shard{}}, nil
}

// Lead gives partition a fresh shard over log, coordinating in
// coordinatorEpoch (the partition's leader epoch), loaded in the
// background, replacing (and closing) any shard it had: called when this
// broker starts a leadership term of the partition.
func (m *Manager) Lead(partition, coordinatorEpoch int32, log Log) error {
	sh, err := NewShard(ShardConfig{
		Partition: partition, CoordinatorEpoch: coordinatorEpoch, Log: log,
		ProducerIDs: m.cfg.ProducerIDs, Markers: m.cfg.Markers, Config: m.cfg.Config, Events: m.cfg.Events,
		Logger:  m.cfg.Logger.With("shard", partition),
		workers: &m.workers, pendingMarkers: &m.pendingMarkers,
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.shards[partition]
	m.shards[partition] = sh
	m.workers.Add(1)
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		defer m.workers.Done()
		sh.Load()
	}()
	return nil
}

// Resign closes the shard of partition if it runs over log: called when
// this broker stops leading the partition or closes it.
func (m *Manager) Resign(partition int32, log Log) {
	m.mu.Lock()
	sh := m.shards[partition]
	if sh != nil && sh.log == log {
		delete(m.shards, partition)
	} else {
		sh = nil
	}
	m.mu.Unlock()
	if sh != nil {
		sh.Close()
	}
}

// Close closes every shard and waits for their goroutines.
func (m *Manager) Close() {
	m.mu.Lock()
	shards := m.shards
	m.shards = map[int32]*Shard{}
	m.mu.Unlock()
	for _, sh := range shards {
		sh.Close()
	}
	m.workers.Wait()
}

// ShardFor returns the loaded shard coordinating a transactional id, or
// the error a client acts on: COORDINATOR_NOT_AVAILABLE (no topic),
// NOT_COORDINATOR (not led here), COORDINATOR_LOAD_IN_PROGRESS.
func (m *Manager) ShardFor(transactionalID string) (*Shard, *kerr.Error) {
	leaders, err := m.cfg.Topic.Leaders()
	if err != nil {
		m.cfg.Logger.Warn("transaction state topic unavailable", "err", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	m.mu.RLock()
	sh := m.shards[group.Partition(transactionalID, int32(len(leaders)))]
	m.mu.RUnlock()
	if sh == nil {
		return nil, kerr.NotCoordinator
	}
	select {
	case <-sh.loaded:
	default:
		return nil, kerr.CoordinatorLoadInProgress
	}
	if !sh.Serving() {
		return nil, kerr.NotCoordinator
	}
	return sh, nil
}

// CoordinatorOf returns the broker leading the __transaction_state
// partition of a transactional id (FindCoordinator), or
// COORDINATOR_NOT_AVAILABLE.
func (m *Manager) CoordinatorOf(transactionalID string) (int32, *kerr.Error) {
	leaders, err := m.cfg.Topic.Leaders()
	if err != nil {
		m.cfg.Logger.Warn("transaction state topic unavailable", "err", err)
		return -1, kerr.CoordinatorNotAvailable
	}
	if len(leaders) == 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	leader := leaders[group.Partition(transactionalID, int32(len(leaders)))]
	if leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	return leader, nil
}

// Shards returns the loaded shards in partition order, and whether every
// shard is loaded.
func (m *Manager) Shards() ([]*Shard, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Shard, 0, len(m.shards))
	allLoaded := true
	for _, sh := range m.shards {
		select {
		case <-sh.loaded:
			out = append(out, sh)
		default:
			allLoaded = false
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, allLoaded
}

// PendingMarkers is the number of transactions whose markers are being
// written.
func (m *Manager) PendingMarkers() int64 { return m.pendingMarkers.Load() }

// Run aborts timed-out transactions every AbortTimedOutInterval and
// expires transactional ids every RemoveExpiredInterval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	abort := time.NewTicker(m.cfg.Config.AbortTimedOutInterval)
	defer abort.Stop()
	expire := time.NewTicker(m.cfg.Config.RemoveExpiredInterval)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-abort.C:
			m.AbortTimedOut(m.cfg.Config.Now())
		case <-expire.C:
			m.ExpireTransactionalIDs(m.cfg.Config.Now())
		}
	}
}

// AbortTimedOut runs Shard.AbortTimedOut on every serving shard.
func (m *Manager) AbortTimedOut(now time.Time) {
	shards, _ := m.Shards()
	for _, sh := range shards {
		sh.AbortTimedOut(now)
	}
}

// ExpireTransactionalIDs runs Shard.ExpireTransactionalIDs on every
// serving shard, unless ExpiryPause says the wall clock is not to be
// trusted.
func (m *Manager) ExpireTransactionalIDs(now time.Time) {
	if m.cfg.ExpiryPause != nil && m.cfg.ExpiryPause.Paused() {
		return
	}
	shards, _ := m.Shards()
	for _, sh := range shards {
		n, err := sh.ExpireTransactionalIDs(now)
		if err != nil {
			m.cfg.Logger.Warn("expiring transactional ids failed; retried next pass", "partition", sh.partition, "err", err)
		}
		if n > 0 {
			m.cfg.Logger.Info("removed expired transactional ids", "partition", sh.partition, "transactional_ids", n)
		}
	}
}
