package broker

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDefaultMaxConnections(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		known bool
		want  int
	}{
		{limit: 1 << 20, known: true, want: 10000},
		{limit: 40000, known: true, want: 10000},
		{limit: 20000, known: true, want: 5000},
		{limit: 1024, known: true, want: 256},
		{limit: 2, known: true, want: 1},
		{known: false, want: 10000},
	} {
		if got := defaultMaxConnectionsFor(tc.limit, tc.known); got != tc.want {
			t.Errorf("limit %d (known %v): %d, want %d", tc.limit, tc.known, got, tc.want)
		}
	}
}

func TestConnectionLimitsPerIP(t *testing.T) {
	l := newConnectionLimits(100, 2)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if !l.admit(a) || !l.admit(a) {
		t.Fatal("the first two connections of an address are refused")
	}
	if l.admit(a) {
		t.Fatal("a third connection from one address is admitted with max.connections.per.ip 2")
	}
	if !l.admit(b) {
		t.Fatal("another address is refused")
	}
	l.leave(a)
	if !l.admit(a) {
		t.Fatal("a connection is refused after one of the address's closed")
	}
	l.leave(a)
	l.leave(a)
	l.leave(b)
	if len(l.byIP) != 0 {
		t.Fatalf("addresses with no connection still tracked: %v", l.byIP)
	}
}

func TestConnectionLimitsSlots(t *testing.T) {
	l := newConnectionLimits(2, 100)
	ctx := context.Background()
	waits := 0
	onWait := func() { waits++ }
	for range 2 {
		if err := l.waitForSlot(ctx, onWait); waits != 0 || err != nil {
			t.Fatalf("a free slot: waited %d times, err %v", waits, err)
		}
	}
	// Full: a wait ends only with its context.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.waitForSlot(canceled, onWait); waits != 1 || err == nil {
		t.Fatalf("a third connection with max.connections 2: waited %d times, err %v; want a wait ended by its context", waits, err)
	}
	l.releaseSlot()
	if err := l.waitForSlot(canceled, onWait); err != nil || waits != 1 {
		t.Fatalf("a slot given back is not taken: %v", err)
	}
	if n := l.open.Load(); n != 2 {
		t.Fatalf("%d slots counted as open, want 2", n)
	}
}

func TestRequestMemoryBackpressure(t *testing.T) {
	m := newMetrics(nil)
	r := newRequestMemory(1000, m)
	ctx := context.Background()
	releaseFirst, err := r.acquire(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	releaseSecond, err := r.acquire(ctx, 400)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 1000 {
		t.Fatalf("queued bytes %v, want 1000", got)
	}
	acquired := make(chan func())
	go func() {
		release, err := r.acquire(ctx, 500)
		if err != nil {
			t.Error(err)
		}
		acquired <- release
	}()
	// Wait until the third request is waiting for memory (a wait is
	// counted before it blocks): it cannot have its memory before 500
	// bytes are given back.
	for testutil.ToFloat64(m.requestMemoryWaits) == 0 {
		select {
		case <-acquired:
			t.Fatal("a request got memory the pool does not have")
		default:
		}
	}
	releaseSecond()
	releaseSecond() // idempotent
	select {
	case <-acquired:
		t.Fatal("500 bytes acquired with 400 free")
	default:
	}
	releaseFirst()
	releaseThird := <-acquired
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 500 {
		t.Fatalf("queued bytes %v, want 500", got)
	}
	releaseThird()
	// A frame larger than the pool takes all of it rather than waiting
	// forever.
	releaseHuge, err := r.acquire(ctx, 5000)
	if err != nil {
		t.Fatal(err)
	}
	releaseHuge()
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 0 {
		t.Fatalf("queued bytes %v after every release, want 0", got)
	}
}

// TestRequestMemoryExtendNeverWaitsHoldingPart: two connections each hold
// their frame's bytes and need more to handle their requests, more than
// the pool has left. Were each to wait for the difference while holding
// its frame, neither would ever get it; extend gives the frame back and
// waits for the whole, so both are served, one after the other.
func TestRequestMemoryExtendNeverWaitsHoldingPart(t *testing.T) {
	m := newMetrics(nil)
	r := newRequestMemory(100, m)
	ctx := context.Background()
	releaseA, err := r.acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	releaseB, err := r.acquire(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	// Room now: an extension is taken at once, and its release gives
	// back the frame's bytes too.
	releaseB, err = r.extend(ctx, releaseB, 30, 40)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 100 {
		t.Fatalf("queued bytes %v after extending 30 to 40 next to 60, want 100", got)
	}
	type extended struct {
		name    string
		release func()
	}
	done := make(chan extended, 2)
	extendIn := func(name string, release func(), held, total int64) {
		release, err := r.extend(ctx, release, held, total)
		if err != nil {
			t.Error(err)
		}
		done <- extended{name, release}
	}
	go extendIn("B", releaseB, 40, 80)
	for testutil.ToFloat64(m.requestMemoryWaits) < 1 {
		runtime.Gosched()
	}
	// B waits for 80 having given its 40 back.
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 60 {
		t.Fatalf("queued bytes %v while B waits, want 60 (A's frame only)", got)
	}
	go extendIn("A", releaseA, 60, 90)
	first := <-done // B: A gave its 60 back to wait for 90
	if first.name != "B" {
		t.Fatalf("%s extended first, want B (the first to wait)", first.name)
	}
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 80 {
		t.Fatalf("queued bytes %v while B holds 80 and A waits, want 80", got)
	}
	first.release()
	second := <-done
	if second.name != "A" {
		t.Fatalf("second extension by %s, want A", second.name)
	}
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 90 {
		t.Fatalf("queued bytes %v while A holds 90, want 90", got)
	}
	second.release()
	second.release() // idempotent
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 0 {
		t.Fatalf("queued bytes %v after every release, want 0", got)
	}
	// A total beyond the pool takes all of it rather than waiting forever.
	release, err := r.acquire(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	release, err = r.extend(ctx, release, 10, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.queuedRequestBytes); got != 100 {
		t.Fatalf("queued bytes %v extending to more than the pool, want the pool (100)", got)
	}
	release()
}
