package tiering

import (
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"

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

// chunkCache is the bounded on-disk LRU of .log chunks, with a small
// in-memory LRU of the most recently used chunks in front of it (a reader
// whose reads are not aligned to chunks touches each chunk twice). One file
// per chunk; the CRC-32C of each chunk is kept in memory and checked on
// every hit from disk, so a damaged cache file is dropped and fetched again
// instead of being served. Chunks handed out are shared: nobody may modify
// them. Safe for concurrent use.
type chunkCache struct {
	dir      string
	capacity int64
	stats    *stats
	recent   *memoryLRU

	mu      sync.Mutex // guards entries, lru, size
	entries map[chunkKey]*list.Element
	lru     *list.List // of *cacheEntry, most recently used first
	size    int64
}

type cacheEntry struct {
	key     chunkKey
	size    int64
	crc     uint32
	pending bool // its file is being written: not served yet
}

func newChunkCache(dir string, capacity, memoryCapacity int64, stats *stats) (*chunkCache, error) {
	if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	// Files of an earlier process: their checksums are gone with it.
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	for _, name := range names {
		if strings.HasSuffix(name.Name(), chunkCacheSuffix) || strings.Contains(name.Name(), chunkCacheSuffix+".tmp") {
			if err := os.Remove(filepath.Join(dir, name.Name())); err != nil {
				return nil, fmt.Errorf("tiering: chunk cache: %w", err)
			}
		}
	}
	return &chunkCache{
		dir: dir, capacity: capacity, stats: stats, recent: newMemoryLRU(memoryCapacity),
		entries: make(map[chunkKey]*list.Element), lru: list.New(),
	}, nil
}

func (c *chunkCache) path(key chunkKey) string {
	return filepath.Join(c.dir, fmt.Sprintf("%s-%010d%s", key.segment, key.index, chunkCacheSuffix))
}

// get returns the cached chunk, or false when it is not cached (or its file
// is missing or damaged, in which case the entry is dropped).
func (c *chunkCache) get(key chunkKey) ([]byte, bool) {
	if data, ok := c.recent.get(key); ok {
		return data, true
	}
	c.mu.Lock()
	element, ok := c.entries[key]
	if !ok || element.Value.(*cacheEntry).pending {
		c.mu.Unlock()
		return nil, false
	}
	c.lru.MoveToFront(element)
	entry := *element.Value.(*cacheEntry)
	c.mu.Unlock()
	data, err := os.ReadFile(c.path(key))
	if err != nil || int64(len(data)) != entry.size || crc32.Checksum(data, castagnoli) != entry.crc {
		c.stats.corruptChunks.Add(1)
		c.remove(key)
		return nil, false
	}
	c.recent.put(key, data)
	return data, true
}

// putMemory keeps a chunk in the in-memory LRU only (put writes it to disk
// later).
func (c *chunkCache) putMemory(key chunkKey, data []byte) { c.recent.put(key, data) }

// contains reports whether key is cached, without touching the LRU order.
func (c *chunkCache) contains(key chunkKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// put stores a chunk, evicting the least recently used ones beyond the
// capacity. Space is reserved (and the victims' files removed) before the
// file is written, so the directory never holds more than the capacity in
// chunk files. A failure to write is not an error for the reader: the
// chunk just stays uncached.
func (c *chunkCache) put(key chunkKey, data []byte) {
	size := int64(len(data))
	if size > c.capacity {
		return
	}
	entry := &cacheEntry{key: key, size: size, crc: crc32.Checksum(data, castagnoli), pending: true}
	c.mu.Lock()
	if _, ok := c.entries[key]; ok {
		c.mu.Unlock()
		return // already cached, or being written by another put
	}
	var evicted []chunkKey
	for c.size+size > c.capacity {
		oldest := c.lru.Back()
		victim := oldest.Value.(*cacheEntry)
		c.lru.Remove(oldest)
		delete(c.entries, victim.key)
		c.size -= victim.size
		evicted = append(evicted, victim.key)
	}
	c.entries[key] = c.lru.PushFront(entry)
	c.size += size
	c.mu.Unlock()
	for _, victim := range evicted {
		c.stats.cacheEvictions.Add(1)
		os.Remove(c.path(victim))
	}

	path := c.path(key)
	temporary := path + ".tmp" + fmt.Sprintf("%08x", rand.Uint32())
	err := os.WriteFile(temporary, data, fsperm.File)
	if err == nil {
		err = os.Rename(temporary, path)
	}
	c.mu.Lock()
	element, ok := c.entries[key]
	stillOurs := ok && element.Value.(*cacheEntry) == entry
	if stillOurs && err == nil {
		entry.pending = false
	} else if stillOurs {
		c.lru.Remove(element)
		delete(c.entries, key)
		c.size -= size
	}
	c.mu.Unlock()
	switch {
	case err != nil:
		os.Remove(temporary)
	case !stillOurs:
		os.Remove(path) // dropped (removeSegment) while being written
	}
}

// remove drops one chunk.
func (c *chunkCache) remove(key chunkKey) {
	c.recent.remove(key)
	c.mu.Lock()
	element, ok := c.entries[key]
	if ok {
		c.lru.Remove(element)
		delete(c.entries, key)
		c.size -= element.Value.(*cacheEntry).size
	}
	c.mu.Unlock()
	if ok {
		os.Remove(c.path(key))
	}
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
}

func (c *chunkCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// memoryLRU holds recently used chunks in memory, bounded in bytes. Safe
// for concurrent use.
type memoryLRU struct {
	capacity int64

	mu      sync.Mutex // guards entries, lru, size
	entries map[chunkKey]*list.Element
	lru     *list.List // of *memoryEntry, most recently used first
	size    int64
}

type memoryEntry struct {
	key  chunkKey
	data []byte
}

func newMemoryLRU(capacity int64) *memoryLRU {
	return &memoryLRU{capacity: capacity, entries: make(map[chunkKey]*list.Element), lru: list.New()}
}

func (m *memoryLRU) get(key chunkKey) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	element, ok := m.entries[key]
	if !ok {
		return nil, false
	}
	m.lru.MoveToFront(element)
	return element.Value.(*memoryEntry).data, true
}

func (m *memoryLRU) put(key chunkKey, data []byte) {
	if int64(len(data)) > m.capacity {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if element, ok := m.entries[key]; ok {
		m.size -= int64(len(element.Value.(*memoryEntry).data))
		element.Value = &memoryEntry{key: key, data: data}
		m.lru.MoveToFront(element)
	} else {
		m.entries[key] = m.lru.PushFront(&memoryEntry{key: key, data: data})
	}
	m.size += int64(len(data))
	for m.size > m.capacity {
		oldest := m.lru.Back()
		victim := oldest.Value.(*memoryEntry)
		m.lru.Remove(oldest)
		delete(m.entries, victim.key)
		m.size -= int64(len(victim.data))
	}
}

func (m *memoryLRU) remove(key chunkKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if element, ok := m.entries[key]; ok {
		m.lru.Remove(element)
		delete(m.entries, key)
		m.size -= int64(len(element.Value.(*memoryEntry).data))
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
	entry, ok := index.SearchOffsetEntries(x, relativeOffset)
	if !ok {
		return 0
	}
	return int64(entry.Position)
}
