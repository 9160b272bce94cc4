package broker

import (
	"encoding/binary"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// encodeFetchFrame frames a Fetch response as a list of buffers so the
// record bytes read from the segments are written to the socket as they
// are (writev), never copied into one response buffer. It produces the same
// bytes as kmsg's encoder for the fields this broker sets (the diverging
// epoch and current leader tags, the node endpoints; no snapshot tag); a
// test pins that equivalence for every served version. The partitions in
// remote (by topic and partition index) take their records from there,
// each of its buffers (chunks of the tier's cache) a separate iovec,
// instead of from RecordBatches.
func encodeFetchFrame(correlationID int32, resp *kmsg.FetchResponse, remote fetchRecords) net.Buffers {
	version := resp.Version
	flexible := version >= 12
	var out net.Buffers
	cur := make([]byte, 8, 512) // size, correlation id
	binary.BigEndian.PutUint32(cur[4:], uint32(correlationID))
	if flexible {
		cur = append(cur, 0) // response header v1: no tagged fields
	}
	total := 0
	flush := func() {
		out = append(out, cur)
		total += len(cur)
	}
	appendArrayLen := func(n int) {
		if flexible {
			cur = binary.AppendUvarint(cur, uint64(n)+1)
		} else {
			cur = binary.BigEndian.AppendUint32(cur, uint32(n))
		}
	}
	if version >= 1 {
		cur = binary.BigEndian.AppendUint32(cur, uint32(resp.ThrottleMillis))
	}
	if version >= 7 {
		cur = binary.BigEndian.AppendUint16(cur, uint16(resp.ErrorCode))
		cur = binary.BigEndian.AppendUint32(cur, uint32(resp.SessionID))
	}
	appendArrayLen(len(resp.Topics))
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if version <= 12 {
			if flexible {
				cur = binary.AppendUvarint(cur, uint64(len(t.Topic))+1)
			} else {
				cur = binary.BigEndian.AppendUint16(cur, uint16(len(t.Topic)))
			}
			cur = append(cur, t.Topic...)
		} else {
			cur = append(cur, t.TopicID[:]...)
		}
		appendArrayLen(len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			cur = binary.BigEndian.AppendUint32(cur, uint32(p.Partition))
			cur = binary.BigEndian.AppendUint16(cur, uint16(p.ErrorCode))
			cur = binary.BigEndian.AppendUint64(cur, uint64(p.HighWatermark))
			if version >= 4 {
				cur = binary.BigEndian.AppendUint64(cur, uint64(p.LastStableOffset))
			}
			if version >= 5 {
				cur = binary.BigEndian.AppendUint64(cur, uint64(p.LogStartOffset))
			}
			if version >= 4 {
				aborted := p.AbortedTransactions
				switch {
				case aborted == nil && flexible:
					cur = append(cur, 0)
				case aborted == nil:
					cur = binary.BigEndian.AppendUint32(cur, 0xffffffff)
				default:
					appendArrayLen(len(aborted))
					for _, a := range aborted {
						cur = binary.BigEndian.AppendUint64(cur, uint64(a.ProducerID))
						cur = binary.BigEndian.AppendUint64(cur, uint64(a.FirstOffset))
						if flexible {
							cur = append(cur, 0)
						}
					}
				}
			}
			if version >= 11 {
				cur = binary.BigEndian.AppendUint32(cur, uint32(p.PreferredReadReplica))
			}
			records, size, null := [][]byte{p.RecordBatches}, len(p.RecordBatches), p.RecordBatches == nil
			if held, ok := remote[[2]int{i, j}]; ok {
				records, size, null = held.Buffers(), held.Len(), false
			}
			switch {
			case null && flexible:
				cur = append(cur, 0)
			case null:
				cur = binary.BigEndian.AppendUint32(cur, 0xffffffff)
			case flexible:
				cur = binary.AppendUvarint(cur, uint64(size)+1)
			default:
				cur = binary.BigEndian.AppendUint32(cur, uint32(size))
			}
			if size > 0 {
				flush()
				out = append(out, records...)
				total += size
				cur = make([]byte, 0, 256)
			}
			if flexible {
				// Partition tagged fields, in tag order, each when set:
				// tag 0, DivergingEpoch (v12+): {epoch int32, end offset
				// int64, no tags}; tag 1, CurrentLeader (KIP-951):
				// {leader id int32, leader epoch int32, no tags}.
				d, l := p.DivergingEpoch, p.CurrentLeader
				diverging := d.Epoch != -1 || d.EndOffset != -1
				leader := l.LeaderID != -1 || l.LeaderEpoch != -1
				tags := 0
				if diverging {
					tags++
				}
				if leader {
					tags++
				}
				cur = append(cur, byte(tags))
				if diverging {
					cur = append(cur, 0, 4+8+1) // tag 0, 13 bytes
					cur = binary.BigEndian.AppendUint32(cur, uint32(d.Epoch))
					cur = binary.BigEndian.AppendUint64(cur, uint64(d.EndOffset))
					cur = append(cur, 0)
				}
				if leader {
					cur = append(cur, 1, 4+4+1) // tag 1, 9 bytes
					cur = binary.BigEndian.AppendUint32(cur, uint32(l.LeaderID))
					cur = binary.BigEndian.AppendUint32(cur, uint32(l.LeaderEpoch))
					cur = append(cur, 0)
				}
			}
		}
		if flexible {
			cur = append(cur, 0) // topic tagged fields
		}
	}
	if flexible {
		// Response tagged fields: tag 0, NodeEndpoints (KIP-951), when
		// any: an array of {node id int32, host string, port int32, rack
		// nullable string, no tags}.
		if len(resp.Brokers) == 0 {
			cur = append(cur, 0)
		} else {
			var endpoints []byte
			endpoints = binary.AppendUvarint(endpoints, uint64(len(resp.Brokers))+1)
			for _, b := range resp.Brokers {
				endpoints = binary.BigEndian.AppendUint32(endpoints, uint32(b.NodeID))
				endpoints = binary.AppendUvarint(endpoints, uint64(len(b.Host))+1)
				endpoints = append(endpoints, b.Host...)
				endpoints = binary.BigEndian.AppendUint32(endpoints, uint32(b.Port))
				if b.Rack == nil {
					endpoints = append(endpoints, 0)
				} else {
					endpoints = binary.AppendUvarint(endpoints, uint64(len(*b.Rack))+1)
					endpoints = append(endpoints, *b.Rack...)
				}
				endpoints = append(endpoints, 0)
			}
			cur = append(cur, 1, 0) // one tag: 0
			cur = binary.AppendUvarint(cur, uint64(len(endpoints)))
			cur = append(cur, endpoints...)
		}
	}
	flush()
	binary.BigEndian.PutUint32(out[0][0:], uint32(total-4))
	return out
}
