package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// ErrNoTier: the broker was started without an object store.
var ErrNoTier = errors.New("broker: no object store configured")

// RecoverProgress reports one partition of a recovery from the bucket.
type RecoverProgress struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Segments is how many segments were imported into the manifest (0
	// when the manifest already held them all).
	Segments int `json:"segments"`
	// FirstOffset and NextOffset bound the partition's recovered offsets.
	FirstOffset int64 `json:"first_offset"`
	NextOffset  int64 `json:"next_offset"`
	// Done and Total count partitions over the whole recovery.
	Done  int `json:"done"`
	Total int `json:"total"`
	// Skipped says why the partition was left alone (empty otherwise).
	Skipped string `json:"skipped,omitempty"`
}

// recoverImportBatch is how many manifest entries one Raft command imports.
const recoverImportBatch = 5000

// RecoverFromBucket rebuilds topics from the object store alone (disaster
// recovery into an empty cluster): for every partition manifest snapshot in
// the bucket it creates the topic with its old topic id — configs
// remote.storage.enable=true and retention.ms=-1, so nothing recovered
// expires before the operator sets the retention — and imports the
// segments into the Raft manifest. Consumers then replay all history; new
// records continue after the recovered offsets. It is idempotent: a topic
// that exists with the same id gets only the segments its manifest lacks;
// one that exists with another id is skipped.
func (s *Server) RecoverFromBucket(ctx context.Context, progress func(RecoverProgress)) error {
	tier := s.cfg.Tier
	if tier == nil {
		return ErrNoTier
	}
	manifests, err := tier.ManifestSnapshots(ctx)
	if err != nil {
		return fmt.Errorf("reading the manifest snapshots in the bucket: %w", err)
	}
	type topicManifests struct {
		name       string
		id         [16]byte
		partitions map[int32]tiering.ManifestSnapshot
		count      int32
	}
	var order [][16]byte
	topics := map[[16]byte]*topicManifests{}
	for _, m := range manifests {
		t := topics[m.Partition.TopicID]
		if t == nil {
			t = &topicManifests{name: m.Partition.Topic, id: m.Partition.TopicID, partitions: map[int32]tiering.ManifestSnapshot{}}
			topics[t.id] = t
			order = append(order, t.id)
		}
		t.partitions[m.Partition.Partition] = m
		t.count = max(t.count, m.Partition.Partition+1)
	}
	total := len(manifests)
	done := 0
	for _, id := range order {
		t := topics[id]
		existing, exists := s.cfg.Metadata.State().Topic(t.name)
		skip := ""
		switch {
		case exists && existing.ID != t.id:
			skip = fmt.Sprintf("a topic named %q exists with another topic id", t.name)
		case exists && int32(len(existing.Partitions)) < t.count:
			skip = fmt.Sprintf("topic %q exists with %d partitions, the bucket has %d", t.name, len(existing.Partitions), t.count)
		case !exists:
			rf := min(int(s.cfg.DefaultReplicationFactor), len(liveBrokers(s.cfg.Metadata.State())))
			assignments, code, msg := s.placeReplicas(t.count, int16(max(rf, 1)), nil)
			if code != 0 {
				return fmt.Errorf("placing the replicas of topic %q: %s", t.name, msg)
			}
			_, err := s.cfg.Metadata.CreateTopic(ctx, metadata.TopicSpec{
				Name: t.name, ID: t.id, Assignments: assignments,
				Configs: map[string]string{"remote.storage.enable": "true", "retention.ms": "-1"},
			})
			if err != nil {
				return fmt.Errorf("creating topic %q: %w", t.name, err)
			}
			s.log.Info("recovery: created topic from the bucket", "topic", t.name, "topic_id", uuid.UUID(t.id), "partitions", t.count)
		}
		indexes := make([]int32, 0, len(t.partitions))
		for index := range t.partitions {
			indexes = append(indexes, index)
		}
		slices.Sort(indexes)
		for _, index := range indexes {
			m := t.partitions[index]
			report := RecoverProgress{Topic: t.name, Partition: index, Total: total, Skipped: skip, FirstOffset: -1, NextOffset: -1}
			if len(m.Segments) > 0 {
				report.FirstOffset, report.NextOffset = m.Segments[0].BaseOffset, m.Segments[len(m.Segments)-1].LastOffset+1
			}
			if skip == "" {
				n, err := s.importPartition(ctx, t.id, index, m)
				if err != nil {
					return fmt.Errorf("importing %s-%d: %w", t.name, index, err)
				}
				report.Segments = n
			}
			done++
			report.Done = done
			if progress != nil {
				progress(report)
			}
		}
	}
	return s.partitions.reconcile()
}

// importPartition imports the manifest's segments past the partition's
// remote log end.
func (s *Server) importPartition(ctx context.Context, topicID [16]byte, partition int32, m tiering.ManifestSnapshot) (int, error) {
	from := int64(0)
	if _, end, ok := s.cfg.Metadata.State().RemoteLogOffsets(topicID, partition); ok {
		from = end + 1
	}
	var entries []metadata.SegmentManifest
	for _, r := range m.Segments {
		if r.BaseOffset < from {
			continue
		}
		// The snapshot does not hold the uploader's epoch: the highest
		// epoch of the segment's offsets stands in for it.
		for _, epochRange := range r.EpochRanges {
			r.LeaderEpoch = max(r.LeaderEpoch, epochRange.Epoch)
		}
		entries = append(entries, r)
	}
	for start := 0; start < len(entries); start += recoverImportBatch {
		batch := entries[start:min(start+recoverImportBatch, len(entries))]
		if err := s.cfg.Metadata.ImportSegments(ctx, topicID, partition, batch); err != nil {
			return start, err
		}
	}
	return len(entries), nil
}

// ScrubBucket compares the object store with the Raft manifest (entries in
// every state): objects no entry names, entries whose objects are missing,
// .log objects of the wrong size.
func (s *Server) ScrubBucket(ctx context.Context) (tiering.ScrubReport, error) {
	tier := s.cfg.Tier
	if tier == nil {
		return tiering.ScrubReport{}, ErrNoTier
	}
	state := s.cfg.Metadata.State()
	var manifests []tiering.ManifestSnapshot
	var err error
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, _ int) bool {
		name := ""
		if t, ok := state.TopicByID(topicID); ok {
			name = t.Name
		} else if name, err = tier.TopicName(ctx, topicID); err != nil {
			if !errors.Is(err, tiering.ErrNotFound) {
				return false
			}
			err = nil
			return true // a deleted topic with no object left
		}
		m := tiering.ManifestSnapshot{Partition: metadata.TopicPartition{Topic: name, TopicID: topicID, Partition: partition}}
		state.EachSegment(topicID, partition, 0, func(e metadata.SegmentManifest) bool {
			m.Segments = append(m.Segments, e)
			return true
		})
		manifests = append(manifests, m)
		return true
	})
	if err != nil {
		return tiering.ScrubReport{}, err
	}
	// Partitions without entries may still have a (possibly empty)
	// manifest snapshot object: it is expected, not an orphan.
	listed := map[metadata.TopicPartition]bool{}
	for _, m := range manifests {
		listed[m.Partition] = true
	}
	state.EachTopic(func(t metadata.Topic) bool {
		for _, p := range t.Partitions {
			if tp := (metadata.TopicPartition{Topic: t.Name, TopicID: t.ID, Partition: p.Index}); !listed[tp] {
				manifests = append(manifests, tiering.ManifestSnapshot{Partition: tp})
			}
		}
		return true
	})
	return tier.Scrub(ctx, manifests)
}
