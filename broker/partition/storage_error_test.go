package partition

import (
	"log/slog"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

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
