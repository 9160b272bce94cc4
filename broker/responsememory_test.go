package broker

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestResponseMemoryShares: consumers take at most the budget less the
// followers' share; followers the whole of it; a Fetch with less free
// than it needs waits (in its class's queue) holding nothing, or goes
// without at its deadline; room given back goes to the waiters in order.
func TestResponseMemoryShares(t *testing.T) {
	m := newMetrics(nil)
	r := newResponseMemory(4000, m, nil) // 1000 kept for followers
	ctx := context.Background()
	now := time.Now() // a deadline already passed: no wait
	later := time.Now().Add(time.Hour)

	a := r.reserve(ctx, false, 2500, 100, now)
	if a.Size() != 2500 {
		t.Fatalf("consumer reservation of 2500 with 3000 free for consumers: %d", a.Size())
	}
	// What is free for consumers (500), not what it wants.
	b := r.reserve(ctx, false, 2000, 100, now)
	if b.Size() != 500 {
		t.Fatalf("consumer reservation with 500 free for consumers: %d, want 500", b.Size())
	}
	if c := r.reserve(ctx, false, 2000, 100, now); c != nil {
		t.Fatalf("consumer reservation with the consumers' share used up: %d bytes", c.Size())
	}
	if got := testutil.ToFloat64(m.responseMemoryWaits); got != 1 {
		t.Fatalf("waits counted %v, want 1", got)
	}
	// Followers have their share.
	f := r.reserve(ctx, true, 5000, 100, now)
	if f.Size() != 1000 {
		t.Fatalf("follower reservation with the consumers' share used up: %d, want the 1000 kept for followers", f.Size())
	}
	if got := testutil.ToFloat64(m.queuedResponseBytes); got != 4000 {
		t.Fatalf("gauge %v, want 4000", got)
	}

	// A consumer waits for its need; a smaller one behind it waits too
	// (FIFO), and a follower does not wait behind consumers.
	granted := make(chan *responseReservation, 2)
	go func() { granted <- r.reserve(ctx, false, 1500, 1200, later) }()
	waitFor(t, r, 1)
	go func() { granted <- r.reserve(ctx, false, 100, 100, later) }()
	waitFor(t, r, 2)
	f.shrink(600) // 400 free, for followers only
	if g := r.reserve(ctx, true, 400, 400, now); g.Size() != 400 {
		t.Fatalf("follower reservation with 400 free and consumers waiting: %d", g.Size())
	} else {
		g.release()
	}
	b.release() // 500 free for consumers: not the first one's 1200
	select {
	case g := <-granted:
		t.Fatalf("a consumer got %d bytes past the one waiting ahead of it", g.Size())
	default:
	}
	// Holding some, a Fetch never waits for more while others wait.
	if a.tryGrow(10, false) {
		t.Fatal("a reservation grew while Fetches of its class wait for room")
	}
	a.shrink(1800) // 1200 free for consumers: the first gets them, then the second none
	first := <-granted
	if first.Size() != 1200 {
		t.Fatalf("first waiter granted %d, want the 1200 free", first.Size())
	}
	waitFor(t, r, 1)
	first.release()
	if second := <-granted; second.Size() != 100 {
		t.Fatalf("second waiter granted %d, want 100", second.Size())
	} else {
		second.release()
	}
	// A waiter past its deadline goes without.
	if w := r.reserve(ctx, false, 3000, 3000, time.Now().Add(10*time.Millisecond)); w != nil {
		t.Fatalf("a reservation of 3000 with 1200 free for consumers: %d", w.Size())
	}
	waitFor(t, r, 0)
	// Forced growth (a first batch larger than all the room free) goes
	// over; release gives everything back.
	if !a.tryGrow(5000, true) {
		t.Fatal("forced growth refused")
	}
	a.release()
	a.release()
	f.release()
	if held, holders, waiting := r.held(); held != 0 || holders != 0 || waiting != 0 {
		t.Fatalf("after every release: %d bytes held by %d, %d waiting", held, holders, waiting)
	}
	if got := testutil.ToFloat64(m.queuedResponseBytes); got != 0 {
		t.Fatalf("gauge %v after every release, want 0", got)
	}
}

// waitFor waits until n Fetches wait for response memory.
func waitFor(t *testing.T, r *responseMemory, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, _, waiting := r.held(); waiting == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Fetches never waited", n)
		}
		time.Sleep(time.Millisecond)
	}
}
