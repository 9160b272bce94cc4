package broker

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/authn"
)

// clientConn is one Kafka client connection. It has two goroutines: the
// reader decodes and handles requests one at a time, in arrival order (as
// Kafka does, so a producer's pipelined batches are appended in the order
// they were sent), and the writer sends the encoded responses in the same
// order. The reader can run ahead of the writer by up to cap(responses).
type clientConn struct {
	server   *Server
	listener *boundListener
	nc       net.Conn
	log      *slog.Logger // rate limited: a peer causes these lines
	// actsAs is who the connection acts as (principal): nil,
	// authn.Anonymous, until it authenticates (set by serve from a
	// verified client certificate on an SSL listener before any request
	// is read, or by the reader goroutine when SASL authentication
	// completes). Atomic: the server reads it too (ConnectionPrincipals
	// in tests), while the reader may be authenticating.
	actsAs    atomic.Pointer[authn.Principal]
	peer      brokerIdentity     // whether it is a broker (interbroker.go); reader goroutine only
	sasl      saslState          // SASL listeners: the handshake's progress
	responses chan responseFrame // encoded responses, in request order

	// ctx ends when the connection stops reading (or the server stops): it
	// ends a wait for request memory.
	ctx    context.Context
	cancel context.CancelFunc
	// releaseRequest gives the request in hand's bytes back to the
	// server's request memory (queued.max.request.bytes). Used by the
	// reader goroutine only (handlers run on it).
	releaseRequest func()

	// mute is how long the reader waits, once the response in hand is
	// queued, before it reads the next request: a client over its quota
	// is throttled (quota_throttle.go). Reader goroutine only.
	mute time.Duration

	stopOnce sync.Once
	stopping atomic.Bool // set by stopReading; the reader stops at the next request boundary
}

// maxQueuedResponses bounds how far request handling runs ahead of the
// socket writer: the next response can be built while one is being sent,
// but a client that does not read holds at most this many in memory (Kafka
// holds one).
const maxQueuedResponses = 1

// tlsHandshakeTimeout bounds a client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

func newClientConn(s *Server, l *boundListener, nc net.Conn) *clientConn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &clientConn{
		server:    s,
		listener:  l,
		nc:        nc,
		log:       s.peerLog.With("listener", l.Name, "remote", nc.RemoteAddr().String()),
		responses: make(chan responseFrame, maxQueuedResponses),
		ctx:       ctx,
		cancel:    cancel,
	}
}

// principal is who the connection acts as: authn.Anonymous until it
// authenticates.
func (c *clientConn) principal() authn.Principal {
	if p := c.actsAs.Load(); p != nil {
		return *p
	}
	return authn.Anonymous
}

// setPrincipal makes the connection act as p from its next request.
func (c *clientConn) setPrincipal(p authn.Principal) { c.actsAs.Store(&p) }

// releaseRequestMemory gives the bytes of the request in hand back to the
// server's request memory. The reader calls it once the request is
// handled; a handler that waits after it no longer needs the request's
// bytes (a Produce waiting for acks=all) calls it first, so waiting
// requests do not hold the memory other connections need to be read (a
// follower's Fetch among them).
func (c *clientConn) releaseRequestMemory() {
	if c.releaseRequest != nil {
		c.releaseRequest()
		c.releaseRequest = nil
	}
}

// stopReading makes the reader stop after the request it is handling; the
// writer then sends what is queued and closes the connection.
func (c *clientConn) stopReading() {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		c.cancel()
		c.nc.SetReadDeadline(time.Now())
	})
}

func (c *clientConn) serve() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The TLS handshake, bounded like an idle connection, on this
		// connection's goroutine; a client that fails it (an old TLS
		// version, no or an untrusted certificate with ssl.client.auth
		// required) is closed.
		c.nc.SetDeadline(time.Now().Add(min(c.server.cfg.IdleTimeout, tlsHandshakeTimeout)))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.nc.Close()
			c.cancel()
			c.log.Warn("closing client connection: TLS handshake failed", "err", err)
			return
		}
		c.nc.SetDeadline(time.Time{})
		if err := c.authenticateCertificate(tc.ConnectionState()); err != nil {
			c.nc.Close()
			c.cancel()
			c.log.Warn("closing client connection: its certificate is refused", "err", err)
			return
		}
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	reason := c.readLoop()
	c.releaseRequestMemory()
	c.cancel()
	close(c.responses)
	<-writerDone
	c.nc.Close()
	if reason != nil {
		c.log.Warn("closing client connection", "reason", reason)
	} else {
		c.log.Debug("client connection closed")
	}
}

// responseFrame is one encoded response and, when its buffers are
// borrowed (a Fetch's remote records in the tier's chunk buffers) or
// counted (its local records' room in queued.max.response.bytes), the
// release that gives them back once they are written or dropped.
type responseFrame struct {
	buffers net.Buffers
	release func() // may be nil
	// written, when set (a Fetch holding response memory), is closed by
	// the writer once the frame is written or dropped: the reader waits
	// for it before it reads the next request (queueResponse).
	written chan struct{}
}

// queueResponse hands a response to the writer. For one that holds
// response memory the reader then waits until it is written before it
// reads the next request, as Kafka mutes a connection until its response
// is sent: a client that does not read holds one Fetch response in memory,
// not one being written, one queued and one built. Other responses
// (Produce) are still handled while earlier ones are written. It returns
// false when the connection stops meanwhile.
func (c *clientConn) queueResponse(frame responseFrame) bool {
	c.responses <- frame
	if frame.written == nil {
		return true
	}
	select {
	case <-frame.written:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// writeLoop writes the responses in order and releases each frame once
// written, or dropped after a failed write; the reader closes responses
// when it stops, and every frame queued until then is released here.
func (c *clientConn) writeLoop() {
	var failed bool
	for frame := range c.responses {
		if !failed {
			c.nc.SetWriteDeadline(time.Now().Add(c.server.cfg.IdleTimeout))
			if err := writeFrame(c.nc, frame.buffers); err != nil {
				failed = true // then drain, so the reader never blocks
				c.log.Debug("write response failed", "err", err)
				c.nc.Close() // unblocks the reader
			}
		}
		if frame.release != nil {
			frame.release()
		}
		if frame.written != nil {
			close(frame.written)
		}
	}
}

// writeFrame sends one response frame. On a TCP connection
// net.Buffers.WriteTo is one writev; on a TLS connection it falls back to
// one Write per buffer, each its own TLS record and syscall, and a Fetch
// frame has two buffers per partition (encodeFetchFrame). There the
// buffers under coalesceLimit are copied together into a pooled buffer of
// writeBufferSize, written when full, and larger ones (record data) are
// written as they are, uncopied.
func writeFrame(nc net.Conn, frame net.Buffers) error {
	if _, ok := nc.(*tls.Conn); !ok {
		_, err := frame.WriteTo(nc)
		return err
	}
	bp := writeBuffers.Get().(*[]byte)
	defer writeBuffers.Put(bp)
	buf := (*bp)[:0]
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := nc.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, b := range frame {
		if len(b) >= coalesceLimit {
			if err := flush(); err != nil {
				return err
			}
			if _, err := nc.Write(b); err != nil {
				return err
			}
			continue
		}
		if len(buf)+len(b) > cap(buf) {
			if err := flush(); err != nil {
				return err
			}
		}
		buf = append(buf, b...)
	}
	return flush()
}

const (
	// coalesceLimit is the size from which a response buffer is written
	// to a TLS connection on its own rather than copied (one full TLS
	// record).
	coalesceLimit = 16 << 10
	// writeBufferSize is the size of the buffers small response pieces
	// are gathered in for a TLS connection.
	writeBufferSize = 64 << 10
)

// writeBuffers are the buffers of writeFrame (*[]byte of writeBufferSize
// capacity; they never grow).
var writeBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBufferSize)
	return &b
}}

// maxUnauthenticatedRequestBytes bounds a request frame on a SASL listener
// before the connection authenticates: Kafka's sasl.server.max.receive.size
// default.
const maxUnauthenticatedRequestBytes = 512 << 10

// errCloseConnection is returned by handlers that must end the connection
// after their (possibly absent) response, e.g. acks=0 produce errors.
var errCloseConnection = errors.New("broker: close connection")

// readLoop returns the reason the connection must close, or nil for a clean
// end (client closed, server stopping).
func (c *clientConn) readLoop() error {
	var sizeBuf [4]byte
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.server.cfg.IdleTimeout))
		// Checked after moving the deadline, so a stopReading that raced
		// with it is never lost: either its deadline or this check wins.
		if c.stopping.Load() {
			return nil
		}
		if _, err := io.ReadFull(c.nc, sizeBuf[:]); err != nil {
			return classifyReadError(c, err, true)
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		// The smallest request header is key, version, correlation id and
		// a null client id: 10 bytes.
		if size < 10 {
			return fmt.Errorf("request frame of %d bytes is too small to hold a request header", size)
		}
		if size > c.server.cfg.MaxRequestBytes {
			return fmt.Errorf("request frame of %d bytes exceeds socket.request.max.bytes (%d)", size, c.server.cfg.MaxRequestBytes)
		}
		if size > maxUnauthenticatedRequestBytes && c.listener.SecurityProtocol.SASL() && !c.sasl.authenticated {
			// As Kafka's sasl.server.max.receive.size: a client that has
			// not authenticated cannot hold the server's request memory.
			// (Not keyed on the principal: on SASL_SSL the TLS handshake
			// sets one, the certificate's or User:ANONYMOUS, before any
			// request.)
			return fmt.Errorf("request frame of %d bytes before SASL authentication exceeds %d bytes", size, maxUnauthenticatedRequestBytes)
		}
		// queued.max.request.bytes: room for the whole frame first, so
		// that while the server's request memory is full this socket is
		// not read (TCP pushes back on the client).
		release, err := c.server.requestMemory.acquire(c.ctx, int64(size))
		if err != nil {
			return nil // stopping
		}
		c.releaseRequest = release
		// Time spent waiting for memory is not the client's idleness. A
		// stopReading that came meanwhile keeps its deadline.
		c.nc.SetReadDeadline(time.Now().Add(c.server.cfg.IdleTimeout))
		if c.stopping.Load() {
			c.nc.SetReadDeadline(time.Now())
		}
		frame, err := c.server.frames.read(c.nc, int(size))
		if err != nil {
			if err := classifyReadError(c, err, false); err != nil {
				return fmt.Errorf("reading %d-byte request: %w", size, err)
			}
			return nil
		}
		response, err := c.handleFrame(frame)
		// The request is handled and its response encoded into buffers
		// of its own: nothing refers to the frame any more (framePool).
		c.server.frames.Put(frame)
		c.releaseRequestMemory()
		if err != nil {
			return err
		}
		if response.buffers != nil && !c.queueResponse(response) {
			return nil // stopping
		}
		if !c.waitUnmuted() {
			return nil // stopping
		}
	}
}

func classifyReadError(c *clientConn, err error, betweenRequests bool) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if c.server.ctx.Err() != nil {
			return nil // shutting down
		}
		if betweenRequests {
			c.log.Debug("closing idle connection", "idle_timeout", c.server.cfg.IdleTimeout)
			return nil
		}
		return errors.New("timed out in the middle of a request")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		if betweenRequests {
			return nil
		}
		return errors.New("truncated request: the client closed the connection mid-frame")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated request: the client closed the connection mid-frame")
	}
	return err
}

// requestHeader is a Kafka request header (v1, or v2 for flexible requests).
type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
	// frameSize is the request's size in bytes (without the size
	// prefix), what produce quotas count.
	frameSize int
}

// handleFrame decodes one request, runs its handler and returns the encoded
// response (no buffers when the request gets no response, as acks=0
// produce). An error closes the connection.
func (c *clientConn) handleFrame(frame []byte) (responseFrame, error) {
	if c.sasl.rawToken {
		buffers, err := c.handleRawToken(frame)
		return responseFrame{buffers: buffers}, err
	}
	h, api, req, err := decodeRequest(frame)
	h.frameSize = len(frame)
	if errors.Is(err, errUnsupportedAPIVersions) {
		return responseFrame{buffers: net.Buffers{c.encode(h, unsupportedAPIVersions(c.server))}}, nil
	}
	if err != nil {
		return responseFrame{}, err
	}
	if c.listener.SecurityProtocol.SASL() {
		if err := c.admitSASL(h); err != nil {
			return responseFrame{}, err
		}
	}
	if err := c.chargeRequestElements(h, req); err != nil {
		return responseFrame{}, err
	}
	start := time.Now()
	resp, err := api.handle(c, h, req)
	c.server.metrics.observeRequest(h.key, time.Since(start))
	if fetch, ok := resp.(*fetchResponse); ok && err != nil {
		fetch.release()
	}
	if err != nil {
		return responseFrame{}, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	if resp == nil {
		return responseFrame{}, nil
	}
	resp.SetVersion(h.version)
	switch fetch := resp.(type) {
	case *fetchResponse:
		frame := responseFrame{buffers: encodeFetchFrame(h.correlationID, fetch.FetchResponse, fetch.remote), release: fetch.release}
		if fetch.reserved.Size() > 0 {
			frame.written = make(chan struct{})
		}
		return frame, nil
	case *kmsg.FetchResponse:
		return responseFrame{buffers: encodeFetchFrame(h.correlationID, fetch, nil)}, nil
	}
	buf := c.encode(h, resp)
	if !resp.IsFlexible() && len(buf) > math.MaxInt16 {
		// It may hold a string too long for its int16 length.
		cut, err := fitResponseStrings(resp)
		if err != nil {
			return responseFrame{}, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
		}
		if cut {
			buf = c.encode(h, resp)
		}
	}
	if err := checkResponseSize(len(buf) - 4); err != nil {
		return responseFrame{}, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return responseFrame{buffers: net.Buffers{buf}}, nil
}

// errUnsupportedAPIVersions marks an ApiVersions request of a version this
// broker does not know: it is answered (v0), not closed.
var errUnsupportedAPIVersions = errors.New("broker: unsupported ApiVersions version")

// decodeRequest parses a request frame (without its size prefix): the
// header (v1, or v2 for flexible versions), the served API and the body.
// Any error means the connection must close, except
// errUnsupportedAPIVersions. It never panics, whatever the bytes.
func decodeRequest(frame []byte) (requestHeader, *api, kmsg.Request, error) {
	var h requestHeader
	if len(frame) < 10 {
		return h, nil, nil, fmt.Errorf("request frame of %d bytes is too small to hold a request header", len(frame))
	}
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	clientIDLen := int16(binary.BigEndian.Uint16(frame[8:]))
	body := frame[10:]
	if clientIDLen > 0 {
		if int(clientIDLen) > len(body) {
			return h, nil, nil, fmt.Errorf("request header: client id of %d bytes overruns the %d-byte frame", clientIDLen, len(frame))
		}
		h.clientID = string(body[:clientIDLen])
		body = body[clientIDLen:]
	} else if clientIDLen < -1 {
		return h, nil, nil, fmt.Errorf("request header: invalid client id length %d", clientIDLen)
	}

	api := apiFor(h.key)
	if api == nil {
		return h, nil, nil, fmt.Errorf("unknown api key %d (client %q)", h.key, h.clientID)
	}
	if h.version < api.minVersion || h.version > api.maxVersion {
		if h.key == apiKeyVersions {
			return h, api, nil, errUnsupportedAPIVersions
		}
		return h, nil, nil, fmt.Errorf("%s version %d is not supported (supported %d-%d, client %q)", kmsg.NameForKey(h.key), h.version, api.minVersion, api.maxVersion, h.clientID)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		n, ok := skipTaggedFields(body)
		if !ok {
			return h, nil, nil, fmt.Errorf("%s v%d: malformed request header tagged fields", kmsg.NameForKey(h.key), h.version)
		}
		body = body[n:]
	}
	if err := req.ReadFrom(body); err != nil {
		return h, nil, nil, fmt.Errorf("%s v%d: malformed request body: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return h, api, req, nil
}

// encode frames a response: size, correlation id, and for flexible versions
// an empty tagged-field section — except ApiVersions, whose response header
// is always v0 so that a client can parse it before it knows our versions.
// Its caller checks the size (checkResponseSize).
func (c *clientConn) encode(h requestHeader, resp kmsg.Response) []byte {
	buf := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(buf[4:], uint32(h.correlationID))
	if resp.IsFlexible() && h.key != apiKeyVersions {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf[0:], uint32(len(buf)-4))
	return buf
}

// checkResponseSize refuses a response frame of more bytes than its int32
// size prefix holds: its size would wrap and the client would read the
// rest as the next responses. The error closes the connection. (The
// request limits keep responses far below it: at most
// maxRequestElements entries, Fetch responses within fetch.max.bytes;
// what is left is a response entry of huge data, e.g. a group whose
// members' assignments total gigabytes, described several times.)
func checkResponseSize(size int) error {
	if size > math.MaxInt32 {
		return fmt.Errorf("response of %d bytes exceeds the largest frame (%d bytes)", size, math.MaxInt32)
	}
	return nil
}

// skipTaggedFields skips a tagged-field section: an unsigned varint count,
// then per field an unsigned varint tag, an unsigned varint size and the data.
func skipTaggedFields(b []byte) (int, bool) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, false
	}
	pos := n
	for i := uint64(0); i < count; i++ {
		_, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			return 0, false
		}
		pos += n
		size, n := binary.Uvarint(b[pos:])
		if n <= 0 || size > uint64(len(b)-pos-n) {
			return 0, false
		}
		pos += n + int(size)
	}
	return pos, true
}
