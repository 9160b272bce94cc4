package broker_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, epoch, topic := startWithTestFollower(t, ctx, budget)
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

	req := followerFetch(epoch, topic, 0, 4<<20)
	req.MinBytes, req.MaxWaitMillis = 1, 200
	p := rawRoundTrip(t, n.Addr, req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		held, _, _ := n.Server.ResponseMemory()
		t.Fatalf("a follower's Fetch with the followers' share (%d bytes) free and consumers holding theirs: error %d, %d bytes of records; want records (held %d)",
			budget/4, p.ErrorCode, len(p.RecordBatches), held)
	}
	// The writer releases a frame just after writing it, so the client
	// may see the response first.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		held, _, _ := n.Server.ResponseMemory()
		if held == budget-budget/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of response memory held after the follower's response was written, want the consumers' %d", held, budget-budget/4)
		}
	}
}
