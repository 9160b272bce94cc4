package tiering_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// replaySegment reads a whole remote segment front to back in reads of
// maxBytes, as a catching-up consumer does, checking every read against
// the local log, and returns the bytes read.
func replaySegment(t *testing.T, tier *tiering.Tier, local *localLog, i int, remote metadata.SegmentManifest, maxBytes int) int64 {
	t.Helper()
	total := int64(0)
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := tier.Read(context.Background(), testPartition, remote, offset, maxBytes)
		if err != nil {
			t.Fatalf("read %d: %v", offset, err)
		}
		if want := local.localRead(t, local.sealed[i], offset, maxBytes); !bytes.Equal(got, want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		total += int64(len(got))
		offset = lastOffsetOf(got) + 1
	}
	return total
}

// Chunks reach the disk cache behind the readers: with the cache's writer
// held, a cold replay is served entirely (from the GETs, through memory)
// without a file written; once the writer runs, the chunks are on disk and
// a replay without the memory LRU is served from there, with no GET.
func TestCacheWritesBehindReaders(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	cacheDir := t.TempDir()
	const chunk = 64 << 10
	tier := newTier(t, tiering.Config{Bucket: metrics, CacheDir: cacheDir, ChunkBytes: chunk, PrefetchChunks: -1, MemoryCacheBytes: -1})
	release := tiering.HoldCacheWrites(tier)
	remote := segments[0]
	replaySegment(t, tier, local, 0, remote, 16<<10)
	if onDisk := chunkBytesOnDisk(t, cacheDir); onDisk != 0 {
		t.Fatalf("%d bytes written to the cache while its writer was held: the write was on the reader's path", onDisk)
	}
	release()
	tiering.WaitCacheWrites(tier)
	if onDisk := chunkBytesOnDisk(t, cacheDir); onDisk != remote.SizeBytes {
		t.Fatalf("cache holds %d bytes after the writes, want the segment's %d", onDisk, remote.SizeBytes)
	}
	gets := metrics.Counts().Gets
	hits := tier.Stats().CacheHits
	replaySegment(t, tier, local, 0, remote, 16<<10)
	if metrics.Counts().Gets != gets || tier.Stats().CacheHits == hits {
		t.Fatalf("warm replay: %d GETs, %d cache hits; want none and hits", metrics.Counts().Gets-gets, tier.Stats().CacheHits-hits)
	}
}

// A warm replay from the disk cache reads each chunk into a reused buffer:
// no chunk buffer is allocated per chunk, and the bytes allocated are about
// the bytes returned (each read's copy), not a chunk per read.
func TestWarmReplayReusesChunkBuffers(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	const chunk = 64 << 10
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: -1, MemoryCacheBytes: -1})
	remote := segments[0]
	replaySegment(t, tier, local, 0, remote, 16<<10)
	tiering.WaitCacheWrites(tier)

	before, hits := tier.Stats().ChunkBuffers, tier.Stats().CacheHits
	var start, end runtime.MemStats
	runtime.ReadMemStats(&start)
	returned := int64(0)
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := tier.Read(context.Background(), testPartition, remote, offset, 16<<10)
		if err != nil {
			t.Fatal(err)
		}
		returned += int64(len(got))
		offset = lastOffsetOf(got) + 1
	}
	runtime.ReadMemStats(&end)
	stats := tier.Stats()
	chunksRead := stats.CacheHits - hits
	if chunksRead < remote.SizeBytes/chunk {
		t.Fatalf("%d chunk hits from the disk cache, want at least %d", chunksRead, remote.SizeBytes/chunk)
	}
	if allocated := stats.ChunkBuffers - before; allocated > 2 {
		t.Fatalf("%d chunk buffers allocated for %d chunks read from disk, want them reused", allocated, chunksRead)
	}
	if allocated := int64(end.TotalAlloc - start.TotalAlloc); allocated > 2*returned {
		t.Fatalf("%d bytes allocated to return %d (%d chunks of %d bytes read from disk)", allocated, returned, chunksRead, chunk)
	}
}
