//go:build linux

package tiering_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/strata-log/strata/tiering"
)

// A cold replay's chunks go to the disk cache with O_DIRECT: none of a
// cache file's pages is in the page cache afterwards (mincore over a
// mapping of the file), but for the last page of a file whose length is
// not a multiple of the page (its tail is zeroed through the page cache
// when the padded write is truncated); a warm replay is served from
// those files, correct byte for byte, with no GET, and leaves them out
// of the page cache too. Before, every page of every file was resident.
func TestColdReplayCacheFilesBypassPageCache(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	cacheDir := t.TempDir()
	const chunk = 64 << 10
	tier := newTier(t, tiering.Config{Bucket: metrics, CacheDir: cacheDir, ChunkBytes: chunk, MemoryCacheBytes: -1})
	if !tier.Stats().CacheDirectIO {
		t.Skipf("the file system of %s refuses O_DIRECT (see the tier log); TestChunkCacheBufferedOnTmpfs covers the buffered cache", cacheDir)
	}
	if got := gaugeValue(t, tier, "strata_tiering_cache_direct_io"); got != 1 {
		t.Fatalf("strata_tiering_cache_direct_io = %v, want 1", got)
	}
	shortLast := 0
	for _, s := range segments {
		if s.SizeBytes%chunk%4096 != 0 {
			shortLast++
		}
	}
	if shortLast == 0 {
		t.Fatal("no segment ends in a chunk of a length that is not a multiple of 4096: the test misses the padded write")
	}
	replayed := replaySegments(t, tier, local, segments, 16<<10)
	tiering.WaitCacheWrites(tier)
	if onDisk := chunkBytesOnDisk(t, cacheDir); onDisk != replayed {
		t.Fatalf("%d bytes in cache files after a cold replay of %d", onDisk, replayed)
	}
	checkNotInPageCache(t, cacheDir)

	gets, hits := metrics.Counts().Gets, tier.Stats().CacheHits
	replaySegments(t, tier, local, segments, 16<<10) // checks every read against the local log
	if more := metrics.Counts().Gets - gets; more != 0 || tier.Stats().CacheHits == hits {
		t.Fatalf("warm replay: %d GETs, %d cache hits; want none and hits", more, tier.Stats().CacheHits-hits)
	}
	checkNotInPageCache(t, cacheDir)
}

// checkNotInPageCache fails the test for each page of a chunk file in dir
// that is in the page cache, but for the last page of a file whose length
// is not a multiple of the page.
func checkNotInPageCache(t *testing.T, dir string) {
	t.Helper()
	pageSize := int64(os.Getpagesize())
	files, err := filepath.Glob(filepath.Join(dir, "*.chunk"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no chunk files in %s: %v", dir, err)
	}
	resident, pages := 0, 0
	for _, path := range files {
		inCache := residentPages(t, path)
		pages += len(inCache)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		for page, in := range inCache {
			if !in {
				continue
			}
			if last := page == len(inCache)-1; last && info.Size()%pageSize != 0 {
				continue
			}
			resident++
		}
	}
	if resident != 0 {
		t.Fatalf("%d of the %d pages of %d cache files are in the page cache", resident, pages, len(files))
	}
}

// residentPages reports, for each page of the file at path, whether it is
// in the page cache (mincore(2) over a shared read-only mapping, which
// does not fault pages in by itself).
func residentPages(t *testing.T, path string) []bool {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() == 0 {
		return nil
	}
	mapping, err := unix.Mmap(int(file.Fd()), 0, int(info.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mapping)
	pageSize := os.Getpagesize()
	vector := make([]byte, (len(mapping)+pageSize-1)/pageSize)
	// x/sys/unix has no wrapper for mincore on Linux.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mapping[0])), uintptr(len(mapping)), uintptr(unsafe.Pointer(&vector[0]))); errno != 0 {
		t.Fatalf("mincore %s: %v", path, errno)
	}
	resident := make([]bool, len(vector))
	for i, v := range vector {
		resident[i] = v&1 != 0
	}
	return resident
}

// On tmpfs (which refuses O_DIRECT before Linux 6.6 and ignores it after:
// its files are the page cache) the chunk cache falls back to buffered
// files: the same cold and warm replay work, the warm one
// from the cache files, and strata_tiering_cache_direct_io is 0.
func TestChunkCacheBufferedOnTmpfs(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skipf("/dev/shm is not a tmpfs (%v)", err)
	}
	cacheDir, err := os.MkdirTemp("/dev/shm", "strata-tiering-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cacheDir) })
	local, bucket, segments := uploadedLog(t, 250)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	var log syncBuffer
	tier := newTier(t, tiering.Config{Bucket: metrics, CacheDir: cacheDir, ChunkBytes: 64 << 10, MemoryCacheBytes: -1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if tier.Stats().CacheDirectIO {
		t.Fatal("the chunk cache uses O_DIRECT on tmpfs")
	}
	if got := gaugeValue(t, tier, "strata_tiering_cache_direct_io"); got != 0 {
		t.Fatalf("strata_tiering_cache_direct_io = %v, want 0", got)
	}
	if !strings.Contains(log.String(), "direct_io=false") || !strings.Contains(log.String(), "tmpfs") {
		t.Fatalf("the tier log does not say why the cache is buffered:\n%s", log.String())
	}
	replayed := replaySegments(t, tier, local, segments, 16<<10)
	tiering.WaitCacheWrites(tier)
	if onDisk := chunkBytesOnDisk(t, cacheDir); onDisk != replayed {
		t.Fatalf("%d bytes in cache files after a cold replay of %d", onDisk, replayed)
	}
	gets, hits := metrics.Counts().Gets, tier.Stats().CacheHits
	replaySegments(t, tier, local, segments, 16<<10)
	if more := metrics.Counts().Gets - gets; more != 0 || tier.Stats().CacheHits == hits {
		t.Fatalf("warm replay: %d GETs, %d cache hits; want none and hits", more, tier.Stats().CacheHits-hits)
	}
}

// gaugeValue is the value of the tier's metric name (a single series).
func gaugeValue(t *testing.T, tier *tiering.Tier, name string) float64 {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(tiering.NewTierCollector(tier))
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() == name {
			return family.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
