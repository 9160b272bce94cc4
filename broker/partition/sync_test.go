package partition

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// durable is the topic config of the durable mode.
var durable = map[string]string{"flush.messages": "1"}

// gateSyncs makes p's fsyncs wait: each signals on started, then waits
// until release is closed. It returns the number of syncs run so far.
func gateSyncs(p *Partition) (started <-chan struct{}, release func(), calls *atomic.Int32) {
	s, gate := make(chan struct{}, 100), make(chan struct{})
	calls = new(atomic.Int32)
	syncLog := p.syncLog
	p.syncLog = func() (int64, error) {
		calls.Add(1)
		s <- struct{}{}
		<-gate
		return syncLog()
	}
	var once sync.Once
	return s, func() { once.Do(func() { close(gate) }) }, calls
}

// TestDurableAcksWaitForTheLeadersFsync: in durable mode an acks=all and
// an acks=1 produce are answered only once the leader's fsync completed;
// the high watermark does not pass the leader's fsynced end meanwhile.
func TestDurableAcksWaitForTheLeadersFsync(t *testing.T) {
	p := replica(t, t.TempDir(), 1, durable)
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	started, release, _ := gateSyncs(p)
	defer release()
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
	<-started // the fsync runs (and is held)

	if p.LogEndOffset() != end || p.SyncedEnd() != 0 || p.HighWatermark() != 0 {
		t.Fatalf("during the fsync: end %d, fsynced %d, high watermark %d; want %d, 0, 0", p.LogEndOffset(), p.SyncedEnd(), p.HighWatermark(), end)
	}
	if done, code, _ := p.CommitStatus(end, 1); done || code != 0 {
		t.Fatalf("acks=all before the fsync: done %v, code %d", done, code)
	}
	if done, code, _ := p.leaderStatus(end, 1); done || code != 0 {
		t.Fatalf("acks=1 before the fsync: done %v, code %d", done, code)
	}
	answered := make(chan []Outcome, 1)
	go func() {
		answered <- WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: 1}, {Partition: p, End: end, LeaderEpoch: 1, LeaderOnly: true}}, time.Now().Add(time.Minute), nil)
	}()
	select {
	case o := <-answered:
		t.Fatalf("answered before the fsync completed: %+v", o)
	default:
	}
	release()
	for i, o := range <-answered {
		if o.Code != 0 {
			t.Fatalf("pending %d: %+v, want committed", i, o)
		}
	}
	if p.SyncedEnd() != end || p.HighWatermark() != end {
		t.Fatalf("after the fsync: fsynced %d, high watermark %d; want %d", p.SyncedEnd(), p.HighWatermark(), end)
	}
}

// TestDurableHighWatermarkCountsTheLeadersFsyncedEnd: a follower that has
// everything does not move the high watermark past what the leader has
// fsynced; the leader's fsync then does.
func TestDurableHighWatermarkCountsTheLeadersFsyncedEnd(t *testing.T) {
	p := replica(t, t.TempDir(), 1, durable)
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	started, release, _ := gateSyncs(p)
	defer release()
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 4)) + 4
	<-started
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with the follower at %d and the leader's fsync pending, want 0", hw, end)
	}
	release()
	if code := p.WaitCommitted(end, 1, time.Minute); code != 0 || p.HighWatermark() != end {
		t.Fatalf("after the leader's fsync: code %d, high watermark %d; want 0, %d", code, p.HighWatermark(), end)
	}
}

// TestDurableAppendsGoOnDuringAnFsync: appends complete while an fsync is
// held (it runs outside the append lock), and one more fsync covers all of
// them (group commit): two fsyncs for 100 appends.
func TestDurableAppendsGoOnDuringAnFsync(t *testing.T) {
	p := replica(t, t.TempDir(), 1, durable)
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	started, release, calls := gateSyncs(p)
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "first", 1))
	<-started
	var wg sync.WaitGroup
	for i := range 99 {
		b := batch(t, recordbatch.BuildOptions{}, "more", 1+i%3)
		wg.Go(func() {
			if _, _, err := p.Append(b, 9, t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait() // every append returned while the first fsync is held
	end := p.LogEndOffset()
	if p.SyncedEnd() != 0 || calls.Load() != 1 {
		t.Fatalf("fsynced %d after %d syncs, want 0 after 1", p.SyncedEnd(), calls.Load())
	}
	release()
	if code := p.WaitCommitted(end, 1, time.Minute); code != 0 {
		t.Fatalf("WaitCommitted: %d", code)
	}
	waitSyncsIdle(p)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d fsyncs for 100 appends, want 2 (the held one, then one for the 99 behind it)", n)
	}
}

// TestDurableFollowerReportsOnlyFsyncedData: a follower's fetch offset
// (what it tells the leader it has) stays at its fsynced end until
// WaitSynced's fsync completed; in page-cache mode it is the log end.
func TestDurableFollowerReportsOnlyFsyncedData(t *testing.T) {
	data := replicatedBatches(t, 5)
	p := replica(t, t.TempDir(), 2, durable)
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	started, release, _ := gateSyncs(p)
	if err := p.AppendReplicated(data, 0, 1); err != nil {
		t.Fatal(err)
	}
	if p.LogEndOffset() != 5 || p.ReplicaFetchOffset() != 0 {
		t.Fatalf("after a replicated append: end %d, fetch offset %d; want 5, 0", p.LogEndOffset(), p.ReplicaFetchOffset())
	}
	waited := make(chan struct{})
	go func() {
		WaitSynced([]*Partition{p}, nil)
		close(waited)
	}()
	<-started
	if got := p.ReplicaFetchOffset(); got != 0 {
		t.Fatalf("fetch offset %d during the fsync, want 0", got)
	}
	release()
	<-waited
	if got := p.ReplicaFetchOffset(); got != 5 {
		t.Fatalf("fetch offset %d after WaitSynced, want 5", got)
	}

	plain := replica(t, t.TempDir(), 2, nil)
	plain.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	if err := plain.AppendReplicated(data, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got := plain.ReplicaFetchOffset(); got != 5 {
		t.Fatalf("page-cache mode: fetch offset %d, want the log end 5", got)
	}
}

// waitSyncsIdle returns once no sync of p runs or is due.
func waitSyncsIdle(p *Partition) {
	for {
		p.syncMu.Lock()
		running := p.syncRunning
		p.syncMu.Unlock()
		if !running {
			return
		}
		runtime.Gosched()
	}
}

// replicatedBatches is what a leader's fetch answer holds: n one-record
// batches at offsets 0..n-1.
func replicatedBatches(t *testing.T, n int) []byte {
	var data []byte
	for i := range n {
		data = append(data, batch(t, recordbatch.BuildOptions{BaseOffset: int64(i)}, "r", 1)...)
	}
	return data
}

// TestDurableFollowerFsyncStartsAtAppend: a durable follower's fsync of a
// fetch's records starts as they are appended — while the fetcher appends
// the response's other partitions — not only once the fetcher asks
// (WaitSynced before its next fetch); the fetch offset still waits for
// it. Before, nothing fsynced until WaitSynced.
func TestDurableFollowerFsyncStartsAtAppend(t *testing.T) {
	p := replica(t, t.TempDir(), 2, durable)
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	started, release, _ := gateSyncs(p)
	defer release()
	if err := p.AppendReplicated(replicatedBatches(t, 3), 0, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no fsync started after a durable follower's append")
	}
	if got := p.ReplicaFetchOffset(); got != 0 {
		t.Fatalf("fetch offset %d during the fsync, want 0", got)
	}
	release()
	WaitSynced([]*Partition{p}, nil)
	if got := p.ReplicaFetchOffset(); got != 3 {
		t.Fatalf("fetch offset %d once fsynced, want 3", got)
	}
}

// TestHoldAppendWakeups: while a produce request holds a partition's
// append wakeups, its appends wake no waiter; the last release wakes them
// once, and a release with no append owed wakes nobody.
func TestHoldAppendWakeups(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 1, []int32{1}, []int32{1}), t0)
	wake := make(chan struct{}, 1)
	p.AddWaiter(wake)
	defer p.RemoveWaiter(wake)
	woken := func() bool {
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}

	release := p.HoldAppendWakeups()
	if release(); woken() {
		t.Fatal("a release with no append woke a waiter")
	}

	first, second := p.HoldAppendWakeups(), p.HoldAppendWakeups() // two requests
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 1))
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 1))
	if woken() {
		t.Fatal("an append woke a waiter during a hold")
	}
	if first(); woken() {
		t.Fatal("a waiter woke while another hold is in force")
	}
	if second(); !woken() {
		t.Fatal("the last release did not wake the waiter")
	}

	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "c", 1))
	if !woken() {
		t.Fatal("an append without a hold did not wake the waiter")
	}
}
