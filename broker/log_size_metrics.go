package broker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/metadata"
)

// logSizeCollector reports log sizes per topic, computed when scraped:
// strata_log_size_bytes, the local bytes of every replica this broker
// hosts (what DescribeLogDirs answers, by topic), and
// strata_remote_log_size_bytes, the bytes in the object store of the
// partitions this broker leads (Kafka's RemoteLogSizeBytes; DescribeLogDirs
// has no field for them).
type logSizeCollector struct {
	server *Server
}

var (
	logSizeDesc = prometheus.NewDesc("strata_log_size_bytes",
		"Local log bytes of the replicas this broker hosts, by topic.", []string{"topic"}, nil)
	remoteLogSizeDesc = prometheus.NewDesc("strata_remote_log_size_bytes",
		"Bytes in the object store of the partitions this broker leads, by topic (Kafka's RemoteLogSizeBytes).", []string{"topic"}, nil)
)

func (c logSizeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logSizeDesc
	ch <- remoteLogSizeDesc
}

func (c logSizeCollector) Collect(ch chan<- prometheus.Metric) {
	state := c.server.cfg.Metadata.State()
	local, remote := map[string]int64{}, map[string]int64{}
	for _, p := range c.server.partitions.all() {
		local[p.Topic()] += p.Size()
		if !p.Leading() {
			continue
		}
		state.EachSegment(p.TopicID(), p.Index(), 0, func(e metadata.SegmentManifest) bool {
			if e.State == metadata.SegmentCopyFinished {
				remote[p.Topic()] += e.SizeBytes
			}
			return true
		})
	}
	for topic, size := range local {
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(size), topic)
	}
	for topic, size := range remote {
		ch <- prometheus.MustNewConstMetric(remoteLogSizeDesc, prometheus.GaugeValue, float64(size), topic)
	}
}
