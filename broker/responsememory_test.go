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

// TestResponseMemoryRemoteRoom: a Fetch's remote reads keep room for
// their records and the chunk buffers holding them, up to what they took;
// its local records take room beyond it in the same reservation, only
// what is free and only while no Fetch of its class waits (never waiting
// while holding); giving the local records back keeps the remote room,
// and the release gives back everything.
func TestResponseMemoryRemoteRoom(t *testing.T) {
	r := newResponseMemory(4000, newMetrics(nil), nil) // 3000 for consumers
	ctx := context.Background()
	now := time.Now() // a deadline already passed: no wait
	later := time.Now().Add(time.Hour)

	v := r.reserve(ctx, false, 2000, 100, now)
	// 500 bytes of records in chunk buffers of 800: room for the chunks.
	v.settleRemote(500, 800)
	if v.Size() != 800 || v.localRoom() != 0 {
		t.Fatalf("remote reads of 500 bytes in 800 of chunk buffers: %d held, %d for local records; want 800 and 0", v.Size(), v.localRoom())
	}
	// Chunk buffers larger than the room taken: the room taken.
	w := r.reserve(ctx, false, 300, 100, now)
	w.settleRemote(100, 5000)
	if w.Size() != 300 {
		t.Fatalf("remote reads of 100 bytes in 5000 of chunk buffers with 300 taken: %d held, want 300", w.Size())
	}
	w.release()

	v.growUpTo(1000)
	if v.localRoom() != 1000 {
		t.Fatalf("room for local records with 2200 free: %d, want the 1000 asked", v.localRoom())
	}
	v.settle(300)
	if v.Size() != 1100 || v.localRoom() != 300 {
		t.Fatalf("settled to 300 bytes of local records: %d held, %d for local records; want 1100 and 300", v.Size(), v.localRoom())
	}
	v.releaseLocal()
	if v.Size() != 800 {
		t.Fatalf("local records given back: %d held, want the remote reads' 800", v.Size())
	}

	// With a Fetch waiting for room, it does not grow.
	granted := make(chan *responseReservation, 1)
	go func() { granted <- r.reserve(ctx, false, 2500, 2500, later) }()
	waitFor(t, r, 1)
	v.growUpTo(1000)
	if v.localRoom() != 0 {
		t.Fatalf("room for local records taken while a Fetch waits for room: %d", v.localRoom())
	}
	v.release()
	g := <-granted
	if g.Size() != 2500 {
		t.Fatalf("the waiting Fetch got %d once the remote room was given back, want 2500", g.Size())
	}
	g.release()
	if held, holders, waiting := r.held(); held != 0 || holders != 0 || waiting != 0 {
		t.Fatalf("after every release: %d bytes held by %d, %d waiting", held, holders, waiting)
	}
}
