package partition

import (
	"log/slog"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
)

// TestAppendOnAFullDisk: an append that fails on a full disk answers the
// retriable KAFKA_STORAGE_ERROR, counts nothing (log end, high watermark
// and the producer's sequence stay), and makes the leader hand the
// partition over: StorageResignation proposes the ISR without this
// replica, once at a time, until a new term begins. A producer retrying
// the same batch after the disk has space is accepted at the same offset.
func TestAppendOnAFullDisk(t *testing.T) {
	var full atomic.Bool
	p, err := Open(Config{Dir: t.TempDir(), Topic: "orders", TopicID: [16]byte{7}, Self: 1,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler),
		SegmentWriteFault: func(size int) (int, error) {
			if full.Load() {
				return size / 3, syscall.ENOSPC
			}
			return 0, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	if isr := p.StorageResignation(); isr != nil {
		t.Fatalf("a resignation before any failure: %v", isr)
	}
	mustAppend(t, p, batch(t, idempotent(42, 0, 0), "a", 2))
	for _, follower := range []int32{2, 3} {
		if _, err := p.FollowerFetched(follower, 2, t0); err != nil {
			t.Fatal(err)
		}
	}
	end, highWatermark := p.LogEndOffset(), p.HighWatermark()

	full.Store(true)
	retried := batch(t, idempotent(42, 0, 2), "b", 3)
	_, _, err = p.Append(slices.Clone(retried), 9, t0)
	wantCode(t, "append on a full disk", err, kerr.KafkaStorageError)
	if p.LogEndOffset() != end || p.HighWatermark() != highWatermark {
		t.Fatalf("after a failed append: log end %d, high watermark %d; want %d, %d", p.LogEndOffset(), p.HighWatermark(), end, highWatermark)
	}
	isr := p.StorageResignation()
	if !slices.Equal(isr, []int32{2, 3}) {
		t.Fatalf("resignation ISR %v, want [2 3]", isr)
	}
	if again := p.StorageResignation(); again != nil {
		t.Fatalf("a second resignation while one is in flight: %v", again)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	if again := p.StorageResignation(); !slices.Equal(again, []int32{2, 3}) {
		t.Fatalf("the refused resignation is not proposed again: %v", again)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})

	// The controller applied it: broker 2 leads, this replica follows.
	p.ApplyAssignment(assignment(2, 6, []int32{1, 2, 3}, []int32{2, 3}), t0)
	if again := p.StorageResignation(); again != nil {
		t.Fatalf("a resignation in the next term: %v", again)
	}
	// Back as leader with space on the disk: the producer's retry of the
	// failed batch is accepted at the offset it would have had.
	full.Store(false)
	p.ApplyAssignment(assignment(1, 7, []int32{1, 2, 3}, []int32{1}), t0)
	if base := mustAppend(t, p, retried); base != end {
		t.Fatalf("the retried batch at %d, want %d", base, end)
	}
	data, err := p.Read(0, 1<<20, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, h := range headers(t, data) {
		offsets = append(offsets, h.BaseOffset)
	}
	if !slices.Equal(offsets, []int64{0, 2}) {
		t.Fatalf("batches at %v, want [0 2]", offsets)
	}
}

// openFaulty opens partition 0 of "orders" in dir as broker 1 with
// configs, its log's fsyncs failing while failing is set.
func openFaulty(t *testing.T, dir string, configs map[string]string, failing *atomic.Bool) *Partition {
	t.Helper()
	p, err := Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{7}, Self: 1,
		Values: topicconfig.Typed(nil, configs), Logger: slog.New(slog.DiscardHandler),
		SegmentSyncFault: func() error {
			if failing.Load() {
				return syscall.EIO
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDurableFsyncFailureOnTheLeader: in durable mode an fsync that fails
// on the leader answers the acks=all and acks=1 produces waiting for it
// KAFKA_STORAGE_ERROR, though every in-sync follower has the records;
// nothing it did not fsync counts toward the high watermark, not even once
// fsyncs work again; later appends get KAFKA_STORAGE_ERROR; and the leader
// hands the partition over through StorageResignation, as after a failed
// append — in this term and in any later one it leads while its log is
// failed. Reopened (a restart), the log recovers and takes writes again.
// Before, the failed fsync proposed no hand-over: the partition stayed on
// the failed replica, refusing every write, until the broker restarted.
func TestDurableFsyncFailureOnTheLeader(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	p := openFaulty(t, dir, durable, &failing)
	defer func() { p.Close() }()
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	deadline := time.Now().Add(time.Hour)
	replicate := func(end int64) {
		for _, follower := range []int32{2, 3} {
			if _, err := p.FollowerFetched(follower, end, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	committed := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 2)) + 2
	replicate(committed)
	if o := WaitAll([]Pending{{Partition: p, End: committed, LeaderEpoch: 5}}, deadline, nil); o[0].Code != 0 {
		t.Fatalf("acks=all while fsyncs work: %+v", o[0])
	}

	failing.Store(true)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 3)) + 3
	replicate(end)
	for i, o := range WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: 5}, {Partition: p, End: end, LeaderEpoch: 5, LeaderOnly: true}}, deadline, nil) {
		if o.Code != kerr.KafkaStorageError.Code {
			t.Fatalf("pending %d (acks=all, acks=1) after a failed fsync: %+v, want KAFKA_STORAGE_ERROR", i, o)
		}
	}
	if p.HighWatermark() != committed || p.SyncedEnd() != committed {
		t.Fatalf("after a failed fsync: high watermark %d, fsynced %d; want %d", p.HighWatermark(), p.SyncedEnd(), committed)
	}
	if isr := p.StorageResignation(); !slices.Equal(isr, []int32{2, 3}) {
		t.Fatalf("resignation ISR after a failed fsync %v, want [2 3]", isr)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})

	// Fsyncs work again, but what the failed one lost is not made durable
	// by a later one: nothing moves, and appends are refused.
	failing.Store(false)
	_, _, err := p.Append(batch(t, recordbatch.BuildOptions{}, "c", 1), 9, t0)
	wantCode(t, "append after a failed fsync", err, kerr.KafkaStorageError)
	replicate(end)
	WaitSynced([]*Partition{p}, nil)
	if p.HighWatermark() != committed || p.SyncedEnd() != committed || p.LogFailed() == nil {
		t.Fatalf("once fsyncs work again: high watermark %d, fsynced %d, log failed %v; want %d, %d, failed", p.HighWatermark(), p.SyncedEnd(), p.LogFailed(), committed, committed)
	}
	// Led again in a later term (no other replica could take it), the
	// failed log is handed over again, without waiting for an append.
	p.ApplyAssignment(assignment(1, 6, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	if isr := p.StorageResignation(); !slices.Equal(isr, []int32{2, 3}) {
		t.Fatalf("resignation ISR in a later term %v, want [2 3]", isr)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	p.ApplyAssignment(assignment(2, 7, []int32{1, 2, 3}, []int32{2, 3}), t0)
	if isr := p.StorageResignation(); isr != nil {
		t.Fatalf("a resignation while following: %v", isr)
	}

	// A restart reopens the log: recovered, it takes writes and fsyncs.
	p.Close()
	p = openFaulty(t, dir, durable, &failing)
	if p.LogFailed() != nil || p.LogEndOffset() != end {
		t.Fatalf("reopened: log failed %v, end %d; want a working log ending at %d", p.LogFailed(), p.LogEndOffset(), end)
	}
	p.ApplyAssignment(assignment(1, 8, []int32{1, 2, 3}, []int32{1}), t0)
	next := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "d", 2)) + 2
	if o := WaitAll([]Pending{{Partition: p, End: next, LeaderEpoch: 8}}, deadline, nil); o[0].Code != 0 || p.HighWatermark() != next {
		t.Fatalf("acks=all after reopening: %+v, high watermark %d; want committed at %d", o[0], p.HighWatermark(), next)
	}
}

// TestFlushFailureOnTheLeader: in page-cache mode, a periodic flush
// (flush.ms) whose fsync fails makes the leader hand the partition over,
// as a failed append does, and later appends get KAFKA_STORAGE_ERROR.
// Before, the failure was logged and nothing else happened: the next due
// flush fsynced again and, succeeding, counted the lost pages as durable.
func TestFlushFailureOnTheLeader(t *testing.T) {
	var failing atomic.Bool
	p := openFaulty(t, t.TempDir(), map[string]string{"flush.ms": "1"}, &failing)
	defer p.Close()
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 2))
	time.Sleep(2 * time.Millisecond) // the append is older than flush.ms: the flush is due

	failing.Store(true)
	p.Maintain(t0, Maintenance{})
	if isr := p.StorageResignation(); !slices.Equal(isr, []int32{2, 3}) {
		t.Fatalf("resignation ISR after a failed flush %v, want [2 3]", isr)
	}
	failing.Store(false)
	_, _, err := p.Append(batch(t, recordbatch.BuildOptions{}, "b", 1), 9, t0)
	wantCode(t, "append after a failed flush", err, kerr.KafkaStorageError)
}
