package broker_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestOversizedFirstBatchWaitsForResponseMemory: the first batch of a
// Fetch is returned whole even when larger than its limits (KIP-74), but
// not past queued.max.response.bytes: a Fetch whose first batch is larger
// than the room free gives back what it took and waits for room for the
// whole batch (holding nothing), answered without records at its max
// wait; once room is given back, it gets the batch.
func TestOversizedFirstBatchWaitsForResponseMemory(t *testing.T) {
	const (
		topic  = "oversized"
		budget = 16 << 20 // 12 MiB for consumers
	)
	n := brokertest.Start(t, func(c *broker.Config) { c.QueuedMaxResponseBytes = budget })
	cl := n.Client(kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, cl, topic, 1, map[string]string{"max.message.bytes": "16777216"})
	for _, size := range []int{8 << 20, 6 << 20} { // offsets 0 and 1
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte("x"), size)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	checkOversizedFirstBatchWaits(t, n, topic, budget, "batch", 8*time.Second)
}

// checkOversizedFirstBatchWaits checks, on n with queued.max.response.bytes
// budget (16 MiB), that a Fetch of topic partition 0 whose first batch (a
// batch of kind, e.g. "remote batch") is larger than the room free waits
// for room for the whole batch, holding nothing, and is answered without
// records at its max wait, then gets the batch once room is given back:
// offset 0 holds an 8 MiB batch, offset 1 a 6 MiB one. within is how long
// the response to a client that does not read may take to hold its batch,
// and the room to come back once that client goes.
func checkOversizedFirstBatchWaits(t *testing.T, n *brokertest.Node, topic string, budget int64, kind string, within time.Duration) {
	t.Helper()
	fetch := func(offset int64, maxWait int32) *kmsg.FetchRequest {
		req := fetchFrom(topic, offset, 1<<10)
		req.MaxWaitMillis = maxWait
		return req
	}

	// A client that does not read holds the 8 MiB batch at offset 0.
	dialer := net.Dialer{Control: smallReceiveBuffer}
	conn, err := dialer.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(requestFrame(fetch(0, 0), 7)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(within); ; {
		if held, holders, _ := n.Server.ResponseMemory(); holders == 1 && held > 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			held, holders, waiting := n.Server.ResponseMemory()
			t.Fatalf("the response to the client that does not read never held room for its 8 MiB %s: %d bytes held by %d, %d waiting", kind, held, holders, waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Under 4 MiB free for consumers: the 6 MiB batch at offset 1 waits
	// for room the Fetch's max wait, then is answered without records.
	p := rawRoundTrip(t, n.Addr, fetch(1, 200)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Fatalf("Fetch of a 6 MiB first %s with under 4 MiB of response memory free: error %d, %d bytes; want no error and no records", kind, p.ErrorCode, len(p.RecordBatches))
	}
	if held, _, _ := n.Server.ResponseMemory(); held > budget-budget/4 {
		t.Fatalf("%d bytes of response memory held, over the consumers' share", held)
	}

	// The client goes: its write fails, its room comes back.
	conn.Close()
	for deadline := time.Now().Add(within); ; {
		if held, _, _ := n.Server.ResponseMemory(); held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("response memory not given back after the client closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p = rawRoundTrip(t, n.Addr, fetch(1, 5000)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) < 6<<20 {
		t.Fatalf("Fetch of a 6 MiB first %s with the room free: error %d, %d bytes; want the whole batch", kind, p.ErrorCode, len(p.RecordBatches))
	}
}
