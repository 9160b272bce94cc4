// Package clockwatch notices forward jumps of the wall clock and pauses
// what deletes data by wall-clock age until an operator confirms the new
// time or the clock returns.
//
// Remote retention (retention.ms over tiered segments) and committed-offset
// expiry (offsets.retention.minutes) compare record or commit timestamps
// with the wall clock: a clock set a year ahead by mistake would delete a
// year of data at the next pass, and no replica could bring it back. The
// monotonic clock cannot jump, so a Watch reads both at every Check and
// compares how far each moved since the previous Check: when the wall clock
// moved more than Threshold further than the monotonic one, the wall clock
// jumped forward. From then on Paused reports true (and the
// strata_clock_jump_paused gauge reads 1) until
//
//   - an operator confirms that the new time is right (Confirm: the admin
//     route POST /v1/clock/confirm, `strata cluster confirm-clock`), or
//   - the clock returns: the difference between wall and monotonic time is
//     back within Threshold of what it was before the jump.
//
// Backward jumps delete nothing early and only get a log line. A machine
// suspended for longer than Threshold looks like a forward jump too (Linux's
// monotonic clock stops while suspended): confirm after checking the time.
package clockwatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	// DefaultThreshold is the smallest forward jump that pauses deletion.
	DefaultThreshold = time.Hour
	// DefaultInterval is how often Run checks the clock.
	DefaultInterval = 10 * time.Second
)

// Clock reads the wall clock and a monotonic clock.
type Clock interface {
	// Now returns the wall-clock time and a monotonic reading (time since
	// any fixed point; only differences count).
	Now() (wall time.Time, monotonic time.Duration)
}

// systemClock is Go's clock: time.Now carries both readings.
type systemClock struct{ start time.Time }

func (c systemClock) Now() (time.Time, time.Duration) {
	now := time.Now()
	return now.Round(0), now.Sub(c.start)
}

// Config configures a Watch; zero values mean defaults.
type Config struct {
	// Clock defaults to the system clock.
	Clock Clock
	// Threshold defaults to DefaultThreshold; Interval (Run) to
	// DefaultInterval.
	Threshold time.Duration
	Interval  time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives strata_clock_jump_paused; nil keeps it
	// unregistered.
	Registerer prometheus.Registerer
}

// Watch watches the wall clock. Its methods are safe for concurrent use.
type Watch struct {
	cfg    Config
	paused prometheus.Gauge

	mu sync.Mutex // guards the fields below
	// lastOffset is wall minus monotonic time at the previous Check.
	lastOffset time.Duration
	// isPaused: a forward jump has not been confirmed and the clock has not
	// returned; beforeJump is the offset before it.
	isPaused   bool
	beforeJump time.Duration
}

// New makes a Watch and takes its first reading.
func New(cfg Config) (*Watch, error) {
	if cfg.Clock == nil {
		cfg.Clock = systemClock{start: time.Now()}
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watch{cfg: cfg, paused: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "strata", Name: "clock_jump_paused",
		Help: "1 while a forward wall-clock jump pauses remote retention and committed-offset expiry (confirm with `strata cluster confirm-clock`).",
	})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(w.paused); err != nil {
			return nil, err
		}
	}
	w.lastOffset, _ = w.offset()
	return w, nil
}

// offset is wall minus monotonic time now, and the wall time.
func (w *Watch) offset() (time.Duration, time.Time) {
	wall, monotonic := w.cfg.Clock.Now()
	return time.Duration(wall.UnixNano()) - monotonic, wall
}

// Run checks the clock every Interval until ctx ends.
func (w *Watch) Run(ctx context.Context) {
	ticker := time.NewTicker(w.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			w.Check()
		}
	}
}

// Check reads the clock, pausing on a forward jump past Threshold since
// the previous Check and resuming when the clock has returned.
func (w *Watch) Check() {
	now, wall := w.offset()
	w.mu.Lock()
	defer w.mu.Unlock()
	moved := now - w.lastOffset
	w.lastOffset = now
	switch {
	case moved > w.cfg.Threshold:
		if !w.isPaused {
			w.isPaused, w.beforeJump = true, now-moved
			w.paused.Set(1)
		}
		w.cfg.Logger.Error("the wall clock jumped forward: remote retention and committed-offset expiry are paused, so nothing is deleted by a wrong clock. Check the time (NTP); if it is right now, run `strata cluster confirm-clock` on this node (POST /v1/clock/confirm on the admin listener); deletion also resumes if the clock returns",
			"jump", moved.Round(time.Second), "wall_clock", wall.UTC().Format(time.RFC3339))
	case moved < -w.cfg.Threshold:
		w.cfg.Logger.Warn("the wall clock jumped backward: data expires later than its retention says until the clock is right", "jump", (-moved).Round(time.Second))
	}
	if w.isPaused && absDuration(now-w.beforeJump) <= w.cfg.Threshold {
		w.isPaused = false
		w.paused.Set(0)
		w.cfg.Logger.Info("the wall clock returned: remote retention and committed-offset expiry resume")
	}
}

// Paused reports whether deletion by wall-clock age must wait. It checks
// the clock first, so a jump since the last Check counts.
func (w *Watch) Paused() bool {
	w.Check()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.isPaused
}

// Confirm accepts the wall clock as it is now: deletion resumes. It
// reports whether deletion was paused.
func (w *Watch) Confirm() bool {
	w.Check()
	w.mu.Lock()
	defer w.mu.Unlock()
	was := w.isPaused
	if was {
		w.isPaused = false
		w.paused.Set(0)
		w.cfg.Logger.Warn("an operator confirmed the wall clock: remote retention and committed-offset expiry resume")
	}
	return was
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
