package broker_test

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestSASLUnauthenticatedLargeFramesDoNotStarveOthers: connections that
// have not authenticated announce 100 MB frames (socket.request.max.bytes)
// and then send nothing. Kafka bounds a frame before authentication
// (sasl.server.max.receive.size, 512 KiB) and closes the connection; here
// they must not hold the server's request memory
// (queued.max.request.bytes) so that an authenticated client is no longer
// read.
func TestSASLUnauthenticatedLargeFramesDoNotStarveOthers(t *testing.T) {
	n := startSASL(t)
	for i := 0; i < 6; i++ {
		c, err := net.Dial("tcp", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var prefix [4]byte
		binary.BigEndian.PutUint32(prefix[:], 100<<20)
		if _, err := c.Write(prefix[:]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := n.Client(kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("an authenticated client while 6 unauthenticated connections announce 100 MB frames: %v", err)
	}
}
