package coordinator

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestPartition(t *testing.T) {
	tests := []struct {
		key        string
		partitions int32
		want       int32
	}{
		{"", 50, 0},
		{"a", 50, 97 % 50},
		{"hello", 50, 99162322 % 50},
		{"polygenelubricants", 50, 0}, // hashCode is Integer.MIN_VALUE; Kafka's abs makes it 0
		{"analytics", 50, 10},         // hashCode -1693017210
		{"my-group-2024", 50, 37},     // hashCode -1501154737
		{"grüße", 50, 23},             // hashCode 98768023
		{"g😀", 50, 32},                // a surrogate pair in UTF-16; hashCode 1871882
		{"a", 0, 0},
	}
	for _, test := range tests {
		if got := Partition(test.key, test.partitions); got != test.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", test.key, test.partitions, got, test.want)
		}
	}
}

// fakeTopic is the internal topic: leaders by partition, or an error.
type fakeTopic struct {
	mu      sync.Mutex // guards every field
	leaders []int32
	err     error
}

func (f *fakeTopic) Leaders() ([]int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int32(nil), f.leaders...), f.err
}

// fakeLog is a shard's log: its leadership of the partition.
type fakeLog struct{ leading atomic.Bool }

func newFakeLog() *fakeLog {
	l := &fakeLog{}
	l.leading.Store(true)
	return l
}

func (l *fakeLog) Leading() bool { return l.leading.Load() }

// fakeShard loads when release is closed.
type fakeShard struct {
	mu      sync.Mutex
	life    *Lifecycle
	release chan struct{}
	closes  atomic.Int32
}

func newFakeShard(log *fakeLog) *fakeShard {
	sh := &fakeShard{release: make(chan struct{})}
	sh.life = NewLifecycle(&sh.mu, log)
	return sh
}

func (sh *fakeShard) Load() {
	defer sh.life.SetLoaded()
	select {
	case <-sh.release:
	case <-sh.life.Done():
	}
}
func (sh *fakeShard) Loaded() <-chan struct{} { return sh.life.Loaded() }
func (sh *fakeShard) Serving() bool           { return sh.life.Serving() }
func (sh *fakeShard) Close()                  { sh.closes.Add(1); sh.life.Close() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSetFor: the errors a client acts on, in the order of a shard's life.
func TestSetFor(t *testing.T) {
	topic := &fakeTopic{err: errors.New("no quorum")}
	set := NewSet[*fakeShard, *fakeLog](topic, "__test", nil)
	t.Cleanup(set.Close)
	const key = "orders"
	if _, err := set.For(key); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("no topic: For = %v, want COORDINATOR_NOT_AVAILABLE", err)
	}
	if _, err := set.CoordinatorOf(key); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("no topic: CoordinatorOf = %v, want COORDINATOR_NOT_AVAILABLE", err)
	}
	topic.mu.Lock()
	topic.err, topic.leaders = nil, []int32{7, 7, 7, 7}
	topic.mu.Unlock()
	partition := Partition(key, 4)
	if leader, err := set.CoordinatorOf(key); err != nil || leader != 7 {
		t.Fatalf("CoordinatorOf = %d, %v; want 7", leader, err)
	}
	topic.mu.Lock()
	topic.leaders[partition] = -1
	topic.mu.Unlock()
	if _, err := set.CoordinatorOf(key); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("leaderless partition: CoordinatorOf = %v, want COORDINATOR_NOT_AVAILABLE", err)
	}
	if _, err := set.For(key); err != kerr.NotCoordinator {
		t.Fatalf("not led here: For = %v, want NOT_COORDINATOR", err)
	}

	log := newFakeLog()
	sh := newFakeShard(log)
	set.Lead(partition, log, sh)
	if _, err := set.For(key); err != kerr.CoordinatorLoadInProgress {
		t.Fatalf("loading: For = %v, want COORDINATOR_LOAD_IN_PROGRESS", err)
	}
	if shards, all := set.Loaded(); len(shards) != 0 || all {
		t.Fatalf("loading: Loaded = %d shards, all %v; want none, false", len(shards), all)
	}
	if got, ok := set.Of(partition); !ok || got != sh {
		t.Fatal("Of does not return the loading shard")
	}
	close(sh.release)
	waitFor(t, "the shard to load", func() bool { _, err := set.For(key); return err == nil })
	if got, _ := set.For(key); got != sh {
		t.Fatal("For returned another shard")
	}
	log.leading.Store(false)
	if _, err := set.For(key); err != kerr.NotCoordinator {
		t.Fatalf("leadership gone: For = %v, want NOT_COORDINATOR", err)
	}
	log.leading.Store(true)
	sh.Close()
	if _, err := set.For(key); err != kerr.NotCoordinator {
		t.Fatalf("closed: For = %v, want NOT_COORDINATOR", err)
	}
}

// TestSetLeadResign: a new term replaces (and closes) the shard; resigning
// an older term's log leaves the current shard alone.
func TestSetLeadResign(t *testing.T) {
	topic := &fakeTopic{leaders: []int32{1}}
	set := NewSet[*fakeShard, *fakeLog](topic, "__test", nil)
	t.Cleanup(set.Close)
	oldLog, newLog := newFakeLog(), newFakeLog()
	old := newFakeShard(oldLog)
	close(old.release)
	set.Lead(0, oldLog, old)
	<-old.Loaded()
	current := newFakeShard(newLog)
	close(current.release)
	set.Lead(0, newLog, current)
	if old.closes.Load() != 1 || old.Serving() {
		t.Fatalf("the replaced shard: closed %d times, serving %v; want closed once", old.closes.Load(), old.Serving())
	}
	<-current.Loaded()
	set.Resign(0, oldLog)
	if current.closes.Load() != 0 {
		t.Fatal("resigning the old term's log closed the current shard")
	}
	if got, err := set.For("k"); err != nil || got != current {
		t.Fatalf("after resigning the old term: For = %v", err)
	}
	if shards, all := set.Loaded(); len(shards) != 1 || shards[0] != current || !all {
		t.Fatalf("Loaded = %d shards, all %v; want the current one", len(shards), all)
	}
	set.Resign(0, newLog)
	if current.closes.Load() != 1 {
		t.Fatal("resigning the current term's log did not close its shard")
	}
	if _, err := set.For("k"); err != kerr.NotCoordinator {
		t.Fatalf("after resigning: For = %v, want NOT_COORDINATOR", err)
	}
	if _, ok := set.Of(0); ok {
		t.Fatal("Of still finds the resigned shard")
	}
}

// TestSetLoadedOrder: Loaded lists the loaded shards in partition order
// and says whether any is still loading.
func TestSetLoadedOrder(t *testing.T) {
	set := NewSet[*fakeShard, *fakeLog](&fakeTopic{leaders: []int32{1, 1, 1, 1}}, "__test", nil)
	t.Cleanup(set.Close)
	shards := map[int32]*fakeShard{}
	for _, p := range []int32{3, 0, 2, 1} {
		shards[p] = newFakeShard(newFakeLog())
		set.Lead(p, newFakeLog(), shards[p])
	}
	for _, p := range []int32{3, 0, 2} {
		close(shards[p].release)
		<-shards[p].Loaded()
	}
	got, all := set.Loaded()
	if all || len(got) != 3 || got[0] != shards[0] || got[1] != shards[2] || got[2] != shards[3] {
		t.Fatalf("Loaded = %d shards, all %v; want partitions 0, 2, 3 and not all", len(got), all)
	}
}

// TestSetCloseWaitsForLoaders: Close closes every shard, and a load
// waiting on its partition gives up and is waited for.
func TestSetCloseWaitsForLoaders(t *testing.T) {
	set := NewSet[*fakeShard, *fakeLog](&fakeTopic{leaders: []int32{1, 1}}, "__test", nil)
	loading, loaded := newFakeShard(newFakeLog()), newFakeShard(newFakeLog())
	close(loaded.release)
	set.Lead(0, newFakeLog(), loading)
	set.Lead(1, newFakeLog(), loaded)
	<-loaded.Loaded()
	set.Close()
	select {
	case <-loading.Loaded():
	default:
		t.Fatal("Close returned before the loading shard's Load")
	}
	if loading.closes.Load() != 1 || loaded.closes.Load() != 1 {
		t.Fatalf("closed %d and %d times; want once each", loading.closes.Load(), loaded.closes.Load())
	}
	if _, ok := set.Of(0); ok {
		t.Fatal("a closed set still holds shards")
	}
}

// TestLifecycleCloseWaitsForCriticalSection: Close marks the shard closed
// only after the critical section in progress under the shard's mutex,
// so a write checked open under it completes before Close returns.
func TestLifecycleCloseWaitsForCriticalSection(t *testing.T) {
	sh := newFakeShard(newFakeLog())
	sh.life.SetLoaded()
	if !sh.Serving() {
		t.Fatal("a loaded, open, led shard does not serve")
	}
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		t.Fatal("closed before Close")
	}
	closed := make(chan struct{})
	go func() { sh.life.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the shard's mutex was held")
	case <-time.After(20 * time.Millisecond):
	}
	sh.mu.Unlock()
	<-closed
	select {
	case <-sh.life.Done():
	default:
		t.Fatal("Done not closed by Close")
	}
	sh.mu.Lock()
	isClosed := sh.life.ClosedLocked()
	sh.mu.Unlock()
	if !isClosed || sh.Serving() {
		t.Fatalf("after Close: closed %v, serving %v", isClosed, sh.Serving())
	}
	sh.life.Close() // a second Close is harmless
}

// TestLifecycleServing: not before the shard is loaded, nor once its
// partition is led elsewhere.
func TestLifecycleServing(t *testing.T) {
	log := newFakeLog()
	sh := newFakeShard(log)
	if sh.Serving() {
		t.Fatal("serving before loaded")
	}
	sh.life.SetLoaded()
	log.leading.Store(false)
	if sh.Serving() {
		t.Fatal("serving without leading the partition")
	}
	log.leading.Store(true)
	if !sh.Serving() {
		t.Fatal("not serving once loaded and leading")
	}
}
