package broker_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// TestReplicationProgressesWhileConsumersHoldResponseMemory: consumers
// that stop reading hold their Fetch responses, and the room they take
// in queued.max.response.bytes, until connections.max.idle.ms. They can
// take the consumers' share of it only: a follower's Fetch still gets
// records and moves the high watermark, while a consumer's is answered
// without records (its client asks again).
// startWithTestFollower starts a broker with queued.max.response.bytes of
// budget and topic "t" replicated on it (broker 1) and on broker 2 — the
// test, fetching as a follower, registered and unfenced; it never fetches
// on its own, so no controlled shutdown waits for it — and returns the
// node, broker 2's epoch and the topic.
func startWithTestFollower(t *testing.T, ctx context.Context, budget int64) (*brokertest.Node, int64, metadata.Topic) {
	t.Helper()
	n := brokertest.Start(t, func(c *broker.Config) {
		c.QueuedMaxResponseBytes = budget
		c.ControlledShutdownTimeout = -1
	})
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(), DirectoryID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch, false); err != nil {
		t.Fatal(err)
	}
	topic, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	return n, epoch, topic
}

// followerFetch is a Fetch v15 of partition 0 of topic from offset, as
// broker 2 at epoch, of up to maxBytes.
func followerFetch(epoch int64, topic metadata.Topic, offset int64, maxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes = 15, -1, maxBytes
	req.ReplicaState.ID, req.ReplicaState.Epoch = 2, epoch
	part := kmsg.NewFetchRequestTopicPartition()
	part.Partition, part.FetchOffset, part.PartitionMaxBytes = 0, offset, maxBytes
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic.Name, TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{part}}}
	return req
}

func TestReplicationProgressesWhileConsumersHoldResponseMemory(t *testing.T) {
	const (
		fetchBytes  = 8 << 20
		budget      = 2 * fetchBytes // 12 MiB for consumers, 4 MiB kept for followers
		connections = 4
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, epoch, topic := startWithTestFollower(t, ctx, budget)
	producer := n.Client(kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := bytes.Repeat([]byte("x"), 100<<10)
	produce := func(count int) int64 {
		t.Helper()
		var next int64
		for range count {
			r := producer.ProduceSync(ctx, &kgo.Record{Value: value})
			if err := r.FirstErr(); err != nil {
				t.Fatal(err)
			}
			next = r[0].Record.Offset + 1
		}
		return next
	}
	// replicaFetch fetches as broker 2 from offset: the records and the
	// high watermark answered.
	replicaFetch := func(offset int64) (int, int64) {
		t.Helper()
		p := rawRoundTrip(t, n.Addr, followerFetch(epoch, topic, offset, 1<<20)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("replica fetch from %d: error %d", offset, p.ErrorCode)
		}
		return len(p.RecordBatches), p.HighWatermark
	}

	// 12 MiB below the high watermark for the consumers to hold.
	end := produce((fetchBytes + 4<<20) / len(value))
	if _, hw := replicaFetch(end); hw != end {
		t.Fatalf("high watermark %d after the follower caught up, want %d", hw, end)
	}

	consumerFetch := kmsg.NewPtrFetchRequest()
	consumerFetch.Version, consumerFetch.ReplicaID, consumerFetch.MaxBytes, consumerFetch.MinBytes = 11, -1, fetchBytes, 1
	consumerFetch.MaxWaitMillis = 60_000 // those without room wait for the whole test
	consumerFetch.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{
		Partition: 0, FetchOffset: 0, PartitionMaxBytes: fetchBytes, CurrentLeaderEpoch: -1, LogStartOffset: -1,
	}}}}
	frame := requestFrame(consumerFetch, 7)
	dialer := net.Dialer{Control: smallReceiveBuffer}
	for range connections {
		conn, err := dialer.Dial("tcp", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range 3 {
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
	}
	for deadline := time.Now().Add(8 * time.Second); ; {
		_, holders, waiting := n.Server.ResponseMemory()
		if holders > 0 && waiting > 0 && holders+waiting == connections {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 8 s: %d responses hold response memory, %d Fetches wait; want the consumers' share used up", holders, waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}
	held, _, _ := n.Server.ResponseMemory()

	// A consumer that reads gets nothing while the share is used up.
	consumerFetch.MaxWaitMillis = 0
	if got := len(rawRoundTrip(t, n.Addr, consumerFetch).(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches); got != 0 {
		t.Fatalf("a consumer's Fetch got %d bytes of records with the consumers' share of response memory held (%d bytes)", got, held)
	}
	// The follower replicates what is produced now.
	newEnd := produce(3)
	if got, _ := replicaFetch(end); got == 0 {
		t.Fatalf("a follower's Fetch got no records with the consumers' share of response memory held (%d bytes)", held)
	}
	if _, hw := replicaFetch(newEnd); hw != newEnd {
		t.Fatalf("high watermark %d after the follower fetched up to %d, want %d", hw, newEnd, newEnd)
	}
}
