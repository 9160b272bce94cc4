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
	// buffer is the whole pooled buffer data starts: it starts at a
	// directIOAlign boundary and its length is the pool's size rounded up
	// to one, so the chunk cache can write and read it with O_DIRECT
	// (directio_linux.go). The bytes past data up to the next boundary are
	// zero (the padding of a chunk file written with O_DIRECT).
	buffer []byte
	// fromDisk marks a chunk read from a cache file: when a read from it
	// fails the batch checks, the cache file was damaged.
	fromDisk bool
	// verified lists, in order, the chunk-relative positions of the
	// batches lying whole in this chunk whose CRC-32C a read-ahead checked
	// before publishing the chunk (Tier.verifyAhead); tail is the position
	// in the segment where the batch walk continues after this chunk (the
	// first batch not whole in it), -1 when unknown. Both are facts about
	// these in-memory bytes, set before the chunk is handed to readers and
	// never changed after; a chunk read from its file again is a new
	// chunk (pool get clears both), unverified until checked again.
	verified []uint32
	tail     int64
	// spanAt, when at least 0, is the position in the segment of a batch
	// that starts in the chunk before and ends in this one whose CRC-32C
	// the read-ahead checked over both, the chunk before being the one
	// with id spanPrev (a read skips that CRC only when it holds that
	// very chunk: one read from its file again has another id).
	spanAt   int64
	spanPrev uint64
	// spanNextAt and spanNext are the same for a batch that starts in
	// this chunk and ends in the next one, checked over the next one with
	// id spanNext when this one was loaded (the next one in memory
	// already).
	spanNextAt int64
	spanNext   uint64
	// id tells this chunk apart from every other one handed out by the
	// pool (a buffer reused gets a new id).
	id   uint64
	refs atomic.Int32
	pool *chunkPool
}

// padded returns data extended to the next directIOAlign boundary.
func (c *chunk) padded() []byte { return c.buffer[:alignUp(int64(len(c.data)))] }

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
// depend on garbage collections). The bound is what the tier may free at
// once (New: the disk cache's write queue, the read-ahead budget and a
// chunk per reader thread, the holders that fill up when the writer falls
// behind and empty when it catches up), so a replay reuses its buffers after warm-up instead of
// dropping them to the collector and allocating them again; the buffers
// kept idle are at most what was in use at a peak.
type chunkPool struct {
	size int64
	free chan *chunk
	// allocations counts buffers allocated (not recycled): a steady replay
	// recycles, so this stays near the number of chunks held at once.
	allocations atomic.Int64
}

// chunkIDs numbers the chunks handed out (chunk.id).
var chunkIDs atomic.Uint64

// chunkPoolFree is the least number of idle buffers kept for reuse.
const chunkPoolFree = 16

// directIOAlign is the alignment O_DIRECT asks of buffer addresses, file
// offsets and lengths: the logical block size, 512 or 4096 bytes on the
// devices Linux knows (4096 serves both).
const directIOAlign = 4096

// alignUp rounds n up to a multiple of directIOAlign.
func alignUp(n int64) int64 { return (n + directIOAlign - 1) &^ (directIOAlign - 1) }

// newChunkPool returns a pool of buffers of size bytes keeping up to
// free idle ones (at least chunkPoolFree).
func newChunkPool(size, free int64) *chunkPool {
	return &chunkPool{size: size, free: make(chan *chunk, max(free, chunkPoolFree))}
}

// get returns a chunk of length bytes (at most the pool's size) with one
// reference, its bytes not cleared (but its padding is).
func (p *chunkPool) get(length int64) *chunk {
	var c *chunk
	select {
	case c = <-p.free:
	default:
		p.allocations.Add(1)
		c = &chunk{buffer: alignedBuffer(alignUp(p.size)), pool: p}
	}
	c.data = c.buffer[:length]
	clear(c.buffer[length:alignUp(length)])
	c.fromDisk = false
	c.verified, c.tail, c.spanAt, c.spanPrev, c.spanNextAt, c.spanNext = c.verified[:0], -1, -1, 0, -1, 0
	c.id = chunkIDs.Add(1)
	c.refs.Store(1)
	return c
}

func (p *chunkPool) put(c *chunk) {
	c.data = nil
	select {
	case p.free <- c:
	default: // enough idle buffers: this one goes to the collector
	}
}

// alignedBuffer allocates size bytes starting at a directIOAlign boundary
// (the Go heap only promises 8 for a []byte): one block more than asked,
// sliced to the first boundary.
func alignedBuffer(size int64) []byte {
	raw := make([]byte, size+directIOAlign)
	skip := int64(0)
	if remainder := addressOf(raw) % directIOAlign; remainder != 0 {
		skip = directIOAlign - remainder
	}
	return raw[skip : skip+size : skip+size]
}
