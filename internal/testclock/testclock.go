// Package testclock is a clock that tests move by hand, for code that
// takes its time from a func() time.Time (pass Clock.Now).
package testclock

import (
	"sync"
	"time"
)

// Clock reads a time that moves only when Advance is called; it is safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

// New returns a Clock reading now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance lets d pass.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Millis returns Now in Unix milliseconds.
func (c *Clock) Millis() int64 { return c.Now().UnixMilli() }
