package quota

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/metadata"
)

// quotas is a Source of configured entities.
type quotas map[metadata.QuotaEntity]map[string]float64

func (q quotas) ClientQuota(e metadata.QuotaEntity) (map[string]float64, bool) {
	v, ok := q[e]
	return v, ok
}
func (q quotas) ClientQuotaCount() int { return len(q) }

// testClock is a Clock whose time moves only when a test says so.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }
func (c *testClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.now.Add(d)
	return ch
}
func (c *testClock) advance(d time.Duration) { c.now = c.now.Add(d) }

var (
	alice      = metadata.NamedQuota("alice")
	app        = metadata.NamedQuota("app")
	defaultTag = metadata.DefaultQuota
	none       = metadata.QuotaName{}
)

// TestResolutionOrder: with levels configured from the least specific up,
// each new level takes over, in Kafka's order; the sensor is shared as
// Kafka's tags say; each key resolves on its own.
func TestResolutionOrder(t *testing.T) {
	client := Client{User: "alice", ClientID: "app"}
	both := sensorKey{kind: Produce, user: "alice", clientID: "app"}
	userOnly := sensorKey{kind: Produce, user: "alice"}
	clientOnly := sensorKey{kind: Produce, clientID: "app"}
	levels := []struct {
		entity metadata.QuotaEntity
		sensor sensorKey
	}{
		{metadata.QuotaEntity{ClientID: defaultTag}, clientOnly},             // 8
		{metadata.QuotaEntity{ClientID: app}, clientOnly},                    // 7
		{metadata.QuotaEntity{User: defaultTag}, userOnly},                   // 6
		{metadata.QuotaEntity{User: defaultTag, ClientID: defaultTag}, both}, // 5
		{metadata.QuotaEntity{User: defaultTag, ClientID: app}, both},        // 4
		{metadata.QuotaEntity{User: alice}, userOnly},                        // 3
		{metadata.QuotaEntity{User: alice, ClientID: defaultTag}, both},      // 2
		{metadata.QuotaEntity{User: alice, ClientID: app}, both},             // 1
	}
	src := quotas{}
	if _, ok := resolve(src, Produce, client); ok {
		t.Fatal("a quota applies with none configured")
	}
	for i, level := range levels {
		src[level.entity] = map[string]float64{metadata.ProducerByteRate: float64(100 * (i + 1))}
		r, ok := resolve(src, Produce, client)
		if !ok || r.entity != level.entity || r.sensor != level.sensor || r.bound != float64(100*(i+1)) {
			t.Fatalf("with %s configured: resolved %+v (%v), want entity %s sensor %+v", level.entity, r, ok, level.entity, level.sensor)
		}
		// Other clients fall through to the defaults.
		other, ok := resolve(src, Produce, Client{User: "bob", ClientID: "other"})
		if !ok || other.entity.User == alice || other.entity.ClientID == app {
			t.Fatalf("with %s configured: bob/other resolved to %s (%v)", level.entity, other.entity, ok)
		}
	}
	// Each key resolves on its own: alice's consumer quota leaves her
	// producer quota to the defaults.
	src = quotas{
		{User: alice}:          {metadata.ConsumerByteRate: 10},
		{ClientID: defaultTag}: {metadata.ProducerByteRate: 20},
	}
	if r, _ := resolve(src, Produce, client); r.entity != (metadata.QuotaEntity{ClientID: defaultTag}) || r.bound != 20 {
		t.Fatalf("produce resolved %+v", r)
	}
	if r, _ := resolve(src, Fetch, client); r.entity != (metadata.QuotaEntity{User: alice}) || r.bound != 10 || r.sensor.kind != Fetch {
		t.Fatalf("fetch resolved %+v", r)
	}
	// An empty client id (a client that sends none) matches only defaults.
	src = quotas{{ClientID: metadata.NamedQuota("x")}: {metadata.ProducerByteRate: 1}}
	if _, ok := resolve(src, Produce, Client{User: "alice"}); ok {
		t.Fatal("an empty client id matched a named one")
	}
	_ = none
}

func newTestManager(t *testing.T, clock *testClock, reg prometheus.Registerer) *Manager {
	t.Helper()
	m, err := New(Config{Clock: clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestThrottleTime: Kafka's rate (the window at least (num-1) windows,
// old samples dropped) and throttle time, (rate − Q) / Q × window.
func TestThrottleTime(t *testing.T) {
	clock := &testClock{now: time.UnixMilli(1_000_000)}
	reg := prometheus.NewRegistry()
	m := newTestManager(t, clock, reg)
	src := quotas{{User: alice}: {metadata.ProducerByteRate: 1000}}
	client := Client{User: "alice", ClientID: "app"}
	steps := []struct {
		advance time.Duration
		bytes   int64
		want    time.Duration
	}{
		// 10000 B over the 10-s minimum window: exactly the quota.
		{0, 10000, 0},
		// 12000 B / 10 s = 1200 B/s: (1200-1000)/1000 × 10 s.
		{0, 2000, 2 * time.Second},
		// A new sample at 5 s; 13000 B still over 10 s: 1300 B/s.
		{5 * time.Second, 1000, 3 * time.Second},
		// At 11 s the first sample (12000 B) is dropped: 1100 B over
		// 10 s (6 s since the oldest live sample, padded).
		{6 * time.Second, 100, 0},
		// At 25 s every sample is dropped: a fresh start, 10 s of quota.
		{14 * time.Second, 10000, 0},
		// 1 B more: 10001 B / 10 s = 1000.1 B/s: 1 ms.
		{0, 1, time.Millisecond},
		// 5000 more: 15001 B / 10 s: 5001 ms.
		{0, 5000, 5001 * time.Millisecond},
	}
	for i, step := range steps {
		clock.advance(step.advance)
		if got := m.Record(src, Produce, client, step.bytes); got != step.want {
			t.Fatalf("step %d: throttle %s, want %s", i, got, step.want)
		}
	}
	// Metrics: bytes and throttle time by the entity that applied.
	if got := testutil.ToFloat64(m.metrics.bytesTotal.WithLabelValues("Produce", "alice", "")); got != 28101 {
		t.Fatalf("bytes_total %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.throttleTotal.WithLabelValues("Produce", "alice", "")); math.Abs(got-10.002) > 1e-9 {
		t.Fatalf("throttle_time_seconds_total %v", got)
	}
	// Another client of alice's shares her rate (a user-level quota).
	if got := m.Record(src, Produce, Client{User: "alice", ClientID: "other"}, 1); got <= 5*time.Second {
		t.Fatalf("alice's other client throttled %s, want her shared rate's throttle", got)
	}
	// No quota, no throttle and no rate kept.
	if got := m.Record(src, Produce, Client{User: "bob"}, 1<<30); got != 0 {
		t.Fatalf("bob throttled %s", got)
	}
	if n := len(m.rates); n != 1 {
		t.Fatalf("%d rates kept", n)
	}
	// Idle for the whole window: the rate is forgotten.
	clock.advance(11 * time.Second)
	m.Record(quotas{{User: metadata.NamedQuota("carol")}: {metadata.ProducerByteRate: 1}}, Produce, Client{User: "carol"}, 1)
	if _, ok := m.rates[sensorKey{kind: Produce, user: "alice"}]; ok || len(m.rates) != 1 {
		t.Fatal("an idle rate was kept")
	}
}

// TestRecordUnlessThrottled: a throttled fetch's bytes are not counted.
func TestRecordUnlessThrottled(t *testing.T) {
	clock := &testClock{now: time.UnixMilli(5_000)}
	m := newTestManager(t, clock, nil)
	src := quotas{{ClientID: defaultTag}: {metadata.ConsumerByteRate: 100}}
	client := Client{User: "ANONYMOUS", ClientID: "c"}
	if got := m.RecordUnlessThrottled(src, Fetch, client, 900); got != 0 {
		t.Fatalf("throttled %s", got)
	}
	// 900+200 over 10 s = 110 B/s: 1 s of throttle, and the 200 B are
	// not counted ...
	if got := m.RecordUnlessThrottled(src, Fetch, client, 200); got != time.Second {
		t.Fatalf("throttled %s, want 1s", got)
	}
	// ... so 100 more fit.
	if got := m.RecordUnlessThrottled(src, Fetch, client, 100); got != 0 {
		t.Fatalf("throttled %s after an uncounted fetch", got)
	}
	if max, ok := m.MaxBytesPerWindow(src, Fetch, client); !ok || max != 1000 {
		t.Fatalf("max bytes per window %d (%v), want 100 B/s × 10 s", max, ok)
	}
}

// TestGreedyProducerRate simulates a producer sending 16 KiB requests as
// fast as its throttle times let it, for 66 s. Over the run it gets its
// quota within 5%. Within the run its rate follows the window: each time
// the oldest sample is dropped, the bytes it held may be sent at once
// (Kafka's rate is a sum over the window, not a token bucket), so with
// 2 samples of 1 s every 10 s is within 12% of the quota, while with
// Kafka's default 11 it is only over multiples of about 11 s.
func TestGreedyProducerRate(t *testing.T) {
	const quota = 100 << 10
	for _, test := range []struct {
		windowNum int
		tolerance float64 // of every 10 s after the first second; 0: not checked
	}{{2, 0.12}, {11, 0}} {
		start := time.UnixMilli(0)
		clock := &testClock{now: start}
		m, err := New(Config{Clock: clock, WindowNum: test.windowNum})
		if err != nil {
			t.Fatal(err)
		}
		src := quotas{{User: alice}: {metadata.ProducerByteRate: quota}}
		type send struct {
			at    time.Duration
			bytes int64
		}
		var sent []send
		for clock.now.Sub(start) < 66*time.Second {
			throttle := m.Record(src, Produce, Client{User: "alice"}, 16<<10)
			sent = append(sent, send{clock.now.Sub(start), 16 << 10})
			clock.advance(throttle + 2*time.Millisecond) // a round trip
		}
		rate := func(from, to time.Duration) float64 {
			var total int64
			for _, s := range sent {
				if s.at >= from && s.at < to {
					total += s.bytes
				}
			}
			return float64(total) / (to - from).Seconds() / quota
		}
		if got := rate(0, 66*time.Second); math.Abs(got-1) > 0.05 {
			t.Fatalf("%d samples: %.2f × the quota over the run", test.windowNum, got)
		}
		if test.tolerance == 0 {
			continue
		}
		for from := time.Second; from+10*time.Second <= 66*time.Second; from += 100 * time.Millisecond {
			if got := rate(from, from+10*time.Second); math.Abs(got-1) > test.tolerance {
				t.Fatalf("%d samples: %s to %s: %.2f × the quota", test.windowNum, from, from+10*time.Second, got)
			}
		}
	}
}

// TestRecordUnlessThrottledRoundsToNoThrottle: a fetch that takes the rate
// a hair over the quota, too little for a millisecond of throttle, is
// answered with its data (throttle 0), so its bytes must count, as Kafka
// unrecords a fetch only when it is throttled (throttle time > 0).
func TestRecordUnlessThrottledRoundsToNoThrottle(t *testing.T) {
	clock := &testClock{now: time.UnixMilli(5_000)}
	m := newTestManager(t, clock, nil)
	src := quotas{{ClientID: defaultTag}: {metadata.ConsumerByteRate: 1_000_000}}
	client := Client{User: "ANONYMOUS", ClientID: "c"}
	// 10 000 001 B over 10 s: 0.1 B/s over the quota, a throttle of
	// 0.001 ms, rounded to 0: the response carries the bytes.
	if got := m.RecordUnlessThrottled(src, Fetch, client, 10_000_001); got != 0 {
		t.Fatalf("throttled %s", got)
	}
	// The bytes sent count: 10 000 000 more make 2 000 000.1 B/s, 10 s of
	// throttle.
	if got := m.RecordUnlessThrottled(src, Fetch, client, 10_000_000); got != 10*time.Second {
		t.Fatalf("throttled %s after a fetch sent in full, want 10s", got)
	}
}
