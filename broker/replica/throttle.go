package replica

import (
	"math"
	"sync"
	"time"
)

// Throttle is a byte-rate quota on replication traffic, as Kafka's
// leader.replication.throttled.rate and follower.replication.throttled.rate:
// the traffic of throttled replicas is counted, and while it is over the
// rate their partitions are left out of the next fetch (follower side) or
// answered without records (leader side); the others are never held back.
// A fetch of throttled partitions asks for at most what the rate allows
// now (Allowance); as a fetch still returns its first batch whole, one
// may go over, and the partitions then wait until the average is back
// under the rate. A token bucket of one second's worth of bytes measures
// it.
//
// A Throttle is safe for concurrent use.
type Throttle struct {
	now func() time.Time

	mu sync.Mutex // guards everything below
	// rate is in bytes per second; 0 means unlimited.
	rate int64
	// tokens is the bytes that may still be sent now; negative after a
	// fetch went over.
	tokens float64
	last   time.Time
}

// NewThrottle returns an unlimited throttle reading time from now (nil:
// time.Now).
func NewThrottle(now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{now: now}
}

// SetRate sets the rate in bytes per second; rate <= 0 or math.MaxInt64
// (Kafka's default) means unlimited.
func (t *Throttle) SetRate(rate int64) {
	if rate <= 0 || rate == math.MaxInt64 {
		rate = 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rate == t.rate {
		return
	}
	t.rate = rate
	t.tokens = float64(rate) // a full second's worth
	t.last = t.now()
}

// Rate returns the rate in bytes per second, 0 when unlimited.
func (t *Throttle) Rate() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rate
}

// refillLocked adds the tokens accrued since the last refill.
func (t *Throttle) refillLocked() {
	now := t.now()
	elapsed := now.Sub(t.last).Seconds()
	t.last = now
	if elapsed > 0 {
		t.tokens = min(t.tokens+elapsed*float64(t.rate), float64(t.rate))
	}
}

// Allowance returns how many bytes throttled traffic may take now:
// math.MaxInt64 when unlimited, 0 when it must wait. A fetch asks for at
// most this much (a Kafka fetch still returns its first batch whole, so
// one fetch may go over; the next ones then wait).
func (t *Throttle) Allowance() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == 0 {
		return math.MaxInt64
	}
	t.refillLocked()
	return max(int64(t.tokens), 0)
}

// Delay returns how long throttled traffic must wait until it is under the
// rate again (0: it may go now).
func (t *Throttle) Delay() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == 0 {
		return 0
	}
	t.refillLocked()
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / float64(t.rate) * float64(time.Second))
}

// Record counts n bytes of throttled traffic.
func (t *Throttle) Record(n int) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == 0 {
		return
	}
	t.refillLocked()
	t.tokens -= float64(n)
}
