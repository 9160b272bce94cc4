package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestDiskPressureMutesConnection: from 90% of --local-disk-limit-bytes a
// produce is answered with a throttle time, and the connection is muted
// for that long, as a client over its quota is (KIP-219): a client that
// ignores throttle_time_ms is held back too.
func TestDiskPressureMutesConnection(t *testing.T) {
	const limit = 2000
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) {
		c.Quotas.Clock = clock
		c.LocalDiskLimit = limit
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer := n.Client(kgo.DefaultProduceTopic("pressed"), kgo.AllowAutoTopicCreation())
	// Small batches (well under 10% of the limit each) until the local
	// log holds between 90% and 100% of the limit.
	for {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 50)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if p := n.Server.OpenPartition("pressed", 0); p != nil && p.Size()*10 >= limit*9 {
			if p.Size() >= limit {
				t.Fatalf("the log holds %d bytes, past the %d-byte limit", p.Size(), limit)
			}
			break
		}
	}

	raw := dialRaw(t, n.Addr)
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(7)
	produce.Acks, produce.TimeoutMillis = 1, 5000
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "no-such-topic" // adds no bytes: only the throttle is looked at
	topic.Partitions = append(topic.Partitions, kmsg.NewProduceRequestTopicPartition())
	produce.Topics = append(produce.Topics, topic)
	// The broker sums its logs' sizes each second: wait until it has.
	var throttle time.Duration
	for throttle == 0 {
		if ctx.Err() != nil {
			t.Fatal("no throttle time while the local logs are over 90% of the limit")
		}
		raw.send(produce)
		resp := kmsg.NewPtrProduceResponse()
		if err := raw.receive(resp, 7); err != nil {
			t.Fatal(err)
		}
		throttle = time.Duration(resp.ThrottleMillis) * time.Millisecond
	}
	if mute := clock.awaitMute(t); mute.Truncate(time.Millisecond) != throttle {
		t.Fatalf("muted for %s, want the %s throttle time", mute, throttle)
	}
	clock.release <- clock.now.Add(throttle)
	// Unmuted: the connection is served again.
	if err := raw.roundTrip(kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrApiVersionsResponse()); err != nil {
		t.Fatalf("no response once the mute ended: %v", err)
	}
}
