package broker

import (
	"sort"

	"github.com/strata-log/strata/metadata"
)

// PartitionStatus is what this broker knows of one partition it hosts:
// its local log, its high watermark and its tiered data (for the status
// page and the admin API).
type PartitionStatus struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Leading     bool   `json:"leading"`
	LeaderEpoch int32  `json:"leader_epoch"`
	// LocalStart and LocalEnd bound the offsets on local disk: [start, end).
	LocalStart int64 `json:"local_start"`
	LocalEnd   int64 `json:"local_end"`
	LocalBytes int64 `json:"local_bytes"`
	// HighWatermark is the first offset not yet committed.
	HighWatermark int64 `json:"high_watermark"`
	// RemoteStart and RemoteEnd bound the offsets in the object store:
	// [start, end); both -1 when nothing is tiered.
	RemoteStart    int64 `json:"remote_start"`
	RemoteEnd      int64 `json:"remote_end"`
	RemoteBytes    int64 `json:"remote_bytes"`
	RemoteSegments int   `json:"remote_segments"`
	// TieringLagBytes is the size of sealed local segments not uploaded
	// yet (tiered topics this broker leads; 0 otherwise).
	TieringLagBytes int64 `json:"tiering_lag_bytes"`
	Tiered          bool  `json:"tiered"`
}

// Partitions reports every partition this broker hosts, by topic and
// partition.
func (s *Server) Partitions() []PartitionStatus {
	state := s.cfg.Metadata.State()
	var out []PartitionStatus
	for _, p := range s.partitions.all() {
		st := PartitionStatus{
			Topic: p.Topic(), Partition: p.Index(), Leading: p.Leading(), LeaderEpoch: p.LeaderEpoch(),
			LocalStart: p.LogStartOffset(), LocalEnd: p.LogEndOffset(), LocalBytes: p.Size(),
			HighWatermark: p.HighWatermark(), RemoteStart: -1, RemoteEnd: -1, Tiered: p.Config().RemoteStorage,
		}
		state.EachSegment(p.TopicID(), p.Index(), 0, func(e metadata.SegmentManifest) bool {
			if e.State != metadata.SegmentCopyFinished {
				return true
			}
			if st.RemoteStart < 0 {
				st.RemoteStart = e.BaseOffset
			}
			st.RemoteEnd = e.LastOffset + 1
			st.RemoteBytes += e.SizeBytes
			st.RemoteSegments++
			return true
		})
		if st.Leading && s.cfg.RemoteReader != nil && st.Tiered {
			st.TieringLagBytes = p.UploadLag(state)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}
