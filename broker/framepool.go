package broker

import (
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
)

// framePool holds the buffers request frames are read into, and those a
// Fetch reads local records into (segment.Buffers), by size class (powers
// of two from minFrameClass), so that a steady stream of produce requests
// reads each frame, and of Fetches each partition's records, into memory
// the broker already has instead of a new zeroed buffer: on this kind of
// VM fresh heap pages cost more CPU than the bytes they receive
// (docs/performance.md, "frames" and "local reads").
//
// A Fetch's buffers are held by its response's reservation in the response
// memory (responseReservation.hold) and put back when it is released: once
// the response is written or dropped, or when the Fetch drops what it read
// to wait; the response refers to their bytes until then (its records are
// written from them as they are, encodeFetchFrame).
//
// A frame is handed out by read and given back by Put once its request is
// handled: the reader goroutine puts it after handleFrame returns, when the
// response is encoded (its own buffers) and nothing of the request is
// needed. kmsg's decoding aliases []byte fields (a Produce's records, a
// JoinGroup's protocol metadata, a SyncGroup's assignments, SASL tokens,
// SCRAM salts) into the frame, so anything that keeps such bytes past the
// handler must copy them; the stratascribble build tag makes Put overwrite
// every released buffer (frames and Fetches' read buffers) so that a
// retained alias reads wrong bytes in tests.
//
// Memory: the buffers in use are bounded by queued.max.request.bytes (each
// frame's size is reserved before it is read; a buffer is at most twice its
// frame, the class rounding) and, for Fetches, queued.max.response.bytes
// (the records, a buffer at most four times them: a read keeps at least
// half of what it read, segment.Log.ReadBuffered, and the class rounding
// doubles at most); idle buffers by maxIdle. A buffer grows only
// as its frame's bytes arrive, unless an idle buffer of the whole frame's
// class is at hand (memory the broker already has, not a new commitment).
type framePool struct {
	mu      sync.Mutex
	free    [][][]byte // by class: idle buffers of capacity classSize(class)
	idle    int64      // bytes of capacity held in free
	maxIdle int64
	// scribble overwrites released buffers (tests: stratascribble).
	scribble atomic.Bool
}

const (
	// minFrameClass is the smallest buffer: most requests but Produce
	// fit.
	minFrameClass = 4 << 10
	// initialFrameRead is how much of a larger frame is read before its
	// buffer grows (doubling, as the bytes arrive).
	initialFrameRead = 64 << 10
	// maxIdleFrameBytes bounds the idle buffers the pool keeps: enough
	// for the frames of dozens of producers' 1 MiB requests.
	maxIdleFrameBytes = 64 << 20
	// scribbleByte is what a released frame is overwritten with.
	scribbleByte = 0xA5
)

func newFramePool(maxFrame int, maxIdle int64) *framePool {
	p := &framePool{
		free:    make([][][]byte, frameClass(maxFrame)+1),
		maxIdle: maxIdle,
	}
	p.scribble.Store(scribbleFrames)
	return p
}

// frameClass is the class of the smallest buffer that holds n bytes.
func frameClass(n int) int {
	if n <= minFrameClass {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minFrameClass-1))
}

func frameClassSize(class int) int { return minFrameClass << class }

// take returns an idle buffer that holds n bytes (length 0), if there is
// one.
func (p *framePool) take(n int) ([]byte, bool) {
	class := frameClass(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if class >= len(p.free) || len(p.free[class]) == 0 {
		return nil, false
	}
	list := p.free[class]
	b := list[len(list)-1]
	list[len(list)-1] = nil
	p.free[class] = list[:len(list)-1]
	p.idle -= int64(cap(b))
	return b[:0], true
}

// Get returns a buffer that holds n bytes (length 0): an idle one or a new
// one of n's class.
func (p *framePool) Get(n int) []byte {
	if b, ok := p.take(n); ok {
		return b
	}
	return make([]byte, 0, frameClassSize(frameClass(n)))
}

// Put gives a buffer from Get back (nil is ignored). Nothing may use its
// bytes afterwards.
func (p *framePool) Put(b []byte) {
	if b == nil {
		return
	}
	b = b[:cap(b)]
	if p.scribble.Load() {
		for i := range b {
			b[i] = scribbleByte
		}
	}
	class := frameClass(len(b))
	if len(b) != frameClassSize(class) {
		return // not one of ours
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if class >= len(p.free) || p.idle+int64(len(b)) > p.maxIdle {
		return // left to the garbage collector
	}
	p.free[class] = append(p.free[class], b)
	p.idle += int64(len(b))
}

// idleBytes is the capacity of the idle buffers.
func (p *framePool) idleBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// read reads a size-byte frame into a pooled buffer, which the caller puts
// back once the frame's request is handled. Unless an idle buffer of the
// frame's class is at hand, the buffer starts at initialFrameRead and
// doubles as the bytes arrive, so that a header claiming a large frame
// commits new memory only for the bytes the client really sends. On an
// error the buffer is already back in the pool.
func (p *framePool) read(r io.Reader, size int) ([]byte, error) {
	frame, ok := p.take(size)
	if !ok {
		frame = p.Get(min(size, initialFrameRead))
	}
	for len(frame) < size {
		if len(frame) == cap(frame) {
			grown := append(p.Get(min(size, 2*cap(frame))), frame...)
			p.Put(frame)
			frame = grown
		}
		n, err := io.ReadFull(r, frame[len(frame):min(cap(frame), size)])
		frame = frame[:len(frame)+n]
		if err != nil {
			p.Put(frame)
			return nil, err
		}
	}
	return frame, nil
}
