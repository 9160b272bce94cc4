package tiering

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/metadata"
)

// Kafka's tiered storage quotas (KIP-956), broker-wide byte rates
// measured as Kafka's RLMQuotaManager does (quota.Limiter: 11 samples of
// 1 s, remote.log.manager.{copy,fetch}.quota.window.{num,size.seconds}
// at their defaults):
//
//   - Config.CopyMaxBytesPerSecond (remote.log.manager.copy.max.bytes.per.second):
//     before each segment upload, UploadDescribed waits while the bytes
//     copied are over the quota, then counts the segment's .log size, as
//     Kafka's copy task does before copyLogSegment; uploads take turns.
//   - Config.FetchMaxBytesPerSecond (remote.log.manager.fetch.max.bytes.per.second):
//     a quota.Pacer (a token bucket holding one chunk) paces the bytes
//     remote reads take from the store and the disk cache as they take
//     them: a GET reads its body a chunk at a time, each chunk waiting
//     until the bucket has paid for it (runGET), and so does each load of
//     a chunk file ahead of a reader (loadAhead); chunks already in memory
//     are not paid for again. So a replay goes at the quota without
//     bursts at full speed between throttled spells (Kafka measures a
//     SimpleRate over 11 s and only decides whether a Fetch reads: an
//     admitted reader then reads at full speed). The broker asks
//     FetchQuota before each remote read of a consumer's Fetch: while the
//     bytes already taken would keep a new read waiting more than
//     fetchQuotaMaxDelay, the read is skipped (as Kafka skips it while
//     its quota is exceeded; a long poll reads it once the quota has
//     room, within its max wait, else the partition is answered without
//     data and without an error: broker/remote_quota.go), and read-ahead
//     does not start (paceAhead). A reader's own
//     read of a chunk file on its path is paced too (loadOnPath). Not
//     paced: offset index GETs. Reads for ListOffsets by timestamp
//     share the GETs, so they are paced too.
//
// strata_tiering_copy_throttled_seconds_total and
// strata_tiering_fetch_throttled_seconds_total count the time each quota
// held work back (overlapping throttles once).

// fetchQuotaMaxDelay is how long the bytes already taken from the fetch
// quota may keep a new remote read waiting before a consumer's Fetch
// skips it: Kafka's remote.fetch.max.wait.ms default (KIP-1018), the
// longest a Fetch waits for a remote read.
const fetchQuotaMaxDelay = 500 * time.Millisecond

// quotas are a Tier's two KIP-956 quotas.
type quotas struct {
	copy  *quota.Limiter
	fetch *quota.Pacer
}

func newQuotas(cfg Config) quotas {
	return quotas{
		copy: quota.NewLimiter(quota.LimiterConfig{BytesPerSecond: cfg.CopyMaxBytesPerSecond, Clock: cfg.QuotaClock}),
		fetch: quota.NewPacer(quota.PacerConfig{BytesPerSecond: cfg.FetchMaxBytesPerSecond, Burst: cfg.ChunkBytes,
			MaxDelay: fetchQuotaMaxDelay, Clock: cfg.QuotaClock}),
	}
}

// FetchQuota is the remote fetch quota
// (remote.log.manager.fetch.max.bytes.per.second): remote reads wait for
// it as they take chunks from the store or the disk cache, and a
// consumer's Fetch skips a remote read while its ThrottleTime is above 0.
// It is unlimited unless Config.FetchMaxBytesPerSecond is set.
func (t *Tier) FetchQuota() *quota.Pacer { return t.quotas.fetch }

// paceFetch waits until the fetch quota has paid for a chunk of segment
// (its size: the last chunk may be short).
func (t *Tier) paceFetch(ctx context.Context, segment metadata.SegmentManifest, index int64) error {
	n := min(t.config.ChunkBytes, segment.SizeBytes-index*t.config.ChunkBytes)
	if t.onPace != nil {
		t.onPace(n)
	}
	return t.quotas.fetch.Wait(ctx, n)
}

var (
	copyThrottledDesc = prometheus.NewDesc("strata_tiering_copy_throttled_seconds_total",
		"Time segment uploads waited for the remote copy quota (--remote-log-manager-copy-max-bytes-per-second, KIP-956).", nil, nil)
	fetchThrottledDesc = prometheus.NewDesc("strata_tiering_fetch_throttled_seconds_total",
		"Time remote reads waited for the remote fetch quota (--remote-log-manager-fetch-max-bytes-per-second, KIP-956), which paces the chunks they take from the store and the disk cache.", nil, nil)
)

func (q quotas) describe(ch chan<- *prometheus.Desc) {
	ch <- copyThrottledDesc
	ch <- fetchThrottledDesc
}

func (q quotas) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(copyThrottledDesc, prometheus.CounterValue, q.copy.ThrottledSeconds())
	ch <- prometheus.MustNewConstMetric(fetchThrottledDesc, prometheus.CounterValue, q.fetch.ThrottledSeconds())
}
