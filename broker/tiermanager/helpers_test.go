package tiermanager

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// fixture is one tiered partition led by this broker (node
// metadatatest.NodeID): a real metadata store, a memory bucket behind a
// fault-injecting wrapper, a real partition replica in a temp dir and a
// Manager.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	store  *metadata.Store
	faults *tieringtest.FaultBucket
	tier   *tiering.Tier
	topic  metadata.Topic
	// part is the replica the manager's Partitions lists (tests may
	// replace it between passes).
	part    *partition.Partition
	manager *Manager
}

// tieredConfigs are the configs of the fixture's topic: tiered, segments
// of two batches.
var tieredConfigs = map[string]string{"remote.storage.enable": "true", "segment.bytes": "4400"}

// newFixture builds the fixture with a topic of one partition whose
// replicas are this broker and then followers (none by default: the
// high watermark follows the appends), all registered live brokers, and
// appends batches of producer 42.
func newFixture(t *testing.T, batches int, followers ...int32) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, store: metadatatest.Start(t)}
	var err error
	replicas := append([]int32{metadatatest.NodeID}, followers...)
	for _, id := range replicas {
		metadatatest.RegisterBroker(t, f.store, id)
	}
	f.topic, err = f.store.CreateTopic(ctx, metadata.TopicSpec{Name: "orders", Assignments: [][]int32{replicas}, Configs: tieredConfigs})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := tiering.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	f.faults = tieringtest.NewFaultBucket(bucket)
	f.tier = f.newTier(f.faults, 0)
	f.part = openReplica(t, f.topic, tieredConfigs)
	appendBatches(t, f.part, batches, 42)
	f.manager = f.newManager()
	return f
}

// newTier returns a tier on bucket (the fixture's settings) uploading
// uploadConcurrency segments at once (0: the default).
func (f *fixture) newTier(bucket tiering.Bucket, uploadConcurrency int) *tiering.Tier {
	f.t.Helper()
	tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: f.t.TempDir(), UploadAttempts: 1, ReadAttempts: 1,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond, UploadConcurrency: uploadConcurrency, Logger: testLogger(f.t)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tier.Close() })
	return tier
}

// openReplica opens this broker's replica of the topic's partition 0 in a
// new directory with configs, and applies the topic's assignment.
func openReplica(t *testing.T, topic metadata.Topic, configs map[string]string) *partition.Partition {
	t.Helper()
	p, err := partition.Open(partition.Config{Dir: filepath.Join(t.TempDir(), "orders-0"), Topic: topic.Name, TopicID: topic.ID,
		Self: metadatatest.NodeID, Values: topicconfig.Typed(nil, configs), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.ApplyAssignment(topic.Partitions[0], time.Now())
	return p
}

// setConfigs applies topic configs to the fixture's replica.
func (f *fixture) setConfigs(configs map[string]string) {
	f.t.Helper()
	if err := f.part.SetConfig(topicconfig.Typed(nil, configs), f.store.State()); err != nil {
		f.t.Fatal(err)
	}
}

// followerAt records a fetch of follower at offset: with the follower in
// the ISR, the high watermark moves to offset.
func (f *fixture) followerAt(follower int32, offset int64) {
	f.t.Helper()
	expand, err := f.part.FollowerFetched(follower, offset, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	if expand != nil {
		f.part.ISRChangeDone(partition.ISROutcome{Refused: true})
	}
	if got := f.part.HighWatermark(); got != offset {
		f.t.Fatalf("high watermark %d after the follower fetched at %d", got, offset)
	}
}

// tiered returns tieredConfigs with more.
func tiered(more ...string) map[string]string {
	configs := maps.Clone(tieredConfigs)
	for i := 0; i+1 < len(more); i += 2 {
		configs[more[i]] = more[i+1]
	}
	return configs
}

// bumpLeaderEpoch starts a new leader epoch on the same leader (the
// partition applies it): later appends belong to it.
func (f *fixture) bumpLeaderEpoch() {
	f.t.Helper()
	topic, _ := f.store.State().TopicByID(f.topic.ID)
	if _, err := f.store.ChangePartition(f.ctx, metadata.PartitionChange{TopicID: f.topic.ID, Partition: 0,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, Leader: metadatatest.NodeID, ISR: []int32{metadatatest.NodeID}, BumpLeaderEpoch: true}); err != nil {
		f.t.Fatal(err)
	}
	topic, _ = f.store.State().TopicByID(f.topic.ID)
	f.part.ApplyAssignment(topic.Partitions[0], time.Now())
}

// startTerm starts a new leader epoch of this replica with the ISR as it
// is, applied as the partition manager applies a term's start
// (ApplyAssignmentAfterRemote: the quorum's log start and remote data
// followed).
func (f *fixture) startTerm() {
	f.t.Helper()
	topic, _ := f.store.State().TopicByID(f.topic.ID)
	if _, err := f.store.ChangePartition(f.ctx, metadata.PartitionChange{TopicID: f.topic.ID, Partition: 0,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, Leader: metadatatest.NodeID, ISR: topic.Partitions[0].ISR, BumpLeaderEpoch: true}); err != nil {
		f.t.Fatal(err)
	}
	topic, _ = f.store.State().TopicByID(f.topic.ID)
	f.part.ApplyAssignmentAfterRemote(topic.Partitions[0], time.Now(), f.store.State())
}

// newManager returns a Manager of the fixture's partition, as after a
// restart: no task state.
func (f *fixture) newManager() *Manager {
	f.t.Helper()
	m, err := New(Config{
		Tier: f.tier, Store: f.store, NodeID: metadatatest.NodeID,
		Partitions: func() []*partition.Partition { return []*partition.Partition{f.part} },
		StagingDir: filepath.Join(f.t.TempDir(), "staging"),
		Logger:     testLogger(f.t),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// pass runs one tick of the manager and waits for what it started.
func (f *fixture) pass() {
	f.t.Helper()
	f.manager.tick(f.ctx, time.Now())
	f.manager.wg.Wait()
}

// work runs one pass over the partition as its task would and returns its
// error.
func (f *fixture) work() error {
	f.manager.mu.Lock()
	t := f.manager.tasks[f.part]
	if t == nil {
		t = &task{producersEnd: -1}
		f.manager.tasks[f.part] = t
	}
	f.manager.mu.Unlock()
	return f.manager.work(f.ctx, f.part, t)
}

// entries returns the partition's manifest entries in every state.
func (f *fixture) entries() []metadata.SegmentManifest {
	var entries []metadata.SegmentManifest
	f.store.State().EachSegment(f.topic.ID, 0, 0, func(e metadata.SegmentManifest) bool {
		entries = append(entries, e)
		return true
	})
	return entries
}

// objects returns the keys in the bucket, sorted.
func (f *fixture) objects() []string {
	f.t.Helper()
	var keys []string
	if err := f.faults.Iter(f.ctx, "", func(key string, _ int64) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// sealed returns the local log's sealed segments.
func (f *fixture) sealed() []segment.SegmentInfo {
	var sealed []segment.SegmentInfo
	for _, info := range f.part.Segments() {
		if !info.Active {
			sealed = append(sealed, info)
		}
	}
	return sealed
}

// checkCoversSealed fails unless the manifest holds exactly one readable
// entry per sealed segment, in order, at the leader epoch, and the bucket
// holds their objects and nothing else but the manifest snapshot.
func (f *fixture) checkCoversSealed(sealed []segment.SegmentInfo, epoch int32) {
	f.t.Helper()
	entries := f.entries()
	if len(entries) != len(sealed) {
		f.t.Fatalf("%d manifest entries, want one per sealed segment (%d): %+v", len(entries), len(sealed), entries)
	}
	for i, e := range entries {
		if e.State != metadata.SegmentCopyFinished || e.BaseOffset != sealed[i].BaseOffset || e.LastOffset != sealed[i].EndOffset-1 ||
			e.SizeBytes != sealed[i].Size || e.LeaderEpoch != epoch {
			f.t.Fatalf("entry %d: %+v, want segment %+v finished at epoch %d", i, e, sealed[i], epoch)
		}
	}
	report, err := Scrub(f.ctx, f.tier, f.store.State())
	if err != nil || !report.Clean() || report.Objects != 6*len(sealed)+1 {
		f.t.Fatalf("scrub: %v %+v", err, report)
	}
}

// baseTimestamp is the timestamp of offset 0 in the logs tests build:
// recent, so that default retention keeps them.
var baseTimestamp = time.Now().UnixMilli()

// appendBatches appends batches of five 400-byte records (about 2.1 KiB
// each) to a leader replica, of producerID (sequences from the log end) or,
// with -1, of no idempotent producer. Replicas given the same batches hold
// the same bytes, whatever their segments.
func appendBatches(t *testing.T, p *partition.Partition, batches int, producerID int64) {
	t.Helper()
	for range batches {
		base := p.LogEndOffset()
		records := make([]recordbatch.Record, 5)
		for i := range records {
			records[i] = recordbatch.Record{Timestamp: baseTimestamp + base + int64(i), Key: []byte(fmt.Sprint(base)), Value: bytes.Repeat([]byte{byte(base)}, 400)}
		}
		opts := recordbatch.BuildOptions{}
		if producerID >= 0 {
			opts.Idempotent, opts.ProducerID, opts.BaseSequence = true, producerID, int32(base)
		}
		batch, err := recordbatch.Build(opts, records)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Append(batch, 9, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// testLogger logs into a buffer shown when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	var buffer lockedBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buffer.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buffer, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedBuffer struct {
	mu     sync.Mutex // guards buffer
	buffer strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}
