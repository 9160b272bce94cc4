package replica

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

var t0 = time.Unix(1_700_000_000, 0)

func openReplica(t *testing.T, self int32) *partition.Partition {
	t.Helper()
	p, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: [16]byte{3}, Self: self,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func appendRecords(t *testing.T, p *partition.Partition, n int) int64 {
	t.Helper()
	base, _, err := p.Append(buildBatch(t, n), 9, t0)
	if err != nil {
		t.Fatal(err)
	}
	return base + int64(n)
}

// fakeStore records proposed ISR changes; fail refuses them; committed,
// when set, is the partition state answered for an accepted change. Its
// state is metadata's (nil: an empty state).
type fakeStore struct {
	mu        sync.Mutex // guards every field
	changes   []metadata.PartitionChange
	fail      error
	committed func(metadata.PartitionChange) metadata.Partition
	proposed  chan struct{}
	metadata  *metadata.Store
}

func (f *fakeStore) State() *metadata.State { return f.metadata.State() }

func (f *fakeStore) ChangePartition(_ context.Context, c metadata.PartitionChange) (metadata.Partition, error) {
	f.mu.Lock()
	f.changes = append(f.changes, c)
	err := f.fail
	var committed metadata.Partition
	if f.committed != nil {
		committed = f.committed(c)
	}
	f.mu.Unlock()
	if f.proposed != nil {
		f.proposed <- struct{}{}
	}
	return committed, err
}

func (f *fakeStore) proposals() []metadata.PartitionChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// TestISRProposesExpansionsAndShrinks: the owner goroutine proposes what
// the fetch path hands it and what the lag check finds, one change in
// flight per partition, against the partition epoch; a refused change is
// proposed again when its condition still holds.
func TestISRProposesExpansionsAndShrinks(t *testing.T) {
	// Times near the real clock: Run's own periodic check uses it, and
	// must agree with the checks this test drives.
	t0 := time.Now()
	p := openReplica(t, 1)
	p.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 2}}, t0)
	end := appendRecords(t, p, 3)
	store := &fakeStore{proposed: make(chan struct{}, 8)}
	changed := 0
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{p} },
		ReplicaLagTimeMax: 10 * time.Second, Changed: func() { changed++ }, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	// Follower 3 fetched at broker epoch 7: the proposal names it, so the
	// controller refuses it if broker 3 has registered again since.
	expand, _, err := p.FollowerFetchedAt(3, partition.FetchPosition{Offset: end, LastFetchedEpoch: -1}, 7, t0)
	if err != nil || expand == nil {
		t.Fatalf("follower 3 caught up: %v %v", expand, err)
	}
	m.Expand(p, expand)
	<-store.proposed
	got := store.proposals()
	if len(got) != 1 || !slices.Equal(got[0].ISR, []int32{1, 2, 3}) || got[0].PartitionEpoch != 9 || got[0].Leader != metadata.NoLeaderChange ||
		!slices.Equal(got[0].ISRBrokerEpochs, []int64{-1, -1, 7}) {
		t.Fatalf("proposal %+v", got)
	}
	// The change ended: the next condition can be proposed.
	waitFor(t, func() bool { again, _ := p.FollowerFetched(3, end, t0); return again != nil })
	m.Expand(p, []int32{1, 2, 3})
	<-store.proposed

	// The controller applied the expansion; follower 3 then stops
	// fetching, and the lag check (driven with its own time) shrinks.
	p.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 10, ISR: []int32{1, 2, 3}}, t0)
	if _, err := p.FollowerFetched(2, end, t0.Add(25*time.Second)); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	store.fail = errors.New("stale partition epoch")
	store.mu.Unlock()
	m.CheckLagging(ctx, t0.Add(30*time.Second))
	<-store.proposed
	got = store.proposals()
	if last := got[len(got)-1]; !slices.Equal(last.ISR, []int32{1, 2}) || last.PartitionEpoch != 10 {
		t.Fatalf("shrink proposal %+v", last)
	}
	// Refused: proposed again on the next check.
	m.CheckLagging(ctx, t0.Add(31*time.Second))
	<-store.proposed
	if changed != 2 {
		t.Fatalf("%d changes reported committed, want the 2 expansions", changed)
	}
}

// TestISRCommittedExpansionCountsBeforeApplied (forced order): the ISR
// owner hands the partition the state the controller committed; until the
// leader applies it, the new member already counts for the high watermark,
// so records it lacks are not committed.
func TestISRCommittedExpansionCountsBeforeApplied(t *testing.T) {
	p := openReplica(t, 1)
	applied := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 2}}
	p.ApplyAssignment(applied, t0)
	end := appendRecords(t, p, 3)
	store := &fakeStore{committed: func(c metadata.PartitionChange) metadata.Partition {
		next := applied
		next.ISR, next.PartitionEpoch = c.ISR, c.PartitionEpoch+1
		return next
	}}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	expand, err := p.FollowerFetched(3, end, t0)
	if err != nil || expand == nil {
		t.Fatalf("follower 3 caught up: %v %v", expand, err)
	}
	m.propose(context.Background(), proposal{p: p, isr: expand})
	// Committed, not applied here: more records reach follower 2 only.
	end2 := appendRecords(t, p, 2)
	if _, err := p.FollowerFetched(2, end2, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("high watermark %d past follower 3's end %d, which the committed ISR holds", hw, end)
	}
	if _, err := p.FollowerFetched(3, end2, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end2 {
		t.Fatalf("high watermark %d, want %d", hw, end2)
	}
}

// TestISRDropsQueuedOnStop: proposals still queued when Run ends are
// marked done, so a later term can propose again.
func TestISRDropsQueuedOnStop(t *testing.T) {
	p := openReplica(t, 1)
	p.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1}}, t0)
	end := appendRecords(t, p, 1)
	expand, _ := p.FollowerFetched(2, end, t0)
	if expand == nil {
		t.Fatal("no expansion")
	}
	m := NewISR(ISRConfig{Store: &fakeStore{}, Partitions: func() []*partition.Partition { return nil }})
	m.Expand(p, expand)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Run(ctx)
	if again, _ := p.FollowerFetched(2, end, t0); again == nil {
		t.Fatal("the dropped proposal's change stayed in flight")
	}
}

// TestTruncationTarget: where a follower cuts its log after the leader's
// OffsetForLeaderEpoch answer.
func TestTruncationTarget(t *testing.T) {
	follower := openReplica(t, 2)
	if target := truncationTarget(follower, 3, 0); target != 0 {
		t.Fatalf("empty log: %d", target)
	}
	// The follower's log: epoch 1 at 0..3, epoch 2 at 4..5 (replicated).
	leader := openReplica(t, 1)
	leader.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1}}, t0)
	appendRecords(t, leader, 4)
	leader.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1}}, t0)
	appendRecords(t, leader, 2)
	data, err := leader.Read(0, 1<<20, 6, true)
	if err != nil {
		t.Fatal(err)
	}
	follower.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 2}}, t0)
	if err := follower.AppendReplicated(data, 5, 2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		leaderEpoch int32
		leaderEnd   int64
		want        int64
	}{
		{"the leader has our latest epoch to the end", 2, 6, 6},
		{"the leader's epoch 2 ends earlier", 2, 5, 5},
		{"the leader knows epoch 1 only, ending at 4", 1, 4, 4},
		{"the leader's epoch 1 ends past ours", 1, 9, 4},
		{"the leader knows none of our epochs", -1, -1, 5},
		// Our own answer for epoch 3 is unknown (-1, -1), not offset 0.
		{"the leader's epoch 3, newer than ours, ends at 5", 3, 5, 5},
	} {
		if got := truncationTarget(follower, c.leaderEpoch, c.leaderEnd); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}

	// A follower with records but an empty epoch cache (batches without a
	// leader epoch) keeps only what it knows is committed: its high
	// watermark, not its log end.
	noEpochs := openReplica(t, 2)
	noEpochs.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 2}}, t0)
	unstamped, err := recordbatch.Build(recordbatch.BuildOptions{PartitionLeaderEpoch: -1}, []recordbatch.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := noEpochs.AppendReplicated(unstamped, 1, 2); err != nil {
		t.Fatal(err)
	}
	if noEpochs.LatestEpoch() >= 0 || noEpochs.LogEndOffset() != 3 || noEpochs.HighWatermark() != 1 {
		t.Fatalf("setup: epoch %d end %d high watermark %d", noEpochs.LatestEpoch(), noEpochs.LogEndOffset(), noEpochs.HighWatermark())
	}
	if got := truncationTarget(noEpochs, -1, -1); got != 1 {
		t.Errorf("no epochs: truncate to %d, want the high watermark 1", got)
	}
}

// TestFetcherKeepsProgressWithinAnEpoch: a reassignment keeps a partition's
// truncation and pause when its leader epoch did not change, and resets
// them for a new epoch; updates of a stale epoch do not touch the current.
func TestFetcherKeepsProgressWithinAnEpoch(t *testing.T) {
	p, q := openReplica(t, 2), openReplica(t, 2)
	rf := &fetcher{f: NewFetchers(FetchersConfig{}), partitions: map[*partition.Partition]*followed{}}
	rf.assign(map[*partition.Partition]*followed{p: {part: p, epoch: 3}, q: {part: q, epoch: 1}})
	old := rf.snapshot()
	for _, fo := range old {
		rf.setReady(fo, readyTruncated)
	}
	rf.assign(map[*partition.Partition]*followed{p: {part: p, epoch: 3}, q: {part: q, epoch: 2}})
	if rf.partitions[p].ready != readyTruncated || rf.partitions[q].ready != notReady {
		t.Fatalf("after reassignment: p ready %v (same epoch), q ready %v (new epoch)", rf.partitions[p].ready, rf.partitions[q].ready)
	}
	// A result of the old epoch of q is ignored.
	for _, fo := range old {
		if fo.part == q {
			rf.setReady(fo, readyTruncated)
			rf.pause(fo)
		}
	}
	if rf.partitions[q].ready != notReady || !rf.partitions[q].pausedUntil.IsZero() {
		t.Fatal("a stale epoch's result changed the current one")
	}
	rf.pause(&followed{part: p, epoch: 3})
	if got := rf.snapshot(); len(got) != 1 || got[0].part != q {
		t.Fatalf("a paused partition was fetched: %d partitions", len(got))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestISRHandsOverAfterAFullDisk: once an append failed on this broker's
// disk, the next check proposes one AlterPartition that makes the first
// live in-sync replica leader (a fenced one is passed over) and drops this
// broker from the ISR, fenced by the partition epoch; a refused one is
// proposed again; with no other live in-sync replica nothing is proposed.
func TestISRHandsOverAfterAFullDisk(t *testing.T) {
	ctx := context.Background()
	meta := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, meta, 1)
	epoch2 := metadatatest.RegisterBroker(t, meta, 2)
	metadatatest.RegisterBroker(t, meta, 3)
	if err := meta.SetBrokerFenced(ctx, 2, epoch2, true); err != nil {
		t.Fatal(err)
	}
	var full atomic.Bool
	p := openOnFillingDisk(t, 1, [16]byte{3}, slog.New(slog.DiscardHandler), &full)
	p.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 2, 3}}, t0)
	store := &fakeStore{metadata: meta, fail: errors.New("stale partition epoch")}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{p} },
		ReplicaLagTimeMax: time.Hour, Logger: slog.New(slog.DiscardHandler)})

	appendRecords(t, p, 2)
	m.CheckLagging(ctx, t0)
	if got := store.proposals(); len(got) != 0 {
		t.Fatalf("proposals while the disk works: %+v", got)
	}
	full.Store(true)
	if _, _, err := p.Append(buildBatch(t, 1), 9, t0); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	m.CheckLagging(ctx, t0)
	m.CheckLagging(ctx, t0) // refused: proposed again
	want := metadata.PartitionChange{TopicID: [16]byte{3}, PartitionEpoch: 9, Leader: 3, ISR: []int32{2, 3}}
	got := store.proposals()
	if len(got) != 2 || !reflect.DeepEqual(got[0], want) || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("proposals %+v, want twice %+v", got, want)
	}

	// Only fenced replicas left in the ISR: nothing to hand over to.
	p.ApplyAssignment(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 10, ISR: []int32{1, 2}}, t0)
	if _, _, err := p.Append(buildBatch(t, 1), 9, t0); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	m.CheckLagging(ctx, t0)
	if got := store.proposals(); len(got) != 2 {
		t.Fatalf("a hand-over to a fenced replica: %+v", got[2:])
	}
}

func buildBatch(t *testing.T, n int) []byte {
	t.Helper()
	records := make([]recordbatch.Record, n)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: t0.UnixMilli(), Value: []byte("v")}
	}
	b, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
