package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/google/uuid"
)

// The chunks one put is given (those of one ranged GET) go into one file,
// named after the first: the chunks' bytes back to back, chunk i at
// (i − first)·ChunkBytes, only the last (a segment's last) shorter. Each
// is read back from its offset; the file's chunks leave together (evicted
// when the least recently used of them is, its file reused for what
// evicts them; dropped with one found damaged); and a run longer than
// fileChunks is split. Through the page cache and with O_DIRECT.
func TestChunkRunCachedInOneFile(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		name := map[bool]string{true: "buffered", false: "direct"}[buffered]
		t.Run(name, func(t *testing.T) {
			const chunkBytes = 64 << 10
			dir := t.TempDir()
			pool := newChunkPool(chunkBytes, 0)
			var counters stats
			// Room for five chunks; no memory LRU, so every get reads a file.
			cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 5 * chunkBytes, bufferedIO: buffered, logger: slog.New(slog.DiscardHandler)}, pool, &counters)
			if err != nil {
				t.Fatal(err)
			}
			defer cache.close()
			if cache.direct == buffered {
				t.Skipf("O_DIRECT not available in %s", dir)
			}
			random := rand.New(rand.NewPCG(7, 8))
			segment := uuid.New()
			key := func(index int64) chunkKey { return chunkKey{segment: segment, index: index} }
			contents := map[int64][]byte{}
			put := func(first int64, lengths ...int64) {
				t.Helper()
				var chunks []*chunk
				for i, length := range lengths {
					ch := pool.get(length)
					for j := range ch.data {
						ch.data[j] = byte(random.Uint32())
					}
					contents[first+int64(i)] = bytes.Clone(ch.data)
					chunks = append(chunks, ch)
				}
				cache.put(context.Background(), key(first), chunks...)
				for _, ch := range chunks {
					ch.release()
				}
				cache.waitWrites()
			}
			check := func(index int64) {
				t.Helper()
				ch, ok := cache.get(key(index))
				if !ok || !ch.fromDisk || !bytes.Equal(ch.data, contents[index]) {
					t.Fatalf("chunk %d: read back %v (from disk %v), equal %v", index, ok, ok && ch.fromDisk, ok && bytes.Equal(ch.data, contents[index]))
				}
				ch.release()
			}
			gone := func(index int64) {
				t.Helper()
				if _, ok := cache.get(key(index)); ok {
					t.Errorf("chunk %d still served", index)
				}
			}
			files := func() []string {
				t.Helper()
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, entry := range entries {
					names = append(names, entry.Name())
				}
				return names
			}

			// Chunks 10..13 of a segment, the last its short tail: one file.
			put(10, chunkBytes, chunkBytes, chunkBytes, 1000)
			if got, want := files(), []string{segment.String() + "-0000000010.chunk"}; !slices.Equal(got, want) {
				t.Fatalf("files %q, want %q", got, want)
			}
			file, err := os.ReadFile(cache.path(key(10)))
			if err != nil {
				t.Fatal(err)
			}
			if want := slices.Concat(contents[10], contents[11], contents[12], contents[13]); !bytes.Equal(file, want) {
				t.Fatalf("the file holds %d bytes, not the four chunks back to back (%d)", len(file), len(want))
			}
			for index := int64(10); index <= 13; index++ {
				check(index)
			}
			if n := counters.cacheFilesWritten.Load(); n != 1 {
				t.Errorf("%d files written, want 1", n)
			}
			inode := func(index int64) uint64 {
				t.Helper()
				info, err := os.Stat(cache.path(key(index)))
				if err != nil {
					t.Fatalf("file of chunk %d: %v", index, err)
				}
				return info.Sys().(*syscall.Stat_t).Ino
			}
			first := inode(10)
			held, err := os.Open(cache.path(key(10))) // its inode cannot be recycled
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()

			// Chunk 11 used last: the file is still the least recently
			// used, and goes whole (4 chunks) to make room for 2 more.
			check(11)
			put(20, chunkBytes, chunkBytes)
			for index := int64(10); index <= 13; index++ {
				gone(index)
			}
			if n := counters.cacheEvictions.Load(); n != 4 {
				t.Errorf("%d chunks evicted, want 4", n)
			}
			check(20)
			check(21)
			if got := inode(20); !buffered && got == first || buffered && got != first {
				t.Errorf("chunks 20, 21 in inode %d, the evicted file's %d (reused: %v)", got, first, buffered)
			}
			if got, want := files(), []string{segment.String() + "-0000000020.chunk"}; !slices.Equal(got, want) {
				t.Fatalf("files %q, want %q", got, want)
			}

			// One chunk of a file found damaged drops the file.
			put(30, chunkBytes, chunkBytes)
			cache.remove(key(31))
			gone(30)
			gone(31)
			if _, err := os.Stat(cache.path(key(30))); !os.IsNotExist(err) {
				t.Errorf("the file of a removed chunk is still there (%v)", err)
			}
			check(20)
			if size := cache.bytes(); size != 2*chunkBytes {
				t.Errorf("cache size %d, want %d", size, 2*chunkBytes)
			}

			// A run longer than a file holds is split: at most the
			// capacity (five chunks) per file.
			put(40, chunkBytes, chunkBytes, chunkBytes, chunkBytes, chunkBytes, chunkBytes, chunkBytes)
			gone(40)
			gone(41)
			for index := int64(45); index <= 46; index++ {
				check(index)
			}
			if got, want := files(), []string{segment.String() + "-0000000045.chunk"}; !slices.Equal(got, want) {
				t.Fatalf("files %q, want %q", got, want)
			}
			if n := counters.corruptChunks.Load(); n != 0 {
				t.Errorf("%d chunks counted corrupt, want 0", n)
			}
		})
	}
}

// A chunk evicted while a reader reads its file is a miss even when the
// file is still there, whole (the writer has not yet reused or removed
// it): what is no longer in the cache is not served from it, nor put back
// into the memory LRU.
func TestChunkEvictedDuringReadNotServedFromItsOldFile(t *testing.T) {
	const chunkBytes = 64 << 10
	cache, filler, counters := filledChunkCache(t, chunkBytes, chunkBytes, 4*chunkBytes)
	segment := filler.segment
	filler.put(0, 'a')
	cache.waitWrites()
	held := make(chan struct{})
	cache.beforeWrite = func() { <-held } // chunk 0's file stays as it is
	cache.beforeRead = func(key chunkKey) {
		if key.index == 0 {
			filler.put(1, 'b') // evicts chunk 0 between its lookup and its read
		}
	}
	ch, ok := cache.getDisk(chunkKey{segment: segment, index: 0})
	if ok {
		ch.release()
		t.Errorf("evicted chunk served from its old file")
	}
	if cache.recent.contains(chunkKey{segment: segment, index: 0}) {
		t.Errorf("evicted chunk put into the memory LRU")
	}
	cache.beforeRead = nil
	close(held)
	cache.waitWrites()
	if n := counters.corruptChunks.Load(); n != 0 {
		t.Errorf("%d chunks counted corrupt, want 0", n)
	}
}

// filledChunkCache returns a chunk cache in a temporary directory,
// buffered, and a way to put chunks of one segment filled with one byte
// (not waiting for their writes).
func filledChunkCache(t *testing.T, chunkBytes, capacity, memoryCapacity int64) (*chunkCache, chunkFiller, *stats) {
	t.Helper()
	pool := newChunkPool(chunkBytes, 0)
	counters := &stats{}
	cache, err := newChunkCache(chunkCacheConfig{dir: t.TempDir(), capacity: capacity, memoryCapacity: memoryCapacity, bufferedIO: true, logger: slog.New(slog.DiscardHandler)}, pool, counters)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.close)
	return cache, chunkFiller{cache: cache, pool: pool, segment: uuid.New()}, counters
}

// chunkFiller puts chunks of segment filled with one byte.
type chunkFiller struct {
	cache   *chunkCache
	pool    *chunkPool
	segment uuid.UUID
}

func (f chunkFiller) put(index int64, fill byte) {
	ch := f.pool.get(f.pool.size)
	for j := range ch.data {
		ch.data[j] = fill
	}
	f.cache.put(context.Background(), chunkKey{segment: f.segment, index: index}, ch)
	ch.release()
}

// A chunk put again right after its file was removed (a reader that found
// it damaged fetches it again) is in a new file of the same name: removing
// the old file must not remove the new one. remove unlinked the name after
// releasing the lock, so the new file could go instead, and its chunks
// were then read from a missing file (a miss, counted corrupt).
func TestRemovedChunkPutAgainKeepsItsNewFile(t *testing.T) {
	const chunkBytes = 64 << 10
	cache, filler, counters := filledChunkCache(t, chunkBytes, 4*chunkBytes, 0)
	key := chunkKey{segment: filler.segment, index: 3}
	filler.put(3, 'a')
	cache.waitWrites()
	cache.afterRemove = func(removed chunkKey) {
		if removed == key {
			filler.put(3, 'b') // fetched again: a new file, same name
			cache.waitWrites()
		}
	}
	cache.remove(key)
	cache.afterRemove = nil
	if _, err := os.Stat(cache.path(key)); err != nil {
		t.Fatalf("the chunk's new file: %v", err)
	}
	ch, ok := cache.getDisk(key)
	if !ok {
		t.Fatalf("chunk put again after its removal not served (%d counted corrupt)", counters.corruptChunks.Load())
	}
	defer ch.release()
	if !ch.fromDisk || ch.data[0] != 'b' {
		t.Errorf("served from disk %v, byte %q, want its new file's 'b'", ch.fromDisk, ch.data[0])
	}
	if n := counters.corruptChunks.Load(); n != 0 {
		t.Errorf("%d chunks counted corrupt, want 0", n)
	}
	if size := cache.bytes(); size != chunkBytes {
		t.Errorf("cache size %d, want %d", size, chunkBytes)
	}
}

// A file evicted while it waits in the write-behind queue is never
// written: the writer skips it (no file created, none counted written),
// and the cache counts only the files that stay. Before, the writer wrote
// it and then removed it: a disk write for nothing.
func TestChunkEvictedWhileQueuedNeverWritten(t *testing.T) {
	const chunkBytes = 64 << 10
	cache, filler, counters := filledChunkCache(t, chunkBytes, 2*chunkBytes, 0)
	segment := filler.segment
	filler.put(0, 'a')
	cache.waitWrites()
	held := make(chan struct{})
	cache.beforeWrite = func() { <-held } // chunk 1's file waits
	filler.put(1, 'b')
	ch, ok := cache.get(chunkKey{segment: segment, index: 0}) // chunk 1 becomes the least recently used
	if !ok {
		t.Fatal("chunk 0 not cached")
	}
	ch.release()
	filler.put(2, 'c') // evicts chunk 1, still queued
	if cache.contains(chunkKey{segment: segment, index: 1}) {
		t.Fatal("chunk 1 not evicted")
	}
	close(held)
	cache.waitWrites()

	if n := counters.cacheFilesWritten.Load(); n != 2 {
		t.Errorf("%d cache files written, want 2 (chunks 0 and 2; chunk 1 evicted before its write)", n)
	}
	if _, err := os.Stat(cache.path(chunkKey{segment: segment, index: 1})); !os.IsNotExist(err) {
		t.Errorf("evicted chunk 1's file: %v, want none", err)
	}
	names, err := os.ReadDir(cache.dir)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	var files []string
	for _, entry := range names {
		info, err := entry.Info()
		if err != nil {
			t.Fatal(err)
		}
		onDisk += info.Size()
		files = append(files, entry.Name())
	}
	want := []string{cache.path(chunkKey{segment: segment, index: 0}), cache.path(chunkKey{segment: segment, index: 2})}
	for i := range want {
		want[i] = filepath.Base(want[i])
	}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}
	if got := cache.bytes(); got != 2*chunkBytes || got != onDisk {
		t.Errorf("cache counts %d bytes, the directory holds %d, want %d", got, onDisk, 2*chunkBytes)
	}
	if n := counters.cacheEvictions.Load(); n != 1 {
		t.Errorf("%d chunks counted evicted, want 1", n)
	}
	for index, fill := range map[int64]byte{0: 'a', 2: 'c'} {
		ch, ok := cache.get(chunkKey{segment: segment, index: index})
		if !ok || !bytes.Equal(ch.data, bytes.Repeat([]byte{fill}, chunkBytes)) {
			t.Fatalf("chunk %d: read back %v", index, ok)
		}
		ch.release()
	}
	if _, ok := cache.get(chunkKey{segment: segment, index: 1}); ok {
		t.Error("evicted chunk 1 served")
	}
}
