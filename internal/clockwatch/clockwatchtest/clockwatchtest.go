// Package clockwatchtest gives tests a clock they set by hand for a
// clockwatch.Watch.
package clockwatchtest

import (
	"sync"
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
