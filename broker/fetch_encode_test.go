package broker

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestEncodeFetchFrameMatchesKmsg: the scatter-gather Fetch encoder writes
// exactly what kmsg's encoder writes, for every served version.
func TestEncodeFetchFrameMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	for version := apis[1].minVersion; version <= apis[1].maxVersion; version++ {
		for round := 0; round < 20; round++ {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = version
			resp.ThrottleMillis = rng.Int31()
			resp.ErrorCode = int16(rng.Intn(3))
			resp.SessionID = rng.Int31n(2)
			for ti := 0; ti < rng.Intn(4); ti++ {
				topic := kmsg.NewFetchResponseTopic()
				topic.Topic = string(randomBytes(rng.Intn(30)))
				copy(topic.TopicID[:], randomBytes(16))
				for pi := 0; pi < rng.Intn(5); pi++ {
					p := kmsg.NewFetchResponseTopicPartition()
					p.Partition = rng.Int31()
					p.ErrorCode = int16(rng.Intn(100))
					p.HighWatermark = rng.Int63()
					p.LastStableOffset = rng.Int63()
					p.LogStartOffset = rng.Int63()
					p.PreferredReadReplica = rng.Int31n(3) - 1
					switch rng.Intn(3) {
					case 0:
						p.RecordBatches = nil
					case 1:
						p.RecordBatches = []byte{}
					default:
						p.RecordBatches = randomBytes(1 + rng.Intn(300))
					}
					if rng.Intn(3) == 0 {
						p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: rng.Int63(), FirstOffset: rng.Int63()}}
					} else if rng.Intn(2) == 0 {
						p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
					}
					if version >= 12 && rng.Intn(3) == 0 {
						p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = rng.Int31(), rng.Int63()
					}
					if version >= 12 && rng.Intn(3) == 0 {
						p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = rng.Int31(), rng.Int31()
					}
					topic.Partitions = append(topic.Partitions, p)
				}
				resp.Topics = append(resp.Topics, topic)
			}
			if version >= 12 && rng.Intn(2) == 0 {
				for range 1 + rng.Intn(3) {
					b := kmsg.NewFetchResponseBroker()
					b.NodeID, b.Host, b.Port = rng.Int31(), string(randomBytes(rng.Intn(20))), rng.Int31()
					if rng.Intn(2) == 0 {
						rack := string(randomBytes(rng.Intn(10)))
						b.Rack = &rack
					}
					resp.Brokers = append(resp.Brokers, b)
				}
			}
			c := &clientConn{}
			want := c.encode(requestHeader{key: 1, version: version, correlationID: 77}, resp)
			// Some partitions' records come as remote reads in several
			// buffers (chunks), RecordBatches left empty as fillFetch
			// leaves it: each buffer is its own iovec, uncopied.
			remote := make(fetchRecords)
			var pieces [][]byte
			for ti := range resp.Topics {
				for pi := range resp.Topics[ti].Partitions {
					p := &resp.Topics[ti].Partitions[pi]
					if len(p.RecordBatches) == 0 || rng.Intn(2) == 0 {
						continue
					}
					var split [][]byte
					for rest := p.RecordBatches; len(rest) > 0; {
						n := min(len(rest), 1+rng.Intn(100))
						split, rest = append(split, rest[:n]), rest[n:]
					}
					remote[[2]int{ti, pi}] = recordbatch.NewBatches(split, nil)
					pieces = append(pieces, split...)
					p.RecordBatches = []byte{}
				}
			}
			frame := encodeFetchFrame(77, resp, remote)
			var got bytes.Buffer
			for _, b := range frame {
				got.Write(b)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("v%d round %d: scatter-gather encoding differs from kmsg's\ngot  %x\nwant %x", version, round, got.Bytes(), want)
			}
			for _, piece := range pieces {
				if !slices.ContainsFunc(frame, func(b []byte) bool { return len(b) == len(piece) && &b[0] == &piece[0] }) {
					t.Fatalf("v%d round %d: a remote buffer of %d bytes is not an iovec of its own", version, round, len(piece))
				}
			}
		}
	}
}
