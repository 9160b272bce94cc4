//go:build e2e

package e2e

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// buildBatch encodes an uncompressed v2 record batch independently of the
// broker's code (kmsg framing + CRC-32C computed here).
func buildBatch(timestamp int64, values ...string) []byte {
	var records []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := r.AppendTo(nil) // Length 0 encodes as a single byte
		r.Length = int32(len(body) - 1)
		records = r.AppendTo(records)
	}
	b := kmsg.RecordBatch{
		FirstOffset:     0,
		Length:          int32(49 + len(records)),
		Magic:           2,
		LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp:  timestamp,
		MaxTimestamp:    timestamp,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(len(values)),
		Records:         records,
	}
	out := b.AppendTo(nil)
	fixCRC(out)
	return out
}

func fixCRC(batch []byte) {
	crc := crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(batch[17:], crc)
}

func produceRequest(topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceCode(tb testing.TB, c *rawConn, topic string, records []byte) (int16, string) {
	tb.Helper()
	resp := c.roundTrip(produceRequest(topic, 0, records)).(*kmsg.ProduceResponse)
	p := resp.Topics[0].Partitions[0]
	msg := ""
	if p.ErrorMessage != nil {
		msg = *p.ErrorMessage
	}
	return p.ErrorCode, msg
}

// TestBadInput sends malformed requests and checks each gets the documented
// outcome — a Kafka error code, or a closed connection — while the broker
// keeps serving other clients and the log stays intact.
func TestBadInput(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	good := dialRaw(t, b.addr)

	if code, msg := produceCode(t, good, topic, buildBatch(time.Now().UnixMilli(), "first")); code != 0 {
		t.Fatalf("valid batch: error %d %s", code, msg)
	}

	cases := []struct {
		name    string
		records func() []byte
		want    *kerr.Error
	}{
		{"crc mismatch", func() []byte {
			b := buildBatch(time.Now().UnixMilli(), "a", "b", "c")
			b[len(b)-1] ^= 0xff // payload changed, CRC not updated
			return b
		}, kerr.CorruptMessage},
		{"record count lies (valid crc)", func() []byte {
			b := buildBatch(time.Now().UnixMilli(), "a", "b", "c")
			binary.BigEndian.PutUint32(b[57:], 5) // claims 5 records, holds 3
			binary.BigEndian.PutUint32(b[23:], 4) // lastOffsetDelta consistent with the lie
			fixCRC(b)
			return b
		}, kerr.InvalidRecord},
		{"offset deltas out of order (valid crc)", func() []byte {
			var records []byte
			for i, d := range []int32{0, 2, 1} {
				r := kmsg.Record{OffsetDelta: d, Value: []byte{byte('x' + i)}}
				body := r.AppendTo(nil)
				r.Length = int32(len(body) - 1)
				records = r.AppendTo(records)
			}
			b := buildBatch(time.Now().UnixMilli(), "p", "q", "r")
			b = append(b[:61], records...)
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
			fixCRC(b)
			return b
		}, kerr.InvalidRecord},
		{"truncated batch", func() []byte {
			b := buildBatch(time.Now().UnixMilli(), "a", "b")
			return b[:len(b)-3]
		}, kerr.CorruptMessage},
		{"magic 1 batch", func() []byte {
			b := buildBatch(time.Now().UnixMilli(), "a")
			b[16] = 1
			return b
		}, nil}, // any error code; checked below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := produceCode(t, good, topic, tc.records())
			if tc.want == nil {
				if code == 0 {
					t.Fatal("accepted a batch with magic 1")
				}
				return
			}
			if code != tc.want.Code {
				t.Fatalf("error code %d (%s), want %d %s", code, msg, tc.want.Code, tc.want.Message)
			}
		})
	}

	t.Run("message too large", func(t *testing.T) {
		big := createTopicWithConfig(t, b.addr, "max.message.bytes", "1024")
		code, msg := produceCode(t, good, big, buildBatch(time.Now().UnixMilli(), strings.Repeat("x", 4096)))
		if code != kerr.MessageTooLarge.Code {
			t.Fatalf("error code %d (%s), want MESSAGE_TOO_LARGE", code, msg)
		}
	})

	t.Run("batch larger than a segment", func(t *testing.T) {
		small := createTopicWithConfig(t, b.addr, "segment.bytes", "1024")
		code, msg := produceCode(t, good, small, buildBatch(time.Now().UnixMilli(), strings.Repeat("x", 2048)))
		if code != kerr.RecordListTooLarge.Code {
			t.Fatalf("error code %d (%s), want RECORD_LIST_TOO_LARGE", code, msg)
		}
	})

	t.Run("unknown topic", func(t *testing.T) {
		code, _ := produceCode(t, good, "no-such-topic-"+uniqueTopic(t), buildBatch(time.Now().UnixMilli(), "x"))
		if code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("error code %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
		}
	})

	closes := []struct {
		name string
		send func(c *rawConn)
	}{
		{"oversized frame", func(c *rawConn) {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 1<<30)
			c.write(hdr[:])
		}},
		{"negative frame size", func(c *rawConn) {
			c.write([]byte{0xff, 0xff, 0xff, 0xf0})
		}},
		{"unknown api key", func(c *rawConn) {
			frame := []byte{0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0}
			c.write(frame)
		}},
		{"unsupported fetch version", func(c *rawConn) {
			req := kmsg.NewPtrFetchRequest()
			req.Version = 1
			c.send(req)
		}},
		{"truncated request body", func(c *rawConn) {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 9
			topic := "x"
			req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
			frame := kmsg.NewRequestFormatter().AppendRequest(nil, req, 1)
			// Keep the frame size honest but cut the body short.
			cut := frame[:len(frame)-4]
			binary.BigEndian.PutUint32(cut, uint32(len(cut)-4))
			c.write(cut)
		}},
		{"client hangs up mid-frame", func(c *rawConn) {
			c.write([]byte{0, 0, 1, 0, 0, 3})
			c.conn.(interface{ CloseWrite() error }).CloseWrite()
		}},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, b.addr)
			tc.send(c)
			c.expectClosed()
		})
	}

	t.Run("unsupported ApiVersions version gets a v0 answer", func(t *testing.T) {
		c := dialRaw(t, b.addr)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 99
		frame := kmsg.NewRequestFormatter().AppendRequest(nil, req, 7)
		c.write(frame)
		corr, body, err := c.readFrame()
		if err != nil || corr != 7 {
			t.Fatalf("read: corr %d err %v", corr, err)
		}
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		// KIP-511, as Kafka: the ApiVersions range alone, for the retry.
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != 18 || resp.ApiKeys[0].MaxVersion < 3 {
			t.Fatalf("error %d with keys %+v, want UNSUPPORTED_VERSION and the ApiVersions range", resp.ErrorCode, resp.ApiKeys)
		}
	})

	// The first connection and the log survived all of that.
	if code, msg := produceCode(t, good, topic, buildBatch(time.Now().UnixMilli(), "last")); code != 0 {
		t.Fatalf("valid batch after bad input: error %d %s", code, msg)
	}
	recs := consumeAll(t, b.addr, topic, 2)
	if len(recs) != 2 || string(recs[0].Value) != "first" || string(recs[1].Value) != "last" || recs[1].Offset != 1 {
		t.Fatalf("log after bad input: %d records %v", len(recs), recs)
	}
}

func createTopicWithConfig(tb testing.TB, addr, name, value string) string {
	tb.Helper()
	topic := uniqueTopic(tb)
	createTopic(tb, addr, topic, 1, map[string]*string{name: &value})
	return topic
}
