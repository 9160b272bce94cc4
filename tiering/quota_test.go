package tiering_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/tiering"
)

// With remote.log.manager.copy.max.bytes.per.second set, the upload
// after one that took the copy rate over the quota waits (no object PUT)
// until the rate is back under it, as Kafka's copy task does (KIP-956);
// the wait is counted in strata_tiering_copy_throttled_seconds_total.
func TestCopyQuotaPausesUploads(t *testing.T) {
	local := buildLocalLog(t, 250, 512<<10, 0, 7)
	bucket, _ := tiering.NewMetricsBucket(openBucket(t, "mem://"), nil)
	first := local.sealed[0]
	clock := quotatest.NewClock()
	// The first segment is 4 s of the quota, measured over the first 1 s
	// window: the next upload waits (4-1) s.
	tier := newTier(t, tiering.Config{Bucket: bucket, CopyMaxBytesPerSecond: first.Size / 4, QuotaClock: clock})
	registry := prometheus.NewRegistry()
	registry.MustRegister(tiering.NewTierCollector(tier))
	if _, err := tier.Upload(context.Background(), local.files(t, first)); err != nil {
		t.Fatal(err)
	}
	puts := bucket.Counts().Puts
	done := make(chan error, 1)
	go func() {
		_, err := tier.Upload(context.Background(), local.files(t, local.sealed[1]))
		done <- err
	}()
	// Kafka's throttle time: (rate − quota) / quota × the 1 s window.
	quota := first.Size / 4
	want := time.Duration(math.Round(float64(first.Size-quota)/float64(quota)*1000)) * time.Millisecond
	if wait := clock.WaitTimer(t); wait != want {
		t.Fatalf("the second upload waits %s, want %s (about 3 s)", wait, want)
	}
	if got := bucket.Counts().Puts; got != puts {
		t.Fatalf("%d objects uploaded while the copy quota is exceeded", got-puts)
	}
	clock.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := bucket.Counts().Puts; got == puts {
		t.Fatal("the second segment was not uploaded once the quota allowed it")
	}
	if throttled := testutil.ToFloat64(prometheusCounter(t, registry, "strata_tiering_copy_throttled_seconds_total")); throttled != want.Seconds() {
		t.Fatalf("copy throttled %v s, want %v", throttled, want.Seconds())
	}
	if fetch := testutil.ToFloat64(prometheusCounter(t, registry, "strata_tiering_fetch_throttled_seconds_total")); fetch != 0 {
		t.Fatalf("fetch throttled %v s without a fetch", fetch)
	}
}
