package replica

import (
	"math"
	"testing"
	"time"
)

// TestThrottle: an unlimited throttle never holds traffic back; a limited
// one lets a second's worth through, then holds throttled traffic until
// the rate has paid for what went over, and a new rate applies at once.
func TestThrottle(t *testing.T) {
	clock := time.Unix(1000, 0)
	throttle := NewThrottle(func() time.Time { return clock })
	throttle.Record(1 << 30)
	if throttle.Exceeded() {
		t.Fatal("unlimited throttle exceeded")
	}
	throttle.SetRate(1000)
	throttle.Record(1000)
	if throttle.Exceeded() {
		t.Fatal("exceeded within one second's worth")
	}
	throttle.Record(500)
	if got := throttle.Delay(); got != 500*time.Millisecond {
		t.Fatalf("delay %v after 500 bytes over a 1000 B/s rate, want 500ms", got)
	}
	clock = clock.Add(250 * time.Millisecond)
	if got := throttle.Delay(); got != 250*time.Millisecond {
		t.Fatalf("delay %v a quarter second later, want 250ms", got)
	}
	clock = clock.Add(250 * time.Millisecond)
	if throttle.Exceeded() {
		t.Fatal("still exceeded once the rate paid for the excess")
	}
	// Idle time accrues at most one second's worth.
	clock = clock.Add(time.Hour)
	throttle.Record(1001)
	if !throttle.Exceeded() {
		t.Fatal("an idle hour let more than a second's worth through")
	}
	// Kafka's default (Long.MAX_VALUE) is unlimited.
	throttle.SetRate(math.MaxInt64)
	if throttle.Exceeded() || throttle.Rate() != 0 {
		t.Fatal("Long.MAX_VALUE is not unlimited")
	}
}
