package tiering

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/semaphore"

	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
)

// chunkCacheSuffix ends every file of the chunk cache directory.
const chunkCacheSuffix = ".chunk"

// chunkKey names one aligned chunk of a segment's .log object.
type chunkKey struct {
	segment uuid.UUID
	index   int64 // chunk number: bytes [index*ChunkBytes, (index+1)*ChunkBytes)
}

// chunkCache is the bounded on-disk LRU of .log chunks, with an in-memory
// LRU of recently used chunks in front of it (read-ahead waits there for
// its reader; a reader whose reads are not aligned to chunks touches each
// chunk twice; a chunk a sequential reader has passed leaves it once it is
// on disk: passed). One file per run of consecutive chunks of a segment put
// together (the chunks of one ranged GET: cacheFile), written behind the
// reader: put queues the run for a writer goroutine (a bounded queue;
// a put waits for room until its context ends, then the run is just not
// cached on disk), and a chunk waiting in the queue is served from memory
// (a file evicted or removed while it waits is never written).
// A file's chunks leave the cache together (evicted when the least
// recently used of them is, or dropped with one found damaged): creating a
// file costs more CPU than filling a MiB of it, so a cold replay's first
// fill of an empty cache creates one file per GET, not one per chunk (the
// layout is in doc.go). A cache file has no checksum of its own: every read
// checks each batch it returns, whatever the bytes' source, every header
// byte included (framing, CRC-32C, base offsets tied to an anchor and
// dense, leader epochs against the segment's manifest; see Tier.read and
// verifyBatches), so each byte is checksummed once per read, not once more
// when its file is written and again when it is read back. A read from
// the cache that fails the checks drops the chunks it used and reads again
// from the store (Tier.Read); a short or missing file is a miss.
//
// Files are written to a temporary name and renamed, without fsync (a
// lost one costs a GET); a new cache serves none of the chunk files it
// finds, and keeps them (up to its capacity) as spare files to write new
// chunks into. A full cache writes new chunks into the file it evicts
// (through the page cache; with O_DIRECT it creates each file):
// overwriting a file costs a fraction of creating one.
// They are written and read with O_DIRECT, bypassing the page cache,
// when the directory's file system allows it (probed once at start;
// Config.CacheBufferedIO turns it off): filling the page cache costs more
// kernel CPU than the disk write, and would keep a second copy of the
// chunks the memory LRU holds (directio.go). Otherwise they go through
// the page cache (tmpfs, platforms other than Linux).
//
// Chunks handed out are shared and read-only; each get returns a
// reference the caller releases. Safe for concurrent use.
type chunkCache struct {
	dir      string
	capacity int64
	stats    *stats
	recent   *memoryLRU
	pool     *chunkPool
	// direct: files are written and read with O_DIRECT (set at start).
	direct bool
	// deleted are the segments deleted last, whose chunks put and
	// putMemory leave out (a GET under way when its segment was deleted).
	deleted *deletedSegments

	mu      sync.Mutex // guards entries, lru, size, spares, closed, the cacheFiles' fields and sends on writes
	entries map[chunkKey]*list.Element
	lru     *list.List // of *cacheEntry, most recently used first
	size    int64      // of the files (their chunks) and the spares
	// spares are files holding no chunk, to be overwritten with new ones
	// (keepSpares); nextSpare numbers the next one named.
	spares    []spareFile
	nextSpare int
	closed    bool

	writes chan cacheWrite // the write-behind queue
	// slots has one unit per chunk the queue may hold (queueChunks); a
	// queued file holds one per chunk until written.
	slots       *semaphore.Weighted
	queueChunks int64
	// beforeWrite (tests) runs in the writer before each file is written;
	// beforeRead (tests) in getDisk before a file is read; afterRemove
	// (tests) in remove once the chunk's file is out of the cache and mu
	// released.
	beforeWrite func()
	beforeRead  func(chunkKey)
	afterRemove func(chunkKey)
	// keepPassed (tests) keeps the chunks sequential readers pass in the
	// memory LRU (at its back, until it fills), as before they left it
	// once on disk (passed): tests that need a replay to leave its chunks
	// in memory.
	keepPassed atomic.Bool
	pending    sync.WaitGroup // writes queued and not done
	writer     sync.WaitGroup // the writer goroutine
}

type cacheEntry struct {
	key  chunkKey
	size int64
	file *cacheFile // the file holding the chunk
	// queued is the chunk while its file is being written (the write's
	// reference: served from memory meanwhile); nil once written.
	queued *chunk
}

// cacheFile is one file of the disk cache: consecutive chunks of one
// segment, from first, back to back (chunk i at byte
// (i − first.index)·ChunkBytes; only the last may be shorter than
// ChunkBytes, a segment's last chunk), named after its first chunk
// (chunkCache.path). Its chunks are in the cache together or not at all.
type cacheFile struct {
	first   chunkKey
	entries []*cacheEntry // its chunks, in order
	size    int64         // bytes: the chunks' lengths summed
	// dropped: its chunks left the cache (evicted, removed); written: its
	// write is over (until then the writer removes a dropped file, or,
	// dropped before the write began, does not write it).
	dropped, written bool
}

// cacheWrite is one file waiting in the write-behind queue, with the files
// evicted to make room for it (removed before it is written, or one of
// them renamed and written over, so the directory never holds more than
// the capacity).
type cacheWrite struct {
	file    *cacheFile
	evicted []string
	// reuse is a spare file to write the chunks into; removed are spares
	// dropped to make room.
	reuse   string
	removed []string
}

// spareFile is a file of the cache directory that holds no chunk, kept to
// be overwritten with one (keepSpares); its size counts in the cache's.
type spareFile struct {
	path string
	size int64
}

// spareSuffix ends the names of spare files.
const spareSuffix = ".spare"

// cacheWriteQueue is the least number of chunks that may wait to be
// written to disk; the queue holds as many chunks as the memory LRU, so a
// burst of read-ahead the memory holds can wait for the disk too.
const cacheWriteQueue = 32

// writeQueueChunks is the length of the write-behind queue: at least
// cacheWriteQueue, and the chunks the memory LRU holds.
func writeQueueChunks(memoryCapacity, chunkBytes int64) int64 {
	return max(cacheWriteQueue, memoryCapacity/chunkBytes)
}

// chunkCacheConfig configures a chunkCache.
type chunkCacheConfig struct {
	dir                      string
	capacity, memoryCapacity int64
	// bufferedIO turns O_DIRECT off (Config.CacheBufferedIO).
	bufferedIO bool
	logger     *slog.Logger
	// deleted (may be nil) are the segments deleted last: their chunks
	// are not put into the cache (deletedSegments).
	deleted *deletedSegments
}

func newChunkCache(cfg chunkCacheConfig, pool *chunkPool, stats *stats) (*chunkCache, error) {
	dir := cfg.dir
	if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	queue := writeQueueChunks(cfg.memoryCapacity, pool.size)
	c := &chunkCache{
		dir: dir, capacity: cfg.capacity, stats: stats, recent: newMemoryLRU(cfg.memoryCapacity), pool: pool, deleted: cfg.deleted,
		entries: make(map[chunkKey]*list.Element), lru: list.New(),
		writes: make(chan cacheWrite, queue),
		slots:  semaphore.NewWeighted(queue), queueChunks: queue,
	}
	direct, reason := chooseDirectIO(dir, cfg.bufferedIO)
	c.direct = direct
	if err := c.keepSpares(cfg.logger); err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	if direct {
		cfg.logger.Info("tiering: chunk cache files written and read with O_DIRECT, bypassing the page cache", "dir", dir, "direct_io", true, "reason", reason)
	} else {
		cfg.logger.Info("tiering: chunk cache files written and read through the page cache", "dir", dir, "direct_io", false, "reason", reason)
	}
	c.writer.Add(1)
	go c.writeBehind()
	return c, nil
}

// keepSpares turns the files of an earlier process into spare files: their
// chunks are never served (their checksums are gone with that process),
// but through the page cache, up to the capacity, each is renamed
// spare-N.spare and later overwritten with a new chunk (write), which
// costs a fraction of creating a file (its blocks are allocated). With
// O_DIRECT, or beyond the capacity, they are removed, as are interrupted
// writes (…chunk.tmpXXXXXXXX). An entry named like one of these that is
// not a regular file (a directory, a symbolic link) is not the cache's:
// it is left where it is, unused and uncounted, with a warning
// (skipNotOurs); the start does not fail for it.
func (c *chunkCache) keepSpares(logger *slog.Logger) error {
	names, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	var spares, chunks []string
	for _, entry := range names {
		name := entry.Name()
		temporary := strings.Contains(name, chunkCacheSuffix+".tmp")
		spare := strings.HasSuffix(name, spareSuffix)
		if !temporary && !spare && !strings.HasSuffix(name, chunkCacheSuffix) {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(name, "spare-%d"+spareSuffix, &n); spare && err == nil {
			// New spares are numbered past every name taken, the
			// cache's files' and the entries it skips.
			c.nextSpare = max(c.nextSpare, n+1)
		}
		if !entry.Type().IsRegular() {
			c.skipNotOurs(logger, filepath.Join(c.dir, name), entry.Type())
			continue
		}
		switch {
		case temporary:
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		case spare:
			spares = append(spares, name)
		default:
			chunks = append(chunks, name)
		}
	}
	// Spares first: they keep their names (numbers), and chunk files are
	// numbered after them.
	for _, name := range append(spares, chunks...) {
		path := filepath.Join(c.dir, name)
		info, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // gone since the listing: nothing to keep
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() { // replaced since the listing
			c.skipNotOurs(logger, path, info.Mode().Type())
			continue
		}
		if c.direct || info.Size() == 0 || c.size+info.Size() > c.capacity {
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		if !strings.HasSuffix(name, spareSuffix) {
			spare := filepath.Join(c.dir, fmt.Sprintf("spare-%d%s", c.nextSpare, spareSuffix))
			c.nextSpare++
			if err := os.Rename(path, spare); err != nil {
				return err
			}
			path = spare
		}
		c.spares = append(c.spares, spareFile{path: path, size: info.Size()})
		c.size += info.Size()
	}
	return nil
}

// skipNotOurs warns about an entry of the cache directory named like a
// cache file but of a type the cache never creates (mode, its type bits):
// not the cache's, so neither used nor removed.
func (c *chunkCache) skipNotOurs(logger *slog.Logger, path string, mode os.FileMode) {
	kind := "a " + mode.String() + " entry"
	switch {
	case mode.IsDir():
		kind = "a directory"
	case mode&os.ModeSymlink != 0:
		kind = "a symbolic link"
	}
	logger.Warn("tiering: chunk cache: an entry named like a cache file is "+kind+", not a file the cache wrote; "+
		"the cache leaves it alone and does not use it: move it out of the cache directory, which should hold only the cache's own files",
		"path", path, "type", kind)
}

// close stops the writer; chunks still queued are dropped (not cached).
func (c *chunkCache) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.writes)
	c.mu.Unlock()
	c.writer.Wait()
	c.recent.clear()
}

// waitWrites waits until every chunk queued so far is on disk (or dropped).
func (c *chunkCache) waitWrites() { c.pending.Wait() }

// path is the name of the file whose first chunk is key.
func (c *chunkCache) path(key chunkKey) string {
	return filepath.Join(c.dir, fmt.Sprintf("%s-%010d%s", key.segment, key.index, chunkCacheSuffix))
}

// fileChunks is the most chunks one file holds: what the queue and the
// capacity hold at once, and one chunk where O_DIRECT could not write
// the chunks after the first at aligned offsets.
func (c *chunkCache) fileChunks() int64 {
	if c.direct && c.pool.size%directIOAlign != 0 {
		return min(1, c.capacity/c.pool.size)
	}
	return min(c.queueChunks, c.capacity/c.pool.size)
}

// get returns the cached chunk with a reference for the caller, or false
// when it is not cached (or its file is missing or short, in which case
// the entry is dropped). A chunk read from disk goes into the memory LRU.
func (c *chunkCache) get(key chunkKey) (*chunk, bool) {
	if ch, ok := c.recent.get(key); ok {
		return ch, true
	}
	return c.getDisk(key)
}

// getDisk is get past the memory LRU: the write queue, else the file
// (read synchronously, then kept in the memory LRU).
func (c *chunkCache) getDisk(key chunkKey) (*chunk, bool) { return c.loadDisk(key, nil) }

// loadDisk is getDisk with prepare (may be nil) run on a chunk read from
// its file before it goes into the memory LRU, where other readers find
// it: a load ahead of a reader verifies its batches there
// (Tier.verifyAhead). A chunk found in the write queue is returned as it
// is (published already, with whatever its fetch verified).
func (c *chunkCache) loadDisk(key chunkKey, prepare func(*chunk)) (*chunk, bool) {
	c.mu.Lock()
	element, ok := c.entries[key]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	c.lru.MoveToFront(element)
	entry := element.Value.(*cacheEntry)
	if entry.queued != nil {
		ch := entry.queued.retain()
		c.mu.Unlock()
		return ch, true
	}
	size, path, offset := entry.size, c.path(entry.file.first), (key.index-entry.file.first.index)*c.pool.size
	c.mu.Unlock()
	if c.beforeRead != nil {
		c.beforeRead(key)
	}
	ch, err := c.readFile(path, offset, size)
	c.mu.Lock()
	current, ok := c.entries[key]
	evicted := !ok || current != element
	if !evicted && err != nil {
		// Missing or short: the file that was read is dropped (not one
		// put since under the same key).
		c.stats.corruptChunks.Add(1)
		c.removeFileLocked(entry.file)
	}
	c.mu.Unlock()
	if evicted {
		// Evicted while being read: its file was removed, or reused for
		// other chunks (write). A miss, not damage, whatever was read.
		if err == nil {
			ch.release()
		}
		return nil, false
	}
	if err != nil {
		c.recent.remove(key)
		return nil, false
	}
	if prepare != nil {
		prepare(ch)
	}
	c.putMemory(key, ch)
	return ch, true
}

// passed is a sequential reader done with key (it read past the chunk):
// the chunk leaves the memory LRU as soon as it is safely in the disk
// cache, at once when its file is written already, else when the writer
// has written it (write), so its buffer goes back to the pool instead of
// waiting at the LRU's back for the LRU to fill. A long replay then
// neither allocates a buffer per chunk until the LRU is full nor pushes
// the chunks other readers use out of it (scan resistance); a second
// reader of the range reads it from the disk cache (loaded ahead of it
// when sequential). A chunk not in the disk cache (not queued: the
// cache too small, the queue full, a failed write) stays at the LRU's
// back, as does one another reader gets before it leaves
// (memoryLRU.get clears the mark).
func (c *chunkCache) passed(key chunkKey) {
	if c.keepPassed.Load() {
		c.recent.demote(key)
		return
	}
	c.recent.pass(key)
	c.mu.Lock()
	element, ok := c.entries[key]
	written := ok && element.Value.(*cacheEntry).queued == nil
	c.mu.Unlock()
	if written {
		c.recent.removePassed(key, nil)
	}
}

// getMemory is get without the disk: the memory LRU or the write queue.
func (c *chunkCache) getMemory(key chunkKey) (*chunk, bool) {
	if ch, ok := c.recent.get(key); ok {
		return ch, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if element, ok := c.entries[key]; ok {
		if queued := element.Value.(*cacheEntry).queued; queued != nil {
			return queued.retain(), true
		}
	}
	return nil, false
}

// readFile reads the size bytes at offset of the file at path (a chunk)
// into a pooled chunk (with O_DIRECT when the cache uses it), marked as
// read from disk (the reader's batch checks are what catch damaged bytes).
func (c *chunkCache) readFile(path string, offset, size int64) (*chunk, error) {
	ch := c.pool.get(size)
	var err error
	if c.direct {
		err = readFileDirect(path, offset, ch.padded(), size)
	} else {
		err = readFileBuffered(path, offset, ch.data)
	}
	if err != nil {
		ch.release()
		return nil, err
	}
	ch.fromDisk = true
	return ch, nil
}

// readFileBuffered fills data from offset of the file at path, through
// the page cache; a file that ends first is io.ErrUnexpectedEOF.
func readFileBuffered(path string, offset int64, data []byte) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err = file.ReadAt(data, offset); err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// putMemory keeps a chunk in the in-memory LRU only (put queues it for
// disk), unless its segment was deleted: checked after the put, so that a
// deletion racing with it (deletedSegments.add, then removeSegment) either
// removes the chunk or is seen here.
func (c *chunkCache) putMemory(key chunkKey, ch *chunk) {
	c.recent.put(key, ch)
	if c.deleted.contains(key.segment) {
		c.recent.remove(key)
	}
}

// inMemory reports whether key is in the memory LRU or the write queue
// (a get would not read its file).
func (c *chunkCache) inMemory(key chunkKey) bool {
	if c.recent.contains(key) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	element, ok := c.entries[key]
	return ok && element.Value.(*cacheEntry).queued != nil
}

// contains reports whether key is cached in memory or on disk (or queued),
// without touching the LRU order.
func (c *chunkCache) contains(key chunkKey) bool {
	if c.recent.contains(key) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// put queues chunks (consecutive, from first: the chunks of one GET) for
// the disk cache, in files of up to fileChunks chunks (those already
// cached are skipped), evicting the least recently used files beyond the
// capacity; it does not wait for the writes, only (until ctx ends) for
// room in the bounded queue, so a writer that falls behind slows the GETs
// that fill the cache: read-ahead ones (bounded by their slots), and a
// reader's own (bounded by Tier.readerGETs, so a reader waits only once
// ReaderThreads of them wait here: memory stays bounded by the
// configuration whatever the writer's pace). A failure to write is not an
// error for anyone: the chunks just stay uncached on disk.
func (c *chunkCache) put(ctx context.Context, first chunkKey, chunks ...*chunk) {
	limit := c.fileChunks()
	key := func(i int) chunkKey { return chunkKey{segment: first.segment, index: first.index + int64(i)} }
	for start := 0; start < len(chunks) && limit > 0; {
		c.mu.Lock()
		for start < len(chunks) && c.entries[key(start)] != nil {
			start++
		}
		end := start
		for end < len(chunks) && int64(end-start) < limit && c.entries[key(end)] == nil {
			end++
			if int64(len(chunks[end-1].data)) < c.pool.size {
				break // a segment's last chunk ends its file
			}
		}
		c.mu.Unlock()
		if end > start && !c.putFile(ctx, key(start), chunks[start:end]) {
			return
		}
		start = end
	}
}

// putFile queues one file of chunks (at most fileChunks, none cached when
// put looked); false when ctx ended (or the cache closed) first.
func (c *chunkCache) putFile(ctx context.Context, first chunkKey, chunks []*chunk) bool {
	n := int64(len(chunks))
	if err := c.slots.Acquire(ctx, n); err != nil {
		c.stats.cacheWritesDropped.Add(n)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.slots.Release(n)
		return false
	}
	if c.deleted.contains(first.segment) {
		// Deleted since its GET began: checked under mu, which
		// removeSegment takes after the segment is marked deleted.
		c.slots.Release(n)
		return true
	}
	file := &cacheFile{first: first}
	for i, ch := range chunks {
		key := chunkKey{segment: first.segment, index: first.index + int64(i)}
		if _, ok := c.entries[key]; ok {
			c.slots.Release(n) // being written by another put since put looked
			return true
		}
		file.entries = append(file.entries, &cacheEntry{key: key, size: int64(len(ch.data)), file: file})
		file.size += int64(len(ch.data))
	}
	for i, entry := range file.entries {
		entry.queued = chunks[i].retain()
	}
	w := cacheWrite{file: file}
	if n := len(c.spares); n > 0 {
		w.reuse = c.spares[n-1].path
		c.size -= c.spares[n-1].size
		c.spares = c.spares[:n-1]
	}
	for c.size+file.size > c.capacity {
		if n := len(c.spares); n > 0 {
			w.removed = append(w.removed, c.spares[n-1].path)
			c.size -= c.spares[n-1].size
			c.spares = c.spares[:n-1]
			continue
		}
		victim := c.lru.Back().Value.(*cacheEntry).file
		c.dropFileLocked(victim)
		w.evicted = append(w.evicted, c.path(victim.first))
		c.stats.cacheEvictions.Add(int64(len(victim.entries)))
	}
	for _, entry := range file.entries {
		c.entries[entry.key] = c.lru.PushFront(entry)
	}
	c.size += file.size
	c.pending.Add(1)
	c.writes <- w // never blocks: no more files are queued than slots, and sends happen under mu (not after close)
	return true
}

// dropFileLocked takes a file's chunks out of the cache and its bytes out
// of the size; the caller sees that the file leaves the directory: the
// write a putFile evicted it for removes or reuses it (cacheWrite.evicted),
// removeFileLocked removes it, and a file dropped before its write ended
// is removed by the writer (or, dropped before its write began, never
// written: the writer skips it). Called with mu held.
func (c *chunkCache) dropFileLocked(file *cacheFile) {
	if file.dropped {
		return
	}
	file.dropped = true
	for _, entry := range file.entries {
		if element, ok := c.entries[entry.key]; ok && element.Value.(*cacheEntry) == entry {
			c.lru.Remove(element)
			delete(c.entries, entry.key)
		}
	}
	c.size -= file.size
}

// writeBehind writes queued files to disk until close.
func (c *chunkCache) writeBehind() {
	defer c.writer.Done()
	for w := range c.writes {
		c.write(w)
		c.slots.Release(int64(len(w.file.entries)))
		c.pending.Done()
	}
}

func (c *chunkCache) write(w cacheWrite) {
	began := time.Now()
	file := w.file
	path := c.path(file.first)
	temporary := path + ".tmp" + fmt.Sprintf("%08x", rand.Uint32())
	// A spare file, else the first evicted file, becomes this one's
	// (renamed to the temporary name, then overwritten in place): its
	// blocks are allocated already and its pages likely still in the page
	// cache, so the write only copies (creating a file and filling fresh
	// pages costs several times more kernel CPU). The other victims and
	// the spares dropped for room are removed.
	reused := false
	if w.reuse != "" {
		reused = os.Rename(w.reuse, temporary) == nil
	}
	for _, victim := range w.evicted {
		if !reused && !c.direct && os.Rename(victim, temporary) == nil {
			reused = true
			continue
		}
		os.Remove(victim)
	}
	for _, spare := range w.removed {
		os.Remove(spare)
	}
	if c.beforeWrite != nil {
		busy := time.Since(began)
		c.beforeWrite()
		began = time.Now().Add(-busy)
	}
	defer func() { c.stats.cacheWriteNanos.Add(int64(time.Since(began))) }()
	// A file dropped (evicted, removed) before its write begins is not
	// written: nothing would read it, and the writer would remove it.
	c.mu.Lock()
	closed, dropped := c.closed, file.dropped
	c.mu.Unlock()
	var err error
	switch {
	case closed:
		err = errClosedCache
	case dropped:
		err = errDroppedBeforeWrite
	default:
		parts := make([][]byte, len(file.entries))
		for i, entry := range file.entries {
			if c.direct {
				parts[i] = entry.queued.padded()
			} else {
				parts[i] = entry.queued.data
			}
		}
		if c.direct {
			err = writeFileDirect(temporary, parts, file.size)
		} else {
			err = writeFile(temporary, parts, reused)
		}
		if err == nil {
			err = os.Rename(temporary, path)
		}
		if err == nil {
			c.stats.cacheFilesWritten.Add(1)
		}
	}
	c.mu.Lock()
	dropped = file.dropped
	if !dropped && err != nil {
		c.dropFileLocked(file)
	}
	file.written = true
	queued := make([]*chunk, 0, len(file.entries))
	for _, entry := range file.entries {
		queued = append(queued, entry.queued)
		entry.queued = nil
	}
	c.mu.Unlock()
	for i, ch := range queued {
		if err == nil && !dropped {
			// On disk now: a chunk a sequential reader passed
			// meanwhile leaves memory (passed).
			c.recent.removePassed(file.entries[i].key, ch)
		}
		ch.release()
	}
	switch {
	case err != nil:
		os.Remove(temporary) // a file reused, or the write's remains
	case dropped:
		os.Remove(path) // dropped (evicted, removed) while being written
	}
}

// writeFile makes the file at path hold exactly parts, one after the
// other: created, or, when it exists (a file reused), written over from
// offset 0 and then cut to their length (the file may have been longer).
func writeFile(path string, parts [][]byte, exists bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exists {
		flags = os.O_WRONLY
	}
	file, err := os.OpenFile(path, flags, fsperm.File)
	if err != nil {
		return err
	}
	size := int64(0)
	for _, part := range parts {
		if err == nil {
			_, err = file.Write(part)
			size += int64(len(part))
		}
	}
	if err == nil && exists {
		err = file.Truncate(size)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	return err
}

var (
	errClosedCache        = errors.New("chunk cache closed")
	errDroppedBeforeWrite = errors.New("chunk cache file dropped before its write")
)

// remove drops a chunk, and with it the other chunks of its file (a chunk
// found damaged makes its whole file suspect).
func (c *chunkCache) remove(key chunkKey) {
	c.recent.remove(key)
	c.mu.Lock()
	if element, ok := c.entries[key]; ok {
		c.removeFileLocked(element.Value.(*cacheEntry).file)
	}
	c.mu.Unlock()
	if c.afterRemove != nil {
		c.afterRemove(key)
	}
}

// removeFileLocked drops a file still in the cache and removes it from the
// directory, unless it is still being written (the writer removes it
// then). Called with mu held: the file is unlinked before another put can
// queue a file of the same name (the same first chunk, fetched again),
// which an unlink after mu is released could remove instead.
func (c *chunkCache) removeFileLocked(file *cacheFile) {
	if file.dropped {
		return // evicted: the write that evicted it removes or reuses it
	}
	c.dropFileLocked(file)
	if file.written {
		os.Remove(c.path(file.first))
	}
}

// chooseDirectIO says whether the cache in dir uses O_DIRECT, and why.
func chooseDirectIO(dir string, buffered bool) (bool, string) {
	if buffered {
		return false, "turned off (--remote-log-cache-direct-io=false)"
	}
	switch err := probeDirectIO(dir); {
	case errors.Is(err, errDirectIOUnsupported), errors.Is(err, errMemoryFileSystem):
		return false, err.Error()
	case err != nil:
		return false, "the cache directory's file system refuses it: " + err.Error()
	}
	return true, "the cache directory's file system accepts it"
}

// removeSegment drops every chunk of a segment (deleted remotely).
func (c *chunkCache) removeSegment(segment uuid.UUID) {
	c.mu.Lock()
	var keys []chunkKey
	for key := range c.entries {
		if key.segment == segment {
			keys = append(keys, key)
		}
	}
	c.mu.Unlock()
	for _, key := range keys {
		c.remove(key)
	}
	c.recent.removeSegment(segment)
}

func (c *chunkCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// memoryLRU holds recently used chunks in memory, bounded in bytes, with
// one reference to each. Safe for concurrent use.
type memoryLRU struct {
	capacity int64

	mu      sync.Mutex // guards entries, lru, size
	entries map[chunkKey]*list.Element
	lru     *list.List // of *memoryEntry, most recently used first
	size    int64
}

type memoryEntry struct {
	key   chunkKey
	chunk *chunk
	// passed: a sequential reader is done with the chunk (pass) and no
	// reader got it since; it leaves once the chunk is on disk
	// (chunkCache.passed).
	passed bool
}

func newMemoryLRU(capacity int64) *memoryLRU {
	return &memoryLRU{capacity: capacity, entries: make(map[chunkKey]*list.Element), lru: list.New()}
}

// get returns the chunk with a reference for the caller.
func (m *memoryLRU) get(key chunkKey) (*chunk, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	element, ok := m.entries[key]
	if !ok {
		return nil, false
	}
	m.lru.MoveToFront(element)
	entry := element.Value.(*memoryEntry)
	entry.passed = false // a reader uses it again: it stays as any other chunk
	return entry.chunk.retain(), true
}

// peek is get without making the chunk recent (a read-ahead looking at
// the chunk before the ones it loads, not a reader using it).
func (m *memoryLRU) peek(key chunkKey) (*chunk, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	element, ok := m.entries[key]
	if !ok {
		return nil, false
	}
	return element.Value.(*memoryEntry).chunk.retain(), true
}

func (m *memoryLRU) contains(key chunkKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.entries[key]
	return ok
}

// put keeps ch (taking a reference of its own; the caller keeps its).
func (m *memoryLRU) put(key chunkKey, ch *chunk) {
	if int64(len(ch.data)) > m.capacity {
		return
	}
	var released []*chunk
	m.mu.Lock()
	if element, ok := m.entries[key]; ok {
		old := element.Value.(*memoryEntry)
		m.size -= int64(len(old.chunk.data))
		released = append(released, old.chunk)
		element.Value = &memoryEntry{key: key, chunk: ch.retain()}
		m.lru.MoveToFront(element)
	} else {
		m.entries[key] = m.lru.PushFront(&memoryEntry{key: key, chunk: ch.retain()})
	}
	m.size += int64(len(ch.data))
	for m.size > m.capacity {
		oldest := m.lru.Back()
		victim := oldest.Value.(*memoryEntry)
		m.lru.Remove(oldest)
		delete(m.entries, victim.key)
		m.size -= int64(len(victim.chunk.data))
		released = append(released, victim.chunk)
	}
	m.mu.Unlock()
	for _, ch := range released {
		ch.release()
	}
}

// demote makes key the first to leave (when held).
func (m *memoryLRU) demote(key chunkKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if element, ok := m.entries[key]; ok {
		m.lru.MoveToBack(element)
	}
}

// pass makes key the first to leave (when held) and marks it passed: a
// sequential reader is done with it.
func (m *memoryLRU) pass(key chunkKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if element, ok := m.entries[key]; ok {
		element.Value.(*memoryEntry).passed = true
		m.lru.MoveToBack(element)
	}
}

// removePassed removes key when it holds ch still marked passed (no
// reader got it since a sequential reader passed it).
func (m *memoryLRU) removePassed(key chunkKey, ch *chunk) {
	m.removeIf(key, func(e *memoryEntry) bool { return e.passed && (ch == nil || e.chunk == ch) })
}

func (m *memoryLRU) remove(key chunkKey) {
	m.removeIf(key, func(*memoryEntry) bool { return true })
}

// removeIf removes key's entry, releasing its chunk, when remove says so.
func (m *memoryLRU) removeIf(key chunkKey, remove func(*memoryEntry) bool) {
	m.mu.Lock()
	element, ok := m.entries[key]
	ok = ok && remove(element.Value.(*memoryEntry))
	if ok {
		m.lru.Remove(element)
		delete(m.entries, key)
		m.size -= int64(len(element.Value.(*memoryEntry).chunk.data))
	}
	m.mu.Unlock()
	if ok {
		element.Value.(*memoryEntry).chunk.release()
	}
}

func (m *memoryLRU) removeSegment(segment uuid.UUID) {
	m.mu.Lock()
	var keys []chunkKey
	for key := range m.entries {
		if key.segment == segment {
			keys = append(keys, key)
		}
	}
	m.mu.Unlock()
	for _, key := range keys {
		m.remove(key)
	}
}

func (m *memoryLRU) clear() {
	m.mu.Lock()
	entries := m.entries
	m.entries, m.lru, m.size = make(map[chunkKey]*list.Element), list.New(), 0
	m.mu.Unlock()
	for _, element := range entries {
		element.Value.(*memoryEntry).chunk.release()
	}
}

// indexCache keeps decoded offset indexes in memory, least recently used
// dropped first beyond its capacity in bytes. Safe for concurrent use.
type indexCache struct {
	capacity int64

	mu      sync.Mutex // guards entries, lru, size
	entries map[uuid.UUID]*list.Element
	lru     *list.List // of *indexEntry, most recently used first
	size    int64
}

type indexEntry struct {
	segment uuid.UUID
	index   offsetIndex
}

func newIndexCache(capacity int64) *indexCache {
	return &indexCache{capacity: capacity, entries: make(map[uuid.UUID]*list.Element), lru: list.New()}
}

func (c *indexCache) get(segment uuid.UUID) (offsetIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	element, ok := c.entries[segment]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(element)
	return element.Value.(*indexEntry).index, true
}

func (c *indexCache) put(segment uuid.UUID, decoded offsetIndex) {
	size := decoded.bytes()
	if size > c.capacity {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if element, ok := c.entries[segment]; ok {
		c.size -= element.Value.(*indexEntry).index.bytes()
		element.Value = &indexEntry{segment: segment, index: decoded}
		c.lru.MoveToFront(element)
	} else {
		c.entries[segment] = c.lru.PushFront(&indexEntry{segment: segment, index: decoded})
	}
	c.size += size
	for c.size > c.capacity {
		oldest := c.lru.Back()
		victim := oldest.Value.(*indexEntry)
		c.lru.Remove(oldest)
		delete(c.entries, victim.segment)
		c.size -= victim.index.bytes()
	}
}

func (c *indexCache) remove(segment uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if element, ok := c.entries[segment]; ok {
		c.lru.Remove(element)
		delete(c.entries, segment)
		c.size -= element.Value.(*indexEntry).index.bytes()
	}
}

// offsetIndex is a decoded .index object: the entries as on disk.
type offsetIndex []index.OffsetEntry

func (x offsetIndex) bytes() int64 { return int64(len(x))*index.OffsetEntrySize + 64 }

// decodeOffsetIndex checks and decodes a .index object of a segment with
// the local log's decoder (package index), so a remote index passes exactly
// the checks of a local one.
func decodeOffsetIndex(key string, data []byte, segment metadata.SegmentManifest) (offsetIndex, error) {
	entries, err := index.DecodeOffsetEntries(data, segment.SizeBytes, segment.LastOffset-segment.BaseOffset)
	if err != nil {
		return nil, corruptIndex(key, err)
	}
	return entries, nil
}

// corruptIndex turns a decoder's *index.CorruptError into this package's
// *CorruptError for the object key.
func corruptIndex(key string, err error) error {
	var corrupt *index.CorruptError
	if errors.As(err, &corrupt) {
		return corruptf(key, corrupt.Offset, "%s", corrupt.Reason)
	}
	return err
}

// lookup returns the position to walk from for offset: that of the last
// entry whose batch ends at or before offset, else 0.
func (x offsetIndex) lookup(relativeOffset int64) int64 {
	entry, ok := x.entry(relativeOffset)
	if !ok {
		return 0
	}
	return int64(entry.Position)
}

// entry returns the last entry whose batch ends at or before offset: the
// batch at its Position ends at its RelativeOffset (Kafka's index); false
// when there is none (walk from the segment's start).
func (x offsetIndex) entry(relativeOffset int64) (index.OffsetEntry, bool) {
	return index.SearchOffsetEntries(x, relativeOffset)
}
