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
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// kfakeLeader is a real Kafka-protocol leader (franz-go's kfake, over
// loopback) of partition 0 of topic "orders".
type kfakeLeader struct {
	*kfake.Cluster
	address   string
	producer  *kgo.Client
	ctx       context.Context
	topic     metadata.Topic
	id, epoch int32 // the leader's broker id and leader epoch
}

// startKfakeLeader starts a leader holding records records ("record-0",
// ...), each produced on its own; it is closed when the test ends.
func startKfakeLeader(t *testing.T, records int) *kfakeLeader {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	l := &kfakeLeader{Cluster: cluster, address: cluster.ListenAddrs()[0]}
	l.producer, err = kgo.NewClient(kgo.SeedBrokers(l.address), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.producer.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	l.ctx = ctx
	l.produce(t, 0, records)

	// The leader's view of the partition: its id, topic id, leader epoch.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, l.producer)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range md.Topics {
		if mt.Topic != nil && *mt.Topic == "orders" {
			l.topic = metadata.Topic{Name: "orders", ID: mt.TopicID}
			l.id, l.epoch = mt.Partitions[0].Leader, mt.Partitions[0].LeaderEpoch
		}
	}
	if l.topic.Name == "" {
		t.Fatal("no metadata for the topic")
	}
	return l
}

// produce produces records from to to-1, one at a time.
func (l *kfakeLeader) produce(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.producer.ProduceSync(l.ctx, &kgo.Record{Value: fmt.Appendf(nil, "record-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// follower opens a replica self of the partition, with the topic configs
// values, following l in l's epoch; it is closed when the test ends.
func (l *kfakeLeader) follower(t *testing.T, self int32, values topicconfig.Values) *partition.Partition {
	t.Helper()
	follower, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: l.topic.ID, Self: self,
		Values: values, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follower.Close() })
	follower.ApplyAssignment(metadata.Partition{Replicas: []int32{l.id, self}, Leader: l.id, LeaderEpoch: l.epoch, ISR: []int32{l.id, self}}, t0)
	return follower
}

// follow starts the fetchers of broker self, fetching follower from l;
// they are closed when the test ends.
func (l *kfakeLeader) follow(t *testing.T, self int32, follower *partition.Partition) *Fetchers {
	t.Helper()
	f := NewFetchers(FetchersConfig{NodeID: self, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	f.mu.Lock()
	rf, err := f.start(leaderKey{id: l.id, address: l.address})
	if err == nil {
		f.byLeader[rf.leader] = rf
	}
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	rf.assign(map[*partition.Partition]*followed{follower: {part: follower, topic: l.topic, epoch: l.epoch}})
	return f
}

// TestFetcherFollowsALeader: a fetcher follows a partition of a real
// Kafka-protocol leader (franz-go's kfake, over loopback): it fetches
// with its replica id and its fetch position (an empty log: no epoch to
// state, nothing to truncate) and
// appends the leader's batches as they are — same offsets, same bytes —
// taking the leader's high watermark, and keeps up with new records.
func TestFetcherFollowsALeader(t *testing.T) {
	leader := startKfakeLeader(t, 50)
	const self = 77
	follower := leader.follower(t, self, topicconfig.Values{})
	f := leader.follow(t, self, follower)

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
	leader.produce(t, 50, 80)
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
	leader.produce(t, 80, 81)
	time.Sleep(100 * time.Millisecond)
	if follower.LogEndOffset() != 80 {
		t.Fatalf("a closed fetcher fetched: end %d", follower.LogEndOffset())
	}
}
