package txn

import (
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
)

func TestCommitWritesPrepareThenMarkersThenComplete(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	if epoch != 0 {
		t.Fatalf("first InitProducerId: epoch %d, want 0", epoch)
	}
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("b", 1, "a", 0), V1), nil)
	wantErr(t, "add again", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	if d := h.describe("t"); d.State != kmsg.TransactionStateOngoing || !reflect.DeepEqual(d.Partitions, tps("a", 0, "b", 1)) || d.StartTimestamp != h.clock.Now().UnixMilli() {
		t.Fatalf("ongoing: %+v", d)
	}
	wantErr(t, "commit", h.endV1("t", pid, epoch, true), nil)
	h.settle()
	got := h.markers.markers()
	want := []Marker{{ProducerID: pid, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: coordinatorEpoch, Partitions: tps("a", 0, "b", 1)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	states := h.log.states(t, "t")
	wantStates := []kmsg.TransactionState{kmsg.TransactionStateEmpty, kmsg.TransactionStateOngoing, kmsg.TransactionStatePrepareCommit, kmsg.TransactionStateCompleteCommit}
	if !reflect.DeepEqual(states, wantStates) {
		t.Fatalf("written states %v, want %v", states, wantStates)
	}
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteCommit || len(d.Partitions) != 0 {
		t.Fatalf("after commit: %+v", d)
	}
	// A retried EndTxn of the same outcome succeeds; the other is refused.
	wantErr(t, "commit retry", h.endV1("t", pid, epoch, true), nil)
	wantErr(t, "abort after commit", h.endV1("t", pid, epoch, false), kerr.InvalidTxnState)
	if h.events.started != 1 || h.events.committed != 1 || h.events.aborted != 0 {
		t.Fatalf("events %+v", h.events)
	}
	// The next transaction starts from CompleteCommit.
	wantErr(t, "next add", h.shard.AddPartitions("t", pid, epoch, tps("c", 0), V1), nil)
	wantErr(t, "abort", h.endV1("t", pid, epoch, false), nil)
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteAbort {
		t.Fatalf("after abort: %+v", d)
	}
	if m := h.markers.markers(); len(m) != 2 || m[1].Commit || !reflect.DeepEqual(m[1].Partitions, tps("c", 0)) {
		t.Fatalf("abort markers %+v", m)
	}
}

func TestEndTxnWithoutTransactionIsInvalid(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "commit empty", h.endV1("t", pid, epoch, true), kerr.InvalidTxnState)
	wantErr(t, "unknown id", h.endV1("other", pid, epoch, true), kerr.InvalidProducerIDMapping)
	wantErr(t, "other producer", h.endV1("t", pid+1, epoch, true), kerr.InvalidProducerIDMapping)
	wantErr(t, "add unknown id", h.shard.AddPartitions("other", pid, epoch, tps("a", 0), V1), kerr.InvalidProducerIDMapping)
}

func TestRequestsWhileMarkersInFlightAreConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	h.markers.block = make(chan struct{})
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	wantErr(t, "commit", h.endV1("t", pid, epoch, true), nil)
	wantErr(t, "commit retry", h.endV1("t", pid, epoch, true), kerr.ConcurrentTransactions)
	wantErr(t, "abort", h.endV1("t", pid, epoch, false), kerr.InvalidTxnState)
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("b", 0), V1), kerr.ConcurrentTransactions)
	if _, _, err := h.init("t", 60_000, -1, -1); err != kerr.ConcurrentTransactions {
		t.Fatalf("InitProducerId while completing: %v", err)
	}
	if _, err := h.shard.VerifyPartitions("t", pid, epoch, tps("a", 0)); err != kerr.ConcurrentTransactions {
		t.Fatalf("verify while completing: %v", err)
	}
	close(h.markers.block)
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("%+v", d)
	}
}

func TestInitProducerIDFencesOlderInstances(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch0 := h.mustInit("t")
	pid1, epoch1 := h.mustInit("t")
	if pid1 != pid || epoch1 != epoch0+1 {
		t.Fatalf("second InitProducerId: %d/%d, want %d/%d", pid1, epoch1, pid, epoch0+1)
	}
	wantErr(t, "old instance add", h.shard.AddPartitions("t", pid, epoch0, tps("a", 0), V1), kerr.ProducerFenced)
	wantErr(t, "new instance add", h.shard.AddPartitions("t", pid, epoch1, tps("a", 0), V1), nil)
	wantErr(t, "old instance end", h.endV1("t", pid, epoch0, true), kerr.ProducerFenced)
}

func TestInitProducerIDWhileOpenAbortsWithBumpedEpoch(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	if _, _, err := h.init("t", 60_000, -1, -1); err != kerr.ConcurrentTransactions {
		t.Fatalf("InitProducerId with an open transaction: %v, want CONCURRENT_TRANSACTIONS", err)
	}
	h.settle()
	want := []Marker{{ProducerID: pid, ProducerEpoch: epoch + 1, Commit: false, CoordinatorEpoch: coordinatorEpoch, Partitions: tps("a", 0)}}
	if got := h.markers.markers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	gotPID, gotEpoch := h.mustInit("t")
	if gotPID != pid || gotEpoch != epoch+2 {
		t.Fatalf("retried InitProducerId: %d/%d, want %d/%d", gotPID, gotEpoch, pid, epoch+2)
	}
}

func TestKIP360EpochBump(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	// A producer recovering from an abortable error bumps its own epoch.
	gotPID, bumped, err := h.init("t", 60_000, pid, epoch)
	if err != nil || gotPID != pid || bumped != epoch+1 {
		t.Fatalf("KIP-360 bump: %d/%d %v, want %d/%d", gotPID, bumped, err, pid, epoch+1)
	}
	// A retry of the same request (the answer was lost) gets the same epoch.
	gotPID, again, err := h.init("t", 60_000, pid, epoch)
	if err != nil || gotPID != pid || again != bumped {
		t.Fatalf("retried KIP-360 bump: %d/%d %v, want %d/%d", gotPID, again, err, pid, bumped)
	}
	// A stale epoch, or another producer id, is fenced.
	if _, _, err := h.init("t", 60_000, pid, epoch+5); err != kerr.ProducerFenced {
		t.Fatalf("stale epoch: %v", err)
	}
	if _, _, err := h.init("t", 60_000, pid+50, 0); err != kerr.ProducerFenced {
		t.Fatalf("other producer id: %v", err)
	}
	// A stale epoch does not abort the current instance's transaction.
	wantErr(t, "add", h.shard.AddPartitions("t", pid, bumped, tps("a", 0), V1), nil)
	if _, _, err := h.init("t", 60_000, pid, epoch); err != kerr.ProducerFenced {
		t.Fatalf("stale KIP-360 with an open transaction: %v", err)
	}
	if d := h.describe("t"); d.State != kmsg.TransactionStateOngoing {
		t.Fatalf("stale KIP-360 changed the open transaction: %+v", d)
	}
	// KIP-360 with an open transaction aborts it first.
	wantErr(t, "add", h.shard.AddPartitions("t", pid, bumped, tps("a", 0), V1), nil)
	if _, _, err := h.init("t", 60_000, pid, bumped); err != kerr.ConcurrentTransactions {
		t.Fatalf("KIP-360 with an open transaction: %v", err)
	}
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteAbort || d.ProducerEpoch != bumped+1 {
		t.Fatalf("after fence: %+v", d)
	}
}

func TestExhaustedEpochGetsNewProducerID(t *testing.T) {
	exhausted := func() *memLog {
		log := &memLog{}
		old := &transaction{id: "t", producerID: 500, producerEpoch: 32766, timeoutMillis: 60_000, state: kmsg.TransactionStateCompleteCommit,
			partitions: map[group.TopicPartition]struct{}{}, start: 1, lastUpdate: 1_700_000_000_000}
		log.Append(recordsOf(old))
		return log
	}
	h := newHarness(t, exhausted())
	pid, epoch := h.mustInit("t")
	if pid == 500 || epoch != 0 {
		t.Fatalf("InitProducerId at an exhausted epoch: %d/%d, want a new producer id with epoch 0", pid, epoch)
	}

	// KIP-360 from the producer at the exhausted epoch rotates too, and a
	// retry of it (the answer was lost) gets the same new id and epoch.
	h = newHarness(t, exhausted())
	pid, epoch, err := h.init("t", 60_000, 500, 32766)
	if err != nil || pid == 500 || epoch != 0 {
		t.Fatalf("KIP-360 at an exhausted epoch: %d/%d %v", pid, epoch, err)
	}
	gotPID, gotEpoch, err := h.init("t", 60_000, 500, 32766)
	if err != nil || gotPID != pid || gotEpoch != epoch {
		t.Fatalf("retry after rotation: %d/%d %v, want %d/%d", gotPID, gotEpoch, err, pid, epoch)
	}
	if _, _, err := h.init("t", 60_000, 500, 32765); err != kerr.ProducerFenced {
		t.Fatalf("old producer id at another epoch: %v", err)
	}
}

func TestInvalidTransactionTimeout(t *testing.T) {
	h := newHarness(t, nil)
	for _, ms := range []int32{0, -1, int32(DefaultMaxTimeout/time.Millisecond) + 1} {
		if _, _, err := h.init("t", ms, -1, -1); err != kerr.InvalidTransactionTimeout {
			t.Fatalf("timeout %d ms: %v, want INVALID_TRANSACTION_TIMEOUT", ms, err)
		}
	}
	if _, _, err := h.init("t", int32(DefaultMaxTimeout/time.Millisecond), -1, -1); err != nil {
		t.Fatalf("timeout at the maximum: %v", err)
	}
	if _, _, err := h.init("", 1000, -1, -1); err != kerr.InvalidRequest {
		t.Fatalf("empty transactional id: %v", err)
	}
}

func TestTimedOutTransactionIsAbortedAndProducerFenced(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch, err := h.init("t", 1000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	h.clock.Advance(1000 * time.Millisecond)
	if n := h.shard.AbortTimedOut(h.clock.Now()); n != 0 {
		t.Fatalf("aborted %d at the timeout, want 0", n)
	}
	h.clock.Advance(time.Millisecond)
	if n := h.shard.AbortTimedOut(h.clock.Now()); n != 1 {
		t.Fatalf("aborted %d past the timeout, want 1", n)
	}
	h.settle()
	want := []Marker{{ProducerID: pid, ProducerEpoch: epoch + 1, Commit: false, CoordinatorEpoch: coordinatorEpoch, Partitions: tps("a", 0)}}
	if got := h.markers.markers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	wantErr(t, "commit by the timed-out producer", h.endV1("t", pid, epoch, true), kerr.ProducerFenced)
	wantErr(t, "add by the timed-out producer", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), kerr.ProducerFenced)
	if _, _, err := h.init("t", 1000, pid, epoch); err != kerr.ProducerFenced {
		t.Fatalf("KIP-360 by the timed-out producer: %v, want PRODUCER_FENCED", err)
	}
	if h.events.timedOut != 1 || h.events.aborted != 1 {
		t.Fatalf("events %+v", h.events)
	}
}

func TestVerifyPartitions(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	got, err := h.shard.VerifyPartitions("t", pid, epoch, tps("a", 0, "a", 1))
	if err != nil || got[group.TopicPartition{Topic: "a", Partition: 0}] != nil || got[group.TopicPartition{Topic: "a", Partition: 1}] != kerr.InvalidTxnState {
		t.Fatalf("verify: %v %v", got, err)
	}
	if _, err := h.shard.VerifyPartitions("t", pid, epoch+1, tps("a", 0)); err != kerr.ProducerFenced {
		t.Fatalf("verify with another epoch: %v", err)
	}
	if _, err := h.shard.VerifyPartitions("u", pid, epoch, tps("a", 0)); err != kerr.InvalidProducerIDMapping {
		t.Fatalf("verify an unknown id: %v", err)
	}
	wantErr(t, "commit", h.endV1("t", pid, epoch, true), nil)
	h.settle()
	// Once the markers are written the partition is no longer in a
	// transaction: a late batch verified now would open a hanging one.
	got, err = h.shard.VerifyPartitions("t", pid, epoch, tps("a", 0))
	if err != nil || got[group.TopicPartition{Topic: "a", Partition: 0}] != kerr.InvalidTxnState {
		t.Fatalf("verify after commit: %v %v", got, err)
	}
}

func TestLoadResumesPreparedAndAbortsTimedOut(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("committing")
	wantErr(t, "add", h.shard.AddPartitions("committing", pid, epoch, tps("a", 0, "b", 2), V1), nil)
	opid, oepoch, err := h.init("open", 1000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "add", h.shard.AddPartitions("open", opid, oepoch, tps("c", 0), V1), nil)
	// The markers never get written by this leader: it loses the
	// partition with PrepareCommit written.
	h.markers.block = make(chan struct{})
	wantErr(t, "commit", h.endV1("committing", pid, epoch, true), nil)
	h.shard.Close()
	h.workers.Wait()
	if len(h.markers.markers()) != 0 {
		t.Fatal("markers written while blocked")
	}

	h.markers.block = nil
	h.clock.Advance(2 * time.Second)
	h.load()
	h.settle()
	got := h.markers.markers()
	want := []Marker{
		{ProducerID: pid, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: coordinatorEpoch, Partitions: tps("a", 0, "b", 2)},
		{ProducerID: opid, ProducerEpoch: oepoch + 1, Commit: false, CoordinatorEpoch: coordinatorEpoch, Partitions: tps("c", 0)},
	}
	if len(got) != 2 {
		t.Fatalf("markers after load %+v, want %+v", got, want)
	}
	if got[0].ProducerID != pid {
		got[0], got[1] = got[1], got[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("markers after load %+v, want %+v", got, want)
	}
	if d := h.describe("committing"); d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("committing after load: %+v", d)
	}
	if d := h.describe("open"); d.State != kmsg.TransactionStateCompleteAbort || d.ProducerEpoch != oepoch+1 {
		t.Fatalf("open after load: %+v", d)
	}
	// A third leader finds both complete and writes nothing more.
	h.load()
	h.settle()
	if n := len(h.markers.markers()); n != 2 {
		t.Fatalf("%d markers after a third load, want 2", n)
	}
}

func TestMarkerRetriesDropsDeletedPartitionsAndStopsWhenFenced(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("t")
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0, "gone", 0, "slow", 0), V1), nil)
	slowFailures := 3
	h.markers.answer = func(m Marker, tp group.TopicPartition) error {
		switch tp.Topic {
		case "gone":
			return ErrPartitionGone
		case "slow":
			if slowFailures > 0 {
				slowFailures--
				return kerr.NotLeaderForPartition
			}
		}
		return nil
	}
	wantErr(t, "commit", h.endV1("t", pid, epoch, true), nil)
	h.settle()
	var written []group.TopicPartition
	for _, m := range h.markers.markers() {
		written = append(written, m.Partitions...)
	}
	if !reflect.DeepEqual(written, tps("a", 0, "slow", 0)) {
		t.Fatalf("markers written to %v", written)
	}
	if d := h.describe("t"); d.State != kmsg.TransactionStateCompleteCommit {
		t.Fatalf("%+v", d)
	}

	// Fenced by a newer coordinator: this one stops, without Complete.
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), nil)
	h.markers.answer = func(Marker, group.TopicPartition) error { return ErrCoordinatorFenced }
	wantErr(t, "abort", h.endV1("t", pid, epoch, false), nil)
	h.settle()
	if d := h.describe("t"); d.State != kmsg.TransactionStatePrepareAbort {
		t.Fatalf("fenced coordinator completed the transaction: %+v", d)
	}
}

func TestFailedWriteLeavesStateUnchanged(t *testing.T) {
	h := newHarness(t, nil)
	h.log.appendErr = kerr.NotCoordinator
	if _, _, err := h.init("t", 1000, -1, -1); err != kerr.NotCoordinator {
		t.Fatalf("init with a failing log: %v", err)
	}
	if _, err := h.shard.Describe("t"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("a transactional id whose first write failed exists: %v", err)
	}
	h.log.appendErr = nil
	pid, epoch := h.mustInit("t")
	h.log.appendErr = kerr.CoordinatorNotAvailable
	wantErr(t, "add", h.shard.AddPartitions("t", pid, epoch, tps("a", 0), V1), kerr.CoordinatorNotAvailable)
	if d := h.describe("t"); d.State != kmsg.TransactionStateEmpty {
		t.Fatalf("state after a failed write: %+v", d)
	}
}

func TestExpiredTransactionalIDIsTombstoned(t *testing.T) {
	h := newHarness(t, nil)
	pid, epoch := h.mustInit("idle")
	h.mustInit("busy-later")
	opid, oepoch, _ := h.init("open", int32(DefaultMaxTimeout/time.Millisecond), -1, -1)
	wantErr(t, "add", h.shard.AddPartitions("open", opid, oepoch, tps("a", 0), V1), nil)
	h.clock.Advance(DefaultIDExpiration - time.Hour)
	h.mustInit("busy-later")
	h.clock.Advance(time.Hour)
	n, err := h.shard.ExpireTransactionalIDs(h.clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want 1", n, err)
	}
	if _, err := h.shard.Describe("idle"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("expired id still described: %v", err)
	}
	recs := h.log.records(t)
	if last := recs[len(recs)-1]; last.id != "idle" || last.t != nil {
		t.Fatalf("last record %+v, want a tombstone for idle", last)
	}
	// The open transaction is kept (the timeout aborts it, not expiry);
	// a reloaded shard no longer knows the expired id.
	h.load()
	if _, err := h.shard.Describe("idle"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("expired id back after load: %v", err)
	}
	if _, err := h.shard.Describe("busy-later"); err != nil {
		t.Fatal(err)
	}
	// The expired id starts over with a new producer id.
	newPID, _ := h.mustInit("idle")
	if newPID == pid {
		t.Fatalf("expired id got its old producer id %d back (epoch %d)", pid, epoch)
	}
}

func TestListAndDescribe(t *testing.T) {
	h := newHarness(t, nil)
	pa, ea := h.mustInit("a")
	h.mustInit("b")
	wantErr(t, "add", h.shard.AddPartitions("a", pa, ea, tps("x", 0), V1), nil)
	h.clock.Advance(5 * time.Second)
	ids := func(ds []Description) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.TransactionalID)
		}
		return out
	}
	now := h.clock.Now()
	for _, c := range []struct {
		name string
		f    ListFilter
		want []string
	}{
		{"all", ListFilter{}, []string{"a", "b"}},
		{"ongoing", ListFilter{States: []kmsg.TransactionState{kmsg.TransactionStateOngoing}}, []string{"a"}},
		{"producer", ListFilter{ProducerIDs: []int64{pa}}, []string{"a"}},
		{"running 4s", ListFilter{States: []kmsg.TransactionState{kmsg.TransactionStateOngoing}, MinDuration: 4 * time.Second}, []string{"a"}},
		{"running 6s", ListFilter{States: []kmsg.TransactionState{kmsg.TransactionStateOngoing}, MinDuration: 6 * time.Second}, nil},
		{"pattern", ListFilter{Pattern: regexp.MustCompile("^b$")}, []string{"b"}},
	} {
		if got := ids(h.shard.List(now, c.f)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	d := h.describe("a")
	if d.ProducerID != pa || d.ProducerEpoch != ea || d.TimeoutMillis != 60_000 || d.State != kmsg.TransactionStateOngoing {
		t.Fatalf("%+v", d)
	}
}

func TestManagerRoutesAndLoads(t *testing.T) {
	topic := &fakeTopic{leaders: []int32{1, 2, 1}}
	m, err := NewManager(ManagerConfig{Topic: topic, ProducerIDs: func(ctxArg ctx) (int64, error) { return 1, nil }, Markers: &fakeMarkers{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	id := "t"
	p := coordinator.Partition(id, 3)
	if _, err := m.ShardFor(id); err != kerr.NotCoordinator {
		t.Fatalf("ShardFor before Lead: %v", err)
	}
	log := &memLog{}
	if err := m.Lead(p, 4, log); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var sh *Shard
	for sh == nil && time.Now().Before(deadline) {
		var kerr *kerr.Error
		if sh, kerr = m.ShardFor(id); kerr != nil {
			time.Sleep(time.Millisecond)
		}
	}
	if sh == nil || sh.CoordinatorEpoch() != 4 {
		t.Fatalf("shard %v", sh)
	}
	if leader, err := m.CoordinatorOf(id); err != nil || leader != topic.leaders[p] {
		t.Fatalf("CoordinatorOf: %d %v", leader, err)
	}
	m.Resign(p, log)
	if _, err := m.ShardFor(id); err != kerr.NotCoordinator {
		t.Fatalf("ShardFor after Resign: %v", err)
	}
	topic.err = errors.New("no brokers")
	if _, err := m.CoordinatorOf(id); err != kerr.CoordinatorNotAvailable {
		t.Fatalf("CoordinatorOf without the topic: %v", err)
	}
}

type pauser struct{ paused bool }

func (p *pauser) Paused() bool { return p.paused }

func TestManagerExpiryHeldWhileClockUntrusted(t *testing.T) {
	log := &memLog{}
	idle := &transaction{id: "idle", producerID: 1, producerEpoch: 0, lastProducerID: -1, lastProducerEpoch: -1, timeoutMillis: 60_000,
		state: kmsg.TransactionStateCompleteCommit, partitions: map[group.TopicPartition]struct{}{}, start: 1, lastUpdate: 1}
	log.Append(recordsOf(idle))
	pause := &pauser{paused: true}
	m, err := NewManager(ManagerConfig{Topic: &fakeTopic{leaders: []int32{1}}, ProducerIDs: func(ctx) (int64, error) { return 2, nil },
		Markers: &fakeMarkers{}, ExpiryPause: pause})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Lead(0, 1, log); err != nil {
		t.Fatal(err)
	}
	var sh *Shard
	for deadline := time.Now().Add(5 * time.Second); sh == nil && time.Now().Before(deadline); {
		sh, _ = m.ShardFor("idle")
	}
	now := time.UnixMilli(1).Add(DefaultIDExpiration + time.Hour)
	m.ExpireTransactionalIDs(now)
	if _, err := sh.Describe("idle"); err != nil {
		t.Fatalf("expired while the clock is not trusted: %v", err)
	}
	pause.paused = false
	m.ExpireTransactionalIDs(now)
	if _, err := sh.Describe("idle"); err != kerr.TransactionalIDNotFound {
		t.Fatalf("not expired once the clock is trusted: %v", err)
	}
}
