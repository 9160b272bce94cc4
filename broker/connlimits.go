package broker

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/strata-log/strata/internal/fdlimit"
)

// Defaults of the connection and request-memory bounds. Kafka leaves them
// unlimited; a broker that anyone can connect to needs a bound below what
// kills it (file descriptors, memory).
const (
	// defaultMaxConnections is max.connections when the file-descriptor
	// limit allows it: far above what a broker serves in practice.
	defaultMaxConnections = 10000
	// defaultMaxConnectionsPerIP is max.connections.per.ip: one host
	// cannot take every slot.
	defaultMaxConnectionsPerIP = 1000
	// defaultQueuedMaxRequestBytes is queued.max.request.bytes: request
	// bytes read into memory and not yet handled, over every connection.
	defaultQueuedMaxRequestBytes = 512 << 20
)

// defaultMaxConnectionsFor is max.connections by default: 10,000, or a
// quarter of the file-descriptor limit when that is lower, so connections
// alone never use up the descriptors that partitions and the controller
// need.
func defaultMaxConnectionsFor(fileLimit uint64, known bool) int {
	if !known || fileLimit/4 >= defaultMaxConnections {
		return defaultMaxConnections
	}
	return max(int(fileLimit/4), 1)
}

func maxConnectionsByDefault() int {
	limit, ok := fdlimit.Limit()
	return defaultMaxConnectionsFor(limit, ok)
}

// connectionLimits applies max.connections and max.connections.per.ip, as
// Kafka does: past max.connections the accept loops stop accepting (new
// connections wait in the kernel's backlog) until a connection closes; a
// connection past the per-address limit is closed as soon as it is
// accepted.
type connectionLimits struct {
	// slots holds a token per connection counted against max.connections.
	slots *semaphore.Weighted
	perIP int
	open  atomic.Int64 // connections holding a slot

	mu   sync.Mutex // guards byIP
	byIP map[netip.Addr]int
}

func newConnectionLimits(maxConnections, perIP int) *connectionLimits {
	return &connectionLimits{
		slots: semaphore.NewWeighted(int64(maxConnections)),
		perIP: perIP,
		byIP:  make(map[netip.Addr]int),
	}
}

// waitForSlot blocks until a connection may be accepted, calling onWait
// first when it has to wait. It fails only when ctx ends.
func (l *connectionLimits) waitForSlot(ctx context.Context, onWait func()) error {
	if !l.slots.TryAcquire(1) {
		onWait()
		if err := l.slots.Acquire(ctx, 1); err != nil {
			return err
		}
	}
	l.open.Add(1)
	return nil
}

func (l *connectionLimits) releaseSlot() {
	l.open.Add(-1)
	l.slots.Release(1)
}

// admit counts a new connection from addr, or refuses it when addr has
// max.connections.per.ip open already.
func (l *connectionLimits) admit(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[addr] >= l.perIP {
		return false
	}
	l.byIP[addr]++
	return true
}

func (l *connectionLimits) leave(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[addr] <= 1 {
		delete(l.byIP, addr)
		return
	}
	l.byIP[addr]--
}

// remoteAddr is the address a connection comes from, for the per-address
// limit (IPv4-mapped IPv6 addresses count as their IPv4 address).
func remoteAddr(nc net.Conn) netip.Addr {
	if tcp, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if addr, ok := netip.AddrFromSlice(tcp.IP); ok {
			return addr.Unmap()
		}
	}
	addr, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return addr.Addr().Unmap()
}

// requestMemory applies queued.max.request.bytes: a connection reads a
// request only once the pool holds room for the whole frame (its size
// comes first), and gives the room back when the request has been
// handled. While the pool is full, connections stop reading their sockets
// — backpressure through TCP, not errors — in the order they asked (a
// large request is not starved by small ones). Reserving the whole frame
// before reading it, as Kafka's memory pool does, means a connection
// never waits for room while holding part of a frame, so connections
// cannot deadlock each other.
type requestMemory struct {
	capacity int64
	pool     *semaphore.Weighted
	metrics  *metrics
}

func newRequestMemory(capacity int64, m *metrics) *requestMemory {
	return &requestMemory{capacity: capacity, pool: semaphore.NewWeighted(capacity), metrics: m}
}

// acquire waits until size bytes can be queued and returns the function
// that gives them back (idempotent). It fails only when ctx ends.
func (r *requestMemory) acquire(ctx context.Context, size int64) (func(), error) {
	// Validate keeps socket.request.max.bytes within the pool; the cap
	// only guards against a frame the pool could never hold.
	size = min(size, r.capacity)
	if !r.pool.TryAcquire(size) {
		r.metrics.requestMemoryWaits.Inc()
		if err := r.pool.Acquire(ctx, size); err != nil {
			return nil, err
		}
	}
	r.metrics.queuedRequestBytes.Add(float64(size))
	var once sync.Once
	return func() {
		once.Do(func() {
			r.metrics.queuedRequestBytes.Sub(float64(size))
			r.pool.Release(size)
		})
	}, nil
}

// extend trades a reservation of held bytes, given back by release, for
// one of total bytes (a request whose handling needs more than its frame:
// request_elements.go) and returns the function that gives the total
// back. It takes the difference if the pool has it now; otherwise it
// gives the held bytes back and waits for the total as one reservation —
// never waiting while holding part of it, so connections cannot deadlock
// each other (the frame already read is unaccounted while it waits: one
// frame per connection at most). On error (ctx ended) nothing is held.
func (r *requestMemory) extend(ctx context.Context, release func(), held, total int64) (func(), error) {
	held, total = min(held, r.capacity), min(total, r.capacity)
	if total <= held {
		return release, nil
	}
	if more := total - held; r.pool.TryAcquire(more) {
		r.metrics.queuedRequestBytes.Add(float64(more))
		var once sync.Once
		return func() {
			once.Do(func() {
				release()
				r.metrics.queuedRequestBytes.Sub(float64(more))
				r.pool.Release(more)
			})
		}, nil
	}
	release()
	return r.acquire(ctx, total)
}
