package replica

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// TestFetcherFollowsALeader: a fetcher follows a partition of a real
// Kafka-protocol leader (franz-go's kfake, over loopback): it asks
// OffsetForLeaderEpoch first, then fetches with its replica id and
// appends the leader's batches as they are — same offsets, same bytes —
// taking the leader's high watermark, and keeps up with new records.
func TestFetcherFollowsALeader(t *testing.T) {
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
	produce(0, 50)

	// The leader's view of the partition: its id, topic id, leader epoch.
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
	if topic.Name == "" {
		t.Fatal("no metadata for the topic")
	}

	const self = 77
	follower, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: topic.ID, Self: self, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	follower.ApplyAssignment(metadata.Partition{Replicas: []int32{leaderID, self}, Leader: leaderID, LeaderEpoch: epoch, ISR: []int32{leaderID, self}}, t0)

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
		for follower.LogEndOffset() < end || follower.HighWatermark() < end {
			if time.Now().After(deadline) {
				t.Fatalf("follower at end %d, high watermark %d; want %d", follower.LogEndOffset(), follower.HighWatermark(), end)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	caughtUp(50)
	produce(50, 80)
	caughtUp(80)

	// Same records at the same offsets as the leader serves them.
	data, err := follower.Read(0, 1<<20, 80, true)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	var values [][]byte
	spans, err := recordbatch.Split(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range spans {
		records, err := recordbatch.Records(data[sp.Position : sp.Position+sp.Length])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			offsets = append(offsets, r.Offset)
			values = append(values, r.Value)
		}
	}
	if len(values) != 80 {
		t.Fatalf("follower holds %d records, want 80", len(values))
	}
	for i := range values {
		if offsets[i] != int64(i) || !bytes.Equal(values[i], fmt.Appendf(nil, "record-%d", i)) {
			t.Fatalf("record %d at offset %d: %q", i, offsets[i], values[i])
		}
	}

	// Close stops the fetcher goroutines.
	f.Close()
	produce(80, 81)
	time.Sleep(100 * time.Millisecond)
	if follower.LogEndOffset() != 80 {
		t.Fatalf("a closed fetcher fetched: end %d", follower.LogEndOffset())
	}
}
