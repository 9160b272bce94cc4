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
	"time"

	"github.com/google/uuid"

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
// chunk twice). One file per chunk, written behind the reader: put queues
// the chunk for a writer goroutine (a bounded queue; when it is full the
// chunk just is not cached on disk), and a chunk waiting in the queue is
// served from memory. A cache file has no checksum of its own: every read
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
// chunks into. A full cache writes a new chunk into the file of the one it
// evicts: overwriting a file costs a fraction of creating one.
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

	mu      sync.Mutex // guards entries, lru, size, spares, closed and sends on writes
	entries map[chunkKey]*list.Element
	lru     *list.List // of *cacheEntry, most recently used first
	size    int64      // of the entries and the spares
	// spares are files holding no chunk, to be overwritten with new ones
	// (keepSpares); nextSpare numbers the next one named.
	spares    []spareFile
	nextSpare int
	closed    bool

	writes chan cacheWrite // the write-behind queue
	slots  chan struct{}   // one token per place taken in the queue
	// beforeWrite (tests) runs in the writer before each file is written;
	// beforeRead (tests) in getDisk before a file is read.
	beforeWrite func()
	beforeRead  func(chunkKey)
	pending     sync.WaitGroup // writes queued and not done
	writer      sync.WaitGroup // the writer goroutine
}

type cacheEntry struct {
	key  chunkKey
	size int64
	// queued is the chunk while its file is being written (the write's
	// reference: served from memory meanwhile); nil once written.
	queued *chunk
}

// cacheWrite is one chunk waiting in the write-behind queue, with the files
// of the chunks evicted to make room for it (removed before it is written,
// so the directory never holds more than the capacity).
type cacheWrite struct {
	entry   *cacheEntry
	evicted []chunkKey
	// reuse is a spare file to write the chunk into; removed are spares
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
}

func newChunkCache(cfg chunkCacheConfig, pool *chunkPool, stats *stats) (*chunkCache, error) {
	dir := cfg.dir
	if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	queue := writeQueueChunks(cfg.memoryCapacity, pool.size)
	c := &chunkCache{
		dir: dir, capacity: cfg.capacity, stats: stats, recent: newMemoryLRU(cfg.memoryCapacity), pool: pool,
		entries: make(map[chunkKey]*list.Element), lru: list.New(),
		writes: make(chan cacheWrite, queue),
		slots:  make(chan struct{}, queue),
	}
	direct, reason := chooseDirectIO(dir, cfg.bufferedIO)
	c.direct = direct
	if err := c.keepSpares(); err != nil {
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
// writes (…chunk.tmpXXXXXXXX).
func (c *chunkCache) keepSpares() error {
	names, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	var spares, chunks []string
	for _, entry := range names {
		name := entry.Name()
		switch {
		case strings.Contains(name, chunkCacheSuffix+".tmp"):
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil {
				return err
			}
		case strings.HasSuffix(name, spareSuffix):
			spares = append(spares, name)
			var n int
			if _, err := fmt.Sscanf(name, "spare-%d"+spareSuffix, &n); err == nil {
				c.nextSpare = max(c.nextSpare, n+1)
			}
		case strings.HasSuffix(name, chunkCacheSuffix):
			chunks = append(chunks, name)
		}
	}
	// Spares first: they keep their names (numbers), and chunk files are
	// numbered after them.
	for _, name := range append(spares, chunks...) {
		path := filepath.Join(c.dir, name)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if c.direct || !info.Mode().IsRegular() || info.Size() == 0 || c.size+info.Size() > c.capacity {
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

func (c *chunkCache) path(key chunkKey) string {
	return filepath.Join(c.dir, fmt.Sprintf("%s-%010d%s", key.segment, key.index, chunkCacheSuffix))
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
	size := entry.size
	c.mu.Unlock()
	if c.beforeRead != nil {
		c.beforeRead(key)
	}
	ch, err := c.readFile(key, size)
	if err != nil {
		c.mu.Lock()
		current, ok := c.entries[key]
		c.mu.Unlock()
		if !ok || current != element {
			// Evicted while being read: its file was removed, or reused
			// for another chunk (write). A miss, not damage.
			return nil, false
		}
		c.stats.corruptChunks.Add(1)
		c.remove(key)
		return nil, false
	}
	if prepare != nil {
		prepare(ch)
	}
	c.recent.put(key, ch)
	return ch, true
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

// readFile reads the first size bytes of a chunk file into a pooled chunk
// (with O_DIRECT when the cache uses it), marked as read from disk (the reader's batch checks are what catch
// damaged bytes).
func (c *chunkCache) readFile(key chunkKey, size int64) (*chunk, error) {
	ch := c.pool.get(size)
	var err error
	if c.direct {
		err = readFileDirect(c.path(key), ch.padded(), size)
	} else {
		err = readFileBuffered(c.path(key), ch.data)
	}
	if err != nil {
		ch.release()
		return nil, err
	}
	ch.fromDisk = true
	return ch, nil
}

// readFileBuffered fills data from the start of the file at path, through
// the page cache.
func readFileBuffered(path string, data []byte) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = io.ReadFull(file, data)
	return err
}

// putMemory keeps a chunk in the in-memory LRU only (put queues it for
// disk).
func (c *chunkCache) putMemory(key chunkKey, ch *chunk) { c.recent.put(key, ch) }

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

// put queues a chunk for the disk cache, evicting the least recently used
// ones beyond the capacity; it does not wait for the write, only (until ctx
// ends) for a place in the bounded queue, so a writer that falls behind
// slows the GETs that fill the cache: read-ahead ones (bounded by their
// slots), and a reader's own (bounded by Tier.readerGETs, so a reader
// waits only once ReaderThreads of them wait here: memory stays bounded
// by the configuration whatever the writer's pace). A failure to write
// is not an error for anyone: the chunk just stays uncached on disk.
func (c *chunkCache) put(ctx context.Context, key chunkKey, ch *chunk) {
	size := int64(len(ch.data))
	c.mu.Lock()
	_, cached := c.entries[key]
	c.mu.Unlock()
	if size > c.capacity || cached {
		return
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		c.stats.cacheWritesDropped.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok || c.closed {
		<-c.slots
		return // already cached, or being written by another put
	}
	entry := &cacheEntry{key: key, size: size, queued: ch.retain()}
	w := cacheWrite{entry: entry}
	if n := len(c.spares); n > 0 {
		w.reuse = c.spares[n-1].path
		c.size -= c.spares[n-1].size
		c.spares = c.spares[:n-1]
	}
	var evicted []chunkKey
	for c.size+size > c.capacity {
		if n := len(c.spares); n > 0 {
			w.removed = append(w.removed, c.spares[n-1].path)
			c.size -= c.spares[n-1].size
			c.spares = c.spares[:n-1]
			continue
		}
		oldest := c.lru.Back()
		victim := oldest.Value.(*cacheEntry)
		c.lru.Remove(oldest)
		delete(c.entries, victim.key)
		c.size -= victim.size
		evicted = append(evicted, victim.key)
		c.stats.cacheEvictions.Add(1)
	}
	c.entries[key] = c.lru.PushFront(entry)
	c.size += size
	c.pending.Add(1)
	w.evicted = evicted
	c.writes <- w // never blocks: a slot was taken, and sends happen under mu (not after close)
}

// writeBehind writes queued chunks to disk until close.
func (c *chunkCache) writeBehind() {
	defer c.writer.Done()
	for w := range c.writes {
		c.write(w)
		<-c.slots
		c.pending.Done()
	}
}

func (c *chunkCache) write(w cacheWrite) {
	began := time.Now()
	entry := w.entry
	path := c.path(entry.key)
	temporary := path + ".tmp" + fmt.Sprintf("%08x", rand.Uint32())
	// A spare file, else the first evicted chunk's file, becomes this
	// one's (renamed to the temporary name, then overwritten in place):
	// its blocks are allocated already and its pages likely still in the
	// page cache, so the write only copies (creating a file and filling
	// fresh pages costs several times more kernel CPU). The other victims
	// and the spares dropped for room are removed.
	reused := false
	if w.reuse != "" {
		reused = os.Rename(w.reuse, temporary) == nil
	}
	for _, victim := range w.evicted {
		if !reused && !c.direct && os.Rename(c.path(victim), temporary) == nil {
			reused = true
			continue
		}
		os.Remove(c.path(victim))
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
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	err := errClosedCache
	if !closed {
		switch {
		case c.direct:
			err = writeFileDirect(temporary, entry.queued.padded(), entry.size)
		case reused:
			err = overwriteFile(temporary, entry.queued.data)
		default:
			err = os.WriteFile(temporary, entry.queued.data, fsperm.File)
		}
		if err == nil {
			err = os.Rename(temporary, path)
		}
		if err == nil {
			c.stats.cacheFilesWritten.Add(1)
		}
	}
	c.mu.Lock()
	element, ok := c.entries[entry.key]
	stillOurs := ok && element.Value.(*cacheEntry) == entry
	if stillOurs && err != nil {
		c.lru.Remove(element)
		delete(c.entries, entry.key)
		c.size -= entry.size
	}
	queued := entry.queued
	entry.queued = nil
	c.mu.Unlock()
	queued.release()
	switch {
	case err != nil:
		os.Remove(temporary)
	case !stillOurs:
		os.Remove(path) // dropped (evicted, removeSegment) while being written
	}
}

// overwriteFile makes the existing file at path hold exactly data:
// written over from offset 0, then cut to its length (a victim may have
// been longer: a full chunk reused for a segment's short last one).
func overwriteFile(path string, data []byte) error {
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = file.WriteAt(data, 0)
	if err == nil {
		err = file.Truncate(int64(len(data)))
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	return err
}

var errClosedCache = errors.New("chunk cache closed")

// remove drops one chunk.
func (c *chunkCache) remove(key chunkKey) {
	c.recent.remove(key)
	c.mu.Lock()
	element, ok := c.entries[key]
	written := false
	if ok {
		entry := element.Value.(*cacheEntry)
		c.lru.Remove(element)
		delete(c.entries, key)
		c.size -= entry.size
		written = entry.queued == nil // else the writer removes its file
	}
	c.mu.Unlock()
	if written {
		os.Remove(c.path(key))
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
	return element.Value.(*memoryEntry).chunk.retain(), true
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

// demote makes key the first to leave (when held): its reader is done
// with it.
func (m *memoryLRU) demote(key chunkKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if element, ok := m.entries[key]; ok {
		m.lru.MoveToBack(element)
	}
}

func (m *memoryLRU) remove(key chunkKey) {
	m.mu.Lock()
	element, ok := m.entries[key]
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
