package quota

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/quota/quotatest"
)

// TestLimiterUnlimited: Kafka's default (Long.MAX_VALUE) and 0 never
// throttle.
func TestLimiterUnlimited(t *testing.T) {
	for _, rate := range []int64{0, math.MaxInt64} {
		l := NewLimiter(LimiterConfig{BytesPerSecond: rate, Clock: quotatest.NewClock()})
		l.Record(1 << 40)
		if d := l.ThrottleTime(); d != 0 || l.BytesPerSecond() != 0 {
			t.Fatalf("rate %d: throttle %s, bytes/s %d; want unlimited", rate, d, l.BytesPerSecond())
		}
		if err := l.WaitAndRecord(context.Background(), 1<<40); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLimiterThrottleTime: Kafka's SimpleRate over 11 windows of 1 s and
// QuotaUtils.throttleTime. The throttle answered after a burst is how
// long until the average is back at the quota; within the first window
// the rate is measured over one whole window.
func TestLimiterThrottleTime(t *testing.T) {
	clock := quotatest.NewClock()
	l := NewLimiter(LimiterConfig{BytesPerSecond: 100, Clock: clock})
	if d := l.ThrottleTime(); d != 0 {
		t.Fatalf("nothing recorded: throttle %s", d)
	}
	l.Record(100)
	if d := l.ThrottleTime(); d != 0 {
		t.Fatalf("100 bytes in the first window at 100 B/s: throttle %s, want 0 (at the bound is within)", d)
	}
	l.Record(50)
	steps := []struct {
		advance time.Duration
		want    time.Duration
	}{
		{0, 500 * time.Millisecond},                      // 150 B over 1 s
		{500 * time.Millisecond, 500 * time.Millisecond}, // still measured over a whole window
		{500 * time.Millisecond, 500 * time.Millisecond}, // 150 B over 1 s
		{500 * time.Millisecond, 0},                      // 150 B over 1.5 s = 100 B/s
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		if d := l.ThrottleTime(); d != s.want {
			t.Fatalf("step %d: throttle %s, want %s", i, d, s.want)
		}
	}

	// A large record (a whole segment) is paid for over the windows: 1000
	// B at 100 B/s is 10 s.
	clock = quotatest.NewClock()
	l = NewLimiter(LimiterConfig{BytesPerSecond: 100, Clock: clock})
	l.Record(1000)
	for _, s := range []struct {
		advance time.Duration
		want    time.Duration
	}{
		{0, 9 * time.Second},           // 1000 B/s over 1 s: (1000-100)/100 × 1 s
		{9 * time.Second, time.Second}, // 1000 B over 9 s: (111.1-100)/100 × 9 s
		{time.Second, 0},               // 1000 B over 10 s
	} {
		clock.Advance(s.advance)
		if d := l.ThrottleTime(); d != s.want {
			t.Fatalf("after %s more: throttle %s, want %s", s.advance, d, s.want)
		}
	}
	// Samples older than 11 windows are dropped.
	clock.Advance(2 * time.Second)
	l.Record(200)
	if d := l.ThrottleTime(); d != time.Second {
		t.Fatalf("200 B after the first samples expired: throttle %s, want 1s", d)
	}
}

// TestLimiterThrottledSeconds: the throttled time counts the spans the
// quota answered a throttle for, overlapping ones once, and only up to
// now.
func TestLimiterThrottledSeconds(t *testing.T) {
	clock := quotatest.NewClock()
	l := NewLimiter(LimiterConfig{BytesPerSecond: 100, Clock: clock})
	l.Record(1000)
	if d := l.ThrottleTime(); d != 9*time.Second {
		t.Fatalf("throttle %s", d)
	}
	check := func(want float64) {
		t.Helper()
		if got := l.ThrottledSeconds(); got != want {
			t.Fatalf("throttled seconds %v, want %v", got, want)
		}
	}
	check(0)
	clock.Advance(3 * time.Second)
	check(3)
	// Asked again within the span: 1000 B over 3 s, 7 s more; the span
	// now ends at 10 s.
	if d := l.ThrottleTime(); d != 7*time.Second {
		t.Fatalf("throttle %s", d)
	}
	clock.Advance(9 * time.Second) // 12 s
	check(10)
	if d := l.ThrottleTime(); d != 0 {
		t.Fatalf("throttle %s after the span", d)
	}
	check(10)
	l.Record(2000) // the old samples expired: 2000 B over 1 s
	if d := l.ThrottleTime(); d != 19*time.Second {
		t.Fatalf("throttle %s", d)
	}
	clock.Advance(time.Second)
	check(11)
}

// TestLimiterWaitAndRecord: copies take turns; each waits while the quota
// is exceeded, then records its bytes; one whose context ends records
// nothing.
func TestLimiterWaitAndRecord(t *testing.T) {
	clock := quotatest.NewClock()
	l := NewLimiter(LimiterConfig{BytesPerSecond: 100, Clock: clock})
	ctx := context.Background()
	if err := l.WaitAndRecord(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- l.WaitAndRecord(ctx, 1000) }()
	if d := clock.WaitTimer(t); d != 9*time.Second {
		t.Fatalf("the second copy waits %s, want 9s", d)
	}
	thirdCtx, cancelThird := context.WithCancel(ctx)
	third := make(chan error, 1)
	go func() { third <- l.WaitAndRecord(thirdCtx, 1000) }()
	clock.Advance(9 * time.Second)
	if d := clock.WaitTimer(t); d != time.Second {
		t.Fatalf("the second copy then waits %s more, want 1s", d)
	}
	clock.Advance(time.Second)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	// The third took its turn after the second recorded: 2000 B over 10 s.
	if d := clock.WaitTimer(t); d != 10*time.Second {
		t.Fatalf("the third copy waits %s, want 10s", d)
	}
	cancelThird()
	if err := <-third; !errors.Is(err, context.Canceled) {
		t.Fatalf("third: %v, want context.Canceled", err)
	}
	// It recorded nothing: at 20 s the 2000 B are paid for.
	clock.Advance(10 * time.Second)
	if d := l.ThrottleTime(); d != 0 {
		t.Fatalf("throttle %s after a cancelled copy", d)
	}
	if got := l.ThrottledSeconds(); got != 20 {
		t.Fatalf("throttled seconds %v, want 20", got)
	}
}
