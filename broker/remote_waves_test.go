package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/tiering"
)

// A Fetch of two partitions served from the object store, the second
// asking for at most 0 bytes (partition_max_bytes 0: a client's choice,
// nothing forbids it): the first is answered with its records, the
// second with none, and the Fetch is answered. Before, the remote reads'
// second wave planned no read for it and tried again forever: the Fetch
// never returned and its handler spun.
func TestRemoteFetchPartitionMaxBytesZero(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	cl := n.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "waves", 2, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	for i := range 40 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "waves", Partition: int32(i % 2), Value: []byte(fmt.Sprintf("record-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	defer startTierManager(t, ctx, n, tier)()
	for index := range int32(2) {
		p := n.Server.OpenPartition("waves", index)
		if p == nil {
			t.Fatalf("waves-%d not open", index)
		}
		waitLocalLogStart(t, ctx, p, 0, fmt.Sprintf("offset 0 of waves-%d", index))
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, 0, 1
	topic, _ := n.Store.State().Topic("waves")
	requested := kmsg.FetchRequestTopic{Topic: "waves", TopicID: topic.ID}
	for index, maxBytes := range []int32{1 << 20, 0} {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = int32(index), 0, maxBytes
		requested.Partitions = append(requested.Partitions, fp)
	}
	fetch.Topics = []kmsg.FetchRequestTopic{requested}
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions
	if len(got) != 2 || got[0].ErrorCode != 0 || len(got[0].RecordBatches) == 0 || got[1].ErrorCode != 0 || len(got[1].RecordBatches) != 0 {
		t.Fatalf("Fetch of waves-0 (at most 1 MiB) and waves-1 (at most 0 bytes): %+v, want waves-0's records and none of waves-1", got)
	}
}

// A Fetch of three partitions served from the object store, each asking
// for at most 1 byte (less than any batch): the first is answered with its
// first batch whole (KIP-74), the others without data, as a local read
// answers them. The others' reads return nothing rather than a batch the
// response then drops, and strata_tiering_remote_fetch_bytes_total counts
// the bytes served. Before, every partition's read returned its first
// batch: the reader returned three batches for the one served, and the
// metric counted all three (a franz-go consumer with 128 KiB partition
// limits over 1 MiB batches showed 3× the bytes it got).
func TestRemoteFetchOversizedBatchOnlyForTheFirstPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	reader := &countingReader{RemoteReader: tier}
	registry := prometheus.NewRegistry()
	n := startTiered(t, reader, func(c *broker.Config) { c.Registerer = registry })
	cl := n.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetch := remoteOnlyFetch(t, ctx, n, tier, cl, "oversized", 1)
	fetch.MaxBytes = 1 << 20
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions
	if len(got) != 3 || len(got[1].RecordBatches) != 0 || len(got[2].RecordBatches) != 0 {
		t.Fatalf("partitions answered: %+v; want the first with data, the others without", got)
	}
	served := len(got[0].RecordBatches)
	count := 0
	if _, err := recordbatch.NewBatches([][]byte{got[0].RecordBatches}, nil).Scan(nil, func(int64, recordbatch.Header) error { count++; return nil }); err != nil || count != 1 {
		t.Fatalf("oversized-0: %d bytes in %d batches (%v), want its first batch whole (KIP-74)", served, count, err)
	}
	for _, p := range got {
		if p.ErrorCode != 0 {
			t.Fatalf("partition %d: error %d, want none (no room is not an error)", p.Partition, p.ErrorCode)
		}
	}
	if returned := reader.bytes.Load(); returned != int64(served) {
		t.Fatalf("the remote reads returned %d bytes for the %d served (%d reads)", returned, served, reader.reads.Load())
	}
	if metric := topicMetric(t, registry, "strata_tiering_remote_fetch_bytes_total", "oversized"); metric != float64(served) {
		t.Fatalf("strata_tiering_remote_fetch_bytes_total = %.0f, want the %d bytes served", metric, served)
	}
}

// A Fetch of a local partition, then one served from the object store,
// with room left in the response's max bytes after the local one for
// some of the remote batches but not all that the remote read returned:
// the remote partition is answered the leading batches that fit, as
// Kafka fills the response in request order (and as a local read is cut
// at what is left), and strata_tiering_remote_fetch_bytes_total counts
// them. Before, the whole remote read was dropped: the partition got
// nothing while the response had room, read from the store for nothing.
func TestRemoteFetchAfterLocalDataServesWhatFits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	registry := prometheus.NewRegistry()
	n := startTiered(t, tier, func(c *broker.Config) { c.Registerer = registry })
	cl := n.Client()
	hotAndCold(t, ctx, n, tier, cl)

	state := n.Store.State()
	fetchOf := func(topics ...string) *kmsg.FetchRequest {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, 0, 1
		for _, topic := range topics {
			meta, _ := state.Topic(topic)
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
			fetch.Topics = append(fetch.Topics, kmsg.FetchRequestTopic{Topic: topic, TopicID: meta.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}})
		}
		return fetch
	}
	hot := request[*kmsg.FetchResponse](t, cl, fetchOf("hot")).Topics[0].Partitions[0].RecordBatches
	coldAlone := request[*kmsg.FetchResponse](t, cl, fetchOf("cold")).Topics[0].Partitions[0].RecordBatches
	var coldBatches []int
	if _, err := recordbatch.NewBatches([][]byte{coldAlone}, nil).Scan(nil, func(_ int64, h recordbatch.Header) error {
		coldBatches = append(coldBatches, int(h.Size()))
		return nil
	}); err != nil || len(hot) == 0 || len(coldBatches) < 3 {
		t.Fatalf("hot alone: %d bytes; cold alone: batches %v (%v); want data in both, several batches in cold", len(hot), coldBatches, err)
	}
	before := topicMetric(t, registry, "strata_tiering_remote_fetch_bytes_total", "cold")

	// Room after hot's bytes for cold's first two batches and part of
	// its third.
	fits := coldBatches[0] + coldBatches[1]
	fetch := fetchOf("hot", "cold")
	fetch.MaxBytes = int32(len(hot) + fits + coldBatches[2]/2)
	got := request[*kmsg.FetchResponse](t, cl, fetch)
	gotHot, gotCold := got.Topics[0].Partitions[0], got.Topics[1].Partitions[0]
	if gotHot.ErrorCode != 0 || !bytes.Equal(gotHot.RecordBatches, hot) {
		t.Fatalf("hot: error %d, %d bytes; want its %d bytes", gotHot.ErrorCode, len(gotHot.RecordBatches), len(hot))
	}
	if gotCold.ErrorCode != 0 || !bytes.Equal(gotCold.RecordBatches, coldAlone[:fits]) {
		t.Fatalf("cold after hot, %d bytes of room left: error %d, %d bytes; want its first two batches (%d bytes)", int(fetch.MaxBytes)-len(hot), gotCold.ErrorCode, len(gotCold.RecordBatches), fits)
	}
	if metric := topicMetric(t, registry, "strata_tiering_remote_fetch_bytes_total", "cold") - before; metric != float64(fits) {
		t.Fatalf("strata_tiering_remote_fetch_bytes_total grew by %.0f, want the %d bytes served", metric, fits)
	}
}

// A Fetch of a local partition with records, then one served from the
// object store whose first batch is over its partition_max_bytes: the
// local partition is the first with data, so the remote one gets nothing
// (KIP-74: only the first partition with data may exceed the limits), and
// its read returns nothing rather than a batch the response drops. Before,
// the remote read, the first of the Fetch's remote reads, returned its
// first batch whole every time, read from the store and thrown away.
func TestRemoteFetchAfterLocalDataReadsNoOversizedBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	reader := &countingReader{RemoteReader: tier}
	n := startTiered(t, reader)
	cl := n.Client()
	hotAndCold(t, ctx, n, tier, cl)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, 0, 1
	for _, topic := range []string{"hot", "cold"} {
		meta, _ := n.Store.State().Topic(topic)
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1
		fetch.Topics = append(fetch.Topics, kmsg.FetchRequestTopic{Topic: topic, TopicID: meta.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}})
	}
	got := request[*kmsg.FetchResponse](t, cl, fetch)
	gotHot, gotCold := got.Topics[0].Partitions[0], got.Topics[1].Partitions[0]
	if gotHot.ErrorCode != 0 || len(gotHot.RecordBatches) == 0 || gotCold.ErrorCode != 0 || len(gotCold.RecordBatches) != 0 {
		t.Fatalf("hot: error %d, %d bytes; cold: error %d, %d bytes; want hot's first batch, nothing from cold", gotHot.ErrorCode, len(gotHot.RecordBatches), gotCold.ErrorCode, len(gotCold.RecordBatches))
	}
	if returned := reader.bytes.Load(); returned != 0 {
		t.Fatalf("the remote reads returned %d bytes, none served (%d reads)", returned, reader.reads.Load())
	}
}

// A long poll (max wait an hour) with a min bytes above what the remote
// partitions' reads return is answered once they are read, as Kafka
// answers a Fetch once its delayed remote fetch completes: the records
// read are all the remote partitions can bring, waiting adds nothing to
// them. Before, it waited for the max wait (franz-go's default, 5 s, per
// remote segment for a consumer with fetch min bytes above a segment's
// tail).
func TestRemoteFetchAnsweredOnceReadBelowMinBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	cl := n.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	fetch := remoteOnlyFetch(t, ctx, n, tier, cl, "minbytes", 1<<20)
	fetch.MaxBytes, fetch.MinBytes, fetch.MaxWaitMillis = 1<<20, 1<<20, int32(time.Hour.Milliseconds())
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions
	for _, p := range got {
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("partition %d: error %d, %d bytes; want its records", p.Partition, p.ErrorCode, len(p.RecordBatches))
		}
	}
}

// hotAndCold creates topic hot (local) and topic cold (tiered, one
// partition each), produces 20 small records to each (a batch per
// record), and waits until cold's records are only in the object store.
func hotAndCold(t *testing.T, ctx context.Context, n *brokertest.Node, tier *tiering.Tier, cl *kgo.Client) {
	t.Helper()
	createTopic(t, cl, "hot", 1, nil)
	createTopic(t, cl, "cold", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	cold := leadingTopic(t, n, "cold")
	for i := range 20 {
		for _, topic := range []string{"hot", "cold"} {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("record-%d", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(startTierManager(t, ctx, n, tier))
	waitLocalLogStart(t, ctx, cold, 0, "offset 0 of cold")
}
