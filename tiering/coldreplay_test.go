package tiering_test

import (
	"testing"

	"github.com/strata-log/strata/tiering"
)

// A cold sequential replay caches each run's chunks in one file (the
// first fill of an empty cache creates a file per run of chunks read
// together, a GET's or a part of a streamed one's, not per chunk),
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
	runs := watchRuns(tier, nil)
	// A reader slower than the store (one that catches up with it reads
	// ahead with GETs of their own in parallel: TestCaughtUpReaderReadsAheadInParallel).
	replaySegmentsPaced(t, tier, local, segments, chunk, func() { tiering.WaitFetches(tier) })
	tiering.WaitCacheWrites(tier)
	cold := tier.Stats()
	chunks := cold.CacheBytes / chunk
	runs.mu.Lock()
	coldRuns := int64(runs.runs)
	runs.mu.Unlock()
	t.Logf("cold: %d chunk GETs, %d runs, %d files written, %d bytes cached (%d chunks)", cold.ChunkGETs, coldRuns, cold.CacheFilesWritten, cold.CacheBytes, chunks)
	if cold.CacheBytes != size {
		t.Fatalf("%d bytes cached, want the %d replayed", cold.CacheBytes, size)
	}
	if cold.CacheFilesWritten != coldRuns || coldRuns >= chunks {
		t.Errorf("%d files written for %d runs of %d chunks, want one file per run", cold.CacheFilesWritten, coldRuns, chunks)
	}
	if cold.ChunkGETs != int64(len(segments)) {
		t.Errorf("%d GETs for %d segments, want one per segment (streamed)", cold.ChunkGETs, len(segments))
	}
	replaySegments(t, tier, local, segments, chunk)
	if warm := tier.Stats(); warm.ChunkGETs != cold.ChunkGETs || warm.CacheMisses != cold.CacheMisses {
		t.Errorf("warm replay: %d GETs, %d misses after the cold one's %d, %d; want none", warm.ChunkGETs, warm.CacheMisses, cold.ChunkGETs, cold.CacheMisses)
	}
}
