package tiermanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

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

// RecoveryStore is what a recovery writes to the metadata store
// (*metadata.Store): the topics it finds, their segments and log start
// offsets.
type RecoveryStore interface {
	State() *metadata.State
	CreateTopic(ctx context.Context, spec metadata.TopicSpec) (metadata.Topic, error)
	ImportSegments(ctx context.Context, topicID [16]byte, partition int32, segments []metadata.SegmentManifest) error
	SetLogStartOffset(ctx context.Context, topicID [16]byte, partition, leaderEpoch int32, offset int64) (int64, error)
	ReserveProducerIDs(ctx context.Context, below int64) error
}

var _ RecoveryStore = (*metadata.Store)(nil)

// Cluster is what a recovery needs from the broker (package broker's
// Server implements it).
type Cluster interface {
	// PlaceReplicas assigns the replicas of a new topic's partitions as
	// CreateTopics does with the broker's default replication factor,
	// capped at the live brokers.
	PlaceReplicas(partitions int32) ([][]int32, error)
	// Reconcile applies the metadata state to the local partitions now.
	Reconcile() error
}

// RecoverConfig is what Recover works with; every field is required but
// Logger (default slog.Default()).
type RecoverConfig struct {
	Tier    *tiering.Tier
	Store   RecoveryStore
	Cluster Cluster
	Logger  *slog.Logger
}

// recoverImportBatch is how many manifest entries one Raft command imports.
const recoverImportBatch = 5000

// Recover rebuilds topics from the object store alone (disaster recovery
// into an empty cluster): for every partition manifest snapshot in the
// bucket it creates the topic with its old topic id — configs
// remote.storage.enable=true and retention.ms=-1, so nothing recovered
// expires before the operator sets the retention — and imports the
// segments into the Raft manifest, and the partition's log start offset
// when the snapshot has one inside them (records deleted by DeleteRecords
// stay deleted). Consumers then replay all history; new
// records continue after the recovered offsets. Before any topic is
// created it reserves the producer ids of the recovered producer state
// (reserveRecoveredProducerIDs), so no new producer is given one of them.
// It is idempotent: a topic
// that exists with the same id gets only the segments its manifest lacks;
// one that exists with another id is skipped. progress (may be nil) hears
// of each partition as it is done.
func Recover(ctx context.Context, cfg RecoverConfig, progress func(RecoverProgress)) error {
	if cfg.Tier == nil || cfg.Store == nil || cfg.Cluster == nil {
		return errors.New("tiermanager: RecoverConfig needs Tier, Store and Cluster")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	snapshots, err := cfg.Tier.ManifestSnapshots(ctx)
	if err != nil {
		return fmt.Errorf("reading the manifest snapshots in the bucket: %w", err)
	}
	if err := reserveRecoveredProducerIDs(ctx, cfg.Tier, cfg.Store, snapshots); err != nil {
		return fmt.Errorf("%w (this run created and imported nothing: run the recovery again once that is mended)", err)
	}
	type topicSnapshots struct {
		name       string
		id         [16]byte
		partitions map[int32]tiering.ManifestSnapshot
		count      int32
	}
	var order [][16]byte
	topics := map[[16]byte]*topicSnapshots{}
	for _, snapshot := range snapshots {
		t := topics[snapshot.Partition.TopicID]
		if t == nil {
			t = &topicSnapshots{name: snapshot.Partition.Topic, id: snapshot.Partition.TopicID, partitions: map[int32]tiering.ManifestSnapshot{}}
			topics[t.id] = t
			order = append(order, t.id)
		}
		t.partitions[snapshot.Partition.Partition] = snapshot
		t.count = max(t.count, snapshot.Partition.Partition+1)
	}
	total := len(snapshots)
	done := 0
	for _, id := range order {
		t := topics[id]
		existing, exists := cfg.Store.State().Topic(t.name)
		skip := ""
		switch {
		case exists && existing.ID != t.id:
			skip = fmt.Sprintf("a topic named %q exists with another topic id", t.name)
		case exists && int32(len(existing.Partitions)) < t.count:
			skip = fmt.Sprintf("topic %q exists with %d partitions, the bucket has %d", t.name, len(existing.Partitions), t.count)
		case !exists:
			assignments, err := cfg.Cluster.PlaceReplicas(t.count)
			if err != nil {
				return fmt.Errorf("placing the replicas of topic %q: %w", t.name, err)
			}
			_, err = cfg.Store.CreateTopic(ctx, metadata.TopicSpec{
				Name: t.name, ID: t.id, Assignments: assignments,
				Configs: map[string]string{"remote.storage.enable": "true", "retention.ms": "-1"},
			})
			if err != nil {
				return fmt.Errorf("creating topic %q: %w", t.name, err)
			}
			log.Info("recovery: created topic from the bucket", "topic", t.name, "topic_id", uuid.UUID(t.id), "partitions", t.count)
		}
		indexes := make([]int32, 0, len(t.partitions))
		for index := range t.partitions {
			indexes = append(indexes, index)
		}
		slices.Sort(indexes)
		for _, index := range indexes {
			snapshot := t.partitions[index]
			report := RecoverProgress{Topic: t.name, Partition: index, Total: total, Skipped: skip, FirstOffset: -1, NextOffset: -1}
			if len(snapshot.Segments) > 0 {
				report.NextOffset = snapshot.Segments[len(snapshot.Segments)-1].LastOffset + 1
				report.FirstOffset = min(max(snapshot.Segments[0].BaseOffset, snapshot.LogStartOffset), report.NextOffset)
			}
			if skip == "" {
				n, err := importPartition(ctx, cfg.Store, snapshot)
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
	return cfg.Cluster.Reconcile()
}

// reserveRecoveredProducerIDs takes the producer ids of the recovered
// producer state out of allocation: every id up to the largest one in the
// .producers object of each partition's last remote segment. That object
// is the state the recovered data hands on: a replica restarting from the
// tier loads the .producers of the remote segment below its leader's local
// log start, which after a recovery is this one or a later upload's, and
// each upload's state is the previous one's plus its segment (producers
// missing from it, expired, are in no state anyone loads). A new producer
// given one of those ids would meet the old producer's epoch and sequence:
// fenced (INVALID_PRODUCER_EPOCH), or its first batch taken for a
// duplicate, acknowledged and never appended. As Kafka's producer-id
// blocks, an id is never handed out twice. A recovered id of
// math.MaxInt64 fails the recovery, naming its partition: no id is left
// past it (as a Kafka block past the max is an error).
func reserveRecoveredProducerIDs(ctx context.Context, tier *tiering.Tier, store RecoveryStore, snapshots []tiering.ManifestSnapshot) error {
	highest := int64(-1)
	for _, snapshot := range snapshots {
		if len(snapshot.Segments) == 0 {
			continue
		}
		last := snapshot.Segments[len(snapshot.Segments)-1]
		name := snapshot.Partition
		data, err := tier.ReadProducerSnapshot(ctx, name, last)
		if err != nil {
			return fmt.Errorf("reading the producer state of %s-%d at offset %d: %w", name.Topic, name.Partition, last.LastOffset, err)
		}
		if len(data) == 0 {
			continue
		}
		state, err := producer.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("reading the producer state of %s-%d at offset %d: %w", name.Topic, name.Partition, last.LastOffset, err)
		}
		for _, p := range state.Producers() {
			if p.ProducerID == math.MaxInt64 {
				// No id is left past it to reserve (highest+1 would
				// overflow); no producer-id block ever holds it.
				return fmt.Errorf("the producer state of %s-%d at offset %d holds producer id %d, the largest there is: no producer id past it can be reserved", name.Topic, name.Partition, last.LastOffset, p.ProducerID)
			}
			highest = max(highest, p.ProducerID)
		}
	}
	if highest < 0 {
		return nil
	}
	if err := store.ReserveProducerIDs(ctx, highest+1); err != nil {
		return fmt.Errorf("reserving the recovered producer ids (up to %d): %w", highest, err)
	}
	return nil
}

// importPartition imports the snapshot's segments past the partition's
// remote log end, in batches of recoverImportBatch, then moves the
// partition's log start offset up to the snapshot's (as DeleteRecords
// does) when it is above the first remote offset, at most to the remote
// log end: the records below it, deleted in the old cluster, stay
// deleted (ListOffsets EARLIEST answers it, a Fetch below it is
// OFFSET_OUT_OF_RANGE). A snapshot of version 1 has no log start (-1):
// the partition starts at its first segment.
func importPartition(ctx context.Context, store RecoveryStore, snapshot tiering.ManifestSnapshot) (int, error) {
	name := snapshot.Partition
	entries := importedEntries(store.State(), snapshot)
	for start := 0; start < len(entries); start += recoverImportBatch {
		batch := entries[start:min(start+recoverImportBatch, len(entries))]
		if err := store.ImportSegments(ctx, name.TopicID, name.Partition, batch); err != nil {
			return start, err
		}
	}
	state := store.State()
	remoteStart, remoteEnd, ok := state.RemoteLogOffsets(name.TopicID, name.Partition)
	if !ok || snapshot.LogStartOffset <= remoteStart {
		return len(entries), nil
	}
	logStart := min(snapshot.LogStartOffset, remoteEnd+1)
	if current, set := state.LogStartOffset(name.TopicID, name.Partition); set && current >= logStart {
		return len(entries), nil
	}
	topic, found := state.TopicByID(name.TopicID)
	if !found || !topic.HasPartition(name.Partition) {
		return len(entries), fmt.Errorf("setting the log start offset %d: partition not found", logStart)
	}
	if _, err := store.SetLogStartOffset(ctx, name.TopicID, name.Partition, topic.Partitions[name.Partition].LeaderEpoch, logStart); err != nil {
		return len(entries), fmt.Errorf("setting the log start offset %d: %w", logStart, err)
	}
	return len(entries), nil
}

// importedEntries are the manifest entries a recovery imports from a
// partition's manifest snapshot: those past the partition's remote log end
// in state, each with the highest epoch of its offsets, or the snapshot
// writer's epoch if higher, as its leader epoch (the snapshot does not
// hold the uploader's). The import lifts the partition's leader epoch
// above them, so the recovered cluster's snapshots, named by its leaders'
// epochs, supersede the old cluster's in the bucket.
func importedEntries(state *metadata.State, snapshot tiering.ManifestSnapshot) []metadata.SegmentManifest {
	from := int64(0)
	if _, end, ok := state.RemoteLogOffsets(snapshot.Partition.TopicID, snapshot.Partition.Partition); ok {
		from = end + 1
	}
	var entries []metadata.SegmentManifest
	for _, e := range snapshot.Segments {
		if e.BaseOffset < from {
			continue
		}
		e.LeaderEpoch = max(e.LeaderEpoch, snapshot.Epoch)
		for _, epochRange := range e.EpochRanges {
			e.LeaderEpoch = max(e.LeaderEpoch, epochRange.Epoch)
		}
		entries = append(entries, e)
	}
	return entries
}

// Scrub compares the object store with the Raft manifest in state (entries
// in every state): objects no entry names, entries whose objects are
// missing, .log objects of the wrong size. Partitions of live topics
// without entries may still have a (possibly empty) manifest snapshot
// object: it is expected, not an orphan.
func Scrub(ctx context.Context, tier *tiering.Tier, state *metadata.State) (tiering.ScrubReport, error) {
	var snapshots []tiering.ManifestSnapshot
	var err error
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, _ int) bool {
		topic := ""
		if t, ok := state.TopicByID(topicID); ok {
			topic = t.Name
		} else if topic, err = tier.TopicName(ctx, topicID); err != nil {
			if !errors.Is(err, tiering.ErrNotFound) {
				return false
			}
			err = nil
			return true // a deleted topic with no object left
		}
		snapshot := tiering.ManifestSnapshot{Partition: metadata.TopicPartition{Topic: topic, TopicID: topicID, Partition: partition}}
		state.EachSegment(topicID, partition, 0, func(e metadata.SegmentManifest) bool {
			snapshot.Segments = append(snapshot.Segments, e)
			return true
		})
		snapshots = append(snapshots, snapshot)
		return true
	})
	if err != nil {
		return tiering.ScrubReport{}, err
	}
	listed := map[metadata.TopicPartition]bool{}
	for _, snapshot := range snapshots {
		listed[snapshot.Partition] = true
	}
	state.EachTopic(func(t metadata.Topic) bool {
		for _, p := range t.Partitions {
			if name := (metadata.TopicPartition{Topic: t.Name, TopicID: t.ID, Partition: p.Index}); !listed[name] {
				snapshots = append(snapshots, tiering.ManifestSnapshot{Partition: name})
			}
		}
		return true
	})
	return tier.Scrub(ctx, snapshots)
}
