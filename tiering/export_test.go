package tiering

import "time"

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

// DropMemoryCache empties the memory LRU (as after the chunks aged out of
// it): the chunks stay in the disk cache.
func DropMemoryCache(t *Tier) { t.cache.recent.clear() }

// DropMemoryChunk takes one chunk out of the memory LRU (as if it alone
// aged out): it stays in the disk cache.
func DropMemoryChunk(t *Tier, segment [16]byte, index int64) {
	t.cache.recent.remove(chunkKey{segment: segment, index: index})
}

// BeforeDiskRead calls fn before each chunk file the disk cache reads
// (on a reader's path or ahead of it).
func BeforeDiskRead(t *Tier, fn func(segment [16]byte, index int64)) {
	t.cache.beforeRead = func(key chunkKey) { fn(key.segment, key.index) }
}
