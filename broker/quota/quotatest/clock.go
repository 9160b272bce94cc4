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

// Run moves the clock to each timer as soon as one is pending, until stop
// is closed: time passes only while something waits on it, so code paced
// by the clock runs to its end in no real time, in the order its waits
// are due. Before each move it calls before (may be nil) with the time
// the clock is about to leave. Run returns when stop is closed.
func (c *Clock) Run(stop <-chan struct{}, before func(now time.Time)) {
	for {
		c.mu.Lock()
		var next time.Time
		for i, t := range c.timers {
			if i == 0 || t.at.Before(next) {
				next = t.at
			}
		}
		pending, changed, now := len(c.timers) > 0, c.changed, c.now
		c.mu.Unlock()
		if pending {
			if before != nil {
				before(now)
			}
			c.Advance(next.Sub(now))
			continue
		}
		select {
		case <-changed:
		case <-stop:
			return
		}
	}
}
