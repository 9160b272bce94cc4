package quota

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/quota/quotatest"
)

// start is one paced piece of work: n bytes going ahead at at.
type start struct {
	at time.Time
	n  int64
}

// checkBound fails unless the bytes starting within any span [a, b] are
// at most burst + rate × (b − a).
func checkBound(t *testing.T, starts []start, rate, burst int64) {
	t.Helper()
	sort.SliceStable(starts, func(i, j int) bool { return starts[i].at.Before(starts[j].at) })
	for i := range starts {
		var sum int64
		for j := i; j < len(starts); j++ {
			sum += starts[j].n
			span := starts[j].at.Sub(starts[i].at)
			// Integer bytes: allow the nanosecond rounding of the rate.
			if limit := burst + int64(float64(rate)*span.Seconds()+1e-3); sum > limit {
				t.Fatalf("%d bytes went ahead within %s (from %s): more than burst %d + rate %d B/s × span = %d",
					sum, span, starts[i].at.Sub(starts[0].at), burst, rate, limit)
			}
		}
	}
}

// TestPacerBound: whatever the demand (a backlog of many readers at once,
// idle spells, pieces of any size up to the burst), the bytes a Pacer lets
// go within any span T are at most burst + rate × T, and under steady
// demand it lets them go at the rate (no time lost).
func TestPacerBound(t *testing.T) {
	const rate, burst = 1000, 100
	clock := quotatest.NewClock()
	p := NewPacer(PacerConfig{BytesPerSecond: rate, Burst: burst, Clock: clock})
	origin := clock.Now()
	var starts []start
	take := func(n int64) {
		d := p.take(n)
		starts = append(starts, start{clock.Now().Add(d), n})
	}
	// 25 readers' chunks at once after an idle start: the first goes at
	// once (the burst), each next one a chunk's time later.
	for range 25 {
		take(burst)
	}
	if last := starts[len(starts)-1].at.Sub(origin); last != 2400*time.Millisecond {
		t.Fatalf("the 25th chunk of 100 B at 1000 B/s goes at %s, want 2.4s (steady demand at the rate)", last)
	}
	// Idle past the debt, then pieces of random sizes at random times.
	clock.Advance(3 * time.Second)
	random := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		take(1 + random.Int64N(burst))
		clock.Advance(time.Duration(random.Int64N(int64(150 * time.Millisecond))))
	}
	checkBound(t, starts, rate, burst)

	// Kafka's SimpleRate quota (Limiter: checked before, recorded after)
	// admits the same first demand as a burst: a whole window's worth at
	// once. This is what the Pacer is for.
	clock = quotatest.NewClock()
	l := NewLimiter(LimiterConfig{BytesPerSecond: rate, Clock: clock})
	starts = starts[:0]
	for range 25 {
		for d := l.ThrottleTime(); d > 0; d = l.ThrottleTime() {
			clock.Advance(d)
		}
		starts = append(starts, start{clock.Now(), burst})
		l.Record(burst)
	}
	if at := starts[9].at; !at.Equal(starts[0].at) {
		t.Fatalf("the SimpleRate quota spread its first window's chunks: the 10th went at +%s", at.Sub(starts[0].at))
	}
}

// TestPacerWait: Wait returns at once while the bucket holds the bytes,
// else once the clock has passed the time they are paid for; ThrottleTime
// says how far past MaxDelay that is; ThrottledSeconds counts the time
// Waits were held back, overlaps once; a Wait whose context ends returns
// its error.
func TestPacerWait(t *testing.T) {
	clock := quotatest.NewClock()
	p := NewPacer(PacerConfig{BytesPerSecond: 1000, Burst: 100, MaxDelay: 50 * time.Millisecond, Clock: clock})
	ctx := context.Background()
	if err := p.Wait(ctx, 100); err != nil || clock.Timers() != 0 {
		t.Fatalf("the first 100 B (the burst): %v, %d timers; want no wait", err, clock.Timers())
	}
	if d := p.ThrottleTime(); d != 0 {
		t.Fatalf("throttle %s with nothing owed", d)
	}
	clock.Advance(time.Hour) // long idle: still nothing owed
	if d := p.ThrottleTime(); d != 0 {
		t.Fatalf("throttle %s after an idle hour", d)
	}
	if err := p.Wait(ctx, 100); err != nil || clock.Timers() != 0 {
		t.Fatalf("100 B after an idle hour: %v, %d timers; want no wait", err, clock.Timers())
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, 80) }()
	if d := clock.WaitTimer(t); d != 80*time.Millisecond {
		t.Fatalf("80 B with an empty bucket wait %s, want 80ms", d)
	}
	// A Wait starting now would wait 80 ms: 30 ms past MaxDelay.
	if d := p.ThrottleTime(); d != 30*time.Millisecond {
		t.Fatalf("throttle %s, want 30ms", d)
	}
	clock.Advance(40 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait returned (%v) 40 ms before its bytes were paid", err)
	default:
	}
	if d := p.ThrottleTime(); d != 0 {
		t.Fatalf("throttle %s with 40 ms owed (MaxDelay 50 ms)", d)
	}
	clock.Advance(40 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := p.ThrottledSeconds(); got != 0.08 {
		t.Fatalf("throttled %v s, want 0.08", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	go func() { done <- p.Wait(cancelled, 1000) }()
	clock.WaitTimer(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v", err)
	}
	// Unlimited: never waits or throttles.
	clock = quotatest.NewClock()
	p = NewPacer(PacerConfig{Clock: clock})
	p.Record(1 << 40)
	if err := p.Wait(ctx, 1<<40); err != nil || p.ThrottleTime() != 0 || clock.Timers() != 0 {
		t.Fatalf("unlimited pacer: %v, throttle %s, %d timers", err, p.ThrottleTime(), clock.Timers())
	}
}

// TestPacerSaturated: a Pacer is saturated while the bytes taken over a
// sample period (8 bursts' time here) come to at least 90% of its rate,
// and during the first period after the first bytes; not once demand
// stops, nor while it stays below the rate however long it lasts.
func TestPacerSaturated(t *testing.T) {
	const rate, burst = 1000, 100 // a burst is 100 ms, a sample period 800 ms
	clock := quotatest.NewClock()
	p := NewPacer(PacerConfig{BytesPerSecond: rate, Burst: burst, Clock: clock})
	check := func(when string, want bool) {
		t.Helper()
		if got := p.Saturated(); got != want {
			t.Fatalf("%s: saturated %v, want %v", when, got, want)
		}
	}
	check("before any demand", false)
	// demand takes a chunk every gap, n times, checking at each chunk and
	// halfway to the next.
	demand := func(what string, n int, gap time.Duration, want bool) {
		t.Helper()
		for i := range n {
			p.take(burst)
			check(fmt.Sprintf("chunk %d of a demand %s", i, what), want)
			clock.Advance(gap / 2)
			check(fmt.Sprintf("between chunks %d and %d of a demand %s", i, i+1, what), want)
			clock.Advance(gap - gap/2)
		}
	}
	demand("at the rate", 24, 100*time.Millisecond, true)
	// Demand stops: the next sample saw nothing taken.
	clock.Advance(time.Second)
	check("after an idle second", false)
	// Demand below the rate, for as long as it lasts.
	demand("below the rate", 40, 150*time.Millisecond, false)
	// Demand above the rate again (all at once, waiting for each other):
	// saturated once a sample period has seen it.
	for range 10 {
		p.take(burst)
	}
	clock.Advance(800 * time.Millisecond)
	check("a sample period after a backlog of 10 chunks", true)
	unlimited := NewPacer(PacerConfig{Clock: clock})
	if err := unlimited.Wait(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	if unlimited.Saturated() {
		t.Fatal("an unlimited pacer saturated")
	}
}
