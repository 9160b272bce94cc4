package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestClientsThatDoNotReadHoldBoundedFetchMemory: Fetch responses are read
// from the segment files into the heap (no zero-copy write, unlike Kafka's
// FileRecords), and a response is held until it is written — for
// connections.max.idle.ms (10 minutes by default) when the client does
// not read. Unbounded, N clients that each pipeline a few ~1 KiB Fetches
// of a topic with data and stop reading held N × 3 × fetch.max.bytes
// (the one being written, the one queued, the one built): ~165 MiB per
// connection by default, and max.connections.per.ip allows 1,000.
//
// Here 8 connections each pipeline 3 Fetches of 8 MiB and read nothing,
// with queued.max.response.bytes 16 MiB (12 MiB of it for consumers). A
// connection holds one response (it reads its next request only once the
// one holding response memory is written), the budget a few: the Fetches
// it has no room for wait for it, holding nothing. The heap the broker
// keeps for the clients stays under the budget, not 8 × 3 × 8 MiB.
func TestClientsThatDoNotReadHoldBoundedFetchMemory(t *testing.T) {
	const (
		topic       = "unread"
		fetchBytes  = 8 << 20
		budget      = 2 * fetchBytes
		connections = 8
		pipelined   = 3
	)
	n := brokertest.Start(t, func(c *broker.Config) { c.QueuedMaxResponseBytes = budget })
	cl := n.Client(kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, cl, topic, 1, nil)
	value := bytes.Repeat([]byte("x"), 100<<10)
	for range (fetchBytes + 4<<20) / len(value) {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	fetch := fetchFrom(topic, 0, fetchBytes)
	// Those without room wait for it for the whole test.
	fetch.MaxWaitMillis = 60_000
	frame := requestFrame(fetch, 7)

	if got := len(rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches); got < fetchBytes*3/4 {
		t.Fatalf("a Fetch of %d bytes returned %d", fetchBytes, got)
	}
	// The writer releases a frame just after writing it, so the client
	// may see the response first.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		held, holders, waiting := n.Server.ResponseMemory()
		if held == 0 && holders == 0 && waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("response memory after a Fetch was read: %d bytes held by %d, %d waiting; want none", held, holders, waiting)
		}
	}
	heldHeap, closeConnections := pipelineWithoutReading(t, n.Addr, connections, pipelined, func(int, int) []byte { return frame })
	defer closeConnections()
	// The broker builds the responses it has room for; then every
	// connection's Fetch holds its response (unwritten) or waits for
	// room. Unbounded, the heap passes the bound first.
	for deadline := time.Now().Add(8 * time.Second); ; {
		held, holders, waiting := n.Server.ResponseMemory()
		if held > budget {
			t.Fatalf("%d bytes of response memory held, over queued.max.response.bytes %d", held, budget)
		}
		heap := heldHeap()
		if heap > pipelined*fetchBytes {
			t.Fatalf("the broker holds %d MiB of Fetch responses for %d clients that do not read (%d MiB each); want the memory held for unread responses bounded across connections (at most %d MiB here)",
				heap>>20, connections, heap/connections>>20, pipelined*fetchBytes>>20)
		}
		if holders > 0 && waiting > 0 && holders+waiting == connections {
			t.Logf("%d connections that pipelined %d Fetches of %d bytes each and read nothing: %d responses hold %d MiB of response memory, %d Fetches wait for room; %d MiB of heap held",
				connections, pipelined, fetchBytes, holders, held>>20, waiting, heap>>20)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 8 s: %d responses hold %d bytes, %d Fetches wait; want every one of the %d connections' Fetch holding or waiting", holders, held, waiting, connections)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pipelineWithoutReading opens connections connections to addr, writes
// pipelined request frames on each (frame(c, i) is connection c's i-th)
// and reads nothing. heldHeap is the heap allocated since just before
// the connections opened, after a GC; closeConnections closes them.
func pipelineWithoutReading(t *testing.T, addr string, connections, pipelined int, frame func(connection, request int) []byte) (heldHeap func() uint64, closeConnections func()) {
	t.Helper()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// A small receive buffer, set before connecting: the kernel takes
	// little of the responses off the broker's hands.
	dialer := net.Dialer{Control: smallReceiveBuffer}
	var conns []net.Conn
	closeConnections = func() {
		for _, conn := range conns {
			conn.Close()
		}
	}
	for c := range connections {
		conn, err := dialer.Dial("tcp", addr)
		if err != nil {
			closeConnections()
			t.Fatal(err)
		}
		conns = append(conns, conn)
		for i := range pipelined {
			if _, err := conn.Write(frame(c, i)); err != nil {
				closeConnections()
				t.Fatal(err)
			}
		}
	}
	heldHeap = func() uint64 {
		runtime.GC()
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		return now.HeapAlloc - min(now.HeapAlloc, before.HeapAlloc)
	}
	return heldHeap, closeConnections
}

// smallReceiveBuffer is a net.Dialer Control giving the socket a 4 KiB
// receive buffer.
func smallReceiveBuffer(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
}

// rawRoundTrip sends req on a connection of its own and returns its response.
func rawRoundTrip(t *testing.T, addr string, req kmsg.Request) kmsg.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(requestFrame(req, 7)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body = body[4:] // correlation id
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}
