package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
)

// TestProduceReadsFramesIntoReusedBuffers: a stream of ~900 KiB produce
// requests on one connection is read into pooled buffers, so the broker's
// heap allocation per request is a small part of the frame. Before, every
// frame was read into fresh buffers of 64 KiB, doubling up to the frame's
// size (about twice the frame in new memory per request).
func TestProduceReadsFramesIntoReusedBuffers(t *testing.T) {
	const topic = "frames"
	n := brokertest.Start(t)
	ctx := context.Background()
	cl := n.Client()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	records := make([]recordbatch.Record, 9)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: time.Now().UnixMilli(), Value: bytes.Repeat([]byte{byte(i)}, 100<<10)}
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 8, 1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := rawFrame(0, 8, req.AppendTo(nil))

	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	response := make([]byte, 0, 4096)
	produce := func() {
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			t.Fatal(err)
		}
		response = response[:binary.BigEndian.Uint32(size[:])]
		if _, err := io.ReadFull(conn, response); err != nil {
			t.Fatal(err)
		}
		resp := kmsg.NewProduceResponse()
		resp.Version = 8
		if err := resp.ReadFrom(response[4:]); err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce: error code %d", code)
		}
	}
	for range 3 {
		produce() // warm up: the pool, the segment, the connection
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(runs, produce)
	runtime.ReadMemStats(&after)
	// AllocsPerRun runs once more to warm up.
	perRequest := float64(after.TotalAlloc-before.TotalAlloc) / (runs + 1)
	t.Logf("%d-byte produce frames: %.0f bytes and %.0f allocations per request (the whole process: broker and this client)", len(frame), perRequest, allocs)
	if perRequest > float64(len(frame))/4 {
		t.Fatalf("%.0f bytes allocated per %d-byte produce request; want under a quarter of the frame (frames read into reused buffers)", perRequest, len(frame))
	}
}
