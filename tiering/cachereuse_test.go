package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
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
