package tiermanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// expireRemote applies total retention (retention.ms, retention.bytes over
// remote and local data) to the partition's remote segments, oldest first.
// retention.ms waits while Config.RetentionPause says the wall clock is not
// to be trusted.
func (m *Manager) expireRemote(ctx context.Context, p *partition.Partition, epoch int32, now time.Time) (int, error) {
	cfg := p.Config()
	if !cfg.Delete {
		return 0, nil
	}
	if cfg.RetentionMs >= 0 && m.cfg.RetentionPause != nil && m.cfg.RetentionPause.Paused() {
		cfg.RetentionMs = -1
	}
	name := p.Name()
	var finished []metadata.SegmentManifest
	m.store.State().EachSegment(name.TopicID, name.Partition, 0, func(e metadata.SegmentManifest) bool {
		if e.State == metadata.SegmentCopyFinished {
			finished = append(finished, e)
		}
		return true
	})
	if len(finished) == 0 {
		return 0, nil
	}
	expire := expiredSegments(finished, p.Segments(), cfg, now)
	// Segments entirely below a log start set by DeleteRecords go too.
	if logStart, ok := m.store.State().LogStartOffset(name.TopicID, name.Partition); ok {
		for expire < len(finished) && finished[expire].LastOffset < logStart {
			expire++
		}
	}
	for _, e := range finished[:expire] {
		if err := m.deleteRemote(ctx, name, e, epoch); err != nil {
			return 0, err
		}
		p.Logger().Info("remote segment expired by retention", "base_offset", e.BaseOffset, "last_offset", e.LastOffset, "bytes", e.SizeBytes)
	}
	if expire > 0 {
		// Local copies of what total retention expired are past local
		// retention too (local.retention.* never exceeds retention.*):
		// they go now, while the retention limit still covers them. Once
		// every remote segment is gone the limit drops to 0 and they
		// would stay, to be uploaded again from the local log start.
		p.EnforceRetention()
		p.TrimLeaderEpochs(m.store.State)
	}
	return expire, nil
}

// expiredSegments returns how many of a partition's readable remote
// segments (finished, oldest first, not empty) total retention expires,
// oldest first: those whose newest record is older than retention.ms,
// then, while the remote bytes and the local bytes past the remote data
// (local, the local log's segments) exceed retention.bytes, as many more as
// it takes to get under it. A negative limit is no limit. A segment
// without timestamps is uploaded with its local copy's last modification
// as its MaxTimestamp (startUpload); an entry with MaxTimestamp -1, which
// older builds uploaded for such a segment, records no time to go by: it
// never expires by age (nor do the segments after it), only by size or
// DeleteRecords.
func expiredSegments(finished []metadata.SegmentManifest, local []segment.SegmentInfo, cfg topicconfig.Values, now time.Time) int {
	expire := 0
	if cfg.RetentionMs >= 0 {
		for expire < len(finished) && finished[expire].MaxTimestamp >= 0 && now.UnixMilli()-finished[expire].MaxTimestamp > cfg.RetentionMs {
			expire++
		}
	}
	if cfg.RetentionBytes >= 0 {
		// Local bytes not in the object store count too.
		total := int64(0)
		for _, e := range finished {
			total += e.SizeBytes
		}
		remoteEnd := finished[len(finished)-1].LastOffset
		for _, info := range local {
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
	return expire
}

// deleteRemote moves a manifest entry through "delete started", deletes
// its objects and drops the entry. Each step is idempotent, so an
// interrupted delete is finished by whoever finds the entry next.
func (m *Manager) deleteRemote(ctx context.Context, name metadata.TopicPartition, e metadata.SegmentManifest, epoch int32) error {
	ref := metadata.SegmentRef{TopicID: name.TopicID, Partition: name.Partition, BaseOffset: e.BaseOffset, SegmentID: e.SegmentID, LeaderEpoch: epoch}
	if e.State != metadata.SegmentDeleteStarted {
		if err := m.store.StartSegmentDelete(ctx, ref); err != nil {
			return fmt.Errorf("commit delete started of remote segment %d: %w", e.BaseOffset, err)
		}
	}
	if err := m.tier.DeleteSegment(ctx, name, e); err != nil {
		return err
	}
	if err := m.store.DeleteSegment(ctx, ref); err != nil {
		return fmt.Errorf("commit deletion of remote segment %d: %w", e.BaseOffset, err)
	}
	m.metrics.deletedSegments.WithLabelValues(name.Topic).Inc()
	return nil
}

// putManifestSnapshot writes the partition's manifest snapshot (its
// readable segments and its log start offset: the quorum's, or else the
// first segment's base offset) to the bucket under the leader epoch, for
// recovery from the bucket alone, and returns the log start written.
func (m *Manager) putManifestSnapshot(ctx context.Context, name metadata.TopicPartition, epoch int32) (int64, error) {
	state := m.store.State()
	snapshot := tiering.ManifestSnapshot{Partition: name, Epoch: epoch, LogStartOffset: -1}
	state.EachSegment(name.TopicID, name.Partition, 0, func(e metadata.SegmentManifest) bool {
		if e.State == metadata.SegmentCopyFinished {
			snapshot.Segments = append(snapshot.Segments, e)
		}
		return true
	})
	if logStart, ok := state.LogStartOffset(name.TopicID, name.Partition); ok {
		snapshot.LogStartOffset = logStart
	} else if len(snapshot.Segments) > 0 {
		snapshot.LogStartOffset = snapshot.Segments[0].BaseOffset
	}
	return snapshot.LogStartOffset, m.tier.PutManifestSnapshot(ctx, snapshot)
}

// lowestLiveBroker reports whether nodeID is the lowest id among the
// unfenced brokers: the one that cleans up after deleted topics.
func lowestLiveBroker(state *metadata.State, nodeID int32) bool {
	lowest := int32(math.MaxInt32)
	state.EachBroker(func(b metadata.Broker) bool {
		if !b.Fenced {
			lowest = min(lowest, b.ID)
		}
		return true
	})
	return lowest == nodeID
}

// hasDeletedTopicSegments reports whether the manifest holds entries of a
// topic the state no longer has.
func hasDeletedTopicSegments(state *metadata.State) bool {
	found := false
	state.EachSegmentPartition(func(topicID [16]byte, _ int32, _ int) bool {
		_, exists := state.TopicByID(topicID)
		found = !exists
		return exists
	})
	return found
}

// cleanDeletedTopics deletes the objects and manifest entries of deleted
// topics, and their manifest snapshots. Their names (part of the object
// keys) come from what this broker saw before the deletion, or else from
// the bucket listing.
func (m *Manager) cleanDeletedTopics(ctx context.Context) error {
	state := m.store.State()
	var targets []metadata.TopicPartition
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, _ int) bool {
		if _, exists := state.TopicByID(topicID); !exists {
			targets = append(targets, metadata.TopicPartition{TopicID: topicID, Partition: partition})
		}
		return true
	})
	for _, target := range targets {
		m.mu.Lock()
		topic, known := m.names[target.TopicID]
		m.mu.Unlock()
		if !known {
			var err error
			switch topic, err = m.tier.TopicName(ctx, target.TopicID); {
			case errors.Is(err, tiering.ErrNotFound):
				topic = "deleted" // no object left: only the entries remain
			case err != nil:
				return err
			}
		}
		target.Topic = topic
		var entries []metadata.SegmentManifest
		state.EachSegment(target.TopicID, target.Partition, 0, func(e metadata.SegmentManifest) bool {
			entries = append(entries, e)
			return true
		})
		for _, e := range entries {
			if err := m.deleteRemote(ctx, target, e, 0); err != nil {
				return err
			}
		}
		if err := m.tier.DeleteManifestSnapshot(ctx, target); err != nil {
			return err
		}
		// What no entry named (a deposed uploader's late objects): the
		// topic id is gone for good, nothing under it is needed.
		listed, err := m.tier.ListPartition(ctx, target)
		if err != nil {
			return err
		}
		var orphans []string
		for _, keys := range listed.Segments {
			orphans = append(orphans, keys...)
		}
		for _, snapshot := range listed.Snapshots {
			orphans = append(orphans, snapshot.Key)
		}
		if err := m.tier.DeleteObjects(ctx, orphans); err != nil {
			return err
		}
		m.log.Info("deleted the remote data of a deleted topic", "topic", topic, "partition", target.Partition, "segments", len(entries))
	}
	return nil
}
