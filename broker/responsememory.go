package broker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/strata-log/strata/broker/segment"
)

// Defaults of the response-memory bound (queued.max.response.bytes).
const (
	// defaultQueuedMaxResponseBytes bounds the Fetch record bytes read
	// into memory for responses not yet written, over every connection.
	defaultQueuedMaxResponseBytes = 512 << 20
	// minQueuedMaxResponseBytes is the smallest queued.max.response.bytes
	// accepted.
	minQueuedMaxResponseBytes = 1 << 20
	// responseMinGrant is the least a Fetch with records to read takes
	// from the budget before it reads (less when it asks for less): with
	// less free it waits (or goes without), rather than read a sliver.
	// Most first batches fit in it (message.max.bytes is about 1 MiB).
	responseMinGrant = 1 << 20
)

// replicaShare is the part of queued.max.response.bytes that consumers
// cannot take: followers' Fetches may use the whole budget, consumers'
// all but this, so consumers that stop reading and hold their responses
// for connections.max.idle.ms never starve replication.
func replicaShare(capacity int64) int64 { return capacity / 4 }

// responseMemory applies queued.max.response.bytes: Fetch responses are
// read from the segment files into the heap (not sent with sendfile), and
// a response is held until the connection's writer has written it — for
// up to connections.max.idle.ms when the client does not read. Remote
// records are not copied, but the response holds the tier's chunk buffers
// they lie in as long. Before a Fetch reads records, remote or local, it
// reserves room for them here (what the response may carry, at most what
// is free), gives back what the read did not use at once, and the rest
// once the frame is written or dropped: one reservation per response, its
// remote reads' room first (readRemoteReserved), then its local records'
// (fillFetchReserved).
//
// Followers draw from the whole budget, consumers from all but
// replicaShare; each class waits in its own FIFO queue, so a consumer
// waiting for room its share does not have never holds up a follower
// behind it. A Fetch waits for room holding none (never part of a
// reservation, nor remote reads' chunk buffers), so Fetches cannot
// deadlock one another.
type responseMemory struct {
	capacity int64
	share    int64 // held back from consumers (replicaShare)
	metrics  *metrics
	// buffers lends the buffers Fetches read local records into (nil:
	// each read allocates); a reservation holds them until released.
	buffers segment.Buffers

	mu           sync.Mutex
	used         int64 // every reservation, followers' included
	consumerUsed int64 // consumers' reservations (part of used)
	waiters      [2][]*responseWaiter
	holders      int // reservations holding bytes (for tests)
}

// responseClass indexes responseMemory.waiters.
func responseClass(replica bool) int {
	if replica {
		return 1
	}
	return 0
}

type responseWaiter struct {
	need, want int64
	granted    int64
	ready      chan struct{} // closed once granted
}

func newResponseMemory(capacity int64, m *metrics, buffers segment.Buffers) *responseMemory {
	return &responseMemory{capacity: capacity, share: replicaShare(capacity), metrics: m, buffers: buffers}
}

// limit is the most a reservation of the class can hold.
func (r *responseMemory) limit(replica bool) int64 {
	if replica {
		return r.capacity
	}
	return r.capacity - r.share
}

func (r *responseMemory) roomLocked(replica bool) int64 {
	room := r.capacity - r.used
	if !replica {
		room = min(room, r.capacity-r.share-r.consumerUsed)
	}
	return max(room, 0)
}

func (r *responseMemory) addLocked(replica bool, n int64) {
	r.used += n
	if !replica {
		r.consumerUsed += n
	}
	r.metrics.queuedResponseBytes.Set(float64(r.used))
}

// grantLocked grants the waiters at the heads of the queues what fits
// (followers first).
func (r *responseMemory) grantLocked() {
	for class := 1; class >= 0; class-- {
		replica := class == 1
		for len(r.waiters[class]) > 0 {
			w := r.waiters[class][0]
			room := r.roomLocked(replica)
			if room < w.need {
				break
			}
			w.granted = min(w.want, room)
			r.addLocked(replica, w.granted)
			r.holders++
			r.waiters[class] = r.waiters[class][1:]
			close(w.ready)
		}
	}
}

// reserve takes between need and want bytes (both capped to the class's
// limit): what is free up to want as soon as at least need is, waiting in
// the class's queue until deadline (or ctx ends) when it is not. It
// returns nil when it got nothing: the Fetch answers without the records
// it was to read, local (fillFetchReserved) or remote
// (readRemoteReserved), and the client asks again.
func (r *responseMemory) reserve(ctx context.Context, replica bool, want, need int64, deadline time.Time) *responseReservation {
	want = min(want, r.limit(replica))
	need = max(min(need, want), 1)
	if want <= 0 {
		return nil
	}
	class := responseClass(replica)
	r.mu.Lock()
	if len(r.waiters[class]) == 0 {
		if room := r.roomLocked(replica); room >= need {
			size := min(want, room)
			r.addLocked(replica, size)
			r.holders++
			r.mu.Unlock()
			return &responseReservation{mem: r, replica: replica, size: size}
		}
	}
	r.metrics.responseMemoryWaits.Inc()
	wait := time.Until(deadline)
	if wait <= 0 || ctx.Err() != nil {
		r.mu.Unlock()
		return nil
	}
	w := &responseWaiter{need: need, want: want, ready: make(chan struct{})}
	r.waiters[class] = append(r.waiters[class], w)
	r.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return &responseReservation{mem: r, replica: replica, size: w.granted}
	case <-timer.C:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: keep it
		return &responseReservation{mem: r, replica: replica, size: w.granted}
	default:
	}
	if i := slices.Index(r.waiters[class], w); i >= 0 {
		r.waiters[class] = slices.Delete(r.waiters[class], i, i+1)
	}
	// It may have held up smaller waiters behind it.
	r.grantLocked()
	return nil
}

// held is the bytes reserved and the number of reservations holding
// them; waiting the Fetches waiting for room (tests).
func (r *responseMemory) held() (bytes int64, holders, waiting int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.used, r.holders, len(r.waiters[0]) + len(r.waiters[1])
}

// responseReservation is one Fetch response's room in responseMemory. It
// is used by one goroutine at a time: the handler, then the connection's
// writer (release, once the frame is written or dropped). A nil
// reservation holds nothing.
type responseReservation struct {
	mem     *responseMemory
	replica bool
	size    int64
	// held are the buffers the response's local records were read into
	// (mem.buffers), given back on release; heldBytes their capacity.
	held      [][]byte
	heldBytes int64
	// remote is the room kept for the Fetch's remote reads
	// (readRemoteReserved): their records, and the tier's chunk buffers
	// they lie in up to what was reserved. Local records take room
	// beyond it (localRoom).
	remote int64
}

// buffers lends the buffers local records are read into (nil: allocate).
func (v *responseReservation) buffers() segment.Buffers {
	if v == nil {
		return nil
	}
	return v.mem.buffers
}

// hold keeps b, read into from buffers(), until release.
func (v *responseReservation) hold(b []byte) {
	v.held = append(v.held, b)
	v.heldBytes += int64(cap(b))
}

// settle gives back what is held beyond the remote reads' room and the n
// bytes of local records read, but keeps room for the buffers holding
// them, up to what is held (a buffer is at most twice what was read into
// it: the pool's class rounding).
func (v *responseReservation) settle(n int64) {
	if v == nil {
		return
	}
	v.shrink(v.remote + max(n, min(v.size-v.remote, v.heldBytes)))
}

// settleRemote keeps room for remote reads of n bytes of records lying
// in chunk buffers of chunkBytes (up to what is held) and gives back the
// rest; the reservation holds no local records yet.
func (v *responseReservation) settleRemote(n, chunkBytes int64) {
	v.remote = max(n, min(v.size, chunkBytes))
	v.shrink(v.remote)
}

// localRoom is the room left for local records: what is held beyond the
// remote reads' room.
func (v *responseReservation) localRoom() int64 {
	if v == nil {
		return 0
	}
	return v.size - v.remote
}

// Size is the bytes held.
func (v *responseReservation) Size() int64 {
	if v == nil {
		return 0
	}
	return v.size
}

// shrink gives back what is held beyond n.
func (v *responseReservation) shrink(n int64) {
	if v == nil || n >= v.size {
		return
	}
	r := v.mem
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(v.replica, n-v.size)
	v.size = n
	if n == 0 {
		r.holders--
	}
	r.grantLocked()
}

// growUpTo adds to the reservation up to n bytes of what is free now,
// if no Fetch of its class waits for room (never waiting while holding).
func (v *responseReservation) growUpTo(n int64) {
	r := v.mem
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiters[responseClass(v.replica)]) > 0 {
		return
	}
	if n = min(n, r.roomLocked(v.replica)); n <= 0 {
		return
	}
	if v.size == 0 {
		r.holders++
	}
	r.addLocked(v.replica, n)
	v.size += n
}

// tryGrow adds n bytes to the reservation if they are free now and no
// Fetch of its class waits for room (never waiting while holding). With
// force it adds them in any case: a Fetch that has already waited for room
// for its whole first batch and still holds less (a batch over the class's
// limit) takes the rest over the bound rather than never make progress
// (KIP-74; the only way a reservation goes over it).
func (v *responseReservation) tryGrow(n int64, force bool) bool {
	r := v.mem
	r.mu.Lock()
	defer r.mu.Unlock()
	if !force && (len(r.waiters[responseClass(v.replica)]) > 0 || r.roomLocked(v.replica) < n) {
		return false
	}
	if v.size == 0 {
		r.holders++
	}
	r.addLocked(v.replica, n)
	v.size += n
	return true
}

// release gives the whole reservation back, and its buffers (again:
// nothing). Nothing may refer to the buffers' bytes any more.
func (v *responseReservation) release() {
	if v == nil {
		return
	}
	v.releaseLocal()
	v.remote = 0
	v.shrink(0)
}

// releaseLocal gives back the room and the buffers of the local records,
// keeping the remote reads' room. Nothing may refer to the buffers' bytes
// any more.
func (v *responseReservation) releaseLocal() {
	for i, b := range v.held {
		v.mem.buffers.Put(b)
		v.held[i] = nil
	}
	v.held, v.heldBytes = v.held[:0], 0
	v.shrink(v.remote)
}
