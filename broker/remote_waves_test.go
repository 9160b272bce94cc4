package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
