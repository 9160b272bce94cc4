package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the broker's Prometheus series. They are registered on the
// Config's Registerer (cmd serves it on the admin listener).
type metrics struct {
	requests      *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	produceErrors *prometheus.CounterVec
	connections   prometheus.Gauge

	connectionsRefused *prometheus.CounterVec
	acceptPauses       prometheus.Counter
	queuedRequestBytes prometheus.Gauge
	requestMemoryWaits prometheus.Counter
	fdRefusals         prometheus.Counter

	// queuedResponseBytes and responseMemoryWaits are the Fetch response
	// pair (queued.max.response.bytes, responsememory.go).
	queuedResponseBytes prometheus.Gauge
	responseMemoryWaits prometheus.Counter

	isrChanges prometheus.Counter
	// replicaRequestsRefused counts replica requests from connections
	// that may not replicate (interbroker.go).
	replicaRequestsRefused prometheus.Counter

	propagationTimeouts prometheus.Counter

	localLogBytes prometheus.Gauge
	diskRefusals  prometheus.Counter

	cleanerPasses         *prometheus.CounterVec
	cleanerBytesReclaimed *prometheus.CounterVec
	cleanerRecordsRemoved *prometheus.CounterVec

	remoteReadBytes  *prometheus.CounterVec
	remoteReadErrors *prometheus.CounterVec

	// transactions counts the transaction coordinators' transactions by
	// event: started, committed, aborted, timed_out.
	transactions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "strata", Name: "request_duration_seconds",
			Help:    "Time to handle a Kafka request, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"api"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "topic_bytes_in_total",
			Help: "Record batch bytes appended, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "topic_bytes_out_total",
			Help: "Record batch bytes sent to consumers, by topic.",
		}, []string{"topic"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "produce_errors_total",
			Help: "Produced batches rejected, by topic.",
		}, []string{"topic"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "strata", Name: "client_connections",
			Help: "Open client connections.",
		}),
		connectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "client_connections_refused_total",
			Help: "Client connections closed as soon as they were accepted, by listener and reason (max_connections_per_ip).",
		}, []string{"listener", "reason"}),
		acceptPauses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "client_connection_accept_pauses_total",
			Help: "Times a listener stopped accepting because max.connections connections were open (new ones waited in the kernel backlog).",
		}),
		queuedRequestBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "strata", Name: "queued_request_bytes",
			Help: "Request bytes read into memory (or reserved for a frame being read) and not yet handled; bounded by queued.max.request.bytes.",
		}),
		requestMemoryWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "request_memory_waits_total",
			Help: "Times a connection stopped reading its socket until queued request bytes fell below queued.max.request.bytes.",
		}),
		fdRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "partition_file_descriptor_refusals_total",
			Help: "Partitions not created or not opened because the node's file descriptor limit (RLIMIT_NOFILE) could not hold them.",
		}),
		isrChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "isr_changes_total",
			Help: "ISR shrinks and expansions this broker proposed as a leader.",
		}),
		propagationTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "metadata_propagation_timeouts_total",
			Help: "Topic changes (create, delete, new partitions) answered REQUEST_TIMED_OUT because a live broker had not applied them within the request's timeout.",
		}),
		cleanerPasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "log_cleaner_passes_total",
			Help: "Log cleaner passes over compacted partitions, by topic and result (cleaned, skipped, failed).",
		}, []string{"topic", "result"}),
		cleanerBytesReclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "log_cleaner_bytes_reclaimed_total",
			Help: "Bytes of segment files the log cleaner freed, by topic.",
		}, []string{"topic"}),
		cleanerRecordsRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Name: "log_cleaner_records_removed_total",
			Help: "Superseded records and expired tombstones the log cleaner removed, by topic.",
		}, []string{"topic"}),
		localLogBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "strata", Name: "local_log_bytes",
			Help: "Bytes of every local partition log on this broker (what --local-disk-limit-bytes bounds).",
		}),
		diskRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Name: "produce_disk_limit_refusals_total",
			Help: "Produce requests refused with KAFKA_STORAGE_ERROR because local logs reached --local-disk-limit-bytes.",
		}),
	}
	m.remoteReadBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_remote_fetch_bytes_total",
		Help: "Record batch bytes served to consumers from the object store, by topic."}, []string{"topic"})
	m.remoteReadErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "tiering_remote_fetch_errors_total",
		Help: "Fetches of remote data that failed (answered with a retriable error), by topic."}, []string{"topic"})
	m.transactions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: "transactions_total",
		Help: "Transactions of the transaction coordinators led here, by event: started, committed, aborted (every completed abort, timed-out ones included), timed_out (aborted by the coordinator past their timeout)."}, []string{"event"})
	m.queuedResponseBytes = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Name: "queued_response_bytes",
		Help: "Fetch record bytes read into memory for responses not yet written to their connections (followers' included); bounded by queued.max.response.bytes."})
	m.responseMemoryWaits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Name: "response_memory_waits_total",
		Help: "Times a Fetch with records to read found no room under queued.max.response.bytes (its class's share) and waited, within its max wait, or was answered without them."})
	m.replicaRequestsRefused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Name: "replica_requests_refused_total",
		Help: "Fetch and OffsetForLeaderEpoch requests with a replica id refused because the connection is not that broker (TOPIC_AUTHORIZATION_FAILED): a client posing as a follower, or a broker whose credentials or node certificate are wrong."})
	if reg != nil {
		reg.MustRegister(m.transactions, m.replicaRequestsRefused, m.queuedResponseBytes, m.responseMemoryWaits)
		reg.MustRegister(m.requests, m.bytesIn, m.bytesOut, m.produceErrors, m.connections,
			m.connectionsRefused, m.acceptPauses, m.queuedRequestBytes, m.requestMemoryWaits, m.fdRefusals,
			m.cleanerPasses, m.cleanerBytesReclaimed, m.cleanerRecordsRemoved, m.isrChanges, m.propagationTimeouts, m.localLogBytes, m.diskRefusals,
			m.remoteReadBytes, m.remoteReadErrors)
	}
	return m
}

func (m *metrics) observeRequest(key int16, d time.Duration) {
	m.requests.WithLabelValues(kmsg.NameForKey(key)).Observe(d.Seconds())
}
