package quota

import (
	"context"
	"math"
	"sync"
	"time"
)

// Pacer enforces a byte rate as the bytes are spent, so that they never
// go faster than the rate for longer than a small burst: a token bucket
// that fills at BytesPerSecond and holds at most Burst bytes. Wait takes
// n bytes and returns once they are paid for: at once while the bucket
// holds them, else after the bytes taken before have been paid at the
// rate (its debt). So the bytes of the Waits that return within any span
// of time T are at most Burst + rate × T, as long as each takes at most
// Burst. (Kafka's remote fetch quota, KIP-956, measures a SimpleRate over
// 11 s and only decides whether a Fetch reads: an admitted reader then
// reads at full speed, and a quota of Q admits seconds of Q at once after
// an idle spell. A Pacer spreads the same bytes out.)
//
// ThrottleTime says how long until a Wait starting now would wait no
// more than MaxDelay: 0 while the bytes already taken are paid within
// MaxDelay. Work that can be put off (a consumer's Fetch answers the
// partition without data; read-ahead does not start) asks it first.
// Saturated says whether the rate is what holds the work back.
//
// ThrottledSeconds is the time during which Waits were held back (each
// Wait of delay d at t marks [t, t+d]; overlapping marks count once,
// and only the part already past).
//
// A Pacer is safe for concurrent use; Waits are paid in the order they
// are called.
type Pacer struct {
	clock Clock
	// rate is in bytes per second; 0 is unlimited.
	rate float64
	// burst is Burst in time: how far before now the bucket's fill level
	// lies when it is full.
	burst, maxDelay time.Duration

	mu sync.Mutex // guards paid, spans and load
	// paid is when every byte taken so far is paid for (the virtual
	// time of a generic cell rate algorithm): before now minus burst the
	// bucket is full, after now it is in debt.
	paid  time.Time
	spans throttleSpans
	load  loadSample
}

// PacerConfig configures a Pacer.
type PacerConfig struct {
	// BytesPerSecond is the rate; 0 or math.MaxInt64 is unlimited.
	BytesPerSecond int64
	// Burst is the most bytes the bucket holds (default and least: 1).
	Burst int64
	// MaxDelay is how long a Wait may wait before ThrottleTime answers
	// above 0 (default 0: while any byte is unpaid).
	MaxDelay time.Duration
	// Clock defaults to the real clock; tests inject one.
	Clock Clock
}

// NewPacer returns a Pacer.
func NewPacer(cfg PacerConfig) *Pacer {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	p := &Pacer{clock: cfg.Clock, maxDelay: max(cfg.MaxDelay, 0)}
	if cfg.BytesPerSecond > 0 && cfg.BytesPerSecond < math.MaxInt64 {
		p.rate = float64(cfg.BytesPerSecond)
		p.burst = p.duration(max(cfg.Burst, 1))
		p.paid = p.clock.Now().Add(-p.burst) // full
		p.load = loadSample{period: max(100*time.Millisecond, 8*p.burst), least: saturatedShare * p.rate}
	}
	return p
}

// BytesPerSecond is the rate, 0 when unlimited.
func (p *Pacer) BytesPerSecond() int64 { return int64(p.rate) }

// duration is how long n bytes take at the rate (rounded up: the bytes
// are never paid for early).
func (p *Pacer) duration(n int64) time.Duration {
	return time.Duration(math.Ceil(float64(n) / p.rate * float64(time.Second)))
}

// take takes n bytes at now and returns how long until they are paid.
func (p *Pacer) take(n int64) time.Duration {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if full := now.Add(-p.burst); p.paid.Before(full) {
		p.paid = full
	}
	p.paid = p.paid.Add(p.duration(n))
	p.load.add(now, n)
	d := max(p.paid.Sub(now), 0)
	p.spans.mark(now, d)
	return d
}

// Wait takes n bytes and waits until they are paid for. It returns ctx's
// error if ctx ends first (the bytes stay taken: the caller may already
// have started the work they pay for).
func (p *Pacer) Wait(ctx context.Context, n int64) error {
	if p.rate == 0 || n <= 0 {
		return nil
	}
	d := p.take(n)
	if d == 0 {
		return nil
	}
	select {
	case <-p.clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Record takes n bytes already spent, without waiting: later Waits pay
// for them.
func (p *Pacer) Record(n int64) {
	if p.rate == 0 || n <= 0 {
		return
	}
	p.take(n)
}

// ThrottleTime returns how much longer than MaxDelay a Wait starting now
// would wait for the bytes taken before it: 0 when it would wait at most
// MaxDelay.
func (p *Pacer) ThrottleTime() time.Duration {
	if p.rate == 0 {
		return 0
	}
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.paid.Sub(now.Add(p.maxDelay)), 0) // not Sub(now) - maxDelay: Sub saturates
}

// Saturated reports whether the demand took the whole rate over the last
// sample period (loadSample): bytes taken of at least saturatedShare of
// what the rate pays for over it, or the first period since the first
// bytes were taken (until a period has passed, demand counts as
// saturating). Then the rate, not the demand, decides how fast the bytes
// go, and more demand only adds to the debt.
func (p *Pacer) Saturated() bool {
	if p.rate == 0 {
		return false
	}
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.load.saturated(now)
}

// saturatedShare is the least share of the rate the bytes taken over a
// sample period come to for Saturated (the demand can run ahead of the
// rate by the debt, so a saturating demand measures about 1).
const saturatedShare = 0.9

// loadSample measures the share of a Pacer's rate the demand takes, over
// samples of at least period (its owner's mutex guards it).
type loadSample struct {
	// period is Saturated's sample period: 100 ms, or 8 bursts' time when
	// longer (a sample holds several chunks); least is saturatedShare of
	// the rate, in bytes per second.
	period time.Duration
	least  float64

	from    time.Time // the current sample's start; zero before any bytes
	taken   int64     // bytes taken since from
	verdict bool      // whether the last full sample saturated the rate
}

// add counts n bytes taken at now.
func (s *loadSample) add(now time.Time, n int64) {
	s.roll(now)
	s.taken += n
}

// roll ends the current sample if a period has passed since it started
// (the first starts with the first bytes, counting as saturating).
func (s *loadSample) roll(now time.Time) {
	if s.from.IsZero() {
		s.from, s.verdict = now, true
		return
	}
	if elapsed := now.Sub(s.from); elapsed >= s.period {
		s.verdict = float64(s.taken) >= s.least*elapsed.Seconds()
		s.from, s.taken = now, 0
	}
}

// saturated is the verdict at now.
func (s *loadSample) saturated(now time.Time) bool {
	if s.from.IsZero() {
		return false // nothing taken yet
	}
	s.roll(now)
	return s.verdict
}

// ThrottledSeconds is the time Waits were held back until now
// (overlapping waits counted once).
func (p *Pacer) ThrottledSeconds() float64 {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spans.seconds(now)
}

// throttleSpans adds up the spans of time during which a quota held work
// back: each mark of d at t covers [t, t+d], and overlapping marks count
// once. Not safe for concurrent use (its owner's mutex guards it).
type throttleSpans struct {
	// past is the length of the spans marked before the last one,
	// [from, until].
	past        time.Duration
	from, until time.Time
}

func (s *throttleSpans) mark(now time.Time, d time.Duration) {
	if d <= 0 {
		return
	}
	until := now.Add(d)
	if now.After(s.until) {
		// A new span: the last one is over.
		s.past += s.until.Sub(s.from)
		s.from, s.until = now, until
	} else if until.After(s.until) {
		s.until = until
	}
}

// seconds is the marked time up to now.
func (s *throttleSpans) seconds(now time.Time) float64 {
	current := max(min(now.Sub(s.from), s.until.Sub(s.from)), 0)
	return (s.past + current).Seconds()
}
