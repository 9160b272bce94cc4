package tiering

import "sync/atomic"

// chunk holds the bytes of one aligned chunk of a .log object in a pooled
// buffer of Config.ChunkBytes, so that neither a GET nor a cache hit from
// disk allocates (and zeroes) a fresh buffer per chunk. Holders count
// themselves in refs: the in-memory LRU, a cache write waiting in the
// write-behind queue, a shared GET until it ends, and each read that uses
// the chunk. The last release returns the buffer to the pool. A holder
// that never releases only costs the pool a buffer (the garbage collector
// takes it); releasing too often would hand a buffer still in use to
// another chunk, so every retain is paired with exactly one release, and a
// retain happens only while the caller's own reference (or the lock of a
// structure holding one) keeps the chunk alive.
type chunk struct {
	data []byte // read-only once the chunk is handed out
	// fromDisk marks a chunk read from a cache file: when a read from it
	// fails the batch checks, the cache file was damaged.
	fromDisk bool
	refs     atomic.Int32
	pool     *chunkPool
}

func (c *chunk) retain() *chunk {
	c.refs.Add(1)
	return c
}

func (c *chunk) release() {
	switch n := c.refs.Add(-1); {
	case n == 0:
		c.pool.put(c)
	case n < 0:
		panic("tiering: chunk released more often than retained")
	}
}

// chunkPool recycles chunk buffers of one size through a bounded free
// list (not a sync.Pool: idle buffers stay bounded, and reuse does not
// depend on garbage collections).
type chunkPool struct {
	size int64
	free chan *chunk
	// allocations counts buffers allocated (not recycled): a steady replay
	// recycles, so this stays near the number of chunks held at once.
	allocations atomic.Int64
}

// chunkPoolFree bounds the idle buffers kept for reuse.
const chunkPoolFree = 16

func newChunkPool(size int64) *chunkPool {
	return &chunkPool{size: size, free: make(chan *chunk, chunkPoolFree)}
}

// get returns a chunk of length bytes (at most the pool's size) with one
// reference, its bytes not cleared.
func (p *chunkPool) get(length int64) *chunk {
	var c *chunk
	select {
	case c = <-p.free:
	default:
		p.allocations.Add(1)
		c = &chunk{data: make([]byte, p.size), pool: p}
	}
	c.data = c.data[:length]
	c.fromDisk = false
	c.refs.Store(1)
	return c
}

func (p *chunkPool) put(c *chunk) {
	c.data = c.data[:cap(c.data)]
	select {
	case p.free <- c:
	default: // enough idle buffers: this one goes to the collector
	}
}
