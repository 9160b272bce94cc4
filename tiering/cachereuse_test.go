package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
)

// A full chunk cache writes each new chunk into the file of the chunk it
// evicts (renamed and overwritten in place, through the page cache)
// rather than removing that file and creating another: the same inode
// holds the new chunk, exactly its bytes (a short chunk cuts the longer
// file it reuses), and a hit from disk reads them back. A full cache
// replaying a long log reuses its files over and over.
func TestEvictedCacheFilesReused(t *testing.T) {
	const chunkBytes = 64 << 10
	dir := t.TempDir()
	pool := newChunkPool(chunkBytes, 0)
	var counters stats
	// Room for two full chunks; no memory LRU, so every get reads a file.
	cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 2 * chunkBytes, bufferedIO: true, logger: slog.New(slog.DiscardHandler)}, pool, &counters)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.close()
	random := rand.New(rand.NewPCG(5, 6))
	segment := uuid.New()
	contents := map[int64][]byte{}
	put := func(index, length int64) {
		ch := pool.get(length)
		for j := range ch.data {
			ch.data[j] = byte(random.Uint32())
		}
		contents[index] = bytes.Clone(ch.data)
		cache.put(context.Background(), chunkKey{segment: segment, index: index}, ch)
		ch.release()
		cache.waitWrites()
	}
	inode := func(index int64) uint64 {
		t.Helper()
		info, err := os.Stat(cache.path(chunkKey{segment: segment, index: index}))
		if err != nil {
			t.Fatalf("chunk %d: %v", index, err)
		}
		return info.Sys().(*syscall.Stat_t).Ino
	}
	// Each file held open, so that a removed one's inode cannot be
	// handed to the next file created.
	held := func(index int64) uint64 {
		t.Helper()
		file, err := os.Open(cache.path(chunkKey{segment: segment, index: index}))
		if err != nil {
			t.Fatalf("chunk %d: %v", index, err)
		}
		t.Cleanup(func() { file.Close() })
		info, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return info.Sys().(*syscall.Stat_t).Ino
	}
	put(0, chunkBytes)
	put(1, chunkBytes)
	first, second := held(0), held(1)
	put(2, chunkBytes) // evicts 0
	if got := inode(2); got != first {
		t.Errorf("chunk 2 is in inode %d, want chunk 0's evicted file (inode %d) reused", got, first)
	}
	put(3, 1000) // a short chunk evicts 1
	if got := inode(3); got != second {
		t.Errorf("chunk 3 is in inode %d, want chunk 1's evicted file (inode %d) reused", got, second)
	}
	for _, evicted := range []int64{0, 1} {
		if _, err := os.Stat(cache.path(chunkKey{segment: segment, index: evicted})); !os.IsNotExist(err) {
			t.Errorf("evicted chunk %d: file still there (%v)", evicted, err)
		}
		if _, ok := cache.get(chunkKey{segment: segment, index: evicted}); ok {
			t.Errorf("evicted chunk %d still served", evicted)
		}
	}
	for _, index := range []int64{2, 3} {
		key := chunkKey{segment: segment, index: index}
		info, err := os.Stat(cache.path(key))
		if err != nil || info.Size() != int64(len(contents[index])) {
			t.Fatalf("chunk %d: file %v, %v; want %d bytes", index, info, err, len(contents[index]))
		}
		ch, ok := cache.get(key)
		if !ok || !ch.fromDisk || !bytes.Equal(ch.data, contents[index]) {
			t.Fatalf("chunk %d: read back %v (from disk %v), equal %v", index, ok, ok && ch.fromDisk, ok && bytes.Equal(ch.data, contents[index]))
		}
		ch.release()
	}
	if n := counters.cacheFilesWritten.Load(); n != 4 {
		t.Errorf("%d cache files written, want 4", n)
	}
	if n := counters.corruptChunks.Load(); n != 0 {
		t.Errorf("%d chunks counted corrupt, want 0", n)
	}
}

// The chunk files an earlier process left are never served (their
// checksums went with it) but are kept, up to the capacity, as spare
// files that new chunks are written into: after a restart, the first
// chunks cached go into the old files (same inodes) instead of new ones,
// and the cache's size counts the spares until they are reused. Beyond
// the capacity, leftovers are removed.
func TestChunkFilesOfEarlierProcessReused(t *testing.T) {
	const chunkBytes = 64 << 10
	dir := t.TempDir()
	pool := newChunkPool(chunkBytes, 0)
	open := func(capacity int64) *chunkCache {
		t.Helper()
		cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: capacity, bufferedIO: true, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
		if err != nil {
			t.Fatal(err)
		}
		return cache
	}
	random := rand.New(rand.NewPCG(7, 8))
	segment := uuid.New()
	put := func(cache *chunkCache, index int64) []byte {
		ch := pool.get(chunkBytes)
		for j := range ch.data {
			ch.data[j] = byte(random.Uint32())
		}
		content := bytes.Clone(ch.data)
		cache.put(context.Background(), chunkKey{segment: segment, index: index}, ch)
		ch.release()
		cache.waitWrites()
		return content
	}
	inodes := map[uint64]bool{}
	earlier := open(4 * chunkBytes)
	for index := range int64(3) {
		put(earlier, index)
		file, err := os.Open(earlier.path(chunkKey{segment: segment, index: index}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { file.Close() }) // held: a removed file's inode cannot be handed to a new one
		info, _ := file.Stat()
		inodes[info.Sys().(*syscall.Stat_t).Ino] = true
	}
	earlier.close()

	cache := open(4 * chunkBytes)
	defer cache.close()
	if got := cache.bytes(); got != 3*chunkBytes {
		t.Errorf("restarted cache counts %d bytes, want the 3 spare files' %d", got, 3*chunkBytes)
	}
	for index := range int64(3) {
		if _, ok := cache.get(chunkKey{segment: segment, index: index}); ok {
			t.Fatalf("chunk %d of the earlier process served", index)
		}
		if _, err := os.Stat(cache.path(chunkKey{segment: segment, index: index})); !os.IsNotExist(err) {
			t.Fatalf("chunk %d's file left under its name: %v", index, err)
		}
	}
	for index := int64(10); index < 12; index++ {
		content := put(cache, index)
		key := chunkKey{segment: segment, index: index}
		info, err := os.Stat(cache.path(key))
		if err != nil {
			t.Fatal(err)
		}
		if ino := info.Sys().(*syscall.Stat_t).Ino; !inodes[ino] {
			t.Errorf("chunk %d written to a new file (inode %d), want one of the earlier process's %v", index, ino, inodes)
		}
		delete(inodes, info.Sys().(*syscall.Stat_t).Ino)
		ch, ok := cache.get(key)
		if !ok || !bytes.Equal(ch.data, content) {
			t.Fatalf("chunk %d: read back %v, equal %v", index, ok, ok && bytes.Equal(ch.data, content))
		}
		ch.release()
	}
	if got := cache.bytes(); got != 3*chunkBytes {
		t.Errorf("cache counts %d bytes after two spares were reused, want %d (two chunks, one spare)", got, 3*chunkBytes)
	}
	cache.close()

	// Room for one: the other leftovers are removed.
	small := open(chunkBytes)
	defer small.close()
	if got := small.bytes(); got != chunkBytes {
		t.Errorf("cache of one chunk counts %d bytes of spares, want %d", got, chunkBytes)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, name := range names {
		left = append(left, name.Name())
	}
	if len(left) != 1 || !strings.HasSuffix(left[0], spareSuffix) {
		t.Errorf("files left in a cache of one chunk: %v, want one spare", left)
	}
}

// A chunk evicted while a reader is about to read its file (the file
// removed, or reused for the chunk that evicted it) is a miss for that
// reader, not a damaged chunk: nothing is counted corrupt, and the new
// chunk is served from the reused file.
func TestChunkEvictedDuringReadIsAMiss(t *testing.T) {
	const chunkBytes = 64 << 10
	cache, filler, counters := filledChunkCache(t, chunkBytes, chunkBytes, 0)
	segment := filler.segment
	put := func(index int64, fill byte) {
		filler.put(index, fill)
		cache.waitWrites()
	}
	put(0, 'a')
	cache.beforeRead = func(key chunkKey) {
		if key.index == 0 {
			put(1, 'b') // evicts chunk 0 between its lookup and its read
		}
	}
	if ch, ok := cache.get(chunkKey{segment: segment, index: 0}); ok {
		t.Fatalf("evicted chunk served: %q…", ch.data[:4])
	}
	cache.beforeRead = nil
	if n := counters.corruptChunks.Load(); n != 0 {
		t.Errorf("%d chunks counted corrupt, want 0", n)
	}
	ch, ok := cache.get(chunkKey{segment: segment, index: 1})
	if !ok || !bytes.Equal(ch.data, bytes.Repeat([]byte{'b'}, chunkBytes)) {
		t.Fatalf("chunk 1 after the eviction: %v", ok)
	}
	ch.release()
}
