package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
)

// fetchStored fetches partition 0 of topic from offset as a raw Fetch: the
// batches as the leader stores them.
func fetchStored(t *testing.T, n *brokertest.Node, cl *kgo.Client, topic string, offset int64) []recordbatch.Header {
	t.Helper()
	meta, ok := n.Store.State().Topic(topic)
	if !ok {
		t.Fatalf("topic %s is not in the metadata", topic)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.MinBytes = -1, 1<<20, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, meta.ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = offset, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	p := request[*kmsg.FetchResponse](t, cl, req).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch %s: %v", topic, kerr.ErrorForCode(p.ErrorCode))
	}
	spans, err := recordbatch.Split(p.RecordBatches)
	if err != nil {
		t.Fatal(err)
	}
	var headers []recordbatch.Header
	for _, sp := range spans {
		batch := p.RecordBatches[sp.Position : sp.Position+sp.Length]
		if err := recordbatch.VerifyChecksum(batch); err != nil {
			t.Fatalf("stored batch: %v", err)
		}
		h, err := recordbatch.ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		headers = append(headers, h)
	}
	return headers
}

// TestCompressionTypeRecodesProducedBatches: as Kafka's LogValidator, the
// leader stores a produced batch with the topic's compression.type: a
// zstd topic gets gzip and uncompressed batches from a franz-go producer
// and stores them as zstd, an uncompressed topic stores a gzip batch
// uncompressed, a producer topic keeps the client's codec; a consumer
// reads the same records (keys, values, headers, timestamps, offsets).
func TestCompressionTypeRecodesProducedBatches(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	cases := []struct {
		compression string
		produced    []kgo.CompressionCodec
		want        func(produced int) recordbatch.Codec
	}{
		{"zstd", []kgo.CompressionCodec{kgo.GzipCompression(), kgo.NoCompression(), kgo.ZstdCompression()}, func(int) recordbatch.Codec { return recordbatch.Zstd }},
		{"uncompressed", []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression()}, func(int) recordbatch.Codec { return recordbatch.None }},
		{"producer", []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.SnappyCompression()}, func(i int) recordbatch.Codec {
			return []recordbatch.Codec{recordbatch.LZ4, recordbatch.Snappy}[i]
		}},
	}
	for _, tc := range cases {
		t.Run(tc.compression, func(t *testing.T) {
			topic := "compression-" + tc.compression
			createTopic(t, admin, topic, 1, map[string]string{"compression.type": tc.compression})
			ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
			var want []*kgo.Record
			for i, codec := range tc.produced {
				cl := n.Client(kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
				var batch []*kgo.Record
				for j := range 5 {
					r := &kgo.Record{
						Value:     []byte(strings.Repeat(fmt.Sprintf("value %d-%d ", i, j), 20)),
						Timestamp: ts.Add(time.Duration(i*10+j) * time.Millisecond),
						Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(j))}},
					}
					if j%2 == 0 {
						r.Key = []byte(fmt.Sprintf("key-%d-%d", i, j))
					}
					batch = append(batch, r)
				}
				// One produce of five records: one batch of this codec.
				if err := cl.ProduceSync(context.Background(), batch...).FirstErr(); err != nil {
					t.Fatalf("produce with %v: %v", codec, err)
				}
				cl.Close()
				want = append(want, batch...)
			}
			headers := fetchStored(t, n, admin, topic, 0)
			if len(headers) != len(tc.produced) {
				t.Fatalf("%d batches stored, want %d", len(headers), len(tc.produced))
			}
			for i, h := range headers {
				if h.Codec() != tc.want(i) || h.NumRecords != 5 || h.BaseOffset != int64(i*5) {
					t.Fatalf("batch %d: codec %v, %d records at %d; want codec %v, 5 records at %d", i, h.Codec(), h.NumRecords, h.BaseOffset, tc.want(i), i*5)
				}
			}

			consumer := n.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			defer consumer.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []*kgo.Record
			for len(got) < len(want) {
				fetches := consumer.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of %d records: %v", len(got), len(want), err)
				}
				fetches.EachRecord(func(r *kgo.Record) { got = append(got, r) })
			}
			if len(got) != len(want) {
				t.Fatalf("consumed %d records, want %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.Offset != int64(i) || !bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Value, w.Value) ||
					!g.Timestamp.Equal(w.Timestamp) || len(g.Headers) != 1 || g.Headers[0].Key != "h" || !bytes.Equal(g.Headers[0].Value, w.Headers[0].Value) {
					t.Fatalf("record %d: offset %d key %q timestamp %v headers %v; want key %q timestamp %v headers %v",
						i, g.Offset, g.Key, g.Timestamp, g.Headers, w.Key, w.Timestamp, w.Headers)
				}
			}
		})
	}
}

// produceRaw sends one batch to partition 0 of topic (acks=all), retrying
// while the partition's leadership starts.
func produceRaw(t *testing.T, n *brokertest.Node, cl *kgo.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	meta, ok := n.Store.State().Topic(topic)
	if !ok {
		t.Fatalf("topic %s is not in the metadata", topic)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, meta.ID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p := request[*kmsg.ProduceResponse](t, cl, req).Topics[0].Partitions[0]
		if p.ErrorCode != kerr.NotLeaderForPartition.Code || time.Now().After(deadline) {
			return p
		}
	}
}

// TestCompressionTypeRecodedRetryIsDeduplicated: a re-encoded batch keeps
// the producer id, epoch and sequence numbers, so an idempotent
// producer's retry of it is answered with the stored batch's offset and
// not appended again.
func TestCompressionTypeRecodedRetryIsDeduplicated(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 1, map[string]string{"compression.type": "zstd"})
	init := request[*kmsg.InitProducerIDResponse](t, cl, kmsg.NewPtrInitProducerIDRequest())
	if init.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	now := time.Now().UnixMilli()
	build := func(sequence int32, values ...string) []byte {
		records := make([]recordbatch.Record, len(values))
		for i, v := range values {
			records[i] = recordbatch.Record{Value: []byte(v), Timestamp: now}
		}
		b, err := recordbatch.Build(recordbatch.BuildOptions{Codec: recordbatch.Gzip, Idempotent: true,
			ProducerID: init.ProducerID, ProducerEpoch: init.ProducerEpoch, BaseSequence: sequence}, records)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := build(0, "a", "b", "c")
	for attempt := range 2 {
		if p := produceRaw(t, n, cl, "t", first); p.ErrorCode != 0 || p.BaseOffset != 0 {
			t.Fatalf("attempt %d: %v at base offset %d, want offset 0", attempt, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
	if p := produceRaw(t, n, cl, "t", build(3, "d")); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Fatalf("next batch: %v at base offset %d, want offset 3", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := produceRaw(t, n, cl, "t", first); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("late retry: %v at base offset %d, want offset 0", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	headers := fetchStored(t, n, cl, "t", 0)
	if len(headers) != 2 {
		t.Fatalf("%d batches stored, want 2", len(headers))
	}
	for i, want := range []struct {
		base     int64
		sequence int32
	}{{0, 0}, {3, 3}} {
		h := headers[i]
		if h.Codec() != recordbatch.Zstd || h.BaseOffset != want.base || h.ProducerID != init.ProducerID || h.ProducerEpoch != init.ProducerEpoch || h.BaseSequence != want.sequence {
			t.Fatalf("batch %d: %+v (codec %v), want zstd at %d, producer %d/%d, sequence %d", i, h, h.Codec(), want.base, init.ProducerID, init.ProducerEpoch, want.sequence)
		}
	}
}

// TestCompressionTypeMaxMessageBytesAppliesToStoredBatch: as in Kafka,
// max.message.bytes applies to the batch as stored: a gzip batch within
// the limit that is larger uncompressed is refused on an uncompressed
// topic with MESSAGE_TOO_LARGE.
func TestCompressionTypeMaxMessageBytesAppliesToStoredBatch(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 1, map[string]string{"compression.type": "uncompressed", "max.message.bytes": "2000"})
	build := func(size int) []byte {
		b, err := recordbatch.Build(recordbatch.BuildOptions{Codec: recordbatch.Gzip},
			[]recordbatch.Record{{Value: bytes.Repeat([]byte("x"), size), Timestamp: time.Now().UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if p := produceRaw(t, n, cl, "t", build(10_000)); p.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("a batch of 10000 bytes once uncompressed: %v, want MESSAGE_TOO_LARGE", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produceRaw(t, n, cl, "t", build(1_000)); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("a small batch: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if h := fetchStored(t, n, cl, "t", 0); len(h) != 1 || h[0].Codec() != recordbatch.None {
		t.Fatalf("stored %+v, want one uncompressed batch", h)
	}
}

// TestCompressionTypeZstdFetchBeforeV10: as Kafka (KIP-110), a consumer's
// Fetch older than v10, which cannot decode zstd, is answered
// UNSUPPORTED_COMPRESSION_TYPE for a partition of a topic with
// compression.type=zstd, and not its zstd batches; v10 and later get them.
// Other codecs are served to v9, and so is a zstd batch a producer topic
// keeps (Kafka's rule is the topic's config).
func TestCompressionTypeZstdFetchBeforeV10(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	build := func(codec recordbatch.Codec) []byte {
		b, err := recordbatch.Build(recordbatch.BuildOptions{Codec: codec}, []recordbatch.Record{
			{Value: []byte("a"), Timestamp: time.Now().UnixMilli()}, {Value: []byte("b"), Timestamp: time.Now().UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	topics := []struct {
		name, compression string
		produced, stored  recordbatch.Codec
	}{
		{"zstd", "zstd", recordbatch.Gzip, recordbatch.Zstd},
		{"gzip", "gzip", recordbatch.None, recordbatch.Gzip},
		{"producer", "producer", recordbatch.Zstd, recordbatch.Zstd},
	}
	for _, tc := range topics {
		createTopic(t, cl, tc.name, 1, map[string]string{"compression.type": tc.compression})
		if p := produceRaw(t, n, cl, tc.name, build(tc.produced)); p.ErrorCode != 0 {
			t.Fatalf("produce to %s: %v", tc.name, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	fetch := func(version int16, topic string) kmsg.FetchResponseTopicPartition {
		t.Helper()
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(kmsg.Fetch.Int16(), version)
		meta, _ := n.Store.State().Topic(topic)
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.MinBytes = -1, 1<<20, 1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = topic, meta.ID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp := request[*kmsg.FetchResponse](t, n.Client(kgo.MaxVersions(vs)), req)
		if resp.Version != version {
			t.Fatalf("fetch sent as v%d, want v%d", resp.Version, version)
		}
		return resp.Topics[0].Partitions[0]
	}
	for _, version := range []int16{4, 9, 10, 13, 18} {
		for _, tc := range topics {
			p := fetch(version, tc.name)
			if version < 10 && tc.compression == "zstd" {
				if p.ErrorCode != kerr.UnsupportedCompressionType.Code || len(p.RecordBatches) != 0 {
					t.Errorf("v%d %s: %v with %d bytes of records, want UNSUPPORTED_COMPRESSION_TYPE without records", version, tc.name, kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
				}
				continue
			}
			if p.ErrorCode != 0 {
				t.Errorf("v%d %s: %v", version, tc.name, kerr.ErrorForCode(p.ErrorCode))
				continue
			}
			h, err := recordbatch.ParseHeader(p.RecordBatches)
			if err != nil || h.Codec() != tc.stored || h.NumRecords != 2 {
				t.Errorf("v%d %s: batch codec %v with %d records (%v), want %v with 2", version, tc.name, h.Codec(), h.NumRecords, err, tc.stored)
			}
		}
	}
}
