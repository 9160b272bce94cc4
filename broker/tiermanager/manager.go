// Package tiermanager decides what the partitions a broker hosts keep in
// the object store and when (DESIGN "Tiering"): it uploads sealed
// segments, finishes what an earlier leader left half done, applies total
// retention to the remote segments, writes each partition's manifest
// snapshot, cleans up after deleted topics, and runs the operator's
// recovery from the bucket and scrub. tiering moves and checks the bytes;
// the metadata store holds the manifest; the broker hosts the partition
// replicas (broker/partition). cmd/internal/node wires them together:
// package broker never imports this package (nor tiering); it lists its
// partitions for it and implements the small Cluster interface a recovery
// needs.
//
// # Order of a segment's life
//
// Every manifest change is fenced by the uploader's leader epoch, so a
// deposed leader's late commit is refused:
//
//	DescribeSegment → commit "copy started" → write the objects → commit "copy finished"
//	commit "delete started" → delete the objects (.log last) → drop the entry
//
// Only after "copy finished" may the local copy go (DESIGN invariant 4):
// every pass first sets each replica's local retention limit to the end of
// the uploaded data. Uploads of one partition start oldest first, from
// where the manifest ends; up to the tier's UploadConcurrency of them are
// written at once, but "copy finished" is committed in offset order and
// never after a failed earlier upload, so the manifest's end never passes
// a segment not uploaded yet.
package tiermanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// Store is what the tier manager reads from and proposes to the metadata
// store (*metadata.Store): the state, and the commands that move a
// segment's manifest entry through its life.
type Store interface {
	State() *metadata.State
	StartSegmentCopy(ctx context.Context, topicID [16]byte, partition int32, segment metadata.SegmentManifest) error
	FinishSegmentCopy(ctx context.Context, ref metadata.SegmentRef) error
	StartSegmentDelete(ctx context.Context, ref metadata.SegmentRef) error
	DeleteSegment(ctx context.Context, ref metadata.SegmentRef) error
}

var _ Store = (*metadata.Store)(nil)

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	// Tier is the object store segments are copied to (required).
	Tier *tiering.Tier
	// Store is the metadata store holding the manifest (required).
	Store Store
	// NodeID is this broker's id: uploads run while the state names this
	// broker leader, and the lowest-numbered live broker cleans up after
	// deleted topics.
	NodeID int32
	// Partitions lists the partition replicas the broker hosts (required).
	Partitions func() []*partition.Partition
	// StagingDir holds the trimmed segment copies being uploaded
	// (required). It is emptied by New: nothing an earlier
	// process left there is referenced.
	StagingDir string
	// Unshared, when set and returning an error, pauses uploads: this
	// broker's object store is node-local and the cluster has another
	// node (broker.Server.UnsharedObjectStore), so the other replicas
	// could not read what it uploads and would drop their local copies of
	// it. Local segments then stay until the store is shared; the error
	// is logged once while it lasts. Deletes of what is already in the
	// store still run.
	Unshared func() error
	// Interval is remote.log.manager.task.interval.ms: how often sealed
	// segments are looked for and uploaded and remote retention applied;
	// default 30 s.
	Interval time.Duration
	// Registerer receives the tiering metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// RetentionPause, when it reports paused (internal/clockwatch: the
	// wall clock jumped forward), holds back remote retention by age
	// (retention.ms); nil never pauses.
	RetentionPause Pauser
}

// Pauser tells whether deleting data by wall-clock age must wait
// (*clockwatch.Watch).
type Pauser interface {
	Paused() bool
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first missing or invalid setting.
func (c Config) Validate() error {
	switch {
	case c.Tier == nil:
		return errors.New("tiermanager: Config.Tier is required")
	case c.Store == nil:
		return errors.New("tiermanager: Config.Store is required")
	case c.Partitions == nil:
		return errors.New("tiermanager: Config.Partitions is required")
	case c.StagingDir == "":
		return errors.New("tiermanager: Config.StagingDir is required")
	case c.Interval < 0:
		return fmt.Errorf("tiermanager: interval %v is negative", c.Interval)
	}
	return nil
}

// Manager runs tiered storage for the partitions a broker hosts. Every
// Interval it
//   - sets each replica's local retention limit to the end of the
//     partition's uploaded data, so nothing leaves local disk before it is
//     in the object store and committed in the manifest;
//   - on each partition this broker leads with remote.storage.enable (or
//     remote.log.delete.on.disable): first finishes what an earlier leader
//     left (copies never finished, deletes never finished: their objects
//     are deleted, then their entries), then uploads every sealed segment
//     entirely below the high watermark from where the manifest ends, then
//     applies total retention to the remote segments, on the first pass
//     of a leadership and every sweepEvery passes deletes the partition's
//     orphans (a deposed uploader's late objects, unfinished writes,
//     older manifest snapshots) and aborts its abandoned multipart
//     uploads (sweepOrphans), then writes the partition's manifest
//     snapshot to the bucket (named by the leader epoch);
//   - on the lowest-numbered live broker: deletes the remote data of
//     deleted topics.
//
// One task per partition runs at a time; tasks of different partitions run
// concurrently (the Tier bounds concurrent uploads). A failing task backs
// off exponentially up to a minute and logs how far behind tiering is.
//
// Run is the Manager's only goroutine owner: it returns once every task it
// started has ended.
type Manager struct {
	cfg     Config
	tier    *tiering.Tier
	store   Store
	log     *slog.Logger
	metrics *metrics

	// mu guards tasks, cleanup and names, and each task's running,
	// failures and retryAt.
	mu      sync.Mutex
	tasks   map[*partition.Partition]*task
	cleanup bool                // a deleted-topics cleanup runs
	names   map[[16]byte]string // topic names by id as last seen, for deleted topics' object keys
	wg      sync.WaitGroup      // tasks and cleanups

	// uploadsPaused is set while Config.Unshared pauses uploads (logged
	// when it is set).
	uploadsPaused atomic.Bool
}

// task is one partition's tiering state. producers and producersEnd are
// touched only by the partition's running task; the rest is guarded by
// Manager.mu.
type task struct {
	running  bool
	failures int
	retryAt  time.Time
	// producers is the producer-state snapshot at producersEnd: the state
	// at the end of the segment uploaded last, the start of the next one.
	producers    []byte
	producersEnd int64
	// sweptEpoch and sweptAt are the leader epoch and time of the last
	// orphan sweep (sweepOrphans).
	sweptEpoch int32
	sweptAt    time.Time
	// snapshotLogStart is the log start offset in the last manifest
	// snapshot this task wrote (0 before the first); snapshotDue, that
	// the last write failed. A pass writes one when its segments changed,
	// when snapshotDue, and when the quorum's log start of a partition
	// with remote segments differs from snapshotLogStart (DeleteRecords
	// moved it; once after a restart), so a recovery from the bucket
	// does not bring deleted records back.
	snapshotLogStart int64
	snapshotDue      bool
}

// New checks cfg and empties the staging directory. Run starts the
// passes.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Left by an earlier process: nothing in it is referenced.
	if err := os.RemoveAll(cfg.StagingDir); err != nil {
		return nil, fmt.Errorf("tiermanager: staging dir: %w", err)
	}
	if err := os.MkdirAll(cfg.StagingDir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("tiermanager: staging dir: %w", err)
	}
	return &Manager{
		cfg: cfg, tier: cfg.Tier, store: cfg.Store, log: cfg.Logger, metrics: newMetrics(cfg.Registerer),
		tasks: map[*partition.Partition]*task{}, names: map[[16]byte]string{},
	}, nil
}

// Run passes over the partitions every Interval until ctx ends, then waits
// for the tasks it started.
func (m *Manager) Run(ctx context.Context) {
	defer m.wg.Wait()
	ticker := time.NewTicker(m.cfg.Interval)
	defer ticker.Stop()
	for {
		m.tick(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (m *Manager) tick(ctx context.Context, now time.Time) {
	state := m.store.State()
	parts := m.cfg.Partitions()
	live := make(map[*partition.Partition]bool, len(parts))
	for _, p := range parts {
		live[p] = true
		if p.RefreshRetentionLimit(state) && !p.Leading() {
			// A follower's copies of segments its leader uploaded since
			// the last pass go now, as the leader's did.
			p.EnforceRetention()
		}
		// A replica that missed a DeleteRecords (down, or out of the ISR,
		// when it moved the log start) drops its records below the log
		// start committed in the quorum, as far as its log end, its high
		// watermark raised with it; a leader did at the start of its
		// term.
		if err := p.FollowQuorumLogStart(state); err != nil {
			p.Logger().Warn("moving the local log start up to the quorum's failed; retrying next pass", "err", err)
		}
		// A follower forgets the epochs of the remote segments its leader
		// deleted since the last pass, as the leader did (from the
		// metadata as it is now: state may predate an upload whose local
		// copies are gone).
		p.TrimLeaderEpochs(m.store.State)
		if !p.Leading() {
			m.metrics.forgetLag(p.Name())
			continue
		}
		m.start(ctx, p, now)
	}
	m.mu.Lock()
	for p, task := range m.tasks {
		if !live[p] && !task.running {
			delete(m.tasks, p)
			m.metrics.forgetLag(p.Name())
		}
	}
	state.EachTopic(func(t metadata.Topic) bool {
		m.names[t.ID] = t.Name
		return true
	})
	startCleanup := !m.cleanup && lowestLiveBroker(state, m.cfg.NodeID) && hasDeletedTopicSegments(state)
	m.cleanup = m.cleanup || startCleanup
	m.mu.Unlock()
	if startCleanup {
		m.wg.Go(func() {
			if err := m.cleanDeletedTopics(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("deleting the remote data of deleted topics failed; retrying next pass", "err", err)
			}
			m.mu.Lock()
			m.cleanup = false
			m.mu.Unlock()
		})
	}
}

// start launches the partition's task unless it runs or backs off.
func (m *Manager) start(ctx context.Context, p *partition.Partition, now time.Time) {
	cfg := p.Config()
	if !cfg.RemoteStorage && !cfg.RemoteLogDeleteOnDisable {
		return
	}
	m.mu.Lock()
	t := m.tasks[p]
	if t == nil {
		t = &task{producersEnd: -1, sweptEpoch: -1}
		m.tasks[p] = t
	}
	if t.running || now.Before(t.retryAt) {
		m.mu.Unlock()
		return
	}
	t.running = true
	m.mu.Unlock()
	m.wg.Go(func() {
		err := m.work(ctx, p, t)
		if p.Leading() {
			m.metrics.setLag(p.Name(), m.lag(p))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		t.running = false
		if err == nil || ctx.Err() != nil {
			t.failures = 0
			t.retryAt = time.Time{}
			return
		}
		t.failures++
		backoff := retryBackoff(t.failures)
		t.retryAt = time.Now().Add(backoff)
		m.metrics.failures.WithLabelValues(p.Name().Topic).Inc()
		p.Logger().Warn("tiering failed; local segments stay until they are uploaded", "err", err,
			"attempts", t.failures, "retry_in", backoff, "upload_lag_bytes", m.lag(p).bytes)
	})
}

// retryBackoff is the wait after a partition's failures-th failed pass in
// a row: 1 s doubling up to a minute.
func retryBackoff(failures int) time.Duration {
	return min(time.Duration(1<<min(failures-1, 6))*time.Second, time.Minute)
}

// stillLeads reports whether this broker leads p at epoch in the state.
func (m *Manager) stillLeads(p *partition.Partition, epoch int32) bool {
	name := p.Name()
	t, ok := m.store.State().TopicByID(name.TopicID)
	if !ok || !t.HasPartition(name.Partition) || !p.Leading() {
		return false
	}
	a := t.Partitions[name.Partition]
	return a.Leader == m.cfg.NodeID && a.LeaderEpoch == epoch && p.LeaderEpoch() == epoch
}

// work is one pass over a partition this broker leads.
func (m *Manager) work(ctx context.Context, p *partition.Partition, t *task) error {
	epoch := p.LeaderEpoch()
	if !m.stillLeads(p, epoch) {
		return nil
	}
	cfg := p.Config()
	name := p.Name()
	changed := false
	defer func() {
		state := m.store.State()
		if logStart, ok := state.LogStartOffset(name.TopicID, name.Partition); ok && logStart != t.snapshotLogStart {
			_, _, remote := state.RemoteLogOffsets(name.TopicID, name.Partition)
			changed = changed || remote
		}
		if changed || t.snapshotDue {
			logStart, err := m.putManifestSnapshot(ctx, name, epoch)
			t.snapshotDue = err != nil
			if err != nil {
				p.Logger().Warn("writing the manifest snapshot to the bucket failed; retried next pass", "err", err)
			} else {
				t.snapshotLogStart = logStart
			}
			// Deleted meanwhile: the deleted-topics cleanup may have
			// deleted the snapshots before this one was written.
			if _, exists := m.store.State().TopicByID(name.TopicID); !exists {
				if err := m.tier.DeleteManifestSnapshot(ctx, name); err != nil {
					p.Logger().Warn("deleting the manifest snapshot of a deleted topic failed", "err", err)
				}
			}
		}
	}()

	// What an earlier leader (or this broker before a crash) left
	// unfinished. No copy of this leader's runs now: tasks are one at a
	// time per partition.
	deleteAll := !cfg.RemoteStorage && cfg.RemoteLogDeleteOnDisable
	stale := staleEntries(m.store.State(), name, deleteAll)
	if !deleteAll && slices.ContainsFunc(stale, func(e metadata.SegmentManifest) bool { return e.State == metadata.SegmentCopyStarted }) {
		// A "copy finished" that failed with an unknown outcome (leadership
		// of the Raft quorum lost, a broken forward) may commit after the
		// state above was read: the entry is readable then, and replicas
		// may drop their local copies. The fenced no-op orders this pass
		// after it; the state read after it shows it finished.
		if err := m.fence(ctx, name, epoch); err != nil {
			return err
		}
		stale = staleEntries(m.store.State(), name, deleteAll)
	}
	for _, e := range stale {
		if err := m.deleteRemote(ctx, name, e, epoch); err != nil {
			return err
		}
		changed = true
	}
	if !cfg.RemoteStorage {
		return nil
	}
	var uploadErr error
	if !cfg.RemoteLogCopyDisable && m.uploadsAllowed() {
		var uploaded int
		uploaded, uploadErr = m.uploadEligible(ctx, p, t, epoch)
		changed = changed || uploaded > 0
	}
	// Total retention does not wait for uploads that fail.
	expired, err := m.expireRemote(ctx, p, epoch, time.Now())
	changed = changed || expired > 0
	if err := errors.Join(uploadErr, err); err != nil {
		return err
	}
	if now := time.Now(); m.sweepDue(t, epoch, now) {
		if err := m.sweepOrphans(ctx, p, epoch, now); err != nil {
			return err
		}
		t.sweptEpoch, t.sweptAt = epoch, now
	}
	return nil
}

// fence proves with a fenced no-op Raft command (a segment transition
// naming no entry, which fails with ErrUnknownSegment only after passing
// the leader-epoch fence) that this broker still leads name at epoch; once
// it returns, the local state holds every command committed before it.
func (m *Manager) fence(ctx context.Context, name metadata.TopicPartition, epoch int32) error {
	ref := metadata.SegmentRef{TopicID: name.TopicID, Partition: name.Partition, BaseOffset: -1, LeaderEpoch: epoch}
	err := m.store.FinishSegmentCopy(ctx, ref)
	switch {
	case errors.Is(err, metadata.ErrUnknownSegment):
		return nil
	case err == nil:
		return errors.New("the fencing no-op changed the manifest")
	}
	return err
}

// uploadsAllowed reports whether uploads may run (Config.Unshared),
// logging when they pause and resume.
func (m *Manager) uploadsAllowed() bool {
	var err error
	if m.cfg.Unshared != nil {
		err = m.cfg.Unshared()
	}
	if err != nil {
		if !m.uploadsPaused.Swap(true) {
			m.log.Error("tiering: uploads paused, local segments of tiered topics are kept until the object store is shared by every node", "err", err)
		}
		return false
	}
	if m.uploadsPaused.Swap(false) {
		m.log.Info("tiering: uploads resumed")
	}
	return true
}

// staleEntries are the partition's manifest entries a new pass deletes
// first: copies never finished and deletes never finished (an earlier
// leader's, or this broker's before a crash), and with deleteAll
// (remote.storage.enable=false with remote.log.delete.on.disable) every
// entry.
func staleEntries(state *metadata.State, name metadata.TopicPartition, deleteAll bool) []metadata.SegmentManifest {
	var stale []metadata.SegmentManifest
	state.EachSegment(name.TopicID, name.Partition, 0, func(e metadata.SegmentManifest) bool {
		if e.State != metadata.SegmentCopyFinished || deleteAll {
			stale = append(stale, e)
		}
		return true
	})
	return stale
}

// uploadLag is how far a partition's uploads are behind: its sealed local
// segments past the end of the uploaded (committed) data.
type uploadLag struct {
	bytes    int64
	segments int
	// oldest is the last write to the oldest of them (the modification
	// time of its .log, about when it was sealed); zero when there is
	// none.
	oldest time.Time
}

// lag measures p's upload lag.
func (m *Manager) lag(p *partition.Partition) uploadLag {
	next := int64(0)
	name := p.Name()
	if _, end, ok := m.store.State().RemoteLogOffsets(name.TopicID, name.Partition); ok {
		next = end + 1
	}
	var lag uploadLag
	for _, info := range p.Segments() {
		if info.Active || info.EndOffset <= next {
			continue
		}
		if lag.segments == 0 {
			if stat, err := os.Stat(info.LogPath); err == nil {
				lag.oldest = stat.ModTime()
			}
		}
		lag.bytes += info.Size
		lag.segments++
	}
	return lag
}

// metrics are the tier manager's Prometheus series.
type metrics struct {
	uploadedSegments *prometheus.CounterVec
	uploadedBytes    *prometheus.CounterVec
	deletedSegments  *prometheus.CounterVec
	failures         *prometheus.CounterVec
	lagBytes         *prometheus.GaugeVec
	lags             *lagCollector
	orphansDeleted   *prometheus.CounterVec
	uploadsAborted   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		uploadedSegments: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_segments_committed_total",
			Help: "Segments copied to the object store and committed, by topic."}, []string{"topic"}),
		uploadedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_bytes_uploaded_total",
			Help: "Segment log bytes copied to the object store, by topic."}, []string{"topic"}),
		deletedSegments: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_segments_deleted_total",
			Help: "Remote segments deleted (retention, unfinished copies, deleted topics), by topic."}, []string{"topic"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_task_failures_total",
			Help: "Tiering passes over a partition that failed and will be retried with backoff, by topic."}, []string{"topic"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "strata", Name: "tiering_upload_lag_bytes",
			Help: "Bytes of sealed, committed segments not yet in the object store, per partition this broker leads."}, []string{"topic", "partition"}),
		lags: newLagCollector(time.Now),
		orphansDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_orphans_deleted_total",
			Help: "Objects deleted because no manifest entry names them (a deposed uploader's late writes, unfinished writes, older manifest snapshots), by topic."}, []string{"topic"}),
		uploadsAborted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_multipart_uploads_aborted_total",
			Help: "Abandoned multipart uploads aborted, by topic."}, []string{"topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.uploadedSegments, m.uploadedBytes, m.deletedSegments, m.failures, m.lagBytes, m.lags, m.orphansDeleted, m.uploadsAborted)
	}
	return m
}

func (m *metrics) setLag(name metadata.TopicPartition, lag uploadLag) {
	m.lagBytes.WithLabelValues(name.Topic, fmt.Sprint(name.Partition)).Set(float64(lag.bytes))
	m.lags.set(name, lag)
}

func (m *metrics) forgetLag(name metadata.TopicPartition) {
	m.lagBytes.DeleteLabelValues(name.Topic, fmt.Sprint(name.Partition))
	m.lags.forget(name)
}

// lagCollector exports, per topic, the upload lag of the partitions this
// broker leads, as last measured: strata_tiering_upload_lag_segments (their
// sum) and strata_tiering_upload_lag_seconds (the age, at the scrape, of
// the oldest segment not uploaded; 0 when none is behind).
type lagCollector struct {
	now      func() time.Time
	segments *prometheus.Desc
	seconds  *prometheus.Desc

	mu   sync.Mutex // guards lags
	lags map[metadata.TopicPartition]uploadLag
}

func newLagCollector(now func() time.Time) *lagCollector {
	return &lagCollector{
		now: now,
		segments: prometheus.NewDesc("strata_tiering_upload_lag_segments",
			"Sealed, committed segments not yet in the object store, per topic (partitions this broker leads).", []string{"topic"}, nil),
		seconds: prometheus.NewDesc("strata_tiering_upload_lag_seconds",
			"Age of the oldest sealed segment not yet in the object store (since its last write), per topic (partitions this broker leads); 0 when none.", []string{"topic"}, nil),
		lags: map[metadata.TopicPartition]uploadLag{},
	}
}

func (c *lagCollector) set(name metadata.TopicPartition, lag uploadLag) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lags[name] = lag
}

func (c *lagCollector) forget(name metadata.TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.lags, name)
}

// Describe implements prometheus.Collector.
func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.segments
	ch <- c.seconds
}

// Collect implements prometheus.Collector.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	type topicLag struct {
		segments int
		oldest   time.Time
	}
	topics := map[string]topicLag{}
	c.mu.Lock()
	for name, lag := range c.lags {
		t := topics[name.Topic]
		t.segments += lag.segments
		if !lag.oldest.IsZero() && (t.oldest.IsZero() || lag.oldest.Before(t.oldest)) {
			t.oldest = lag.oldest
		}
		topics[name.Topic] = t
	}
	c.mu.Unlock()
	now := c.now()
	for topic, t := range topics {
		seconds := 0.0
		if t.segments > 0 && !t.oldest.IsZero() {
			seconds = max(now.Sub(t.oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.segments, prometheus.GaugeValue, float64(t.segments), topic)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, seconds, topic)
	}
}
