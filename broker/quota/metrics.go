package quota

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/metadata"
)

// metrics are the quota series, Kafka's byte-rate and throttle-time per
// quota entity. Their labels are the configured entity that matched
// (user and client_id: a name, "<default>", or "" when the entity has no
// such part), not each client: the series are bounded by the quotas an
// operator configures, whatever client ids connect. Clients without a
// quota are not counted.
type metrics struct {
	bytesTotal         *prometheus.CounterVec
	throttleTotal      *prometheus.CounterVec
	throttledResponses *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"quota_type", "user", "client_id"}
	m := &metrics{
		bytesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "quota", Name: "bytes_total",
			Help: "Bytes counted against client quotas (Kafka's byte-rate is its rate()), by quota type (Produce, Fetch) and the quota entity that applied.",
		}, labels),
		throttleTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "quota", Name: "throttle_time_seconds_total",
			Help: "Throttle time given to clients over their quota (Kafka's throttle-time), by quota type and quota entity.",
		}, labels),
		throttledResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "quota", Name: "throttled_responses_total",
			Help: "Responses that throttled their client (the connection muted for the throttle time), by quota type and quota entity.",
		}, labels),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.bytesTotal, m.throttleTotal, m.throttledResponses} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("%w: %w", errRegister, err)
			}
		}
	}
	return m, nil
}

func (m *metrics) bytes(kind Kind, entity metadata.QuotaEntity, n int64) {
	m.bytesTotal.WithLabelValues(kind.String(), entity.User.String(), entity.ClientID.String()).Add(float64(n))
}

func (m *metrics) throttled(kind Kind, entity metadata.QuotaEntity, d time.Duration) {
	if d <= 0 {
		return
	}
	labels := []string{kind.String(), entity.User.String(), entity.ClientID.String()}
	m.throttleTotal.WithLabelValues(labels...).Add(d.Seconds())
	m.throttledResponses.WithLabelValues(labels...).Inc()
}
