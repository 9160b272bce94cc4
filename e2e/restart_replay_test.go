//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchCounter counts, from a franz-go client's hooks, the Fetch responses
// it reads (requests a broker answered: a write into a connection the
// killed process left is not one) and the record batches in them, from
// when it is armed.
type fetchCounter struct {
	mu         sync.Mutex
	armed      bool
	fetches    int // Fetch responses read since armed
	beforeData int // of them, read up to the one with the first batch
	batches    int // record batches read since armed
}

func (c *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed && key == kmsg.Fetch.Int16() && err == nil {
		c.fetches++
		if c.batches == 0 {
			c.beforeData++
		}
	}
}

func (c *fetchCounter) OnFetchBatchRead(kgo.BrokerMetadata, string, int32, kgo.FetchBatchMetrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed {
		c.batches++
	}
}

func (c *fetchCounter) arm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.fetches, c.beforeData, c.batches = true, 0, 0, 0
}

func (c *fetchCounter) read() (fetches, beforeData, batches int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches, c.beforeData, c.batches
}

// TestRestartUnderReplay: a franz-go consumer replays a tiered topic from
// the bucket while its broker is killed (SIGKILL) and then stopped
// (SIGTERM) and started again. The counts do not depend on timing:
//   - once /readyz answers, a Fetch for a remote offset is answered with
//     the records (not an error, not empty): the tier serves as soon as
//     the broker says it is ready;
//   - the broker answers the consumer at most two Fetch requests per
//     partition between readiness and its first record batch from the new
//     process (no retry storm): its first, naming the leader epoch it knew
//     before the restart, is answered FENCED_LEADER_EPOCH at once, and the
//     next one, after a metadata reload, carries data. The consumer's max wait and
//     metadata max age are a minute, so it learns of the new leader epoch
//     only from that answer, and an answer held to the max wait (as errors
//     once were) cannot go unnoticed: the test gives up after 30 s.
//   - every record comes back once, at its offset, in order.
func TestRestartUnderReplay(t *testing.T) {
	const (
		partitions   = 3
		segmentBytes = 1 << 20
		recordSize   = 4 << 10
		records      = 2048 // per partition: 8 MiB, all but the last segment in the bucket
	)
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "3600000")
	adm := newAdmin(t, b.addr)
	topic := uniqueTopic(t)
	createOne(t, adm, partitions, 1, tieredTopicConfigs(segmentBytes, segmentBytes), topic)
	producer := newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	base := time.Now().Add(-time.Duration(records+3600) * time.Second).Truncate(time.Millisecond)
	ctx := testContext(t, 2*time.Minute)
	for p := range int32(partitions) {
		for i := range records {
			producer.Produce(ctx, tieredRecord(topic, p, i, recordSize, base), nil)
		}
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	// A local segment goes only once it is in the bucket: at most two
	// segments left locally means the first six are remote.
	eventually(t, 30*time.Second, "the sealed segments uploaded and gone from local disk", func() error {
		for p := range int32(partitions) {
			if local := localLogBytes(t, b.dataDir, topic, p); local > 2*segmentBytes {
				return fmt.Errorf("partition %d: %d bytes on local disk", p, local)
			}
		}
		return nil
	})

	counter := &fetchCounter{}
	offsets := map[int32]kgo.Offset{}
	for p := range int32(partitions) {
		offsets[p] = kgo.NewOffset().At(0)
	}
	consumer := newClient(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(time.Minute), kgo.MetadataMinAge(time.Minute), kgo.MetadataMaxAge(time.Minute), kgo.WithHooks(counter),
		kgo.FetchMaxPartitionBytes(256<<10)) // small steps: both restarts land well inside the remote data
	next := make([]int, partitions)
	consumed := 0
	poll := func(ctx context.Context) {
		t.Helper()
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("replayed %v of %d records per partition before the timeout", next, records)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s[%d] at record %d: %v", topic, p, next[p], err)
		})
		for _, r := range fetches.Records() {
			want := tieredRecord(topic, r.Partition, next[r.Partition], recordSize, base)
			if r.Offset != int64(next[r.Partition]) || !bytes.Equal(r.Value, want.Value) {
				t.Fatalf("partition %d record %d: got offset %d value %.40q…", r.Partition, next[r.Partition], r.Offset, r.Value)
			}
			next[r.Partition]++
			consumed++
		}
	}
	for consumed == 0 { // mid-replay; the restarts leave most of it in the bucket
		poll(ctx)
	}
	probe := kmsg.NewPtrFetchRequest()
	probe.ReplicaID, probe.MaxBytes, probe.MinBytes, probe.MaxWaitMillis = -1, 1<<20, 1, int32(time.Minute.Milliseconds())
	probeTopic := kmsg.NewFetchRequestTopic()
	details, err := adm.ListTopics(ctx, topic)
	if err != nil || details[topic].Err != nil {
		t.Fatalf("topic id: %v %v", err, details[topic].Err)
	}
	probeTopic.Topic, probeTopic.TopicID = topic, details[topic].ID
	probePartition := kmsg.NewFetchRequestTopicPartition()
	probePartition.FetchOffset, probePartition.PartitionMaxBytes = 0, 1<<20
	probeTopic.Partitions = append(probeTopic.Partitions, probePartition)
	probe.Topics = append(probe.Topics, probeTopic)

	for _, stop := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		if err := b.signal(stop, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		b.restart(t)
		ready := time.Since(start)
		counter.arm()
		// The first Fetch for a remote offset after readiness, from a
		// client that knows nothing of the old process.
		resp, err := newClient(t, b.addr).Request(ctx, probe)
		if err != nil {
			t.Fatal(err)
		}
		answer := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if answer.ErrorCode != 0 || len(answer.RecordBatches) == 0 {
			t.Fatalf("%v: the first Fetch of a remote offset after readiness: error %d with %d bytes, want the records", stop, answer.ErrorCode, len(answer.RecordBatches))
		}
		firstDataCtx := testContext(t, 30*time.Second) // half the consumer's max wait
		for {
			if _, _, batches := counter.read(); batches > 0 {
				break
			}
			poll(firstDataCtx)
		}
		firstData := time.Since(start)
		fetches, beforeData, _ := counter.read()
		t.Logf("%v: process start to /readyz %v, to the consumer's first remote batch %v; the consumer was answered %d Fetch requests up to it (%d by then); replayed %v",
			stop, ready.Round(time.Millisecond), firstData.Round(time.Millisecond), beforeData, fetches, next)
		if beforeData > 2*partitions {
			t.Errorf("%v: the consumer was answered %d Fetch requests between readiness and its first data, want at most %d", stop, beforeData, 2*partitions)
		}
	}
	for consumed < partitions*records {
		poll(ctx)
	}
}
