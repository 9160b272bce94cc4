// Package quotatest has test helpers for code throttled by broker/quota.
package quotatest

import (
	"sync"
	"testing"
	"time"
)

// Clock is a quota.Clock whose time moves only when a test says so, and
// whose After channels fire when it moves past them. WaitTimer tells what
// waits, so a test can wait for a goroutine to block on the clock without
// sleeping. Safe for concurrent use.
type Clock struct {
	mu      sync.Mutex // guards now, timers and changed
	now     time.Time
	timers  []timer
	changed chan struct{} // closed and replaced when a timer is added
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a Clock at a fixed time.
func NewClock() *Clock {
	return &Clock{now: time.Unix(1_000_000, 0), changed: make(chan struct{})}
}

// Now implements quota.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After implements quota.Clock.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the time by d and fires the timers due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

// WaitTimer waits (up to 10 s of real time, then fails the test) until a
// timer is pending and returns how far ahead the first one is due.
func (c *Clock) WaitTimer(t testing.TB) time.Duration {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.timers) > 0 {
			d := c.timers[0].at.Sub(c.now)
			c.mu.Unlock()
			return d
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("quotatest: no goroutine waits on the clock")
		}
	}
}

// Timers is the number of timers pending.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
