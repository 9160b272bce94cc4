package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// TestChunkCacheAfterPowerLoss runs the on-disk chunk cache on a
// lost-page-cache file system (internal/lazyfs). The cache writes its files
// without fsync (it is a cache: losing them costs a GET), so after a power
// loss they may be missing, empty or cut short; what it must never do is
// serve one. It was already safe, which this test keeps: a new cache (a
// new process) serves none of the chunk files it finds (it removes them,
// or keeps them as spare files to write new chunks over), and every read
// checks the batches it returns.
func TestChunkCacheAfterPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "cache")
	pool := newChunkPool(1<<20, 0)
	cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 1 << 20, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.close)
	t.Logf("direct I/O: %v", cache.direct)
	segment := uuid.New()
	content := bytes.Repeat([]byte("chunk"), 1000)
	chunk := pool.get(int64(len(content)))
	copy(chunk.data, content)
	for index := range int64(4) {
		cache.put(context.Background(), chunkKey{segment: segment, index: index}, chunk)
	}
	cache.waitWrites() // the files are written (behind the readers)
	if got, ok := cache.get(chunkKey{segment: segment, index: 0}); !ok || !bytes.Equal(got.data, content) {
		t.Fatalf("before the power loss: cached %v", ok)
	}
	// Make the cache directory and some names durable without their
	// content (a file system may commit a name before its data).
	fsync := func(path string) {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	fsync(mount.Dir)
	fsync(dir)
	mount.Drop(t)

	restarted, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 1 << 20, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.close)
	for index := range int64(4) {
		if got, ok := restarted.get(chunkKey{segment: segment, index: index}); ok {
			t.Fatalf("chunk %d served after a power loss (%d bytes)", index, len(got.data))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if strings.Contains(entry.Name(), chunkCacheSuffix) {
			t.Errorf("chunk file %s left from before the power loss", entry.Name())
		}
	}
}
