package quota

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limiter is one byte rate shared by a whole broker, as Kafka's
// RLMQuotaManager for the tiered storage quotas of KIP-956
// (remote.log.manager.copy.max.bytes.per.second and
// remote.log.manager.fetch.max.bytes.per.second): bytes are recorded in
// a SimpleRate of WindowNum samples of WindowSize each, and while the
// measured rate is above the bound, ThrottleTime says how long until it
// is back (Kafka's QuotaUtils.throttleTime). The quota is checked before
// the work and the bytes recorded after (fetch) or as the work starts
// (copy), as Kafka does, so one operation may take the rate over; the
// next ones then wait.
//
// Two uses, Kafka's:
//   - copy: WaitAndRecord waits while the quota is exceeded, then records
//     the segment's bytes; one caller at a time checks and records
//     (Kafka's copyQuotaManagerLock), so concurrent uploads do not all
//     pass at once.
//   - fetch: ThrottleTime before a remote read (> 0: skip the read; the
//     partition is answered without data), Record after it.
//
// ThrottledSeconds is the time during which the quota held work back:
// each answer of a throttle time d at t marks [t, t+d] throttled,
// overlapping marks (many waiting readers) count once, and only the part
// already past counts.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	clock Clock
	// bound is the quota in bytes per second; 0 is unlimited.
	bound float64
	// turn is held by the one WaitAndRecord checking and recording.
	turn chan struct{}

	mu        sync.Mutex // guards rate and throttled
	rate      *rate
	throttled throttleSpans
}

// LimiterConfig configures a Limiter. Zero values mean KIP-956's
// defaults.
type LimiterConfig struct {
	// BytesPerSecond is the quota; 0 or math.MaxInt64 (Kafka's default,
	// Long.MAX_VALUE) is unlimited.
	BytesPerSecond int64
	// WindowNum and WindowSize are the samples the rate is measured over
	// (remote.log.manager.{copy,fetch}.quota.window.num and
	// .window.size.seconds): default 11 and 1 s.
	WindowNum  int
	WindowSize time.Duration
	// Clock defaults to the real clock; tests inject one.
	Clock Clock
}

// NewLimiter returns a Limiter.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.WindowNum < 2 {
		cfg.WindowNum = 11
	}
	if cfg.WindowSize < time.Millisecond {
		cfg.WindowSize = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	l := &Limiter{clock: cfg.Clock, turn: make(chan struct{}, 1)}
	if cfg.BytesPerSecond > 0 && cfg.BytesPerSecond < math.MaxInt64 {
		l.bound = float64(cfg.BytesPerSecond)
		l.rate = newRate(cfg.WindowNum, cfg.WindowSize.Milliseconds())
		l.rate.simple = true
	}
	return l
}

// BytesPerSecond is the quota, 0 when unlimited.
func (l *Limiter) BytesPerSecond() int64 { return int64(l.bound) }

// ThrottleTime returns how long the rate stays above the quota if
// nothing more is recorded: 0 when within it (Kafka's
// RLMQuotaManager.getThrottleTimeMs).
func (l *Limiter) ThrottleTime() time.Duration {
	if l.bound == 0 {
		return 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	value, window := l.rate.measure(now.UnixMilli())
	d := throttleTime(value, l.bound, window)
	l.throttled.mark(now, d)
	return d
}

// Record counts n bytes now.
func (l *Limiter) Record(n int64) {
	if l.bound == 0 || n <= 0 {
		return
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate.record(float64(n), now.UnixMilli())
}

// WaitAndRecord waits while the quota is exceeded, then records n bytes:
// the copy quota, checked before each segment upload with the segment's
// size. Callers take turns; each waits out the throttle time and checks
// again. It returns ctx's error if ctx ends first (nothing recorded).
func (l *Limiter) WaitAndRecord(ctx context.Context, n int64) error {
	if l.bound == 0 {
		return nil
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		d := l.ThrottleTime()
		if d == 0 {
			l.Record(n)
			return nil
		}
		select {
		case <-l.clock.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ThrottledSeconds is the time the quota held work back until now
// (overlapping throttles counted once).
func (l *Limiter) ThrottledSeconds() float64 {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.throttled.seconds(now)
}
