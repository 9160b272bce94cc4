package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// fetchFrom is a consumer's Fetch (v11) of one partition from offset.
func fetchFrom(topic string, offset int64, maxBytes int32) *kmsg.FetchRequest {
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.ReplicaID, fetch.MaxBytes, fetch.MinBytes, fetch.MaxWaitMillis = 11, -1, maxBytes, 1, 500
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
		Partition: 0, FetchOffset: offset, PartitionMaxBytes: maxBytes, CurrentLeaderEpoch: -1, LogStartOffset: -1,
	}}}}
	return fetch
}

// produceFilled produces count records of size bytes, record i filled with
// byte i, in batches of one record.
func produceFilled(t *testing.T, n *brokertest.Node, topic string, count, size int) {
	t.Helper()
	cl := n.Client(kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	defer cl.Close()
	createTopic(t, cl, topic, 1, nil)
	for i := range count {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte{byte(i)}, size)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitUnreadResponseHolds waits until n's response memory holds at least
// atLeast bytes: those of a response its client does not read.
func waitUnreadResponseHolds(t *testing.T, n *brokertest.Node, atLeast int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for held, _, _ := n.Server.ResponseMemory(); held < atLeast; held, _, _ = n.Server.ResponseMemory() {
		if time.Now().After(deadline) {
			t.Fatalf("the unread Fetch holds %d bytes of response memory, want %d", held, atLeast)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitResponsesReleased waits until no Fetch response holds response
// memory: every response written has given its buffers back.
func waitResponsesReleased(t *testing.T, n *brokertest.Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, holders, _ := n.Server.ResponseMemory()
		if held == 0 && holders == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("response memory still held after the responses were read: %d bytes by %d", held, holders)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFetchReadsLocalRecordsIntoReusedBuffers: a Fetch reads a partition's
// records into a buffer the broker keeps once the response is written,
// and the next Fetch reads into that buffer again, instead of allocating
// (and zeroing) a new one per read — about a quarter of a local consume's
// broker CPU (docs/performance.md, "local reads").
func TestFetchReadsLocalRecordsIntoReusedBuffers(t *testing.T) {
	const topic = "reused"
	n := brokertest.Start(t)
	produceFilled(t, n, topic, 24, 100<<10) // 2.4 MiB
	waitResponsesReleased(t, n)
	before := n.Server.IdleBufferBytes()

	fetch := fetchFrom(topic, 0, 1<<20)
	first := rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	if len(first) < 512<<10 {
		t.Fatalf("a Fetch of 1 MiB returned %d bytes", len(first))
	}
	waitResponsesReleased(t, n)
	afterFirst := n.Server.IdleBufferBytes()
	if afterFirst-before != 1<<20 {
		t.Fatalf("idle buffers went from %d to %d bytes after a 1 MiB Fetch was written: want its 1 MiB read buffer kept", before, afterFirst)
	}
	for range 3 {
		again := rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
		if !bytes.Equal(again, first) {
			t.Fatal("the same Fetch returned other bytes")
		}
		waitResponsesReleased(t, n)
		if idle := n.Server.IdleBufferBytes(); idle != afterFirst {
			t.Fatalf("idle buffers %d bytes after another Fetch, %d after the first: the read buffer was not reused", idle, afterFirst)
		}
	}
}

// TestFetchBuffersHeldUntilResponseWritten: a Fetch response refers to its
// read buffers until the connection has written it, however long the
// client takes to read. With every buffer given back overwritten
// (ScribbleReleasedBuffers), a response held by a client that does not
// read while other consumers read the same records through the same
// buffers comes out byte for byte as a fresh Fetch of the same offsets.
func TestFetchBuffersHeldUntilResponseWritten(t *testing.T) {
	const (
		topic = "held"
		count = 40
		size  = 100 << 10
	)
	n := brokertest.Start(t)
	n.Server.ScribbleReleasedBuffers()
	produceFilled(t, n, topic, count, size)

	// A client that sends a Fetch and does not read the response: the
	// broker holds it, partly written.
	slow := fetchFrom(topic, 0, 8<<20)
	dialer := net.Dialer{Control: smallReceiveBuffer}
	conn, err := dialer.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(requestFrame(slow, 9)); err != nil {
		t.Fatal(err)
	}
	waitUnreadResponseHolds(t, n, 1<<20)

	// Other consumers read the whole topic meanwhile, twice, through
	// the broker's buffers (each given back scribbled once written).
	for range 2 {
		cl := n.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}), kgo.FetchMaxBytes(1<<20), kgo.FetchMaxPartitionBytes(1<<20))
		for seen := 0; seen < count; {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			fetches := cl.PollFetches(ctx)
			cancel()
			if err := fetches.Err(); err != nil {
				t.Fatal(err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				if want := bytes.Repeat([]byte{byte(r.Offset)}, size); !bytes.Equal(r.Value, want) {
					t.Fatalf("record %d read back with other bytes", r.Offset)
				}
				seen++
			})
		}
		cl.Close()
	}

	// Now the slow client reads its response.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var sizeBuf [4]byte
	if _, err := io.ReadFull(conn, sizeBuf[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(sizeBuf[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(slow.Version)
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	got := resp.Topics[0].Partitions[0].RecordBatches
	want := rawRoundTrip(t, n.Addr, slow).(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	if len(got) < count*size || !bytes.Equal(got, want) {
		t.Fatalf("the response held while other Fetches ran has %d bytes, equal to a fresh read of %d bytes: %v", len(got), len(want), bytes.Equal(got, want))
	}
}
