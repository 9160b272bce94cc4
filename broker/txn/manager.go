package txn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
)

// TopicName is the internal topic holding the coordinator's records.
const TopicName = "__transaction_state"

// Topic is the __transaction_state topic as the Manager needs it.
type Topic interface {
	coordinator.Topic // Leaders
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
	cfg    ManagerConfig
	shards *coordinator.Set[*Shard, Log]

	markers        sync.WaitGroup // markers being written
	pendingMarkers atomic.Int64
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
	return &Manager{cfg: cfg, shards: coordinator.NewSet[*Shard, Log](cfg.Topic, TopicName, cfg.Logger)}, nil
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
		workers: &m.markers, pendingMarkers: &m.pendingMarkers,
	})
	if err != nil {
		return err
	}
	m.shards.Lead(partition, log, sh)
	return nil
}

// Resign closes the shard of partition if it runs over log: called when
// this broker stops leading the partition or closes it.
func (m *Manager) Resign(partition int32, log Log) { m.shards.Resign(partition, log) }

// Close closes every shard and waits for their goroutines: the loading
// ones first, since a load may start writing markers.
func (m *Manager) Close() {
	m.shards.Close()
	m.markers.Wait()
}

// ShardFor returns the loaded shard coordinating a transactional id, or
// the error a client acts on: COORDINATOR_NOT_AVAILABLE (no topic),
// NOT_COORDINATOR (not led here), COORDINATOR_LOAD_IN_PROGRESS.
func (m *Manager) ShardFor(transactionalID string) (*Shard, *kerr.Error) {
	return m.shards.For(transactionalID)
}

// CoordinatorOf returns the broker leading the __transaction_state
// partition of a transactional id (FindCoordinator), or
// COORDINATOR_NOT_AVAILABLE.
func (m *Manager) CoordinatorOf(transactionalID string) (int32, *kerr.Error) {
	return m.shards.CoordinatorOf(transactionalID)
}

// Shards returns the loaded shards in partition order, and whether every
// shard is loaded.
func (m *Manager) Shards() ([]*Shard, bool) { return m.shards.Loaded() }

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
