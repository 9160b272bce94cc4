package quota

import (
	"math"
	"time"
)

// rate is Kafka's Rate over a SampledStat of sums (org.apache.kafka.
// common.metrics.stats.Rate with a WindowedSum): at most num samples of
// windowMs each, in a ring; or, with simple set, Kafka's SimpleRate (the
// same samples measured over at least one window instead of num-1: what
// the KIP-956 remote copy and fetch quotas use). Times are Unix
// milliseconds. Not safe for concurrent use (its owner's mutex guards
// it).
type rate struct {
	num      int
	windowMs int64
	simple   bool
	samples  []sample
	current  int
	// lastRecord is when record was last called.
	lastRecord int64
}

type sample struct {
	start int64 // when the sample began (Kafka's lastWindowMs)
	value float64
}

func newRate(num int, windowMs int64) *rate {
	return &rate{num: num, windowMs: windowMs, samples: make([]sample, 0, num)}
}

// record adds value at now: to the current sample, or to a new one when
// the current one is windowMs old.
func (r *rate) record(value float64, now int64) {
	r.lastRecord = now
	if len(r.samples) == 0 {
		r.samples = append(r.samples, sample{start: now})
	}
	if now-r.samples[r.current].start >= r.windowMs {
		r.current = (r.current + 1) % r.num
		if r.current >= len(r.samples) {
			r.samples = append(r.samples, sample{start: now})
		} else {
			r.samples[r.current] = sample{start: now}
		}
	}
	r.samples[r.current].value += value
}

// measure returns the rate at now, per second, and the window it was
// measured over in milliseconds (Kafka's Rate.windowSize): the time since
// the oldest live sample began, at least (num-1) whole windows and 1 ms;
// for a simple rate (SimpleRate.windowSize) at least one window.
func (r *rate) measure(now int64) (perSecond float64, windowMs int64) {
	expiry := int64(r.num) * r.windowMs
	total := 0.0
	oldest := now
	for i := range r.samples {
		s := &r.samples[i]
		if now-s.start >= expiry {
			*s = sample{start: now}
		}
		total += s.value
		oldest = min(oldest, s.start)
	}
	elapsed := now - oldest
	if r.simple {
		elapsed = max(elapsed, r.windowMs)
	} else if full, least := elapsed/r.windowMs, int64(r.num-1); full < least {
		elapsed += (least - full) * r.windowMs
	}
	elapsed = max(elapsed, 1)
	return total / (float64(elapsed) / 1000), elapsed
}

// throttleTime is Kafka's QuotaUtils.throttleTime: how long a rate value
// measured over windowMs must stay idle to come back to bound, rounded
// to milliseconds (0 when value is within bound).
func throttleTime(value, bound float64, windowMs int64) time.Duration {
	if value <= bound {
		return 0
	}
	ms := math.Round((value - bound) / bound * float64(windowMs))
	return time.Duration(min(ms, math.MaxInt32)) * time.Millisecond
}
