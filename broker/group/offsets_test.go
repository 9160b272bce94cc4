package group

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
)

// memLog is an in-memory Log: each Append is one batch, numbered from
// offset 0 on as a partition numbers them. fail makes appends fail; hold
// makes Replay wait until released (closing replaying, if set, once it
// waits); corrupt batches and markers can be
// appended by hand (add). uncommitted is how many of the last batches are
// above the high watermark (a previous leader's unacknowledged tail):
// AwaitCommitted waits, signalling awaiting once, until set lowers it or
// takes the leadership away.
type memLog struct {
	mu          sync.Mutex // guards every field
	batches     [][]byte
	fail        error
	leading     bool
	hold        chan struct{}
	replaying   chan struct{} // if not nil, closed when Replay waits on hold
	uncommitted int
	awaiting    chan struct{} // if not nil, closed when AwaitCommitted first waits
	awaited     bool          // awaiting is closed
	changed     chan struct{} // closed and replaced by set
	// verify is VerifyTxn's answer; verified the producers it was asked
	// about.
	verify   error
	verified []TxnProducer
	// beforeTxn and afterTxn, if set, run (without mu) in AppendTxn
	// before the batch is appended and after: a test holds a write in
	// flight there (appending; appended, awaiting the in-sync replicas).
	beforeTxn, afterTxn func()
}

var _ Log = (*memLog)(nil)

func newMemLog() *memLog { return &memLog{leading: true, changed: make(chan struct{})} }

func (l *memLog) Append(records []recordbatch.Record) (int64, error) {
	return l.build(recordbatch.BuildOptions{}, records)
}

func (l *memLog) AppendTxn(records []recordbatch.Record, p TxnProducer) (int64, error) {
	l.mu.Lock()
	before, after := l.beforeTxn, l.afterTxn
	l.mu.Unlock()
	if before != nil {
		before()
	}
	base, err := l.build(recordbatch.BuildOptions{Transactional: true, Idempotent: true, ProducerID: p.ProducerID, ProducerEpoch: p.ProducerEpoch}, records)
	if after != nil {
		after()
	}
	return base, err
}

func (l *memLog) VerifyTxn(p TxnProducer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verified = append(l.verified, p)
	return l.verify
}

func (l *memLog) build(opts recordbatch.BuildOptions, records []recordbatch.Record) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return 0, l.fail
	}
	opts.BaseOffset = l.endLocked(len(l.batches))
	batch, err := recordbatch.Build(opts, records)
	if err != nil {
		return 0, err
	}
	l.batches = append(l.batches, batch)
	return opts.BaseOffset, nil
}

// add appends a batch made by hand, renumbered to follow the log, and
// returns its base offset.
func (l *memLog) add(batch []byte) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	base := l.endLocked(len(l.batches))
	recordbatch.SetBaseOffset(batch, base)
	l.batches = append(l.batches, batch)
	return base
}

// marker appends the producer's transaction marker as a transaction
// coordinator writes it: a control batch of one record, key int16 version
// 0 + int16 type (0 abort, 1 commit), value int16 version 0 + int32
// coordinator epoch. It returns the marker's offset.
func (l *memLog) marker(t *testing.T, producerID int64, producerEpoch int16, commit bool) int64 {
	t.Helper()
	typ := byte(0)
	if commit {
		typ = 1
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: producerID, ProducerEpoch: producerEpoch, BaseSequence: -1},
		[]recordbatch.Record{{Key: []byte{0, 0, 0, typ}, Value: []byte{0, 0, 0, 0, 0, 5}}})
	if err != nil {
		t.Fatal(err)
	}
	return l.add(batch)
}

// endLocked is the offset after the first n batches.
func (l *memLog) endLocked(n int) int64 {
	if n == 0 {
		return 0
	}
	h, err := recordbatch.ParseHeader(l.batches[n-1])
	if err != nil {
		panic(err)
	}
	return h.LastOffset() + 1
}

func (l *memLog) Replay(fn func([]byte) error) (int64, error) {
	l.mu.Lock()
	hold, replaying := l.hold, l.replaying
	batches := append([][]byte(nil), l.batches...)
	end := l.endLocked(len(batches))
	l.mu.Unlock()
	if hold != nil {
		if replaying != nil {
			close(replaying)
		}
		<-hold
	}
	for _, b := range batches {
		if err := fn(b); err != nil {
			return end, err
		}
	}
	return end, nil
}

func (l *memLog) AwaitCommitted(end int64, stop <-chan struct{}) error {
	for {
		l.mu.Lock()
		leading, committed, changed := l.leading, l.endLocked(len(l.batches)-l.uncommitted), l.changed
		if l.awaiting != nil && !l.awaited && leading && committed < end {
			close(l.awaiting)
			l.awaited = true
		}
		l.mu.Unlock()
		switch {
		case !leading:
			return kerr.NotCoordinator
		case committed >= end:
			return nil
		}
		select {
		case <-changed:
		case <-stop:
			return kerr.NotCoordinator
		}
	}
}

func (l *memLog) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *memLog) set(f func(*memLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
	close(l.changed)
	l.changed = make(chan struct{})
}

// copyOf is another replica's log: the same batches, led there.
func (l *memLog) copyOf(batches int) *memLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := newMemLog()
	c.batches = append([][]byte(nil), l.batches[:batches]...)
	return c
}

func (l *memLog) appends() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// loadedShard makes a shard over log on clock and loads it.
func loadedShard(t *testing.T, log Log, clock Clock) *Shard {
	t.Helper()
	return loadedShardWithIDs(t, log, clock, nil)
}

// loadedShardWithIDs is loadedShard with topic ids (ShardConfig.TopicID;
// nil: none).
func loadedShardWithIDs(t *testing.T, log Log, clock Clock, topicID func(string) ([16]byte, bool)) *Shard {
	t.Helper()
	sh, err := NewShard(ShardConfig{Partition: 3, Log: log, Coordinator: Config{Clock: clock, InitialRebalanceDelay: -1}, Logger: quiet, TopicID: topicID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.Close)
	sh.Load()
	if !sh.Serving() {
		t.Fatal("a loaded shard over a led log does not serve")
	}
	return sh
}

func tp(topic string, partition int32) TopicPartition {
	return TopicPartition{Topic: topic, Partition: partition}
}

// TestShardReplay: commits, deletions and group metadata written by one
// shard are what a new shard over the same log loads (the latest record
// of a key wins, tombstones delete).
func TestShardReplay(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	commit := func(groupID string, commits map[TopicPartition]CommittedOffset) {
		t.Helper()
		if err := sh.CommitOffsets(standalone(groupID), commits); err != nil {
			t.Fatal(err)
		}
	}
	commit("g1", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 5, LeaderEpoch: 2, Metadata: "m", Timestamp: 100}, tp("a", 1): {Offset: 7, LeaderEpoch: -1}})
	commit("g1", map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 9, LeaderEpoch: 3, Timestamp: 200}})
	commit("g2", map[TopicPartition]CommittedOffset{tp("b", 0): {Offset: 1}})
	if _, err := sh.DeleteOffsets("g1", []TopicPartition{tp("a", 1), tp("zzz", 0)}); err != nil {
		t.Fatal(err)
	}
	stored := make(chan error, 1)
	sh.StoreGroup(Record{GroupID: "g3", ProtocolType: "consumer", GenerationID: 4, Protocol: "range", LeaderID: "m1",
		Members: []RecordMember{{MemberID: "m1", ClientID: "c", ClientHost: "h", SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Minute, Subscription: []byte("s"), Assignment: []byte("a")}}}, func(err error) { stored <- err })
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	if err := sh.DeleteGroupData("g2"); err != nil {
		t.Fatal(err)
	}

	again := loadedShard(t, log, clock)
	want := map[string]map[TopicPartition]CommittedOffset{
		"g1": {tp("a", 0): {Offset: 9, LeaderEpoch: 3, Timestamp: clock.Now().UnixMilli()}},
		"g2": {},
	}
	for groupID, commits := range want {
		got := again.GroupOffsets(groupID)
		if len(got) != len(commits) {
			t.Fatalf("%s after replay: %v, want %v", groupID, got, commits)
		}
		for k, c := range commits {
			// The commit's own timestamp is kept; only the record is
			// stamped with the clock.
			if g := got[k]; g.Offset != c.Offset || g.LeaderEpoch != c.LeaderEpoch || g.Metadata != c.Metadata {
				t.Fatalf("%s %v after replay: %+v, want %+v", groupID, k, g, c)
			}
		}
	}
	if c, ok := again.FetchOffset("g1", tp("a", 0)); !ok || c.Timestamp != 200 {
		t.Fatalf("commit timestamp after replay: %+v %v, want 200", c, ok)
	}
	d, err := again.Coordinator().Describe("g3")
	if err != nil || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 1 {
		t.Fatalf("g3 after replay: %+v %v", d, err)
	}
	// A group known only by its offsets comes back Empty.
	if d, err := again.Coordinator().Describe("g1"); err != nil || d.State != StateEmpty {
		t.Fatalf("g1 after replay: %+v %v, want Empty", d, err)
	}
	// A deleted group is gone.
	if d, err := again.Coordinator().Describe("g2"); err == nil && d.State != StateDead {
		t.Fatalf("deleted g2 after replay: %+v", d)
	}
}

// TestShardWriteFailures: a failed append changes nothing in memory and
// the caller gets the log's Kafka error; a closed shard refuses writes
// with NOT_COORDINATOR and stops serving.
func TestShardWriteFailures(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	log.set(func(l *memLog) { l.fail = kerr.CoordinatorNotAvailable })
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 2}}); !errors.Is(err, kerr.CoordinatorNotAvailable) {
		t.Fatalf("commit on a failing log: %v", err)
	}
	if _, err := sh.DeleteOffsets("g", []TopicPartition{tp("a", 0)}); !errors.Is(err, kerr.CoordinatorNotAvailable) {
		t.Fatalf("delete on a failing log: %v", err)
	}
	if err := sh.DeleteGroupData("g"); ErrorCode(err) != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("group deletion on a failing log: %v", err)
	}
	if c, ok := sh.FetchOffset("g", tp("a", 0)); !ok || c.Offset != 1 {
		t.Fatalf("after failed writes: %+v %v, want offset 1 kept", c, ok)
	}
	log.set(func(l *memLog) { l.fail = nil; l.leading = false })
	if sh.Serving() {
		t.Fatal("a shard whose partition is no longer led here serves")
	}
	log.set(func(l *memLog) { l.leading = true })
	sh.Close()
	if sh.Serving() {
		t.Fatal("a closed shard serves")
	}
	before := log.appends()
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("a", 0): {Offset: 3}}); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("commit on a closed shard: %v, want NOT_COORDINATOR", err)
	}
	if log.appends() != before {
		t.Fatal("a closed shard appended")
	}
	if ErrorCode(nil) != 0 || ErrorCode(errors.New("x")) != kerr.UnknownServerError.Code {
		t.Fatal("ErrorCode of nil or a foreign error")
	}
}

// TestShardLoadSkipsUndecodable: a batch whose records cannot be decoded
// is skipped; the records around it load.
func TestShardLoadSkipsUndecodable(t *testing.T) {
	log := newMemLog()
	sh := loadedShard(t, log, newFakeClock())
	for i, topic := range []string{"a", "b"} {
		if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp(topic, 0): {Offset: int64(i)}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			log.mu.Lock()
			bad := append([]byte(nil), log.batches[0]...)
			log.mu.Unlock()
			bad[len(bad)-1] ^= 0xff // the last record's framing
			log.add(bad[:len(bad)-3])
		}
	}
	again := loadedShard(t, log, newFakeClock())
	if got := again.GroupOffsets("g"); len(got) != 2 {
		t.Fatalf("after a corrupt batch: %v, want both commits", got)
	}
}

// TestShardExpiry: KIP-211's rules on a fake clock.
func TestShardExpiry(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	const retention = time.Hour
	now := clock.Now()
	commit := func(committer OffsetCommitRequest, partition int32, at time.Time) {
		t.Helper()
		if err := sh.CommitOffsets(committer, map[TopicPartition]CommittedOffset{tp("t", partition): {Offset: 1, Timestamp: at.UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
	}
	// A standalone consumer's commits (no members ever), one old, one new.
	if err := sh.Coordinator().Restore(Record{GroupID: "standalone"}); err != nil {
		t.Fatal(err)
	}
	commit(standalone("standalone"), 0, now.Add(-2*retention))
	commit(standalone("standalone"), 1, now)
	// A consumer group with members keeps old offsets.
	if err := sh.Coordinator().Restore(Record{GroupID: "busy", ProtocolType: "consumer", GenerationID: 1, Protocol: "range", LeaderID: "m",
		Members: []RecordMember{{MemberID: "m", SessionTimeout: time.Hour, RebalanceTimeout: time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	member := OffsetCommitRequest{GroupID: "busy", GenerationID: 1, MemberID: "m"}
	commit(member, 0, now.Add(-2*retention))
	// An old commit of a partition that no longer exists.
	commit(member, 7, now)
	exists := func(tp TopicPartition) bool { return tp.Partition != 7 }

	offsets, groups, err := sh.ExpireOffsets(now, retention, exists)
	if err != nil || offsets != 2 || groups != 0 {
		t.Fatalf("first pass: %d offsets, %d groups, %v; want 2, 0", offsets, groups, err)
	}
	if _, ok := sh.FetchOffset("standalone", tp("t", 0)); ok {
		t.Fatal("an old standalone commit was kept")
	}
	if _, ok := sh.FetchOffset("busy", tp("t", 0)); !ok {
		t.Fatal("a group with members lost its offset")
	}
	// Later the standalone group's last commit expires too, and the group
	// with it. (The clock is not advanced: the busy member's session
	// would end.)
	later := now.Add(2 * retention)
	offsets, groups, err = sh.ExpireOffsets(later, retention, exists)
	if err != nil || offsets != 1 || groups != 1 {
		t.Fatalf("second pass: %d offsets, %d groups, %v; want 1, 1", offsets, groups, err)
	}
	if d, err := sh.Coordinator().Describe("standalone"); err == nil && d.State != StateDead {
		t.Fatalf("emptied standalone group still there: %+v", d)
	}
	// What expiry removed stays removed after a replay.
	again := loadedShard(t, log, clock)
	if got := again.GroupOffsets("standalone"); len(got) != 0 {
		t.Fatalf("expired offsets back after replay: %v", got)
	}
	if got := again.GroupOffsets("busy"); len(got) != 1 {
		t.Fatalf("busy group's offsets after replay: %v", got)
	}
	// A negative retention removes only what exists no more.
	if offsets, _, err := again.ExpireOffsets(later.Add(100*retention), -1, func(TopicPartition) bool { return true }); err != nil || offsets != 0 {
		t.Fatalf("negative retention expired %d offsets (%v)", offsets, err)
	}
}

// TestShardServesOnlyCommittedOffsets: a new coordinator whose log ends
// with a commit the previous leader never got acknowledged (it reached
// this replica, not the high watermark) does not answer with it until it
// is committed. Served at once, a consumer could read offset 34, and then,
// the leadership moving to a replica without it, read 32: the group's
// committed offset would go backwards (nemesis, many-partitions seed
// 14308674804434582132: 34 → 32 while the coordinator moved 3 → 1 → 2).
func TestShardServesOnlyCommittedOffsets(t *testing.T) {
	clock := newFakeClock()
	onLeader := newMemLog()
	old := loadedShard(t, onLeader, clock)
	for _, offset := range []int64{32, 34} {
		if err := old.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: offset}}); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	// The replica that takes over holds both commits; only the first is
	// below the high watermark. A third replica holds only the first.
	taker := onLeader.copyOf(2)
	taker.uncommitted = 1
	taker.awaiting = make(chan struct{})
	other := onLeader.copyOf(1)

	load := func(log *memLog) *Shard {
		sh, err := NewShard(ShardConfig{Partition: 3, Log: log, Coordinator: Config{Clock: clock, InitialRebalanceDelay: -1}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sh.Close)
		go sh.Load()
		return sh
	}
	seen := []int64{}
	read := func(sh *Shard) {
		t.Helper()
		if !sh.Serving() {
			return
		}
		if c, ok := sh.FetchOffset("g", tp("t", 0)); ok {
			seen = append(seen, c.Offset)
		}
	}

	// Term 1 on taker: it must wait for the tail to be committed.
	sh := load(taker)
	select {
	case <-taker.awaiting:
	case <-sh.Loaded():
		read(sh)
		t.Fatalf("the new coordinator served before its replayed tail was committed: read %v", seen)
	}
	read(sh)
	if len(seen) != 0 || sh.Serving() {
		t.Fatalf("serving while the replayed tail is above the high watermark: read %v", seen)
	}
	// The leadership moves on before the tail is committed: this shard
	// never serves, and the replica without the tail serves 32.
	taker.set(func(l *memLog) { l.leading = false })
	<-sh.Loaded()
	read(sh)
	if sh.Serving() {
		t.Fatal("a shard whose leadership moved while it waited serves")
	}
	next := load(other)
	<-next.Loaded()
	read(next)
	if len(seen) != 1 || seen[0] != 32 {
		t.Fatalf("committed offsets read across the two terms: %v, want [32]", seen)
	}

	// A term in which the tail gets committed serves it once it is.
	again := taker.copyOf(2)
	again.uncommitted = 1
	again.awaiting = make(chan struct{})
	third := load(again)
	<-again.awaiting
	if third.Serving() {
		t.Fatal("serving before the tail is committed")
	}
	again.set(func(l *memLog) { l.uncommitted = 0 })
	<-third.Loaded()
	if c, ok := third.FetchOffset("g", tp("t", 0)); !third.Serving() || !ok || c.Offset != 34 {
		t.Fatalf("once committed: serving %v, offset %+v %v; want 34", third.Serving(), c, ok)
	}
}
