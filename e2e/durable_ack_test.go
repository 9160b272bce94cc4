//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDurableAcknowledgement: three nodes started with the broker default
// --log-flush-interval-messages 1 (the durable mode: acknowledged after
// fsync on every in-sync replica). acks=all and acks=1 producers on an RF=3
// topic are answered, a consumer group commits its offsets (the offsets
// topic follows the broker default), and everything acknowledged is read
// back at its offset, the committed offsets as committed. The power-loss
// half of the promise is the nemesis' (lost page cache); this checks that
// the waits the mode adds are answered through the real processes.
func TestDurableAcknowledgement(t *testing.T) {
	c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
		return "", []string{"--log-flush-interval-messages", "1"}
	})
	adm := c.admin()
	ctx := testContext(t, 2*time.Minute)
	topic := uniqueTopic(t)
	if resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := configs.On(topic, nil); err != nil || !hasConfig(v.Configs, "flush.messages", "1") {
		t.Fatalf("%s: flush.messages is not the broker default 1: %+v %v", topic, v.Configs, err)
	}

	acked := map[string]int64{} // value → offset, per partition below
	partitionOf := map[string]int32{}
	for _, run := range []struct {
		name string
		acks kgo.Acks
	}{{"all", kgo.AllISRAcks()}, {"1", kgo.LeaderAck()}} {
		opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(run.acks), kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}
		if run.name == "1" {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
		producer := c.client(t, opts...)
		records := make([]*kgo.Record, 1000)
		for i := range records {
			records[i] = &kgo.Record{Value: fmt.Appendf(nil, "acks=%s-%04d", run.name, i)}
		}
		results := producer.ProduceSync(ctx, records...)
		if err := results.FirstErr(); err != nil {
			t.Fatalf("acks=%s: %v", run.name, err)
		}
		for _, r := range results {
			acked[string(r.Record.Value)] = r.Record.Offset
			partitionOf[string(r.Record.Value)] = r.Record.Partition
		}
	}

	group := "durable-" + topic
	consumer := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	seen := map[string]bool{}
	for len(seen) < len(acked) {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d acknowledged records", len(seen), len(acked))
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		for _, r := range fetches.Records() {
			v := string(r.Value)
			offset, ok := acked[v]
			switch {
			case !ok:
				t.Fatalf("record %q was never acknowledged", v)
			case seen[v]:
				t.Fatalf("record %q read twice", v)
			case r.Partition != partitionOf[v] || r.Offset != offset:
				t.Fatalf("record %q at %d/%d, acknowledged at %d/%d", v, r.Partition, r.Offset, partitionOf[v], offset)
			}
			seen[v] = true
		}
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	// The offsets topic (created by the group's first use) follows the
	// broker default too: commits are answered once fsynced on its ISR.
	offsetsConfigs, err := adm.DescribeTopicConfigs(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := offsetsConfigs.On("__consumer_offsets", nil); err != nil || !hasConfig(v.Configs, "flush.messages", "1") {
		t.Fatalf("__consumer_offsets: flush.messages is not the broker default 1: %+v %v", v.Configs, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(end kadm.ListedOffset) {
		got, ok := committed.Lookup(topic, end.Partition)
		if !ok || got.At != end.Offset {
			t.Errorf("partition %d: committed %+v, want the end offset %d", end.Partition, got, end.Offset)
		}
	})
}

func hasConfig(configs []kadm.Config, name, value string) bool {
	for _, c := range configs {
		if c.Key == name && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}
