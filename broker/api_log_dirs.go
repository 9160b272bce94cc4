package broker

import (
	"path/filepath"
	"slices"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
)

// DescribeLogDirs v0-v4 (Kafka 4.2 serves v1-v4; v0 is Kafka 3.9's): the
// broker's one log directory (--data-dir) with each replica it hosts: its
// local size in bytes and its offset lag (how far its log end is behind
// the high watermark; 0 on a leader), and (v4) the volume's total and
// usable bytes. Tiered data has no field in the protocol: `strata tiering
// status`, the status page and strata_remote_log_size_bytes (log_size_metrics.go)
// give the remote sizes. A replica whose log failed (a write or an fsync)
// makes the directory answer KAFKA_STORAGE_ERROR, as an offline log dir
// does in Kafka.
func init() { register(0, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(c *clientConn, h requestHeader, req *kmsg.DescribeLogDirsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		// As Kafka: v3+ says so, older versions get an empty answer.
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir, _ = filepath.Abs(s.cfg.DataDir)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir.Dir, &fs); err == nil {
		dir.TotalBytes = int64(fs.Blocks) * int64(fs.Bsize)
		dir.UsableBytes = int64(fs.Bavail) * int64(fs.Bsize)
	}
	// The partitions asked for (nil: all), by topic.
	var wanted map[string][]int32
	if req.Topics != nil {
		wanted = map[string][]int32{}
		for _, t := range req.Topics {
			wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
		}
	}
	byTopic := map[string][]*partition.Partition{}
	for _, p := range s.HostedPartitions() {
		if wanted != nil && !slices.Contains(wanted[p.Topic()], p.Index()) {
			continue
		}
		byTopic[p.Topic()] = append(byTopic[p.Topic()], p)
	}
	topics := make([]string, 0, len(byTopic))
	for name := range byTopic {
		topics = append(topics, name)
	}
	slices.Sort(topics)
	for _, name := range topics {
		parts := byTopic[name]
		slices.SortFunc(parts, func(a, b *partition.Partition) int { return int(a.Index() - b.Index()) })
		out := kmsg.NewDescribeLogDirsResponseDirTopic()
		out.Topic = name
		for _, p := range parts {
			if p.LogFailed() != nil {
				dir.ErrorCode = kerr.KafkaStorageError.Code
			}
			rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			rp.Partition = p.Index()
			rp.Size = p.Size()
			rp.OffsetLag = max(p.HighWatermark()-p.LogEndOffset(), 0)
			out.Partitions = append(out.Partitions, rp)
		}
		dir.Topics = append(dir.Topics, out)
	}
	if dir.ErrorCode != 0 {
		dir.Topics = nil
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}
