package broker_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// TestFollowerShareAtSmallResponseBudget: the followers' share
// (a quarter of queued.max.response.bytes) is what consumers can never
// take, so a follower must be able to fetch with only that share free.
// With a budget under 4 MiB (the smallest accepted is 1 MiB) the share is
// smaller than the least a Fetch takes before it reads (responseMinGrant,
// 1 MiB): a follower waited for room consumers hold — for
// connections.max.idle.ms when they do not read — and replication stopped.
func TestFollowerShareAtSmallResponseBudget(t *testing.T) {
	const budget = 2 << 20 // 1.5 MiB for consumers, 512 KiB kept for followers
	n := brokertest.Start(t, func(c *broker.Config) {
		c.QueuedMaxResponseBytes = budget
		c.ControlledShutdownTimeout = -1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(), DirectoryID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	topic, _ := n.Store.State().Topic("t")
	producer := n.Client(kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for range 3 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte("x"), 10<<10)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Consumers that do not read hold the whole of their share.
	release := n.Server.HoldConsumerResponseMemory(budget - budget/4)
	if release == nil {
		t.Fatal("the consumers' share of response memory is not free")
	}
	defer release()

	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 15, -1, 16<<20, 1, 200
	req.ReplicaState.ID, req.ReplicaState.Epoch = 2, epoch
	part := kmsg.NewFetchRequestTopicPartition()
	part.Partition, part.FetchOffset, part.PartitionMaxBytes = 0, 0, 4<<20
	req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{part}}}
	p := rawRoundTrip(t, n.Addr, req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		held, _, _ := n.Server.ResponseMemory()
		t.Fatalf("a follower's Fetch with the followers' share (%d bytes) free and consumers holding theirs: error %d, %d bytes of records; want records (held %d)",
			budget/4, p.ErrorCode, len(p.RecordBatches), held)
	}
	if held, _, _ := n.Server.ResponseMemory(); held != budget-budget/4 {
		t.Fatalf("%d bytes of response memory held after the follower's response was written, want the consumers' %d", held, budget-budget/4)
	}
}
