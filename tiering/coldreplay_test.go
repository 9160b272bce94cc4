package tiering_test

import (
	"testing"

	"github.com/strata-log/strata/tiering"
)

// A cold sequential replay caches each GET's chunks in one file (the
// first fill of an empty cache creates a file per GET, not per chunk),
// and a warm replay of the same tier reads every chunk back from those
// files without a GET.
func TestColdReplayCachesOneFilePerGET(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 512<<10, 0, 13)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	size := int64(0)
	for _, s := range segments {
		size += s.SizeBytes
	}
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, CacheDir: t.TempDir(), CacheBytes: 2 * size, MemoryCacheBytes: -1})
	replaySegments(t, tier, local, segments, chunk)
	tiering.WaitCacheWrites(tier)
	cold := tier.Stats()
	chunks := cold.CacheBytes / chunk
	t.Logf("cold: %d chunk GETs, %d files written, %d bytes cached (%d chunks)", cold.ChunkGETs, cold.CacheFilesWritten, cold.CacheBytes, chunks)
	if cold.CacheBytes != size {
		t.Fatalf("%d bytes cached, want the %d replayed", cold.CacheBytes, size)
	}
	if cold.CacheFilesWritten != cold.ChunkGETs || cold.ChunkGETs >= chunks {
		t.Errorf("%d files written for %d GETs of %d chunks, want one file per GET", cold.CacheFilesWritten, cold.ChunkGETs, chunks)
	}
	replaySegments(t, tier, local, segments, chunk)
	if warm := tier.Stats(); warm.ChunkGETs != cold.ChunkGETs || warm.CacheMisses != cold.CacheMisses {
		t.Errorf("warm replay: %d GETs, %d misses after the cold one's %d, %d; want none", warm.ChunkGETs, warm.CacheMisses, cold.ChunkGETs, cold.CacheMisses)
	}
}
