package tiering

import (
	"time"

	"github.com/strata-log/strata/metadata"
)

// HoldCacheWrites makes the disk cache's writer wait before each file until
// the returned function is called (then it proceeds and waits no more).
func HoldCacheWrites(t *Tier) (release func()) {
	held := make(chan struct{})
	t.cache.beforeWrite = func() { <-held }
	return func() { close(held) }
}

// WaitCacheWrites waits until no chunk GET is in flight (each queues its
// chunks for the disk cache before it ends) and every chunk queued is
// written (or dropped).
func WaitCacheWrites(t *Tier) {
	for {
		t.flightMu.Lock()
		inFlight := len(t.chunkFlights)
		t.flightMu.Unlock()
		if inFlight == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	t.cache.waitWrites()
}

// KeepPassedChunks makes the chunks sequential readers pass stay in the
// memory LRU (at its back, until it is full) instead of leaving it once
// they are on disk, until restore is called: a replay that is to leave
// its chunks in memory for the test's next reads.
func KeepPassedChunks(t *Tier) (restore func()) {
	t.cache.keepPassed.Store(true)
	return func() { t.cache.keepPassed.Store(false) }
}

// DropMemoryCache empties the memory LRU (as after the chunks aged out of
// it): the chunks stay in the disk cache.
func DropMemoryCache(t *Tier) { t.cache.recent.clear() }

// DropMemoryChunk takes one chunk out of the memory LRU (as if it alone
// aged out): it stays in the disk cache.
func DropMemoryChunk(t *Tier, segment [16]byte, index int64) {
	t.cache.recent.remove(chunkKey{segment: segment, index: index})
}

// CacheFileOf returns the disk cache's file holding chunk index of
// segment and the chunk's offset in it; false when the chunk is not in
// the disk cache.
func CacheFileOf(t *Tier, segment metadata.SegmentManifest, index int64) (path string, offset int64, ok bool) {
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	element, ok := c.entries[chunkKey{segment: segment.SegmentID, index: index}]
	if !ok {
		return "", 0, false
	}
	file := element.Value.(*cacheEntry).file
	return c.path(file.first), (index - file.first.index) * c.pool.size, true
}

// BeforeDiskRead calls fn before each chunk file the disk cache reads
// (on a reader's path or ahead of it).
func BeforeDiskRead(t *Tier, fn func(segment [16]byte, index int64)) {
	t.cache.beforeRead = func(key chunkKey) { fn(key.segment, key.index) }
}

// MemoryChunk names a chunk held in the memory LRU.
type MemoryChunk struct {
	Segment [16]byte
	Index   int64
}

// MemoryChunks lists the chunks in the memory LRU, the next to leave it
// first.
func MemoryChunks(t *Tier) []MemoryChunk {
	m := t.cache.recent
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []MemoryChunk
	for element := m.lru.Back(); element != nil; element = element.Prev() {
		key := element.Value.(*memoryEntry).key
		out = append(out, MemoryChunk{Segment: key.segment, Index: key.index})
	}
	return out
}

// StreamsClock sets the clock of the parked streams (when one was parked,
// how long it has been idle) and returns their idle timer's tick: it
// closes those idle for 10 s by that clock.
func StreamsClock(t *Tier, now func() time.Time) (tick func()) {
	t.streams.mu.Lock()
	t.streams.now = now
	t.streams.mu.Unlock()
	return t.streams.tick
}

// OnRun calls started as each run of chunks starts (a GET's, or a part
// of a streamed one's) with the bytes it is to read, and what it returns
// once the run has read them (or failed). Set before the tier's first
// read.
func OnRun(t *Tier, started func(bytes int64) (ended func())) { t.onRun = started }

// OnPace calls took with the bytes each wait for the fetch quota takes
// (a chunk GET's, or a chunk file's). Set before the tier's first read.
func OnPace(t *Tier, took func(bytes int64)) { t.onPace = took }

// WaitFetches waits until no chunk is on its way (every GET, read-ahead
// run and load from the disk cache has delivered its chunks or failed):
// a test's reader that calls it between reads is slower than the store.
func WaitFetches(t *Tier) {
	for {
		t.flightMu.Lock()
		n := len(t.chunkFlights)
		t.flightMu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// CaughtUpWindows is how many PrefetchChunks a read-ahead window grows to
// once its reader caught up with the store.
const CaughtUpWindows = caughtUpWindows

// IndexCached reports whether the decoded offset index of segment is in
// the index cache.
func IndexCached(t *Tier, segment [16]byte) bool {
	_, ok := t.indexes.get(segment)
	return ok
}
