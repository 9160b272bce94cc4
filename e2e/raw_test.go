//go:build e2e

package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka framing directly, for requests no well-behaved
// client would send.
type rawConn struct {
	tb   testing.TB
	conn net.Conn
	corr int32
}

func dialRaw(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawConn{tb: tb, conn: c}
}

// send writes a request at its set version.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.tb.Helper()
	r.corr++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("strata-e2e")).AppendRequest(nil, req, r.corr)
	r.write(frame)
	return r.corr
}

func (r *rawConn) write(b []byte) {
	r.tb.Helper()
	r.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.conn.Write(b); err != nil {
		r.tb.Fatalf("write: %v", err)
	}
}

// readFrame reads one response frame: correlation id and the rest.
func (r *rawConn) readFrame() (int32, []byte, error) {
	r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.conn, size[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return 0, nil, errors.New("bad response size")
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.conn, buf); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(buf)), buf[4:], nil
}

// roundTrip sends req and decodes its response.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.tb.Helper()
	corr := r.send(req)
	got, body, err := r.readFrame()
	if err != nil {
		r.tb.Fatalf("%s: read response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got != corr {
		r.tb.Fatalf("correlation id %d, want %d", got, corr)
	}
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:] // empty tagged fields of response header v1
	}
	if err := resp.ReadFrom(body); err != nil {
		r.tb.Fatalf("%s: decode response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// expectClosed asserts that the broker closes the connection.
func (r *rawConn) expectClosed() {
	r.tb.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	_, err := r.conn.Read(buf)
	if err == nil {
		r.tb.Fatal("connection still open: got a byte, want a close")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.tb.Fatal("connection still open after 10s, want a close")
	}
}
