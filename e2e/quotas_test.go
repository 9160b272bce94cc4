//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// byteLog records when bytes arrived (acknowledged or consumed), to
// measure a rate over an interval.
type byteLog struct {
	mu     sync.Mutex
	events []byteEvent
}

type byteEvent struct {
	at    time.Time
	bytes int
}

func (l *byteLog) add(n int) {
	l.mu.Lock()
	l.events = append(l.events, byteEvent{time.Now(), n})
	l.mu.Unlock()
}

// first is when the first bytes arrived.
func (l *byteLog) first() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return time.Time{}, false
	}
	return l.events[0].at, true
}

// rate is the bytes per second that arrived in [from, to).
func (l *byteLog) rate(from, to time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for _, e := range l.events {
		if !e.at.Before(from) && e.at.Before(to) {
			total += e.bytes
		}
	}
	return float64(total) / to.Sub(from).Seconds()
}

// throttleCounter is a franz-go hook counting the throttle times brokers
// answered with.
type throttleCounter struct{ throttled atomic.Int64 }

func (h *throttleCounter) OnBrokerThrottle(_ kgo.BrokerMetadata, interval time.Duration, _ bool) {
	if interval > 0 {
		h.throttled.Add(1)
	}
}

// TestQuotasThrottleProducerAndConsumer: client quotas set with franz-go's
// kadm (AlterClientQuotas) and read back with kadm and `strata quotas`;
// then, on one broker for 14 s, a producer with a producer_byte_rate
// quota and a consumer with a consumer_byte_rate quota get their rates
// (measured over 12 s, within 20%) and are told they were throttled,
// while a producer without a quota, at four times that rate, is never
// throttled.
//
// The broker measures over 2 samples of 1 s (--quota-window-num 2): a
// rate is a sum over the window, so a greedy client gets what the window
// frees at once, in bursts one window (2 s) apart; with Kafka's default
// 11 samples the bursts are 10 s of quota, 11 s apart, and only rates
// over multiples of 11 s come out at the quota (broker/quota's
// TestGreedyProducerRate).
func TestQuotasThrottleProducerAndConsumer(t *testing.T) {
	const quota = 256 << 10 // bytes per second
	b := startBroker(t, "--quota-window-num", "2", "--quota-window-size-seconds", "1")
	ctx := testContext(t, 60*time.Second)
	admin := newClient(t, b.addr)
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "quota-throttled", "quota-free"); err != nil {
		t.Fatal(err)
	}
	name := func(s string) *string { return &s }
	results, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: name("quota-producer")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: quota}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: name("quota-consumer")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: quota}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("AlterClientQuotas %s: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	described, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: kmsg.QuotasMatchTypeAny}})
	if err != nil || len(described) != 2 {
		t.Fatalf("DescribeClientQuotas: %v %+v", err, described)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(strataCLI(t, 0, "quotas", "list", "--client-id", "quota-producer", "--bootstrap-server", b.addr, "--output", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0]["key"] != "producer_byte_rate" || listed[0]["value"] != float64(quota) {
		t.Fatalf("strata quotas list: %+v", listed)
	}

	var (
		throttledLog, freeLog, consumedLog    byteLog
		throttledHook, freeHook, consumerHook throttleCounter
	)
	// Incompressible values, sent uncompressed: quotas count the bytes on
	// the wire, and these are the bytes the clients count.
	value := make([]byte, 1000)
	rand.Read(value)
	newProducer := func(clientID, topic string, hook *throttleCounter) *kgo.Client {
		return newClient(t, b.addr, kgo.ClientID(clientID), kgo.DefaultProduceTopic(topic), kgo.WithHooks(hook),
			kgo.ProducerBatchMaxBytes(16<<10), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(64))
	}
	throttled := newProducer("quota-producer", "quota-throttled", &throttledHook)
	free := newProducer("free-producer", "quota-free", &freeHook)
	consumer := newClient(t, b.addr, kgo.ClientID("quota-consumer"), kgo.WithHooks(&consumerHook),
		kgo.ConsumeTopics("quota-free"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(16<<10), kgo.FetchMaxPartitionBytes(16<<10))

	start := time.Now()
	runCtx, stop := context.WithDeadline(ctx, start.Add(14*time.Second))
	defer stop()
	var wg sync.WaitGroup
	acked := func(log *byteLog) func(*kgo.Record, error) {
		return func(r *kgo.Record, err error) {
			if err == nil {
				log.add(len(r.Value))
			}
		}
	}
	wg.Add(3)
	go func() { // as fast as its quota lets it
		defer wg.Done()
		for runCtx.Err() == nil {
			throttled.Produce(runCtx, &kgo.Record{Value: value}, acked(&throttledLog))
		}
	}()
	go func() { // about four times the quota, paced
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for runCtx.Err() == nil {
			for range 4 * quota / 100 / len(value) {
				free.Produce(runCtx, &kgo.Record{Value: value}, acked(&freeLog))
			}
			select {
			case <-tick.C:
			case <-runCtx.Done():
			}
		}
	}()
	go func() { // as fast as its quota lets it
		defer wg.Done()
		for runCtx.Err() == nil {
			consumer.PollFetches(runCtx).EachRecord(func(r *kgo.Record) { consumedLog.add(len(r.Value)) })
		}
	}()
	wg.Wait()

	for _, c := range []struct {
		what string
		log  *byteLog
		hook *throttleCounter
	}{{"producer with a quota", &throttledLog, &throttledHook}, {"consumer with a quota", &consumedLog, &consumerHook}} {
		// 12 s (six windows) from a second after its first byte: the
		// window lets each client send what a dropped sample held at
		// once, every num × size = 2 s, so a measure over whole windows
		// is the quota; its first second holds a second of quota more
		// (the window is at least one sample long from the start).
		first, ok := c.log.first()
		if !ok || first.After(start.Add(time.Second)) {
			t.Fatalf("%s: first byte at %v, more than a second after the start", c.what, first.Sub(start))
		}
		rate := c.log.rate(first.Add(time.Second), first.Add(13*time.Second))
		t.Logf("%s: %.0f B/s over 12 s, quota %d B/s; %d throttled responses", c.what, rate, quota, c.hook.throttled.Load())
		if math.Abs(rate/quota-1) > 0.2 {
			t.Errorf("%s: %.0f B/s over 12 s, want %d B/s ± 20%%", c.what, rate, quota)
		}
		if c.hook.throttled.Load() == 0 {
			t.Errorf("%s was never told it was throttled", c.what)
		}
	}
	freeRate := freeLog.rate(start.Add(time.Second), start.Add(13*time.Second))
	t.Logf("producer without a quota: %.0f B/s, %d throttled responses", freeRate, freeHook.throttled.Load())
	// Paced at four times the quota; twice (a loaded machine may not pace
	// it exactly) is well past what a quota would let through.
	if freeRate < 2*quota || freeHook.throttled.Load() != 0 {
		t.Errorf("producer without a quota: %.0f B/s and %d throttled responses; want over %d B/s and none", freeRate, freeHook.throttled.Load(), 2*quota)
	}
	// The broker's metrics name the quota entity that applied.
	if v := metricValue(t, b, `strata_quota_throttle_time_seconds_total{client_id="quota-producer",quota_type="Produce",user=""}`); v <= 0 {
		t.Errorf("produce throttle time metric %v", v)
	}
}
