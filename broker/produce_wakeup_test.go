package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
)

// TestProduceWakesFetchesOnceAppended: a produce request to two
// partitions wakes a fetch that long-polls both only once both are
// appended, so the fetch takes the whole request in one answer — for a
// follower, one replication round trip (one fsync in durable mode) per
// produce request, not one per partition. Forced interleaving: the write
// of the second partition's append waits until the fetch has answered (or
// 500 ms). Before, the first append woke the fetch, which answered with
// the first partition's records alone.
func TestProduceWakesFetchesOnceAppended(t *testing.T) {
	const topic = "wakeups"
	fetched := make(chan struct{})
	var armed sync.Once
	hold := make(chan struct{})
	n := brokertest.Start(t, func(cfg *broker.Config) {
		cfg.SegmentWriteFault = func(name string, index int32, _ int) (int, error) {
			select {
			case <-hold:
				if name == topic && index == 1 {
					armed.Do(func() {
						select {
						case <-fetched:
						case <-time.After(500 * time.Millisecond):
						}
					})
				}
			default:
			}
			return 0, nil
		}
	})
	cl := n.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("create: %v %v", err, created.Err)
	}

	// A consumer's fetch of both partitions, long-polling from offset 0.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID = -1
	fetch.MaxWaitMillis = 10_000
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, created.ID
	for i := range int32(2) {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes = i, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
	}
	fetch.Topics = append(fetch.Topics, ft)
	answer := make(chan *kmsg.FetchResponse, 1)
	go func() {
		defer close(fetched)
		resp, err := fetch.RequestWith(ctx, cl.SeedBrokers()[0])
		if err != nil {
			t.Error(err)
		}
		answer <- resp
	}()
	time.Sleep(200 * time.Millisecond) // the fetch is parked: nothing to read yet

	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = 1
	produce.TimeoutMillis = 10_000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic, pt.TopicID = topic, created.ID
	for i := range int32(2) {
		records, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Partition, pp.Records = i, records
		pt.Partitions = append(pt.Partitions, pp)
	}
	produce.Topics = append(produce.Topics, pt)
	close(hold)
	produced := request[*kmsg.ProduceResponse](t, cl.SeedBrokers()[0], produce)
	for _, p := range produced.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("produce to partition %d: error %d", p.Partition, p.ErrorCode)
		}
	}

	resp := <-answer
	if resp == nil {
		t.Fatal("no fetch response")
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Errorf("the fetch woken by the produce answered partition %d with error %d and %d bytes; want the produced record", p.Partition, p.ErrorCode, len(p.RecordBatches))
		}
	}
}
