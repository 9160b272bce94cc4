package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// tierManager runs tiered storage for the partitions this broker hosts
// (DESIGN "Tiering"). Every interval it
//   - sets each replica's local retention limit to the end of the
//     partition's uploaded data, so nothing leaves local disk before it is
//     in the object store and committed in the manifest;
//   - on each partition this broker leads with remote.storage.enable: first
//     finishes what an earlier leader left (copies never finished, deletes
//     never finished: their objects are deleted, then their entries), then
//     uploads every sealed segment entirely below the high watermark from
//     where the manifest ends, then applies total retention to the remote
//     segments, then writes the partition's manifest snapshot to the bucket;
//   - on the lowest-numbered live broker: deletes the remote data of
//     deleted topics.
//
// One task per partition runs at a time; tasks run concurrently (the Tier
// bounds concurrent uploads). Every manifest change is fenced by the
// uploader's leader epoch, so a deposed leader's late commit is refused.
// A failing task backs off exponentially up to a minute and logs how far
// behind tiering is.
type tierManager struct {
	tier     *tiering.Tier
	store    *metadata.Store
	nodeID   int32
	interval time.Duration
	staging  string // <data dir>/tiering-staging: producer snapshots and trimmed segments being uploaded
	all      func() []*partition.Partition
	log      *slog.Logger
	metrics  *tierMetrics

	mu      sync.Mutex
	tasks   map[*partition.Partition]*tierTask
	cleanup bool                // a deleted-topics cleanup runs
	names   map[[16]byte]string // topic names by id as last seen, for deleted topics' object keys
	wg      sync.WaitGroup
}

// tierTask is one partition's tiering state, touched only by its task (and
// under tierManager.mu for running/retryAt).
type tierTask struct {
	running  bool
	failures int
	retryAt  time.Time
	// producers is the producer-state snapshot at producersEnd: the state
	// at the end of the segment uploaded last, the start of the next one.
	producers    []byte
	producersEnd int64
}

type tierMetrics struct {
	uploadedSegments *prometheus.CounterVec
	uploadedBytes    *prometheus.CounterVec
	deletedSegments  *prometheus.CounterVec
	failures         *prometheus.CounterVec
	lagBytes         *prometheus.GaugeVec
	remoteReadBytes  *prometheus.CounterVec
	remoteReadErrors *prometheus.CounterVec
}

func newTierMetrics(reg prometheus.Registerer) *tierMetrics {
	m := &tierMetrics{
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
		remoteReadBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_remote_fetch_bytes_total",
			Help: "Record batch bytes served to consumers from the object store, by topic."}, []string{"topic"}),
		remoteReadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_remote_fetch_errors_total",
			Help: "Fetches of remote data that failed (answered with a retriable error), by topic."}, []string{"topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.uploadedSegments, m.uploadedBytes, m.deletedSegments, m.failures, m.lagBytes, m.remoteReadBytes, m.remoteReadErrors)
	}
	return m
}

func newTierManager(tier *tiering.Tier, store *metadata.Store, nodeID int32, interval time.Duration, dataDir string,
	all func() []*partition.Partition, metrics *tierMetrics, log *slog.Logger) (*tierManager, error) {
	staging := filepath.Join(dataDir, "tiering-staging")
	// Left by an earlier process: nothing in it is referenced.
	if err := os.RemoveAll(staging); err != nil {
		return nil, fmt.Errorf("broker: tiering staging dir: %w", err)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, fmt.Errorf("broker: tiering staging dir: %w", err)
	}
	return &tierManager{
		tier: tier, store: store, nodeID: nodeID, interval: interval, staging: staging, all: all,
		log: log, metrics: metrics, tasks: map[*partition.Partition]*tierTask{}, names: map[[16]byte]string{},
	}, nil
}

// run ticks until ctx ends, then waits for the tasks.
func (m *tierManager) run(ctx context.Context) {
	defer m.wg.Wait()
	ticker := time.NewTicker(m.interval)
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

func (m *tierManager) tick(ctx context.Context, now time.Time) {
	state := m.store.State()
	parts := m.all()
	live := make(map[*partition.Partition]bool, len(parts))
	for _, p := range parts {
		live[p] = true
		p.RefreshRetentionLimit(state)
		if !p.Leading() {
			m.metrics.lagBytes.DeleteLabelValues(p.Topic(), fmt.Sprint(p.Index()))
			continue
		}
		m.start(ctx, p, now)
	}
	m.mu.Lock()
	for p, task := range m.tasks {
		if !live[p] && !task.running {
			delete(m.tasks, p)
			m.metrics.lagBytes.DeleteLabelValues(p.Topic(), fmt.Sprint(p.Index()))
		}
	}
	state.EachTopic(func(t metadata.Topic) bool {
		m.names[t.ID] = t.Name
		return true
	})
	startCleanup := !m.cleanup && m.lowestLiveBroker(state) && m.hasDeletedTopicSegments(state)
	m.cleanup = m.cleanup || startCleanup
	m.mu.Unlock()
	if startCleanup {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.cleanDeletedTopics(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("deleting the remote data of deleted topics failed; retrying next pass", "err", err)
			}
			m.mu.Lock()
			m.cleanup = false
			m.mu.Unlock()
		}()
	}
}

// start launches the partition's task unless it runs or backs off.
func (m *tierManager) start(ctx context.Context, p *partition.Partition, now time.Time) {
	cfg := p.Config()
	if !cfg.RemoteStorage && !cfg.RemoteLogDeleteOnDisable {
		return
	}
	m.mu.Lock()
	task := m.tasks[p]
	if task == nil {
		task = &tierTask{producersEnd: -1}
		m.tasks[p] = task
	}
	if task.running || now.Before(task.retryAt) {
		m.mu.Unlock()
		return
	}
	task.running = true
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := m.work(ctx, p, task)
		if p.Leading() {
			m.metrics.lagBytes.WithLabelValues(p.Topic(), fmt.Sprint(p.Index())).Set(float64(m.lag(p)))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		task.running = false
		if err == nil || ctx.Err() != nil {
			task.failures = 0
			task.retryAt = time.Time{}
			return
		}
		task.failures++
		backoff := min(time.Duration(1<<min(task.failures-1, 6))*time.Second, time.Minute)
		task.retryAt = time.Now().Add(backoff)
		m.metrics.failures.WithLabelValues(p.Topic()).Inc()
		p.Logger().Warn("tiering failed; local segments stay until they are uploaded", "err", err,
			"attempts", task.failures, "retry_in", backoff, "upload_lag_bytes", m.lag(p))
	}()
}

// stillLeads reports whether this broker leads p at epoch in the state.
func (m *tierManager) stillLeads(p *partition.Partition, epoch int32) bool {
	t, ok := m.store.State().TopicByID(p.TopicID())
	if !ok || !t.HasPartition(p.Index()) || !p.Leading() {
		return false
	}
	a := t.Partitions[p.Index()]
	return a.Leader == m.nodeID && a.LeaderEpoch == epoch && p.LeaderEpoch() == epoch
}

// work is one pass over a partition this broker leads.
func (m *tierManager) work(ctx context.Context, p *partition.Partition, task *tierTask) error {
	epoch := p.LeaderEpoch()
	if !m.stillLeads(p, epoch) {
		return nil
	}
	cfg := p.Config()
	tp := p.Name()
	changed := false
	defer func() {
		if changed {
			if err := m.putManifestSnapshot(ctx, tp); err != nil {
				p.Logger().Warn("writing the manifest snapshot to the bucket failed; retried after the next change", "err", err)
			}
		}
	}()

	// What an earlier leader (or this broker before a crash) left
	// unfinished. No copy of this leader's runs now: tasks are one at a
	// time per partition.
	var stale []metadata.SegmentManifest
	deleteAll := !cfg.RemoteStorage && cfg.RemoteLogDeleteOnDisable
	m.store.State().EachSegment(p.TopicID(), p.Index(), 0, func(e metadata.SegmentManifest) bool {
		if e.State != metadata.SegmentCopyFinished || deleteAll {
			stale = append(stale, e)
		}
		return true
	})
	for _, e := range stale {
		if err := m.deleteRemote(ctx, tp, e, epoch); err != nil {
			return err
		}
		changed = true
	}
	if !cfg.RemoteStorage {
		return nil
	}
	if !cfg.RemoteLogCopyDisable {
		uploaded, err := m.uploadEligible(ctx, p, task, tp, epoch)
		changed = changed || uploaded > 0
		if err != nil {
			return err
		}
	}
	expired, err := m.expireRemote(ctx, p, tp, epoch, time.Now())
	changed = changed || expired > 0
	return err
}

// lag is the size of the sealed local segments past the uploaded data.
func (m *tierManager) lag(p *partition.Partition) int64 {
	return p.UploadLag(m.store.State())
}

// uploadEligible uploads, oldest first, each sealed segment entirely below
// the high watermark that is not in the manifest yet.
func (m *tierManager) uploadEligible(ctx context.Context, p *partition.Partition, task *tierTask, tp metadata.TopicPartition, epoch int32) (int, error) {
	uploaded := 0
	for ctx.Err() == nil {
		if !m.stillLeads(p, epoch) {
			return uploaded, nil
		}
		next := p.LogStartOffset()
		if _, end, ok := m.store.State().RemoteLogOffsets(p.TopicID(), p.Index()); ok {
			if end+1 < next {
				p.Logger().Warn("local log starts after the uploaded data: the remote log has a gap (local data expired while uploads were disabled)",
					"remote_log_end_offset", end, "local_log_start_offset", next)
			} else {
				next = end + 1
			}
		}
		hw := p.HighWatermark()
		var candidate *segment.SegmentInfo
		for _, info := range p.Segments() {
			if info.Active || info.EndOffset > hw {
				break
			}
			if info.EndOffset > next && info.Size > 0 {
				candidate = &info
				break
			}
		}
		if candidate == nil {
			return uploaded, nil
		}
		if err := m.uploadSegment(ctx, p, task, tp, epoch, *candidate, max(next, candidate.BaseOffset)); err != nil {
			return uploaded, err
		}
		uploaded++
	}
	return uploaded, ctx.Err()
}

// uploadSegment copies the offsets from..info.EndOffset of one sealed
// segment: commit "copy started", write the objects, commit "copy
// finished". A segment that starts below from (this leader rolled its
// segments elsewhere than the previous uploader) is uploaded from a trimmed
// copy, so manifest entries never overlap.
func (m *tierManager) uploadSegment(ctx context.Context, p *partition.Partition, task *tierTask, tp metadata.TopicPartition, epoch int32, info segment.SegmentInfo, from int64) error {
	staging, err := os.MkdirTemp(m.staging, fmt.Sprintf("%s-%d-*", p.Topic(), p.Index()))
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	files := tiering.SegmentFiles{Partition: tp, BaseOffset: info.BaseOffset,
		LogPath: info.LogPath, OffsetIndexPath: info.OffsetIndexPath, TimeIndexPath: info.TimeIndexPath}
	if from > info.BaseOffset {
		trimmed, err := copySegmentRange(p, filepath.Join(staging, "trimmed"), from, info.EndOffset, p.Logger())
		if err != nil {
			return fmt.Errorf("trimmed copy of segment %d from %d: %w", info.BaseOffset, from, err)
		}
		files.BaseOffset, files.LogPath, files.OffsetIndexPath, files.TimeIndexPath = from, trimmed.LogPath, trimmed.OffsetIndexPath, trimmed.TimeIndexPath
	}
	snapshot, err := m.producerSnapshot(ctx, p, task, files.BaseOffset, info.EndOffset)
	if err != nil {
		return err
	}
	files.ProducerSnapshotPath = filepath.Join(staging, "producers")
	if err := os.WriteFile(files.ProducerSnapshotPath, snapshot, 0o644); err != nil {
		return err
	}
	remote, err := tiering.DescribeSegment(files)
	if err != nil {
		return err
	}
	if remote.LastOffset != info.EndOffset-1 {
		return fmt.Errorf("segment %d: its batches end at %d, the log says %d", info.BaseOffset, remote.LastOffset, info.EndOffset-1)
	}
	entry := remote
	entry.LeaderEpoch = epoch
	ref := metadata.SegmentRef{TopicID: p.TopicID(), Partition: p.Index(), BaseOffset: entry.BaseOffset, SegmentID: entry.SegmentID, LeaderEpoch: epoch}
	started := time.Now()
	if err := m.store.StartSegmentCopy(ctx, p.TopicID(), p.Index(), entry); err != nil {
		return fmt.Errorf("commit copy started of segment %d: %w", entry.BaseOffset, err)
	}
	if err := m.tier.UploadDescribed(ctx, files, remote); err != nil {
		// The entry stays "copy started": the next pass deletes whatever
		// objects were written and the entry, then uploads again.
		return err
	}
	if err := m.store.FinishSegmentCopy(ctx, ref); err != nil {
		return fmt.Errorf("commit copy finished of segment %d: %w", entry.BaseOffset, err)
	}
	task.producers, task.producersEnd = snapshot, info.EndOffset
	m.metrics.uploadedSegments.WithLabelValues(p.Topic()).Inc()
	m.metrics.uploadedBytes.WithLabelValues(p.Topic()).Add(float64(remote.SizeBytes))
	p.Logger().Info("uploaded segment", "base_offset", remote.BaseOffset, "last_offset", remote.LastOffset,
		"bytes", remote.SizeBytes, "segment_id", uuid.UUID(remote.SegmentID), "leader_epoch", epoch, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// producerSnapshot returns the producer-state snapshot at end: the state at
// base (the end of the previous upload, kept by the task or read from the
// previous remote segment's .producers object) with the batches from base
// to end applied.
func (m *tierManager) producerSnapshot(ctx context.Context, p *partition.Partition, task *tierTask, base, end int64) ([]byte, error) {
	var data []byte
	switch {
	case task.producersEnd == base:
		data = task.producers
	case base > 0:
		if prev, ok := m.store.State().SegmentContaining(p.TopicID(), p.Index(), base-1); ok && prev.LastOffset == base-1 {
			var err error
			if data, err = m.tier.ReadProducerSnapshot(ctx, p.Name(), prev); err != nil {
				return nil, fmt.Errorf("producer state of the previous remote segment: %w", err)
			}
		}
	}
	state := producer.NewState()
	if len(data) > 0 {
		var err error
		if state, err = producer.ReadSnapshot(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("producer state at %d: %w", base, err)
		}
	}
	if err := p.ReplayProducers(state, base, end); err != nil {
		return nil, fmt.Errorf("producer state from %d to %d: %w", base, end, err)
	}
	var buf bytes.Buffer
	if err := state.WriteSnapshot(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// expireRemote applies total retention (retention.ms, retention.bytes over
// remote and local data) to the partition's remote segments, oldest first.
func (m *tierManager) expireRemote(ctx context.Context, p *partition.Partition, tp metadata.TopicPartition, epoch int32, now time.Time) (int, error) {
	cfg := p.Config()
	if !cfg.Delete {
		return 0, nil
	}
	var finished []metadata.SegmentManifest
	remoteBytes := int64(0)
	m.store.State().EachSegment(p.TopicID(), p.Index(), 0, func(e metadata.SegmentManifest) bool {
		if e.State == metadata.SegmentCopyFinished {
			finished = append(finished, e)
			remoteBytes += e.SizeBytes
		}
		return true
	})
	if len(finished) == 0 {
		return 0, nil
	}
	expire := 0
	if cfg.RetentionMs >= 0 {
		for expire < len(finished) && finished[expire].MaxTimestamp >= 0 && now.UnixMilli()-finished[expire].MaxTimestamp > cfg.RetentionMs {
			expire++
		}
	}
	if cfg.RetentionBytes >= 0 {
		// Local bytes not in the object store count too.
		total := remoteBytes
		remoteEnd := finished[len(finished)-1].LastOffset
		for _, info := range p.Segments() {
			if info.EndOffset > remoteEnd+1 {
				total += info.Size
			}
		}
		for _, e := range finished[:expire] {
			total -= e.SizeBytes
		}
		for expire < len(finished) && total-finished[expire].SizeBytes >= cfg.RetentionBytes {
			total -= finished[expire].SizeBytes
			expire++
		}
	}
	for _, e := range finished[:expire] {
		if err := m.deleteRemote(ctx, tp, e, epoch); err != nil {
			return 0, err
		}
		p.Logger().Info("remote segment expired by retention", "base_offset", e.BaseOffset, "last_offset", e.LastOffset, "bytes", e.SizeBytes)
	}
	return expire, nil
}

// deleteRemote moves a manifest entry through "delete started", deletes
// its objects and drops the entry. Each step is idempotent, so an
// interrupted delete is finished by whoever finds the entry next.
func (m *tierManager) deleteRemote(ctx context.Context, tp metadata.TopicPartition, e metadata.SegmentManifest, epoch int32) error {
	ref := metadata.SegmentRef{TopicID: tp.TopicID, Partition: tp.Partition, BaseOffset: e.BaseOffset, SegmentID: e.SegmentID, LeaderEpoch: epoch}
	if e.State != metadata.SegmentDeleteStarted {
		if err := m.store.StartSegmentDelete(ctx, ref); err != nil {
			return fmt.Errorf("commit delete started of remote segment %d: %w", e.BaseOffset, err)
		}
	}
	if err := m.tier.DeleteSegment(ctx, tp, e); err != nil {
		return err
	}
	if err := m.store.DeleteSegment(ctx, ref); err != nil {
		return fmt.Errorf("commit deletion of remote segment %d: %w", e.BaseOffset, err)
	}
	m.metrics.deletedSegments.WithLabelValues(tp.Topic).Inc()
	return nil
}

// putManifestSnapshot writes the partition's manifest snapshot (its readable
// segments) to the bucket, for recovery from the bucket alone.
func (m *tierManager) putManifestSnapshot(ctx context.Context, tp metadata.TopicPartition) error {
	manifest := tiering.ManifestSnapshot{Partition: tp}
	m.store.State().EachSegment(tp.TopicID, tp.Partition, 0, func(e metadata.SegmentManifest) bool {
		if e.State == metadata.SegmentCopyFinished {
			manifest.Segments = append(manifest.Segments, e)
		}
		return true
	})
	return m.tier.PutManifestSnapshot(ctx, manifest)
}

// lowestLiveBroker reports whether this broker has the lowest id among the
// unfenced brokers: the one that cleans up after deleted topics.
func (m *tierManager) lowestLiveBroker(state *metadata.State) bool {
	lowest := int32(math.MaxInt32)
	state.EachBroker(func(b metadata.Broker) bool {
		if !b.Fenced {
			lowest = min(lowest, b.ID)
		}
		return true
	})
	return lowest == m.nodeID
}

func (m *tierManager) hasDeletedTopicSegments(state *metadata.State) bool {
	found := false
	state.EachSegmentPartition(func(topicID [16]byte, _ int32, _ int) bool {
		_, exists := state.TopicByID(topicID)
		found = !exists
		return exists
	})
	return found
}

// cleanDeletedTopics deletes the objects and manifest entries of deleted
// topics. Their names (part of the object keys) come from what this broker
// saw before the deletion, or else from the bucket listing.
func (m *tierManager) cleanDeletedTopics(ctx context.Context) error {
	state := m.store.State()
	type target struct {
		topicID   [16]byte
		partition int32
	}
	var targets []target
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, _ int) bool {
		if _, exists := state.TopicByID(topicID); !exists {
			targets = append(targets, target{topicID, partition})
		}
		return true
	})
	for _, t := range targets {
		m.mu.Lock()
		name, known := m.names[t.topicID]
		m.mu.Unlock()
		if !known {
			var err error
			switch name, err = m.tier.TopicName(ctx, t.topicID); {
			case errors.Is(err, tiering.ErrNotFound):
				name = "deleted" // no object left: only the entries remain
			case err != nil:
				return err
			}
		}
		tp := metadata.TopicPartition{Topic: name, TopicID: t.topicID, Partition: t.partition}
		var entries []metadata.SegmentManifest
		state.EachSegment(t.topicID, t.partition, 0, func(e metadata.SegmentManifest) bool {
			entries = append(entries, e)
			return true
		})
		for _, e := range entries {
			if err := m.deleteRemote(ctx, tp, e, 0); err != nil {
				return err
			}
		}
		if err := m.tier.DeleteManifestSnapshot(ctx, tp); err != nil {
			return err
		}
		m.log.Info("deleted the remote data of a deleted topic", "topic", name, "partition", t.partition, "segments", len(entries))
	}
	return nil
}

// copySegmentRange writes the batches of src from..to (batch boundaries)
// as one segment of a new log in dir and returns its files.
func copySegmentRange(src interface {
	Read(offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error)
}, dir string, from, to int64, log *slog.Logger) (segment.SegmentInfo, error) {
	dst, err := segment.Open(dir, from, segment.Config{SegmentBytes: math.MaxInt32, SegmentAge: time.Duration(math.MaxInt64),
		RetentionAge: -1, RetentionBytes: -1, Logger: log})
	if err != nil {
		return segment.SegmentInfo{}, err
	}
	defer dst.Close()
	for offset := from; offset < to; offset = dst.EndOffset() {
		data, err := src.Read(offset, 4<<20, to, true)
		if err != nil {
			return segment.SegmentInfo{}, err
		}
		if len(data) == 0 {
			return segment.SegmentInfo{}, fmt.Errorf("no batches at offset %d below %d", offset, to)
		}
		spans, err := recordbatch.Split(data)
		if err != nil {
			return segment.SegmentInfo{}, err
		}
		batches := make([]segment.AppendBatch, len(spans))
		for i, sp := range spans {
			h, err := recordbatch.ParseHeader(data[sp.Position:])
			if err != nil {
				return segment.SegmentInfo{}, err
			}
			batches[i] = segment.AppendBatch{Position: int32(sp.Position), Length: int32(sp.Length),
				LastOffsetDelta: h.LastOffsetDelta, MaxTimestamp: h.MaxTimestamp, Records: h.NumRecords}
		}
		if _, _, err := dst.Append(data, batches); err != nil {
			return segment.SegmentInfo{}, err
		}
	}
	if err := dst.Flush(); err != nil {
		return segment.SegmentInfo{}, err
	}
	infos := dst.Segments()
	if len(infos) != 1 || infos[0].EndOffset != to {
		return segment.SegmentInfo{}, fmt.Errorf("trimmed copy holds %d segments ending at %d, want one ending at %d", len(infos), dst.EndOffset(), to)
	}
	return infos[0], nil
}
