package group

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// topicIDs is the metadata a shard asks topic ids of
// (ShardConfig.TopicID): name → id, absent for a topic gone.
type topicIDs struct {
	mu  sync.Mutex // guards ids
	ids map[string][16]byte
}

func newTopicIDs(ids map[string][16]byte) *topicIDs { return &topicIDs{ids: ids} }

func (m *topicIDs) TopicID(name string) ([16]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.ids[name]
	return id, ok
}

// set gives a topic an id (re-created under its name), or removes it
// (deleted) for the zero id.
func (m *topicIDs) set(name string, id [16]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == ([16]byte{}) {
		delete(m.ids, name)
		return
	}
	m.ids[name] = id
}

func topicID(b byte) [16]byte { return [16]byte{15: b} }

// idShard is loadedShard with the topic ids of ids.
func idShard(t *testing.T, log Log, clock Clock, ids *topicIDs) *Shard {
	t.Helper()
	return loadedShardWithIDs(t, log, clock, ids.TopicID)
}

// TestOffsetsOfTopicReplacedUnseenGone: a topic deleted and re-created
// under its name that no TopicsDeleted reported to the shard (its broker
// was down, or led the partition only since its reconcile pass saw the
// change) has another id. The group's commits of the old topic, written
// with the old id, must not be served for the new one (the consumer would
// skip the new topic's first records); the shard's next expiry pass
// writes their tombstones. A commit to the new topic is served.
func TestOffsetsOfTopicReplacedUnseenGone(t *testing.T) {
	log := newMemLog()
	clock := newFakeClock()
	ids := newTopicIDs(map[string][16]byte{"t": topicID(1), "kept": topicID(2)})
	sh := idShard(t, log, clock, ids)
	now := clock.Now().UnixMilli()
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42, Timestamp: now}, tp("kept", 0): {Offset: 7, Timestamp: now}})
	txnCommit(t, sh, "h", pidA, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 43, Timestamp: now}})
	wantPending(t, sh, "h", tp("t", 0), true)

	ids.set("t", topicID(3))
	wantOffset(t, sh, "g", tp("t", 0), -1)
	wantOffset(t, sh, "g", tp("kept", 0), 7)
	wantPending(t, sh, "h", tp("t", 0), false)
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("t", 1): {Offset: 4, Timestamp: now}})
	wantOffset(t, sh, "g", tp("t", 1), 4)

	sh.removeDeletedTopics()
	if !log.tombstoned(t, "g", tp("t", 0)) || !log.tombstoned(t, "h", tp("t", 0)) {
		t.Fatal("no tombstone of the replaced topic's offsets after an expiry pass")
	}
	if log.tombstoned(t, "g", tp("t", 1)) || log.tombstoned(t, "g", tp("kept", 0)) {
		t.Fatal("tombstone of an offset of a topic still there")
	}
	again := idShard(t, log, clock, ids)
	wantOffset(t, again, "g", tp("t", 0), -1)
	wantOffset(t, again, "g", tp("t", 1), 4)
	wantOffset(t, again, "g", tp("kept", 0), 7)
}

// TestOffsetsOfTopicReplacedWhileDownRemovedAtLoad: a shard loading a log
// whose commits are of topics deleted (and one re-created) since, as a
// broker back from a restart, or newly leading the partition, does: their
// offsets are never served, and their tombstones are written in the
// background without waiting for an expiry pass.
func TestOffsetsOfTopicReplacedWhileDownRemovedAtLoad(t *testing.T) {
	log := newMemLog()
	clock := newFakeClock()
	ids := newTopicIDs(map[string][16]byte{"t": topicID(1), "gone": topicID(2), "kept": topicID(3)})
	sh := idShard(t, log, clock, ids)
	now := clock.Now().UnixMilli()
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42, Timestamp: now}, tp("gone", 0): {Offset: 5, Timestamp: now}, tp("kept", 0): {Offset: 7, Timestamp: now}})
	sh.Close()

	ids.set("t", topicID(4))
	ids.set("gone", [16]byte{})
	again := idShard(t, log, clock, ids)
	wantOffset(t, again, "g", tp("t", 0), -1)
	wantOffset(t, again, "g", tp("gone", 0), -1)
	wantOffset(t, again, "g", tp("kept", 0), 7)
	again.awaitRemoval()
	if !log.tombstoned(t, "g", tp("t", 0)) || !log.tombstoned(t, "g", tp("gone", 0)) {
		t.Fatal("no tombstones of the deleted topics' offsets written after the load")
	}
	if log.tombstoned(t, "g", tp("kept", 0)) {
		t.Fatal("tombstone of an offset of a topic still there")
	}
}

// TestOffsetsWithoutTopicIDKept: commits written without a topic id (by
// an older version, as v3 values, or of a topic the broker did not know)
// load and are kept whatever the topic's id now; only TopicsDeleted
// removes them.
func TestOffsetsWithoutTopicIDKept(t *testing.T) {
	log := newMemLog()
	clock := newFakeClock()
	now := clock.Now().UnixMilli()
	old := loadedShard(t, log, clock) // no ids
	plainCommit(t, old, "g", map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42, Timestamp: now}})
	old.Close()
	ids := newTopicIDs(map[string][16]byte{"t": topicID(1)})
	sh := idShard(t, log, clock, ids)
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("unknown", 0): {Offset: 3, Timestamp: now}})
	ids.set("unknown", topicID(2)) // created since the commit
	wantOffset(t, sh, "g", tp("t", 0), 42)
	wantOffset(t, sh, "g", tp("unknown", 0), 3)
	sh.TopicsDeleted("t")
	wantOffset(t, sh, "g", tp("t", 0), -1)
}

// TestCommitByTopicIDOfReplacedTopicRefused: an OffsetCommit v10 names
// its topics by id, resolved to names before the shard writes the
// commits; a topic deleted (or re-created under its name) in between no
// longer has the id the client named. Its commits must not be written
// with the new topic's id (and served to the new topic's consumers): the
// shard writes nothing and names the topics (UNKNOWN_TOPIC_ID), and the
// other commits go through again without them. A topic named by its
// current id is written with it, as one named by name is.
func TestCommitByTopicIDOfReplacedTopicRefused(t *testing.T) {
	log := newMemLog()
	clock := newFakeClock()
	ids := newTopicIDs(map[string][16]byte{"t": topicID(1), "gone": topicID(2), "kept": topicID(3)})
	sh := idShard(t, log, clock, ids)
	now := clock.Now().UnixMilli()
	// Resolved by the broker; then "t" is re-created, "gone" deleted.
	req := standalone("g")
	req.TopicIDs = map[string][16]byte{"t": topicID(1), "gone": topicID(2), "kept": topicID(3)}
	ids.set("t", topicID(4))
	ids.set("gone", [16]byte{})

	commits := map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42, Timestamp: now}, tp("gone", 0): {Offset: 5, Timestamp: now}, tp("kept", 0): {Offset: 7, Timestamp: now}}
	batches := len(log.batches)
	err := sh.CommitOffsets(req, commits)
	var refused *UnknownTopicIDError
	if !errors.As(err, &refused) || !slices.Equal(refused.Topics, []string{"gone", "t"}) || ErrorCode(err) != kerr.UnknownTopicID.Code {
		t.Fatalf("commit naming replaced topics by their old ids: %v, want UnknownTopicIDError of gone, t", err)
	}
	if len(log.batches) != batches {
		t.Fatal("a refused commit wrote records")
	}
	wantOffset(t, sh, "g", tp("t", 0), -1)
	wantOffset(t, sh, "g", tp("kept", 0), -1)

	delete(commits, tp("t", 0))
	delete(commits, tp("gone", 0))
	if err := sh.CommitOffsets(req, commits); err != nil {
		t.Fatal(err)
	}
	wantOffset(t, sh, "g", tp("kept", 0), 7)
	req.TopicIDs = map[string][16]byte{"t": topicID(4)}
	if err := sh.CommitOffsets(req, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 8, Timestamp: now}}); err != nil {
		t.Fatal(err)
	}
	wantOffset(t, sh, "g", tp("t", 0), 8)
	sh.mu.Lock()
	stored := sh.offsets["g"][tp("t", 0)].topicID
	sh.mu.Unlock()
	if stored != topicID(4) {
		t.Fatalf("commit by the current id stored with id %x, want %x", stored, topicID(4))
	}
}

var updateOffsetGolden = flag.Bool("update-offset-golden", false, "rewrite testdata/offset-commit-batch-topic-id.golden")

// TestOffsetCommitRecordTopicID: a commit of a topic whose id is known is
// written as Kafka 4.x writes it, an OffsetCommitValue v4 with the id in
// tagged field 0 (golden file), and loads with it; a commit of a topic
// without a known id as v3, as before.
func TestOffsetCommitRecordTopicID(t *testing.T) {
	log := newMemLog()
	id := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	ids := newTopicIDs(map[string][16]byte{"topic": id})
	sh := idShard(t, log, newFakeClock(), ids)
	plainCommit(t, sh, "grp", map[TopicPartition]CommittedOffset{tp("topic", 3): {Offset: 42, LeaderEpoch: 7, Metadata: "meta", Timestamp: 1_700_000_000_123}})
	plainCommit(t, sh, "grp", map[TopicPartition]CommittedOffset{tp("other", 0): {Offset: 1, LeaderEpoch: -1, Timestamp: 1_700_000_000_123}})
	log.mu.Lock()
	batches := append([][]byte(nil), log.batches...)
	log.mu.Unlock()
	records := func(batch []byte) []recordbatch.Record {
		t.Helper()
		recs, err := recordbatch.Records(batch)
		if err != nil || len(recs) != 1 {
			t.Fatalf("records %v %v", recs, err)
		}
		return recs
	}
	// Kafka's bytes: value version 4 (flexible): offset, leader epoch,
	// compact metadata string, commit timestamp, one tagged field: tag
	// 0, 16 bytes, the topic id.
	recs := records(batches[0])
	value := binary.BigEndian.AppendUint16(nil, 4)
	value = binary.BigEndian.AppendUint64(value, 42)
	value = binary.BigEndian.AppendUint32(value, 7)
	value = append(value, byte(len("meta")+1))
	value = append(value, "meta"...)
	value = binary.BigEndian.AppendUint64(value, 1_700_000_000_123)
	value = append(value, 1, 0, 16)
	value = append(value, id[:]...)
	if key := kafkaOffsetCommitKey("grp", "topic", 3); !bytes.Equal(recs[0].Key, key) || !bytes.Equal(recs[0].Value, value) {
		t.Fatalf("record\nkey   %x\nvalue %x\nwant\nkey   %x\nvalue %x", recs[0].Key, recs[0].Value, key, value)
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(recs[0].Value); err != nil || v.Version != 4 || v.Offset != 42 || v.LeaderEpoch != 7 || v.Metadata != "meta" || v.TopicID != id {
		t.Fatalf("kmsg reads %+v %v", v, err)
	}
	if recs := records(batches[1]); !bytes.Equal(recs[0].Value, kafkaOffsetCommitValue(1, -1, "", 1_700_000_000_123)) {
		t.Fatalf("commit of a topic without id: value %x, want v3", recs[0].Value)
	}
	golden := filepath.Join("testdata", "offset-commit-batch-topic-id.golden")
	if *updateOffsetGolden {
		if err := os.WriteFile(golden, []byte(hex.Dump(batches[0])), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-offset-golden to write it)", err)
	}
	if got := hex.Dump(batches[0]); got != string(want) {
		t.Fatalf("the offset commit batch changed:\n%s\nwant\n%s", got, want)
	}

	// Loaded with the id: served while the topic has it, not once it
	// has another.
	again := idShard(t, log, newFakeClock(), ids)
	wantOffset(t, again, "grp", tp("topic", 3), 42)
	again.mu.Lock()
	loadedID := again.offsets["grp"][tp("topic", 3)].topicID
	again.mu.Unlock()
	if loadedID != id {
		t.Fatalf("loaded topic id %x, want %x", loadedID, id)
	}
	ids.set("topic", topicID(9))
	wantOffset(t, again, "grp", tp("topic", 3), -1)
	wantOffset(t, again, "grp", tp("other", 0), 1)
}
