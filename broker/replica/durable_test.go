package replica

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// TestDurableFollowerFetchOffsetIsFsynced: in durable mode
// (flush.messages=1) every fetch offset a follower sends its leader (a
// real Kafka-protocol leader, kfake, over loopback) is at most what the
// follower has fsynced when the leader reads it, and the follower still
// keeps up: all records replicated and fsynced.
func TestDurableFollowerFetchOffsetIsFsynced(t *testing.T) {
	leader, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	address := leader.ListenAddrs()[0]
	producer, err := kgo.NewClient(kgo.SeedBrokers(address), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "record-%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 40)
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, producer)
	if err != nil {
		t.Fatal(err)
	}
	var topic metadata.Topic
	var leaderID, epoch int32
	for _, mt := range md.Topics {
		if mt.Topic != nil && *mt.Topic == "orders" {
			topic = metadata.Topic{Name: "orders", ID: mt.TopicID}
			leaderID, epoch = mt.Partitions[0].Leader, mt.Partitions[0].LeaderEpoch
		}
	}
	const self = 77
	follower, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: topic.ID, Self: self,
		Values: topicconfig.Typed(nil, map[string]string{"flush.messages": "1"}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	follower.ApplyAssignment(metadata.Partition{Replicas: []int32{leaderID, self}, Leader: leaderID, LeaderEpoch: epoch, ISR: []int32{leaderID, self}}, t0)

	// The leader checks each replica fetch against the follower's fsynced
	// end as it receives it.
	var mu sync.Mutex
	var violations []string
	fetches := 0
	leader.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		synced := follower.SyncedEnd()
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				fetches++
				if rp.FetchOffset > synced {
					violations = append(violations, fmt.Sprintf("fetch offset %d, fsynced %d", rp.FetchOffset, synced))
				}
			}
		}
		return nil, nil, false
	})

	f := NewFetchers(FetchersConfig{NodeID: self, Logger: slog.New(slog.DiscardHandler)})
	defer f.Close()
	f.mu.Lock()
	rf, err := f.start(leaderKey{id: leaderID, address: address})
	if err == nil {
		f.byLeader[rf.leader] = rf
	}
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	rf.assign(map[*partition.Partition]*followed{follower: {part: follower, topic: topic, epoch: epoch}})
	caughtUp := func(end int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for follower.SyncedEnd() < end || follower.HighWatermark() < end {
			if time.Now().After(deadline) {
				t.Fatalf("follower at end %d, fsynced %d, high watermark %d; want %d", follower.LogEndOffset(), follower.SyncedEnd(), follower.HighWatermark(), end)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	caughtUp(40)
	produce(40, 70)
	caughtUp(70)
	f.Close()
	mu.Lock()
	defer mu.Unlock()
	if fetches < 2 || len(violations) > 0 {
		t.Fatalf("%d fetches; offsets past the fsynced end: %v", fetches, violations)
	}
}
