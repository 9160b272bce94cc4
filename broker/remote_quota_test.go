package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// countingReader counts the remote reads that reach the reader and the
// bytes they return.
type countingReader struct {
	broker.RemoteReader
	reads, bytes atomic.Int64
	// onRead, when set, is called at each read.
	onRead func()
}

func (r *countingReader) Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch bool) (*recordbatch.Batches, error) {
	r.reads.Add(1)
	if r.onRead != nil {
		r.onRead()
	}
	batches, err := r.RemoteReader.Read(ctx, p, segment, offset, maxBytes, minOneBatch)
	r.bytes.Add(int64(batches.Len()))
	return batches, err
}

// With remote.log.manager.fetch.max.bytes.per.second throttling (the
// bytes remote reads took are not paid for yet), a consumer's Fetch of
// remote data does not read the object store: the partition is answered
// without data and without an error (KIP-956, as Kafka skips the remote
// read), and once the quota has paid for them the same Fetch returns the
// records.
func TestRemoteFetchQuotaSkipsReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	reader := &countingReader{RemoteReader: tier}
	clock := quotatest.NewClock()
	limiter := quota.NewPacer(quota.PacerConfig{BytesPerSecond: 100, Clock: clock})
	n := startTiered(t, reader, func(c *broker.Config) {
		c.RemoteFetchQuota = limiter
	})
	cl := n.Client()
	fetch, stop := tieredReplay(t, ctx, n, tier, cl)
	defer stop()
	// Within the quota: read. The tier pays for what its reads take from
	// the store (tiering.Tier.FetchQuota); this reader is not paced, so
	// the test takes the read's bytes (a segment of ~600 B) itself.
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 || reader.reads.Load() != 1 {
		t.Fatalf("first fetch: error %d, %d bytes, %d remote reads; want the records from one read", got.ErrorCode, len(got.RecordBatches), reader.reads.Load())
	}
	limiter.Record(int64(len(got.RecordBatches)))
	throttle := limiter.ThrottleTime()
	if throttle == 0 {
		t.Fatalf("%d bytes read did not exceed 100 B/s", len(got.RecordBatches))
	}
	got = request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) != 0 || reader.reads.Load() != 1 {
		t.Fatalf("fetch over the quota: error %d, %d bytes, %d remote reads; want no error, no data, no read", got.ErrorCode, len(got.RecordBatches), reader.reads.Load())
	}
	// Back under the quota once the throttle times have passed.
	var waited time.Duration
	for d := throttle; d > 0; d = limiter.ThrottleTime() {
		clock.Advance(d)
		waited += d
	}
	got = request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 || reader.reads.Load() != 2 {
		t.Fatalf("fetch once the quota allows: error %d, %d bytes, %d remote reads; want the records", got.ErrorCode, len(got.RecordBatches), reader.reads.Load())
	}
	if limiter.ThrottledSeconds() != waited.Seconds() {
		t.Fatalf("throttled %v s, want %v", limiter.ThrottledSeconds(), waited.Seconds())
	}
}

// A consumer's long poll whose remote read the quota holds back reads it
// once the quota has room, within the Fetch's max wait (refusedRetry),
// rather than answering the partition empty only after the whole max wait
// (as Kafka's delayed fetch does, leaving the consumer idle and the quota
// unused for the rest of it: 5 s with franz-go's default fetch.max.wait).
// Failed before: the 10 s long poll came back empty after 10 s, with no
// remote read.
func TestRemoteFetchQuotaLongPollReadsWhenTheQuotaHasRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	limiter := quota.NewPacer(quota.PacerConfig{BytesPerSecond: 2000}) // the real clock: the long poll's timers are real
	var throttledAtRead atomic.Int64
	reader := &countingReader{RemoteReader: tier, onRead: func() { throttledAtRead.Store(int64(limiter.ThrottleTime())) }}
	n := startTiered(t, reader, func(c *broker.Config) {
		c.RemoteFetchQuota = limiter
	})
	cl := n.Client()
	fetch, stop := tieredReplay(t, ctx, n, tier, cl)
	defer stop()
	fetch.MaxWaitMillis = 10_000
	// The reader is not paced (the tier pays for its reads' bytes): the
	// test takes a first read's worth itself, about 0.3 s at 2000 B/s.
	limiter.Record(600)
	if limiter.ThrottleTime() == 0 {
		t.Fatal("600 B did not exceed 2000 B/s")
	}
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 || reader.reads.Load() != 1 {
		t.Fatalf("long poll over the quota: error %d, %d bytes, %d remote reads; want the records from one read once the quota had room", got.ErrorCode, len(got.RecordBatches), reader.reads.Load())
	}
	if d := time.Duration(throttledAtRead.Load()); d != 0 {
		t.Fatalf("the long poll read with the quota throttling for %v more", d)
	}
}

// Remote reads of one Fetch run at once, each planned against what the
// reads before it leave of the response's max bytes: a partition there is
// no room for is not read from the object store at all (before, every
// remote partition was read and those over the budget thrown away, 1.22×
// the bytes served with 64 partitions in strata-bench --tiered).
func TestRemoteReadsPlannedWithinTheResponseBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	reader := &countingReader{RemoteReader: tier}
	n := startTiered(t, reader)
	cl := n.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetch := remoteOnlyFetch(t, ctx, n, tier, cl, "wide", 1<<20)

	// Room for one partition's first batch only (KIP-74): one read.
	fetch.MaxBytes = 1
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions
	if reads := reader.reads.Load(); reads != 1 || len(got[0].RecordBatches) == 0 || len(got[1].RecordBatches) != 0 || len(got[2].RecordBatches) != 0 {
		t.Fatalf("max bytes 1: %d remote reads, %d/%d/%d bytes; want one read answering the first partition", reads, len(got[0].RecordBatches), len(got[1].RecordBatches), len(got[2].RecordBatches))
	}
	for _, p := range got {
		if p.ErrorCode != 0 {
			t.Fatalf("partition %d: error %d, want none (no room is not an error)", p.Partition, p.ErrorCode)
		}
	}
	// Room for all three: three reads, each answered.
	fetch.MaxBytes = 1 << 20
	got = request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions
	if reads := reader.reads.Load(); reads != 4 || len(got[0].RecordBatches) == 0 || len(got[1].RecordBatches) == 0 || len(got[2].RecordBatches) == 0 {
		t.Fatalf("max bytes 1 MiB: %d remote reads in all, %d/%d/%d bytes; want three more reads answering every partition", reads, len(got[0].RecordBatches), len(got[1].RecordBatches), len(got[2].RecordBatches))
	}
}

// tieredReplay creates "replay" (1 partition of 600-byte segments, local
// retention 1 byte), produces 20 records, starts the tier manager (stop
// stops it) and waits until offset 0 is in the tier only; it returns a
// consumer's Fetch of offset 0 (max wait 0, min bytes 1).
func tieredReplay(t *testing.T, ctx context.Context, n *brokertest.Node, tier *tiering.Tier, cl *kgo.Client) (fetch *kmsg.FetchRequest, stop func()) {
	t.Helper()
	createTopic(t, cl, "replay", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "replay")
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "replay", Value: []byte(fmt.Sprintf("record-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	stop = startTierManager(t, ctx, n, tier)
	waitLocalLogStart(t, ctx, p, 0, "offset 0")
	fetch = kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, 0, 1
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	topic, _ := n.Store.State().Topic("replay")
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "replay", TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	return fetch, stop
}

// remoteOnlyFetch creates topic with three tiered partitions of 20 small
// records each (a batch per record), waits until all of them are only in
// the object store (local log start past 0), and returns a consumer's
// Fetch of the three from offset 0, each with partitionMaxBytes, to be
// given its MaxBytes.
func remoteOnlyFetch(t *testing.T, ctx context.Context, n *brokertest.Node, tier *tiering.Tier, cl *kgo.Client, topic string, partitionMaxBytes int32) *kmsg.FetchRequest {
	t.Helper()
	createTopic(t, cl, topic, 3, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	leadingTopic(t, n, topic)
	for i := range 60 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(fmt.Sprintf("record-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(startTierManager(t, ctx, n, tier))
	for i := range int32(3) {
		waitLocalLogStart(t, ctx, n.Server.OpenPartition(topic, i), 0, fmt.Sprintf("offset 0 of %s-%d", topic, i))
	}
	meta, _ := n.Store.State().Topic(topic)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxWaitMillis, fetch.MinBytes = -1, 0, 1
	ft := kmsg.FetchRequestTopic{Topic: topic, TopicID: meta.ID}
	for i := range int32(3) {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = i, 0, partitionMaxBytes
		ft.Partitions = append(ft.Partitions, fp)
	}
	fetch.Topics = []kmsg.FetchRequestTopic{ft}
	return fetch
}
