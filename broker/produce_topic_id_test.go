package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
)

// TestProduceByTopicID: Produce v13 names topics by id (KIP-516). The id
// of a topic appends to it, and the records fetch back by that id; an id
// the cluster does not know answers UNKNOWN_TOPIC_ID in the same request,
// without disturbing the other topic; each response topic carries its
// request topic's id.
func TestProduceByTopicID(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 1, nil)
	topic, ok := n.Store.State().Topic("t")
	if !ok {
		t.Fatal("topic t is not in the metadata")
	}
	unknownID := [16]byte{0xde, 0xad}
	max := kversion.Stable()
	max.SetMaxKeyVersion(kmsg.Produce.Int16(), 13)
	broker := n.Client(kgo.MaxVersions(max)).SeedBrokers()[0]
	batch := func(values ...string) []byte {
		records := make([]recordbatch.Record, len(values))
		for i, v := range values {
			records[i] = recordbatch.Record{Value: []byte(v), Timestamp: time.Now().UnixMilli()}
		}
		b, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	for _, id := range [][16]byte{topic.ID, unknownID} {
		rt := kmsg.NewProduceRequestTopic()
		rt.TopicID = id
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch("a", "b")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	var resp *kmsg.ProduceResponse
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp = request[*kmsg.ProduceResponse](t, broker, req)
		if len(resp.Topics) != 2 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.NotLeaderForPartition.Code || time.Now().After(deadline) {
			break // the partition's leadership may still be starting
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.Version != 13 {
		t.Fatalf("Produce sent as v%d, want v13", resp.Version)
	}
	if len(resp.Topics) != 2 || resp.Topics[0].TopicID != topic.ID || resp.Topics[1].TopicID != unknownID ||
		len(resp.Topics[0].Partitions) != 1 || len(resp.Topics[1].Partitions) != 1 {
		t.Fatalf("Produce v13 answered %+v, want t's and the unknown id's partition 0", resp.Topics)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("Produce v13 by t's id: %v at base offset %d, want offset 0", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := resp.Topics[1].Partitions[0]; p.ErrorCode != kerr.UnknownTopicID.Code || p.BaseOffset != -1 {
		t.Fatalf("Produce v13 by an unknown id: %v at base offset %d, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	fetched := fetchCommitted(t, broker, topic.ID, 0, 0)
	if fetched.ErrorCode != 0 {
		t.Fatalf("Fetch by t's id: %v", kerr.ErrorForCode(fetched.ErrorCode))
	}
	records, err := recordbatch.Records(fetched.RecordBatches)
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 || string(records[0].Value) != "a" || string(records[1].Value) != "b" || fetched.HighWatermark != 2 {
		t.Fatalf("fetched %d records (high watermark %d), want a and b", len(records), fetched.HighWatermark)
	}
}

// TestFranzGoProducesByTopicID: franz-go sends the highest Produce version
// both sides serve, v13 (topics by id), and its records land in the topic.
func TestFranzGoProducesByTopicID(t *testing.T) {
	n := brokertest.Start(t)
	createTopic(t, n.Client(), "t", 1, nil)
	var requests requestLog
	producer := n.Client(requests.opt(), kgo.DefaultProduceTopic("t"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, kgo.StringRecord("by id")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if produce := requests.versions("Produce"); len(produce) != 1 || !produce["v13"] {
		t.Fatalf("franz-go wrote Produce %v, want v13", produce)
	}
	topic, _ := n.Store.State().Topic("t")
	fetched := fetchCommitted(t, n.Client().SeedBrokers()[0], topic.ID, 0, 0)
	records, err := recordbatch.Records(fetched.RecordBatches)
	if err != nil || fetched.ErrorCode != 0 || len(records) != 1 || string(records[0].Value) != "by id" {
		t.Fatalf("fetched %v (%v, %v), want the record franz-go produced", records, kerr.ErrorForCode(fetched.ErrorCode), err)
	}
}
