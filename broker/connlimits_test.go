package broker

import (
	"context"
	"net/netip"
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
