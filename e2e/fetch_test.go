//go:build e2e

package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func fetchRequest(topic string, maxWait, minBytes, maxBytes int32, partitions map[int32]int64, partitionMaxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxWaitMillis = maxWait
	req.MinBytes = minBytes
	req.MaxBytes = maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < int32(len(partitions)); p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.FetchOffset = partitions[p]
		rp.PartitionMaxBytes = partitionMaxBytes
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestFetchOversizedFirstBatch (KIP-74): a batch larger than the fetch
// limits is still returned whole when it is the first one, or a consumer
// would stall forever; the rest of the response respects the limit.
func TestFetchOversizedFirstBatch(t *testing.T) {
	b := sharedBroker(t)
	topic := createTopicWithConfig(t, b.addr, "max.message.bytes", "4000000")
	adm := kadm.NewClient(newClient(t, b.addr))
	if _, err := adm.CreatePartitions(testContext(t, 10*time.Second), 1, topic); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("B", 1<<20)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerBatchMaxBytes(4000000), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produceSync(t, cl, topic, 0, big)
	produceSync(t, cl, topic, 1, "small")

	c := dialRaw(t, b.addr)
	resp := c.roundTrip(fetchRequest(topic, 0, 1, 1024, map[int32]int64{0: 0, 1: 0}, 1024)).(*kmsg.FetchResponse)
	p0, p1 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if p0.ErrorCode != 0 || len(p0.RecordBatches) < 1<<20 {
		t.Fatalf("partition 0: error %d, %d bytes; want the whole 1 MiB batch despite 1 KiB limits", p0.ErrorCode, len(p0.RecordBatches))
	}
	if len(p1.RecordBatches) != 0 {
		t.Fatalf("partition 1 got %d bytes after the response limit was used up", len(p1.RecordBatches))
	}
	// And a franz-go consumer with tiny limits makes progress.
	recs := consumeAll(t, b.addr, topic, 2, kgo.FetchMaxBytes(1024), kgo.FetchMaxPartitionBytes(1024))
	for _, r := range recs {
		if r.Partition == 0 && !bytes.Equal(r.Value, []byte(big)) {
			t.Fatal("oversized record corrupted")
		}
	}
}

// TestFetchLongPoll: a fetch at the end of the log waits and is woken by a
// produce before its MaxWait; one that never reaches MinBytes answers empty
// after MaxWait.
func TestFetchLongPoll(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	cl := newClient(t, b.addr, manualPartitioner())
	produceSync(t, cl, topic, 0, "first")

	c := dialRaw(t, b.addr)
	const maxWait = 20000
	start := time.Now()
	c.send(fetchRequest(topic, maxWait, 1, 1<<20, map[int32]int64{0: 1}, 1<<20))
	time.Sleep(300 * time.Millisecond)
	produceSync(t, cl, topic, 0, "second")
	_, body, err := c.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("long poll answered error %d with %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if elapsed >= maxWait*time.Millisecond {
		t.Fatalf("long poll was not woken by the produce: answered after %v (MaxWait %dms)", elapsed, maxWait)
	}
	if p.HighWatermark != 2 {
		t.Fatalf("high watermark %d, want 2", p.HighWatermark)
	}

	start = time.Now()
	resp = c.roundTrip(fetchRequest(topic, 300, 1, 1<<20, map[int32]int64{0: 2}, 1<<20)).(*kmsg.FetchResponse)
	if len(resp.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Fatal("fetch at the end returned data")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatalf("fetch with MinBytes unmet answered after %v, before MaxWait 300ms", time.Since(start))
	}
}

func TestFetchOffsetOutOfRange(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "a", "b")
	c := dialRaw(t, b.addr)
	for _, offset := range []int64{3, 1000, -5} {
		resp := c.roundTrip(fetchRequest(topic, 0, 1, 1<<20, map[int32]int64{0: offset}, 1<<20)).(*kmsg.FetchResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
			t.Errorf("fetch at %d: error %d, want OFFSET_OUT_OF_RANGE", offset, code)
		}
	}
	// Offset == end is not out of range: an empty answer.
	resp := c.roundTrip(fetchRequest(topic, 0, 1, 1<<20, map[int32]int64{0: 2}, 1<<20)).(*kmsg.FetchResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Errorf("fetch at the end: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
}

// TestRetention: old segments go by size and by age; the log start offset
// moves, reads below it are out of range, everything after it is intact.
func TestRetention(t *testing.T) {
	b := startBroker(t, "--log-retention-check-interval-ms", "200")
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := testContext(t, 60*time.Second)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))

	t.Run("bytes", func(t *testing.T) {
		topic := uniqueTopic(t)
		segment, retention := "2048", "8192"
		createTopic(t, b.addr, topic, 1, map[string]*string{"segment.bytes": &segment, "retention.bytes": &retention})
		for i := 0; i < 100; i++ {
			produceSync(t, cl, topic, 0, strings.Repeat("r", 200)+string(rune('a'+i%26)))
		}
		waitStart(t, adm, topic, func(start int64) bool { return start > 0 })
		starts, _ := adm.ListStartOffsets(ctx, topic)
		start, _ := starts.Lookup(topic, 0)
		c := dialRaw(t, b.addr)
		resp := c.roundTrip(fetchRequest(topic, 0, 1, 1<<20, map[int32]int64{0: 0}, 1<<20)).(*kmsg.FetchResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
			t.Fatalf("fetch below the log start: error %d, want OFFSET_OUT_OF_RANGE", code)
		}
		recs := consumeAll(t, b.addr, topic, int(100-start.Offset))
		if recs[0].Offset != start.Offset || recs[len(recs)-1].Offset != 99 {
			t.Fatalf("after retention read offsets %d..%d, want %d..99", recs[0].Offset, recs[len(recs)-1].Offset, start.Offset)
		}
	})

	t.Run("age", func(t *testing.T) {
		topic := uniqueTopic(t)
		retention, segmentMs := "3600000", "100"
		createTopic(t, b.addr, topic, 1, map[string]*string{"retention.ms": &retention, "segment.ms": &segmentMs})
		old := time.Now().Add(-48 * time.Hour)
		for i := 0; i < 5; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("old"), Timestamp: old}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		waitStart(t, adm, topic, func(start int64) bool { return start == 5 })
		produceSync(t, cl, topic, 0, "fresh")
		recs := consumeAll(t, b.addr, topic, 1)
		if recs[0].Offset != 5 || string(recs[0].Value) != "fresh" {
			t.Fatalf("read %q at %d, want \"fresh\" at 5", recs[0].Value, recs[0].Offset)
		}
	})
}

func waitStart(t *testing.T, adm *kadm.Client, topic string, ok func(int64) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		starts, err := adm.ListStartOffsets(testContext(t, 10*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := starts.Lookup(topic, 0)
		if ok(s.Offset) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log start offset still %d after 30s", s.Offset)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
