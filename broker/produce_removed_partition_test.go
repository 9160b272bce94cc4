package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestAcksAllProduceFailsWhenItsTopicIsDeleted: an acks=all Produce
// waiting for its records to reach a follower that never fetches is
// answered at once when its topic is deleted meanwhile, with
// UNKNOWN_TOPIC_OR_PARTITION (Kafka's DelayedProduce completes once the
// partition is gone), not left to end at its timeout (REQUEST_TIMED_OUT),
// and never with success.
func TestAcksAllProduceFailsWhenItsTopicIsDeleted(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	metadatatest.RegisterBroker(t, n.Store, 2) // in the ISR, never fetches
	topic, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID, 2}},
		Configs: map[string]string{"min.insync.replicas": "2"}}) // broker 2 fenced later: never a success
	if err != nil {
		t.Fatal(err)
	}
	var p *partition.Partition
	for {
		if part := n.Server.OpenPartition("t", 0); part != nil && part.Leading() {
			p = part
			break
		}
		if ctx.Err() != nil {
			t.Fatal("partition t-0 not led here")
		}
		time.Sleep(10 * time.Millisecond)
	}

	b, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Value: []byte("v"), Timestamp: time.Now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 120_000 // far beyond the test's patience
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", TopicID: topic.ID, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: b}}}}
	type answer struct {
		resp kmsg.Response
		err  error
	}
	answered := make(chan answer, 1)
	cl := n.Client()
	go func() {
		resp, err := cl.Request(ctx, req)
		answered <- answer{resp, err}
	}()
	// The records are in the leader's log, not committed: the produce
	// waits for broker 2.
	for p.LogEndOffset() < 1 {
		if ctx.Err() != nil {
			t.Fatal("the produce was not appended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with the follower never fetching", hw)
	}

	if _, err := n.Store.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answered:
		if a.err != nil {
			t.Fatal(a.err)
		}
		got := a.resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("produce to a deleted topic answered %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(got.ErrorCode))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the acks=all produce was not answered within 5s of its topic's deletion")
	}
}
