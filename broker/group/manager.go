package group

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/coordinator"
)

// Offset retention defaults, as Kafka's.
const (
	DefaultOffsetsRetention              = 7 * 24 * time.Hour // offsets.retention.minutes
	DefaultOffsetsRetentionCheckInterval = 10 * time.Minute   // offsets.retention.check.interval.ms
)

// Topic is the __consumer_offsets topic as the Manager needs it.
type Topic interface {
	coordinator.Topic // Leaders
	// PartitionExists reports whether a partition of a topic exists:
	// committed offsets of partitions that are gone expire.
	PartitionExists(tp TopicPartition) bool
	// TopicID returns the id a topic has in the newest metadata this
	// broker applied, false if it has none (ShardConfig.TopicID).
	TopicID(topic string) (id [16]byte, ok bool)
}

// ManagerConfig configures a Manager. Topic is required; the other zero
// values mean defaults.
type ManagerConfig struct {
	Topic Topic
	// Coordinator configures every shard's coordinator.
	Coordinator Config
	// OffsetsRetention is offsets.retention.minutes (default
	// DefaultOffsetsRetention); RetentionCheckInterval is
	// offsets.retention.check.interval.ms (default
	// DefaultOffsetsRetentionCheckInterval).
	OffsetsRetention       time.Duration
	RetentionCheckInterval time.Duration
	// ExpiryPause, when it reports paused (internal/clockwatch: the wall
	// clock jumped forward), holds back offset expiry; nil never pauses.
	ExpiryPause Pauser
	Logger      *slog.Logger
}

// Pauser tells whether deleting data by wall-clock age must wait
// (*clockwatch.Watch).
type Pauser interface {
	Paused() bool
}

// Manager holds the coordinator shards of the __consumer_offsets
// partitions this broker leads: Lead starts one (and loads it in the
// background), Resign stops it, ShardFor finds a group's. It runs offset
// expiry (Run) and owns the loading goroutines (Close waits for them).
type Manager struct {
	cfg    ManagerConfig
	shards *coordinator.Set[*Shard, Log]
}

// NewManager makes a Manager.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.OffsetsRetention == 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.RetentionCheckInterval == 0 {
		cfg.RetentionCheckInterval = DefaultOffsetsRetentionCheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, shards: coordinator.NewSet[*Shard, Log](cfg.Topic, OffsetsTopic, cfg.Logger)}
}

// Lead gives partition a fresh shard over log, loaded in the background,
// replacing (and closing) any shard it had: called when this broker starts
// a leadership term of the partition.
func (m *Manager) Lead(partition int32, log Log) error {
	sh, err := NewShard(ShardConfig{Partition: partition, Log: log, Coordinator: m.cfg.Coordinator, Logger: m.cfg.Logger.With("shard", partition), TopicID: m.cfg.Topic.TopicID})
	if err != nil {
		return err
	}
	m.shards.Lead(partition, log, sh)
	return nil
}

// Resign closes the shard of partition if it runs over log: called when
// this broker stops leading the partition or closes it.
func (m *Manager) Resign(partition int32, log Log) { m.shards.Resign(partition, log) }

// Close closes every shard and waits for those still loading.
func (m *Manager) Close() { m.shards.Close() }

// ShardFor returns the loaded shard coordinating a group, or the error a
// client acts on: COORDINATOR_NOT_AVAILABLE (no offsets topic),
// NOT_COORDINATOR (not led here), COORDINATOR_LOAD_IN_PROGRESS.
func (m *Manager) ShardFor(groupID string) (*Shard, *kerr.Error) { return m.shards.For(groupID) }

// CoordinatorOf returns the broker leading the offsets partition of a
// group (FindCoordinator), or COORDINATOR_NOT_AVAILABLE.
func (m *Manager) CoordinatorOf(groupID string) (int32, *kerr.Error) {
	return m.shards.CoordinatorOf(groupID)
}

// Shards returns the loaded shards in partition order, and whether every
// shard is loaded.
func (m *Manager) Shards() ([]*Shard, bool) { return m.shards.Loaded() }

// Run removes expired committed offsets every RetentionCheckInterval until
// ctx ends.
func (m *Manager) Run(ctx context.Context) {
	ticker := time.NewTicker(m.cfg.RetentionCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			m.ExpireOffsets(now)
		}
	}
}

// ExpireOffsets runs offset expiry on every loaded shard
// (Shard.ExpireOffsets), unless ExpiryPause says the wall clock is not to
// be trusted.
func (m *Manager) ExpireOffsets(now time.Time) {
	if m.cfg.ExpiryPause != nil && m.cfg.ExpiryPause.Paused() {
		return
	}
	m.expire(now, m.cfg.OffsetsRetention, m.cfg.Topic.PartitionExists)
}

// TopicsDeleted removes every group's committed offsets of deleted
// topics, as Kafka does, so a topic re-created with the same name starts
// without them: on every shard, those still loading once loaded
// (Shard.TopicsDeleted). It returns at once (the metadata reconcile pass
// calls it): the offsets are gone for readers, and their tombstones are
// written in the background.
func (m *Manager) TopicsDeleted(names ...string) {
	for _, sh := range m.shards.All() {
		sh.TopicsDeleted(names...)
	}
}

func (m *Manager) expire(now time.Time, retention time.Duration, exists func(TopicPartition) bool) {
	shards, _ := m.Shards()
	for _, sh := range shards {
		offsets, groups, err := sh.ExpireOffsets(now, retention, exists)
		if err != nil {
			m.cfg.Logger.Warn("expiring committed offsets failed; retried next pass", "partition", sh.partition, "err", err)
		}
		if offsets > 0 || groups > 0 {
			m.cfg.Logger.Info("removed expired committed offsets", "partition", sh.partition, "offsets", offsets, "groups_deleted", groups)
		}
	}
}
