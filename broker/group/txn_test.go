package group

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

const (
	pidA, pidB, pidC = int64(1000), int64(2000), int64(3000)
	epoch            = int16(4)
)

func txnCommit(t *testing.T, sh *Shard, groupID string, producerID int64, commits map[TopicPartition]CommittedOffset) {
	t.Helper()
	if err := sh.CommitTxnOffsets(standalone(groupID), TxnProducer{"tx", producerID, epoch}, commits); err != nil {
		t.Fatal(err)
	}
}

func plainCommit(t *testing.T, sh *Shard, groupID string, commits map[TopicPartition]CommittedOffset) {
	t.Helper()
	if err := sh.CommitOffsets(standalone(groupID), commits); err != nil {
		t.Fatal(err)
	}
}

// wantOffset fails unless the group's committed offset of tp is want (-1:
// none).
func wantOffset(t *testing.T, sh *Shard, groupID string, tp TopicPartition, want int64) {
	t.Helper()
	c, ok := sh.FetchOffset(groupID, tp)
	got := int64(-1)
	if ok {
		got = c.Offset
	}
	if got != want {
		t.Fatalf("%s %v: committed offset %d, want %d", groupID, tp, got, want)
	}
	if _, listed := sh.GroupOffsets(groupID)[tp]; listed != (want >= 0) {
		t.Fatalf("%s %v: GroupOffsets lists it: %v, want %v", groupID, tp, listed, want >= 0)
	}
}

func wantPending(t *testing.T, sh *Shard, groupID string, tp TopicPartition, want bool) {
	t.Helper()
	if got := sh.PendingTxnOffset(groupID, tp); got != want {
		t.Fatalf("%s %v: pending transactional commit %v, want %v", groupID, tp, got, want)
	}
}

// TestTxnOffsetsInvisibleUntilCommit: a transactional commit is not the
// group's committed offset (nor listed) until its transaction commits,
// and is then; another producer's transaction is not affected.
func TestTxnOffsetsInvisibleUntilCommit(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 5, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 9, LeaderEpoch: 2, Metadata: "m"}, tp("a", 1): {Offset: 3, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidB, map[TopicPartition]CommittedOffset{tp("b", 0): {Offset: 1, LeaderEpoch: -1}})
	wantOffset(t, sh, "g", tp("a", 0), 5)
	wantOffset(t, sh, "g", tp("a", 1), -1)
	wantPending(t, sh, "g", tp("a", 0), true)
	wantPending(t, sh, "g", tp("a", 1), true)
	wantPending(t, sh, "g", tp("a", 2), false)

	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	wantOffset(t, sh, "g", tp("a", 0), 9)
	wantOffset(t, sh, "g", tp("a", 1), 3)
	if c, _ := sh.FetchOffset("g", tp("a", 0)); c.LeaderEpoch != 2 || c.Metadata != "m" {
		t.Fatalf("committed %+v, want the transaction's epoch and metadata", c)
	}
	wantPending(t, sh, "g", tp("a", 0), false)
	wantPending(t, sh, "g", tp("b", 0), true)
	wantOffset(t, sh, "g", tp("b", 0), -1)
	// A repeated marker (a retried WriteTxnMarkers) changes nothing.
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	wantOffset(t, sh, "g", tp("a", 0), 9)
}

// TestTxnOffsetsDroppedOnAbort: an aborted transaction's commits never
// become visible, and the committed offset before it stays.
func TestTxnOffsetsDroppedOnAbort(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 5, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 9, LeaderEpoch: -1}, tp("a", 1): {Offset: 3, LeaderEpoch: -1}})
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, false), false)
	wantOffset(t, sh, "g", tp("a", 0), 5)
	wantOffset(t, sh, "g", tp("a", 1), -1)
	wantPending(t, sh, "g", tp("a", 0), false)
	// A marker for the ended transaction brings nothing back.
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	wantOffset(t, sh, "g", tp("a", 0), 5)
}

// TestTxnOffsetsReplay: a new shard over the log has what the markers in
// it say: a committed transaction's offsets, not an aborted one's, and a
// transaction without a marker yet still pending (completed later by
// CompleteTransaction); a group known only by pending offsets is there
// (Empty). The shard's state after each step equals a replay's.
func TestTxnOffsetsReplay(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 10, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidB, map[TopicPartition]CommittedOffset{tp("a", 1): {Offset: 20, LeaderEpoch: -1}})
	txnCommit(t, sh, "only-pending", pidC, map[TopicPartition]CommittedOffset{tp("a", 2): {Offset: 30, LeaderEpoch: -1}})
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	sh.CompleteTransaction(pidB, log.marker(t, pidB, epoch, false), false)
	// pidA's next transaction, after its marker, is pending again.
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 11, LeaderEpoch: -1}})

	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "g", tp("a", 0), 10)
		wantPending(t, s, "g", tp("a", 0), true)
		wantOffset(t, s, "g", tp("a", 1), -1)
		wantPending(t, s, "g", tp("a", 1), false)
		wantOffset(t, s, "only-pending", tp("a", 2), -1)
		wantPending(t, s, "only-pending", tp("a", 2), true)
	}
	again := loadedShard(t, log, clock)
	if d, err := again.Coordinator().Describe("only-pending"); err != nil || d.State != StateEmpty {
		t.Fatalf("group with only pending offsets after replay: %+v %v, want Empty", d, err)
	}
	// The transactions pending at the end of the log end later.
	again.CompleteTransaction(pidC, log.marker(t, pidC, epoch, true), true)
	again.CompleteTransaction(pidA, log.marker(t, pidA, epoch, false), false)
	for _, s := range []*Shard{again, loadedShard(t, log, clock)} {
		wantOffset(t, s, "only-pending", tp("a", 2), 30)
		wantOffset(t, s, "g", tp("a", 0), 10)
		wantPending(t, s, "g", tp("a", 0), false)
	}
}

// TestTxnOffsetsManagerCompleteTransaction: the Manager hands a marker to
// the shard of its partition; a partition without a shard here is a no-op.
func TestTxnOffsetsManagerCompleteTransaction(t *testing.T) {
	m := newTestManager(t, &fakeTopic{leaders: []int32{1}})
	log := newMemLog()
	if err := m.Lead(0, log); err != nil {
		t.Fatal(err)
	}
	sh := waitServing(t, m, "g")
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 7, LeaderEpoch: -1}})
	m.CompleteTransaction(5, pidA, epoch, 100, true) // not this shard's partition
	wantOffset(t, sh, "g", tp("a", 0), -1)
	m.CompleteTransaction(0, pidA, epoch, log.marker(t, pidA, epoch, true), true)
	wantOffset(t, sh, "g", tp("a", 0), 7)
}

// TestTxnOffsetsInterleavedWithPlainCommits: of a transactional and a
// plain commit of one partition, the one whose record was written later
// is the committed offset once the transaction commits, whatever the order
// the transaction ends in (Kafka's rule) — live and after a replay.
func TestTxnOffsetsInterleavedWithPlainCommits(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	// a-0: the transaction writes first, a plain commit follows, then the
	// transaction commits: the plain commit stays.
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 100, LeaderEpoch: -1}})
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 50, LeaderEpoch: -1}})
	// a-1: a plain commit first, then the transaction's: the
	// transaction's wins when it commits.
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 1): {Offset: 60, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 1): {Offset: 40, LeaderEpoch: -1}})
	wantOffset(t, sh, "g", tp("a", 0), 50)
	wantOffset(t, sh, "g", tp("a", 1), 60)
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "g", tp("a", 0), 50)
		wantOffset(t, s, "g", tp("a", 1), 40)
	}
	// A plain commit after the transaction committed replaces it as usual.
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 1): {Offset: 41, LeaderEpoch: -1}})
	wantOffset(t, sh, "g", tp("a", 1), 41)
}

// TestTxnOffsetsTombstones: a group's deletion drops its pending
// transactional commits (tombstones for partitions only pending too), so
// the transaction's commit does not bring them back; so does an offset
// deletion of the partition. Live and after a replay.
func TestTxnOffsetsTombstones(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	plainCommit(t, sh, "gone", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1, LeaderEpoch: -1}})
	txnCommit(t, sh, "gone", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 2, LeaderEpoch: -1}, tp("a", 1): {Offset: 3, LeaderEpoch: -1}})
	plainCommit(t, sh, "kept", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1, LeaderEpoch: -1}})
	txnCommit(t, sh, "kept", pidA, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 4, LeaderEpoch: -1}, tp("a", 1): {Offset: 5, LeaderEpoch: -1}})
	if err := sh.DeleteGroupData("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.DeleteOffsets("kept", []TopicPartition{tp("a", 0)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantPending(t, s, "gone", tp("a", 1), false)
		wantPending(t, s, "kept", tp("a", 0), false)
		wantPending(t, s, "kept", tp("a", 1), true)
	}
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "gone", tp("a", 0), -1)
		wantOffset(t, s, "gone", tp("a", 1), -1)
		wantOffset(t, s, "kept", tp("a", 0), -1)
		wantOffset(t, s, "kept", tp("a", 1), 5)
	}
}

// TestTxnOffsetsExpiry: an old offset whose partition has a pending
// transactional commit is not expired, and an Empty group left with only
// a pending transaction's commits is not deleted; once the transaction
// ends they are.
func TestTxnOffsetsExpiry(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	const retention = time.Hour
	now := clock.Now()
	old := CommittedOffset{Offset: 1, LeaderEpoch: -1, Timestamp: now.Add(-2 * retention).UnixMilli()}
	for _, id := range []string{"g", "h"} {
		if err := sh.Coordinator().Restore(Record{GroupID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// g: a-0 expires, a-1 has a transaction pending.
	plainCommit(t, sh, "g", map[TopicPartition]CommittedOffset{tp("a", 0): old, tp("a", 1): old})
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("a", 1): {Offset: 2, LeaderEpoch: -1, Timestamp: old.Timestamp}})
	// h: its only committed offset expires; a transaction has another
	// partition's commit pending.
	plainCommit(t, sh, "h", map[TopicPartition]CommittedOffset{tp("a", 0): old})
	txnCommit(t, sh, "h", pidA, map[TopicPartition]CommittedOffset{tp("a", 2): {Offset: 3, LeaderEpoch: -1, Timestamp: old.Timestamp}})
	all := func(TopicPartition) bool { return true }
	offsets, groups, err := sh.ExpireOffsets(now, retention, all)
	if err != nil || offsets != 2 || groups != 0 {
		t.Fatalf("expiry with a pending transaction: %d offsets, %d groups, %v; want 2, 0", offsets, groups, err)
	}
	wantOffset(t, sh, "g", tp("a", 0), -1)
	wantOffset(t, sh, "g", tp("a", 1), 1)
	wantOffset(t, sh, "h", tp("a", 0), -1)
	wantPending(t, sh, "h", tp("a", 2), true)
	if d, err := sh.Coordinator().Describe("h"); err != nil || d.State != StateEmpty {
		t.Fatalf("group with a pending transaction: %+v %v, want it kept", d, err)
	}
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, false), false)
	offsets, groups, err = sh.ExpireOffsets(now, retention, all)
	if err != nil || offsets != 1 || groups != 2 {
		t.Fatalf("expiry after the transaction: %d offsets, %d groups, %v; want 1, 2", offsets, groups, err)
	}
	for _, id := range []string{"g", "h"} {
		if d, err := sh.Coordinator().Describe(id); err == nil && d.State != StateDead {
			t.Fatalf("expired group %s still there: %+v", id, d)
		}
	}
}

// TestTxnOffsetsOfDeletedTopics: the offsets of a deleted topic go,
// pending transactional ones too (tombstones), so the transaction's
// commit does not bring them back; an Empty group left with nothing is
// deleted.
func TestTxnOffsetsOfDeletedTopics(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	if err := sh.Coordinator().Restore(Record{GroupID: "g"}); err != nil {
		t.Fatal(err)
	}
	txnCommit(t, sh, "g", pidA, map[TopicPartition]CommittedOffset{tp("gone", 0): {Offset: 2, LeaderEpoch: -1}})
	txnCommit(t, sh, "g", pidB, map[TopicPartition]CommittedOffset{tp("gone", 1): {Offset: 3, LeaderEpoch: -1}})
	exists := func(tp TopicPartition) bool { return tp.Topic != "gone" }
	offsets, groups, err := sh.ExpireOffsets(clock.Now(), -1, exists)
	if err != nil || offsets != 2 || groups != 1 {
		t.Fatalf("expiry of a deleted topic: %d offsets, %d groups, %v; want 2, 1", offsets, groups, err)
	}
	sh.CompleteTransaction(pidA, log.marker(t, pidA, epoch, true), true)
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantPending(t, s, "g", tp("gone", 1), false)
		wantOffset(t, s, "g", tp("gone", 0), -1)
	}
	if d, err := sh.Coordinator().Describe("g"); err == nil && d.State != StateDead {
		t.Fatalf("emptied group still there: %+v", d)
	}
}

// TestTxnOffsetCommitFailure: a failed transactional write changes
// nothing; the log's error (a fenced producer's, too) is the caller's.
func TestTxnOffsetCommitFailure(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	log.set(func(l *memLog) { l.fail = kerr.ProducerFenced })
	if err := sh.CommitTxnOffsets(standalone("g"), TxnProducer{"tx", pidA, epoch}, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1}}); ErrorCode(err) != kerr.ProducerFenced.Code {
		t.Fatalf("commit of a fenced producer: %v", err)
	}
	wantPending(t, sh, "g", tp("a", 0), false)
	log.set(func(l *memLog) { l.fail = nil })
	sh.Close()
	if err := sh.CommitTxnOffsets(standalone("g"), TxnProducer{"tx", pidA, epoch}, map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1}}); ErrorCode(err) != kerr.NotCoordinator.Code {
		t.Fatalf("commit on a closed shard: %v", err)
	}
}

// TestTxnOffsetCommitFencing: TxnOffsetCommit v3+ (KIP-447) is fenced by
// generation, member id and instance id as OffsetCommit is; without a
// member (v0-v2) it is accepted whatever the group's state, and a member
// may commit while the group completes a rebalance.
func TestTxnOffsetCommitFencing(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: time.Second})
	ms := h.stableGroup(g1, 2, "instance-a")
	a, b := ms[0], ms[1]
	txn := func(generation int32, memberID, instanceID string) error {
		return h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: generation, MemberID: memberID, GroupInstanceID: instanceID, Transactional: true})
	}
	wantErr(t, "member of the generation", txn(b.generation, b.id, ""), nil)
	wantErr(t, "static member", txn(a.generation, a.id, "instance-a"), nil)
	wantErr(t, "old generation", txn(b.generation-1, b.id, ""), kerr.IllegalGeneration)
	wantErr(t, "unknown member", txn(b.generation, "zombie", ""), kerr.UnknownMemberID)
	wantErr(t, "fenced instance", txn(a.generation, b.id, "instance-a"), kerr.FencedInstanceID)
	wantErr(t, "unknown instance", txn(a.generation, a.id, "instance-z"), kerr.UnknownMemberID)
	wantErr(t, "no member (v0-v2)", txn(-1, "", ""), nil)
	wantErr(t, "no member, plain commit", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: -1}), kerr.UnknownMemberID)
	wantErr(t, "unknown group with a generation", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "new", GenerationID: 1, MemberID: "m", Transactional: true}), kerr.IllegalGeneration)
	wantErr(t, "unknown group without", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "new", GenerationID: -1, Transactional: true}), nil)
	h.wantState("new", StateEmpty)

	// A rebalance: a third member joins, the others rejoin, and the group
	// completes the rebalance with a new generation.
	j := h.join(joinReq(g1, ""))
	ja := h.join(staticJoinReq(g1, a.id, "instance-a"))
	jb := h.join(joinReq(g1, b.id))
	_, _ = j.result(), ja.result()
	rb := jb.result()
	h.wantState(g1, StateCompletingRebalance)
	wantErr(t, "txn commit while completing the rebalance", txn(rb.GenerationID, b.id, ""), nil)
	wantErr(t, "plain commit while completing the rebalance", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: rb.GenerationID, MemberID: b.id}), kerr.RebalanceInProgress)
	wantErr(t, "txn commit of the previous generation", txn(b.generation, b.id, ""), kerr.IllegalGeneration)
}

var updateTxnGolden = flag.Bool("update-txn-golden", false, "rewrite testdata/txn-offset-commit-batch.golden")

// TestTxnOffsetCommitRecordFormat: the transactional batch a shard writes
// is Kafka's: a transactional batch of the producer (id, epoch,
// sequence 0, as Kafka's coordinator writes it) holding OffsetCommitKey v1 / OffsetCommitValue v3 records,
// the schema of plain commits (golden file). And a batch with Kafka's
// bytes, written by hand, replays as a pending commit that its marker
// commits.
func TestTxnOffsetCommitRecordFormat(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	txnCommit(t, sh, "grp", pidA, map[TopicPartition]CommittedOffset{tp("topic", 3): {Offset: 42, LeaderEpoch: 7, Metadata: "meta", Timestamp: 1_700_000_000_123}})
	log.mu.Lock()
	batch := log.batches[0]
	log.mu.Unlock()
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	if !h.IsTransactional() || h.IsControl() || h.ProducerID != pidA || h.ProducerEpoch != epoch || h.BaseSequence != 0 {
		t.Fatalf("header %+v: want a transactional batch of producer %d epoch %d, sequence 0", h, pidA, epoch)
	}
	recs, err := recordbatch.Records(batch)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	// Kafka's bytes: key version 1, group, topic, partition; value
	// version 3, offset, leader epoch, metadata, commit timestamp.
	key := kafkaOffsetCommitKey("grp", "topic", 3)
	value := kafkaOffsetCommitValue(42, 7, "meta", 1_700_000_000_123)
	if !bytes.Equal(recs[0].Key, key) || !bytes.Equal(recs[0].Value, value) {
		t.Fatalf("record\nkey   %x\nvalue %x\nwant\nkey   %x\nvalue %x", recs[0].Key, recs[0].Value, key, value)
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(recs[0].Value); err != nil || v.Offset != 42 || v.LeaderEpoch != 7 || v.Metadata != "meta" {
		t.Fatalf("kmsg reads %+v %v", v, err)
	}
	golden := filepath.Join("testdata", "txn-offset-commit-batch.golden")
	if *updateTxnGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(hex.Dump(batch)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-txn-golden to write it)", err)
	}
	if got := hex.Dump(batch); got != string(want) {
		t.Fatalf("the transactional offset commit batch changed:\n%s\nwant\n%s", got, want)
	}

	// Kafka's batch, by hand: pending after a replay, committed by the
	// marker that follows it.
	kafka := newMemLog()
	raw, err := recordbatch.Build(recordbatch.BuildOptions{Transactional: true, Idempotent: true, ProducerID: pidB, ProducerEpoch: 0, BaseSequence: 0},
		[]recordbatch.Record{{Key: kafkaOffsetCommitKey("grp", "topic", 3), Value: kafkaOffsetCommitValue(99, -1, "", 1_700_000_000_000)}})
	if err != nil {
		t.Fatal(err)
	}
	kafka.add(raw)
	loaded := loadedShard(t, kafka, newFakeClock())
	wantPending(t, loaded, "grp", tp("topic", 3), true)
	wantOffset(t, loaded, "grp", tp("topic", 3), -1)
	kafka.marker(t, pidB, 0, true)
	wantOffset(t, loadedShard(t, kafka, newFakeClock()), "grp", tp("topic", 3), 99)
}

func kafkaString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func kafkaOffsetCommitKey(groupID, topic string, partition int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = kafkaString(b, groupID)
	b = kafkaString(b, topic)
	return binary.BigEndian.AppendUint32(b, uint32(partition))
}

func kafkaOffsetCommitValue(offset int64, leaderEpoch int32, metadata string, timestamp int64) []byte {
	b := binary.BigEndian.AppendUint16(nil, 3)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(leaderEpoch))
	b = kafkaString(b, metadata)
	return binary.BigEndian.AppendUint64(b, uint64(timestamp))
}
