package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/recordbatch"
)

// countingConn counts the writes to the connection under a TLS one:
// each is a TLS record (or several) and a syscall.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// tlsPipe is a TLS connection (server side, over a countingConn) and its
// peer, handshaken.
func tlsPipe(t *testing.T) (server *tls.Conn, counter *countingConn, client *tls.Conn) {
	t.Helper()
	ca := authntest.NewCA(t, "ca")
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	counter = &countingConn{Conn: a}
	server = tls.Server(counter, &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, pkix.Name{CommonName: "broker"})}})
	client = tls.Client(b, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	errs := make(chan error, 1)
	go func() { errs <- client.HandshakeContext(context.Background()) }()
	if err := server.HandshakeContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	counter.writes.Store(0)
	return server, counter, client
}

// fetchFrame is a Fetch v11 response frame with a partition per element
// of sizes, holding that many record bytes.
func fetchFrame(sizes ...int) net.Buffers {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	topic := kmsg.NewFetchResponseTopic()
	topic.Topic = "t"
	for i, size := range sizes {
		p := kmsg.NewFetchResponseTopicPartition()
		p.Partition = int32(i)
		p.RecordBatches = bytes.Repeat([]byte{byte(i + 1)}, size)
		topic.Partitions = append(topic.Partitions, p)
	}
	resp.Topics = append(resp.Topics, topic)
	return encodeFetchFrame(7, resp, nil)
}

// sendOverTLS writes frame with writeFrame on a TLS connection and
// returns the number of writes under TLS, checking that the peer reads
// the frame's bytes.
func sendOverTLS(t *testing.T, frame net.Buffers) int64 {
	t.Helper()
	server, counter, client := tlsPipe(t)
	want := bytes.Join(frame, nil)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(want))
		io.ReadFull(client, b)
		got <- b
	}()
	if err := writeFrame(server, frame); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatal("the peer read other bytes than the frame's")
	}
	return counter.writes.Load()
}

// TestTLSFetchResponseCoalesced: over TLS a multi-partition Fetch
// response goes out in one write (one TLS record) rather than one per
// piece of the frame, as the plaintext path's single writev does.
func TestTLSFetchResponseCoalesced(t *testing.T) {
	frame := fetchFrame(50, 50, 50, 50, 50) // 11 pieces, ~500 bytes
	if len(frame) < 10 {
		t.Fatalf("the frame has %d pieces, want one per partition header and records", len(frame))
	}
	if writes := sendOverTLS(t, frame); writes != 1 {
		t.Fatalf("%d writes under TLS for a %d-piece Fetch response, want 1", writes, len(frame))
	}
	// Large record data goes as it is, between the coalesced pieces;
	// pieces beyond one buffer's worth go in more writes.
	sendOverTLS(t, fetchFrame(50, 3*coalesceLimit, 50, coalesceLimit-1, coalesceLimit-1, coalesceLimit-1, coalesceLimit-1, coalesceLimit-1, 50))
}

// TestTLSFetchRemoteBuffers: a remote read's records, in several chunk
// buffers, reach a TLS peer intact; small buffers are coalesced with the
// framing (one write for the lot), large ones go as they are.
func TestTLSFetchRemoteBuffers(t *testing.T) {
	frame := func(pieces ...int) net.Buffers {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(11)
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "t"
		p := kmsg.NewFetchResponseTopicPartition()
		p.RecordBatches = []byte{}
		topic.Partitions = append(topic.Partitions, p)
		resp.Topics = append(resp.Topics, topic)
		var buffers [][]byte
		for i, size := range pieces {
			buffers = append(buffers, bytes.Repeat([]byte{byte(i + 1)}, size))
		}
		return encodeFetchFrame(7, resp, fetchRecords{{0, 0}: recordbatch.NewBatches(buffers, nil)})
	}
	small := frame(100, 100, 100, 100, 100, 100, 100, 100)
	if len(small) != 10 {
		t.Fatalf("%d pieces, want the framing around each of the 8 buffers", len(small))
	}
	if writes := sendOverTLS(t, small); writes != 1 {
		t.Fatalf("%d writes under TLS for 8 small remote buffers, want 1", writes)
	}
	sendOverTLS(t, frame(coalesceLimit-1, 3*coalesceLimit, 10, coalesceLimit, 1))
}
