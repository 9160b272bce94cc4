// Package clockwatchtest gives tests a clock they set by hand for a
// clockwatch.Watch.
package clockwatchtest

import (
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/internal/clockwatch"
)

// Clock is a clockwatch.Clock moved by hand: Advance is time passing (both
// clocks move), Jump is someone setting the wall clock (only it moves).
type Clock struct {
	mu        sync.Mutex // guards wall and monotonic
	wall      time.Time
	monotonic time.Duration
}

var _ clockwatch.Clock = (*Clock)(nil)

// New returns a Clock reading wall.
func New(wall time.Time) *Clock { return &Clock{wall: wall} }

// Now implements clockwatch.Clock.
func (c *Clock) Now() (time.Time, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall, c.monotonic
}

// Advance lets d pass.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.monotonic = c.wall.Add(d), c.monotonic+d
}

// Jump sets the wall clock d later (earlier when negative).
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
}

// Resumes name the two ways a pause of deletion by a forward jump ends,
// for Resume.
var Resumes = []string{"confirm", "clock returns"}

// Resume ends the pause of w that c's forward jump by jumped started, the
// way how (one of Resumes) names: an operator confirms the new time, or
// the wall clock returns (jumps back by jumped) and then later passes.
func Resume(t testing.TB, w *clockwatch.Watch, c *Clock, how string, jumped, later time.Duration) {
	t.Helper()
	switch how {
	case "confirm":
		w.Confirm()
	case "clock returns":
		c.Jump(-jumped)
		c.Advance(later)
	default:
		t.Fatalf("clockwatchtest: no way to resume named %q", how)
	}
}
