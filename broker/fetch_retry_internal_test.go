package broker

import (
	"testing"
	"testing/synctest"
	"time"
)

// A long poll asks refusedRetry when to retry a refused remote read on
// every pass of its loop, and it passes each time another partition's
// append wakes it: the retry still fires refusedRetryMin after the
// refusal (then, refused again, twice that), not put off by each
// wake-up. Before, every pass re-armed the timer with a doubled delay, so
// appends more often than 500 ms apart (a trickle into a partition of
// the same Fetch, short of its min bytes) kept the refused partition
// from being read until the max wait ended. In a synctest bubble: time is
// the bubble's, exact and deterministic.
func TestRefusedRetryNotPutOffByWakeUps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var retry refusedRetry
		defer retry.stop()
		targets := []fetchTarget{{remoteRefused: true}}
		for _, want := range []time.Duration{refusedRetryMin, 2 * refusedRetryMin} {
			start := time.Now()
			retried := false
			for i := 0; i < 1000 && !retried; i++ { // a wake-up every 5 ms
				select {
				case <-retry.after(targets, 0):
					retry.fired()
					retried = true
				case <-time.After(5 * time.Millisecond):
				}
			}
			if waited := time.Since(start); !retried || waited != want {
				t.Fatalf("retried %v after %v of wake-ups, want after %v", retried, waited, want)
			}
		}
	})
}
