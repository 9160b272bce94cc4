package tiering

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// An entry of the cache directory that is not a regular file but is named
// like one of the cache's (a directory ending in .chunk, .spare or
// .chunk.tmpXXXXXXXX, empty or not; a symbolic link) is not the cache's:
// opening the cache leaves it where it is, untouched, and warns with its
// path, and the cache opens and works. Before, a non-empty directory
// failed the start (its removal failed) and an empty one or a link was
// removed.
func TestChunkCacheStartSkipsEntriesNotItsOwn(t *testing.T) {
	const chunkBytes = 64 << 10
	for _, buffered := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "buffered"}[buffered]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(outside, []byte("not the cache's"), 0o600); err != nil {
				t.Fatal(err)
			}
			full := filepath.Join(dir, uuid.NewString()+"-0000000000"+chunkCacheSuffix)
			empty := filepath.Join(dir, "empty"+chunkCacheSuffix)
			spare := filepath.Join(dir, "spare-0"+spareSuffix)
			temporary := filepath.Join(dir, "x"+chunkCacheSuffix+".tmp0000abcd")
			link := filepath.Join(dir, "link"+chunkCacheSuffix)
			for _, directory := range []string{full, empty, spare, temporary} {
				if err := os.Mkdir(directory, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			inside := filepath.Join(full, "operator's file")
			if err := os.WriteFile(inside, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			// A chunk file of an earlier process, kept as a spare (through
			// the page cache): its new name is not the directory's.
			leftover := filepath.Join(dir, uuid.NewString()+"-0000000003"+chunkCacheSuffix)
			if err := os.WriteFile(leftover, make([]byte, chunkBytes), 0o600); err != nil {
				t.Fatal(err)
			}
			log := &lockedBuffer{}
			pool := newChunkPool(chunkBytes, 0)
			cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: 4 * chunkBytes, bufferedIO: buffered, logger: slog.New(slog.NewTextHandler(log, nil))}, pool, &stats{})
			if err != nil {
				t.Fatalf("cache with stray entries in its directory did not open: %v", err)
			}
			defer cache.close()
			want := int64(chunkBytes) // the leftover, a spare
			if cache.direct {
				want = 0 // the leftover removed
			}
			if got := cache.bytes(); got != want {
				t.Errorf("cache counts %d bytes, want %d (the earlier process's file only)", got, want)
			}

			key := chunkKey{segment: uuid.New(), index: 0}
			ch := pool.get(chunkBytes)
			for j := range ch.data {
				ch.data[j] = byte(j)
			}
			content := bytes.Clone(ch.data)
			cache.put(context.Background(), key, ch)
			ch.release()
			cache.waitWrites()
			cache.recent.clear()
			got, ok := cache.get(key)
			if !ok || !got.fromDisk || !bytes.Equal(got.data, content) {
				t.Fatalf("chunk put after the start: read back %v (from disk %v)", ok, ok && got.fromDisk)
			}
			got.release()

			for _, directory := range []string{full, empty, spare, temporary} {
				if info, err := os.Lstat(directory); err != nil || !info.IsDir() {
					t.Errorf("directory %s: %v, %v; want it left alone", directory, info, err)
				}
			}
			if data, err := os.ReadFile(inside); err != nil || string(data) != "keep me" {
				t.Errorf("file inside %s: %q, %v; want it untouched", full, data, err)
			}
			if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
				t.Errorf("link %s: %v, %v; want it left alone", link, info, err)
			}
			if data, err := os.ReadFile(outside); err != nil || string(data) != "not the cache's" {
				t.Errorf("link target: %q, %v; want it untouched", data, err)
			}
			for _, path := range []string{full, empty, spare, temporary, link} {
				found := false
				for _, line := range strings.Split(log.String(), "\n") {
					if strings.Contains(line, "level=WARN") && strings.Contains(line, "path="+path) {
						found = true
					}
				}
				if !found {
					t.Errorf("no warning names %s; log:\n%s", path, log.String())
				}
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes (a logger's).
type lockedBuffer struct {
	mu     sync.Mutex // guards buffer
	buffer bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}
