//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func createTopic(tb testing.TB, addr, topic string, partitions int32, configs map[string]*string) {
	tb.Helper()
	adm := kadm.NewClient(newClient(tb, addr))
	resp, err := adm.CreateTopic(testContext(tb, 30*time.Second), partitions, 1, configs, topic)
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Err != nil {
		tb.Fatalf("create topic %s: %v (%s)", topic, resp.Err, resp.ErrMessage)
	}
}

// consumeAll reads partitions of topic from the start until want records
// arrived (or the context ends).
func consumeAll(tb testing.TB, addr, topic string, want int, opts ...kgo.Opt) []*kgo.Record {
	tb.Helper()
	cl := newClient(tb, addr, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
	ctx := testContext(tb, 120*time.Second)
	var out []*kgo.Record
	for len(out) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("consumed %d of %d records before timeout", len(out), want)
		}
		fetches.EachError(func(t string, p int32, err error) {
			tb.Fatalf("fetch %s[%d]: %v", t, p, err)
		})
		out = append(out, fetches.Records()...)
	}
	return out
}

// TestFranzGoCodecs: idempotent franz-go producers write 100k records across
// 6 partitions with each codec; a consumer reads every record back exactly
// once, in order, byte-exact, and every batch carries the codec asked for.
func TestFranzGoCodecs(t *testing.T) {
	b := sharedBroker(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		attr  uint8
	}{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
	const records = 100_000
	const partitions = 6
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniqueTopic(t)
			createTopic(t, b.addr, topic, partitions, nil)
			producer := newClient(t, b.addr,
				kgo.DefaultProduceTopic(topic),
				kgo.ProducerBatchCompression(tc.codec),
				kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.ProducerLinger(5*time.Millisecond),
				manualPartitioner(),
			)
			ctx := testContext(t, 120*time.Second)
			value := func(i int) []byte {
				return []byte(fmt.Sprintf("%s-record-%07d-%s", tc.name, i, bytes.Repeat([]byte{byte('a' + i%26)}, 64)))
			}
			errs := make(chan error, 1)
			for i := 0; i < records; i++ {
				r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: value(i), Partition: int32(i % partitions)}
				producer.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				})
			}
			if err := producer.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errs:
				t.Fatalf("produce: %v", err)
			default:
			}

			got := consumeAll(t, b.addr, topic, records)
			if len(got) != records {
				t.Fatalf("read %d records, want %d", len(got), records)
			}
			byPartition := map[int32][]*kgo.Record{}
			for _, r := range got {
				if c := r.Attrs.CompressionType(); c != tc.attr {
					t.Fatalf("record at %d/%d has codec %d, want %d (%s)", r.Partition, r.Offset, c, tc.attr, tc.name)
				}
				byPartition[r.Partition] = append(byPartition[r.Partition], r)
			}
			seen := make([]bool, records)
			for p, rs := range byPartition {
				sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
				for i, r := range rs {
					if r.Offset != int64(i) {
						t.Fatalf("partition %d: record %d has offset %d (offsets must be dense from 0)", p, i, r.Offset)
					}
					var idx int
					if _, err := fmt.Sscanf(string(r.Key), "key-%d", &idx); err != nil || idx < 0 || idx >= records {
						t.Fatalf("partition %d offset %d: unexpected key %q", p, r.Offset, r.Key)
					}
					if seen[idx] {
						t.Fatalf("record %d read twice", idx)
					}
					seen[idx] = true
					if idx%partitions != int(p) {
						t.Fatalf("record %d in partition %d", idx, p)
					}
					if i > 0 {
						var prev int
						fmt.Sscanf(string(rs[i-1].Key), "key-%d", &prev)
						if prev >= idx {
							t.Fatalf("partition %d: record %d after %d (order lost)", p, idx, prev)
						}
					}
					if !bytes.Equal(r.Value, value(idx)) {
						t.Fatalf("record %d: value differs", idx)
					}
				}
			}
		})
	}
}

// produceSync writes values to one partition and returns their offsets.
func produceSync(tb testing.TB, cl *kgo.Client, topic string, partition int32, values ...string) []int64 {
	tb.Helper()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v)})
	}
	res := cl.ProduceSync(testContext(tb, 30*time.Second), recs...)
	if err := res.FirstErr(); err != nil {
		tb.Fatalf("produce: %v", err)
	}
	offsets := make([]int64, len(res))
	for i, r := range res {
		offsets[i] = r.Record.Offset
	}
	return offsets
}

func manualPartitioner() kgo.Opt { return kgo.RecordPartitioner(kgo.ManualPartitioner()) }

var _ = context.Background
