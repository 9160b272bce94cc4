package txn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/recordbatch"
)

// memLog is a __transaction_state partition in memory.
type memLog struct {
	mu        sync.Mutex
	batches   [][]byte
	appendErr error // returned by the next appends while set
	// gate, when set, stops the next Append before it writes: entered is
	// closed, then the append waits for gate to be closed.
	gate, entered chan struct{}
	// replayGate, when set, stops Replay after its first batch: replaying
	// is closed, then the replay waits for replayGate to be closed.
	replayGate, replaying chan struct{}
}

var _ Log = (*memLog)(nil)

func (l *memLog) Append(records []recordbatch.Record) (int64, error) {
	l.mu.Lock()
	gate, entered := l.gate, l.entered
	l.gate, l.entered = nil, nil
	l.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.appendErr != nil {
		return 0, l.appendErr
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
	if err != nil {
		return 0, err
	}
	l.batches = append(l.batches, batch)
	return int64(len(l.batches) - 1), nil
}

func (l *memLog) Replay(fn func(batch []byte) error) (int64, error) {
	l.mu.Lock()
	batches := append([][]byte(nil), l.batches...)
	gate, replaying := l.replayGate, l.replaying
	l.mu.Unlock()
	for i, b := range batches {
		if i == 1 && gate != nil {
			close(replaying)
			<-gate
		}
		if err := fn(b); err != nil {
			return int64(len(batches)), err
		}
	}
	return int64(len(batches)), nil
}

func (l *memLog) AwaitCommitted(int64, <-chan struct{}) error { return nil }
func (l *memLog) Leading() bool                               { return true }

// holdNextAppend stops the log's next Append before it writes; it returns
// a channel closed once that append is waiting, and the function that lets
// it go on.
func (l *memLog) holdNextAppend() (waiting <-chan struct{}, release func()) {
	gate, entered := make(chan struct{}), make(chan struct{})
	l.mu.Lock()
	l.gate, l.entered = gate, entered
	l.mu.Unlock()
	return entered, func() { close(gate) }
}

// record is one decoded __transaction_state record.
type record struct {
	id string
	t  *transaction // nil: tombstone
}

// records decodes every record of the log.
func (l *memLog) records(t *testing.T) []record {
	t.Helper()
	var out []record
	l.Replay(func(batch []byte) error {
		recs, err := recordbatch.Records(batch)
		if err != nil {
			t.Fatalf("records: %v", err)
		}
		for _, r := range recs {
			id, tx, err := decodeRecord(r.Key, r.Value)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			out = append(out, record{id, tx})
		}
		return nil
	})
	return out
}

// states is the sequence of states written for id.
func (l *memLog) states(t *testing.T, id string) []kmsg.TransactionState {
	var out []kmsg.TransactionState
	for _, r := range l.records(t) {
		if r.id == id && r.t != nil {
			out = append(out, r.t.state)
		}
	}
	return out
}

// fakeMarkers records the markers written; answer decides each outcome
// (nil: every partition written).
type fakeMarkers struct {
	mu      sync.Mutex
	written []Marker
	answer  func(m Marker, tp group.TopicPartition) error
	block   chan struct{} // when set, WriteMarkers waits for it to close
}

func (f *fakeMarkers) WriteMarkers(ctx context.Context, m Marker) map[group.TopicPartition]error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m.Partitions = append([]group.TopicPartition(nil), m.Partitions...)
	out := map[group.TopicPartition]error{}
	var written []group.TopicPartition
	for _, tp := range m.Partitions {
		var err error
		if f.answer != nil {
			err = f.answer(m, tp)
		}
		out[tp] = err
		if err == nil {
			written = append(written, tp)
		}
	}
	if len(written) > 0 {
		w := m
		w.Partitions = written
		f.written = append(f.written, w)
	}
	return out
}

func (f *fakeMarkers) markers() []Marker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Marker(nil), f.written...)
}

// countEvents counts Events.
type countEvents struct {
	mu                                    sync.Mutex
	started, committed, aborted, timedOut int
}

func (e *countEvents) Started() { e.mu.Lock(); e.started++; e.mu.Unlock() }
func (e *countEvents) Ended(commit bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if commit {
		e.committed++
	} else {
		e.aborted++
	}
}
func (e *countEvents) TimedOut() { e.mu.Lock(); e.timedOut++; e.mu.Unlock() }

// clock is a hand-moved clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// harness is one loaded shard over a memLog.
type harness struct {
	t       *testing.T
	log     *memLog
	markers *fakeMarkers
	events  *countEvents
	clock   *clock
	workers *sync.WaitGroup
	shard   *Shard
	nextPID int64
}

const coordinatorEpoch = 7

func newHarness(t *testing.T, log *memLog) *harness {
	t.Helper()
	if log == nil {
		log = &memLog{}
	}
	h := &harness{t: t, log: log, markers: &fakeMarkers{}, events: &countEvents{},
		clock: &clock{now: time.UnixMilli(1_700_000_000_000)}, workers: &sync.WaitGroup{}, nextPID: 1000}
	h.load()
	return h
}

// load starts a fresh shard over the harness's log (a new leadership term).
func (h *harness) load() {
	h.t.Helper()
	if h.shard != nil {
		h.shard.Close()
		h.workers.Wait()
	}
	var mu sync.Mutex
	sh, err := NewShard(ShardConfig{
		Partition: 3, CoordinatorEpoch: coordinatorEpoch, Log: h.log,
		ProducerIDs: func(context.Context) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			h.nextPID++
			return h.nextPID, nil
		},
		Markers: h.markers, Events: h.events, workers: h.workers,
		Config: Config{Now: h.clock.Now, MarkerRetryBackoff: time.Millisecond},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.shard = sh
	sh.Load()
	h.t.Cleanup(func() {
		sh.Close()
		h.workers.Wait()
	})
}

// settle waits for every marker goroutine of the shard to finish.
func (h *harness) settle() {
	h.t.Helper()
	done := make(chan struct{})
	go func() { h.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("marker writing did not finish")
	}
}

func (h *harness) init(id string, timeoutMillis int32, pid int64, epoch int16) (int64, int16, *kerr.Error) {
	return h.shard.InitProducerID(context.Background(), id, timeoutMillis, pid, epoch)
}

func (h *harness) mustInit(id string) (int64, int16) {
	h.t.Helper()
	pid, epoch, err := h.init(id, 60_000, -1, -1)
	if err != nil {
		h.t.Fatalf("InitProducerID(%s): %v", id, err)
	}
	return pid, epoch
}

func (h *harness) describe(id string) Description {
	h.t.Helper()
	d, err := h.shard.Describe(id)
	if err != nil {
		h.t.Fatalf("Describe(%s): %v", id, err)
	}
	return d
}

func tps(pairs ...any) []group.TopicPartition {
	var out []group.TopicPartition
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, group.TopicPartition{Topic: pairs[i].(string), Partition: int32(pairs[i+1].(int))})
	}
	return out
}

func wantErr(t *testing.T, what string, got, want *kerr.Error) {
	t.Helper()
	if !errors.Is(asError(got), asError(want)) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// asError keeps a nil *kerr.Error a nil error.
func asError(e *kerr.Error) error {
	if e == nil {
		return nil
	}
	return e
}

type ctx = context.Context

type fakeTopic struct {
	leaders []int32
	err     error
}

func (f *fakeTopic) Leaders() ([]int32, error) { return f.leaders, f.err }

// recordsOf is t's state as a log record.
func recordsOf(t *transaction) []recordbatch.Record {
	return []recordbatch.Record{{Key: encodeKey(t.id), Value: encodeValue(t), Timestamp: t.lastUpdate}}
}

// endV1 is a Transactions V1 EndTxn (v0-v4), its error alone.
func (h *harness) endV1(id string, pid int64, epoch int16, commit bool) *kerr.Error {
	_, _, err := h.shard.EndTxn(id, pid, epoch, commit, V1)
	return err
}
