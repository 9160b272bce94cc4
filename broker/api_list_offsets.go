package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// ListOffsets v1 (kafka-python) through v7 (KIP-734 max timestamp).
func init() { register(1, 7, handleListOffsets) }

// Special ListOffsets timestamps.
const (
	listLatest       = -1
	listEarliest     = -2
	listMaxTimestamp = -3
)

func handleListOffsets(c *clientConn, h requestHeader, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	state := s.cfg.Metadata.State()
	for _, rt := range req.Topics {
		out := kmsg.NewListOffsetsResponseTopic()
		out.Topic = rt.Topic
		topic, exists := state.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			p.Timestamp = -1
			p.Offset = -1
			switch {
			case !exists || !topic.HasPartition(rp.Partition):
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				part, code := s.leaderPartition(topic, rp.Partition, rp.CurrentLeaderEpoch)
				if part == nil {
					p.ErrorCode = code
					break
				}
				p.LeaderEpoch = part.leaderEpoch.Load()
				offset, ts, err := part.offsetForTimestamp(rp.Timestamp)
				if err != nil {
					part.log.Error("list offsets failed", "timestamp", rp.Timestamp, "err", err)
					p.ErrorCode = kerr.KafkaStorageError.Code
					break
				}
				p.Offset, p.Timestamp = offset, ts
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// offsetForTimestamp answers ListOffsets for one partition: the offset and
// timestamp for the special values, else the first record with a timestamp
// at or after ts below the high watermark, or (-1, -1) when there is none.
func (p *partition) offsetForTimestamp(ts int64) (offset, timestamp int64, err error) {
	hw := p.highWatermark()
	switch ts {
	case listLatest:
		return hw, -1, nil
	case listEarliest:
		return p.segments.StartOffset(), -1, nil
	case listMaxTimestamp:
		batch, found, err := p.segments.MaxTimestampBatch()
		if err != nil || !found {
			return -1, -1, err
		}
		h, err := recordbatch.ParseHeader(batch)
		if err != nil {
			return -1, -1, err
		}
		if h.BaseOffset >= hw {
			return -1, -1, nil
		}
		return recordAtTimestamp(batch, h, h.MaxTimestamp, true)
	}
	if ts < 0 {
		return -1, -1, nil
	}
	batch, found, err := p.segments.FindTimestamp(ts)
	if err != nil || !found {
		return -1, -1, err
	}
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return -1, -1, err
	}
	if h.BaseOffset >= hw {
		return -1, -1, nil
	}
	return recordAtTimestamp(batch, h, ts, false)
}

// recordAtTimestamp finds, inside one batch, the first record whose
// timestamp is >= ts (exact: == ts). With LogAppendTime every record carries
// the batch's timestamp.
func recordAtTimestamp(batch []byte, h recordbatch.Header, ts int64, exact bool) (int64, int64, error) {
	if h.LogAppendTime() {
		return h.BaseOffset, h.MaxTimestamp, nil
	}
	offset, timestamp := int64(-1), int64(-1)
	err := recordbatch.Iterate(batch, func(o, t int64) bool {
		if t == ts || (!exact && t > ts) {
			offset, timestamp = o, t
			return false
		}
		return true
	})
	if err != nil {
		return -1, -1, err
	}
	return offset, timestamp, nil
}
