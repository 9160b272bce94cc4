package tiering

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/quota"
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
//     the broker asks FetchQuota before each remote read of a consumer's
//     Fetch; while it is exceeded the read is skipped and the partition
//     answered without data and without an error (Kafka answers it empty
//     and the Fetch is served as an ordinary delayed fetch: it waits for
//     other partitions' data up to fetch.max.wait.ms), and the bytes a
//     remote read returns are counted after it.
//
// strata_tiering_copy_throttled_seconds_total and
// strata_tiering_fetch_throttled_seconds_total count the time each quota
// held work back (overlapping throttles once).

// quotas are a Tier's two KIP-956 limiters.
type quotas struct {
	copy, fetch *quota.Limiter
}

func newQuotas(cfg Config) quotas {
	return quotas{
		copy:  quota.NewLimiter(quota.LimiterConfig{BytesPerSecond: cfg.CopyMaxBytesPerSecond, Clock: cfg.QuotaClock}),
		fetch: quota.NewLimiter(quota.LimiterConfig{BytesPerSecond: cfg.FetchMaxBytesPerSecond, Clock: cfg.QuotaClock}),
	}
}

// FetchQuota is the remote fetch quota
// (remote.log.manager.fetch.max.bytes.per.second): a consumer's Fetch
// skips a remote read while its ThrottleTime is above 0 and Records the
// bytes each read returns. It is unlimited unless
// Config.FetchMaxBytesPerSecond is set.
func (t *Tier) FetchQuota() *quota.Limiter { return t.quotas.fetch }

var (
	copyThrottledDesc = prometheus.NewDesc("strata_tiering_copy_throttled_seconds_total",
		"Time segment uploads waited for the remote copy quota (--remote-log-manager-copy-max-bytes-per-second, KIP-956).", nil, nil)
	fetchThrottledDesc = prometheus.NewDesc("strata_tiering_fetch_throttled_seconds_total",
		"Time remote reads were skipped for the remote fetch quota (--remote-log-manager-fetch-max-bytes-per-second, KIP-956): the partitions were answered without data.", nil, nil)
)

func (q quotas) describe(ch chan<- *prometheus.Desc) {
	ch <- copyThrottledDesc
	ch <- fetchThrottledDesc
}

func (q quotas) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(copyThrottledDesc, prometheus.CounterValue, q.copy.ThrottledSeconds())
	ch <- prometheus.MustNewConstMetric(fetchThrottledDesc, prometheus.CounterValue, q.fetch.ThrottledSeconds())
}
