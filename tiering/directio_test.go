package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Chunks of every length round-trip through the cache's files, with
// O_DIRECT and buffered: a length that is not a multiple of the block
// (the short last chunk of a segment) is written padded and truncated, so
// the file holds exactly the chunk, and read back whole into a pooled
// buffer.
func TestChunkCacheRoundTripsShortChunks(t *testing.T) {
	const chunkBytes = 64 << 10
	for _, buffered := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "buffered"}[buffered]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pool := newChunkPool(chunkBytes, 0)
			cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 1 << 30, bufferedIO: buffered, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
			if err != nil {
				t.Fatal(err)
			}
			defer cache.close()
			if cache.direct == buffered {
				if !buffered {
					t.Skipf("the file system of %s refuses O_DIRECT", dir)
				}
				t.Fatal("buffered I/O asked for, the cache uses O_DIRECT")
			}
			random := rand.New(rand.NewPCG(3, 4))
			segment := uuid.New()
			lengths := []int64{1, 100, directIOAlign - 1, directIOAlign, directIOAlign + 1, 60001, chunkBytes}
			contents := make([][]byte, len(lengths))
			for i, length := range lengths {
				ch := pool.get(length)
				for j := range ch.data {
					ch.data[j] = byte(random.Uint32())
				}
				contents[i] = bytes.Clone(ch.data)
				cache.put(context.Background(), chunkKey{segment: segment, index: int64(i)}, ch)
				ch.release()
			}
			cache.waitWrites()
			for i, length := range lengths {
				key := chunkKey{segment: segment, index: int64(i)}
				info, err := os.Stat(cache.path(key))
				if err != nil || info.Size() != length {
					t.Fatalf("chunk of %d bytes: file %v, %v", length, info, err)
				}
				ch, ok := cache.get(key)
				if !ok || !ch.fromDisk || !bytes.Equal(ch.data, contents[i]) {
					t.Fatalf("chunk of %d bytes: read back %v (from disk %v), equal %v", length, ok, ok && ch.fromDisk, ok && bytes.Equal(ch.data, contents[i]))
				}
				ch.release()
			}
		})
	}
}

// Pool buffers start at a block boundary and span the pool's size rounded
// up to a block (what O_DIRECT asks), the padding past a chunk's bytes is
// zeroed, and a released buffer is reused.
func TestChunkPoolBuffersAligned(t *testing.T) {
	for _, size := range []int64{directIOAlign, 5000, 1 << 20} {
		pool := newChunkPool(size, 0)
		ch := pool.get(size)
		if addressOf(ch.buffer)%directIOAlign != 0 || int64(len(ch.buffer)) != alignUp(size) || int64(len(ch.data)) != size {
			t.Fatalf("pool of %d: buffer at %#x of %d bytes, data %d", size, addressOf(ch.buffer), len(ch.buffer), len(ch.data))
		}
		for i := range ch.buffer {
			ch.buffer[i] = 0xff
		}
		ch.release()
		short := pool.get(size - 100)
		if pool.allocations.Load() != 1 || addressOf(short.buffer) != addressOf(ch.buffer) {
			t.Fatalf("pool of %d: %d buffers allocated, want the released one reused", size, pool.allocations.Load())
		}
		if padded := short.padded(); int64(len(padded)) != alignUp(size-100) || !bytes.Equal(padded[size-100:], make([]byte, len(padded)-int(size-100))) {
			t.Fatalf("pool of %d: padding of a %d-byte chunk %d bytes, not zeroed", size, size-100, len(padded)-int(size-100))
		}
		short.release()
	}
}

// The cache decides once, at start, whether to use O_DIRECT, and says why.
func TestChooseDirectIO(t *testing.T) {
	cases := []struct {
		name, dir string
		buffered  bool
		reason    string
	}{
		{"turned off", t.TempDir(), true, "turned off"},
		{"probe fails", filepath.Join(t.TempDir(), "missing"), false, "no such file"},
	}
	if runtime.GOOS == "linux" && memoryFileSystem("/dev/shm") {
		cases = append(cases, struct {
			name, dir string
			buffered  bool
			reason    string
		}{"tmpfs", "/dev/shm", false, "tmpfs"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			direct, reason := chooseDirectIO(tc.dir, tc.buffered)
			if direct || !strings.Contains(reason, tc.reason) {
				t.Fatalf("direct %v (%s), want buffered because %s", direct, reason, tc.reason)
			}
		})
	}
}
