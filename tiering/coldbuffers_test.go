package tiering_test

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// coldPass replays every segment of a cold tier (nothing cached) front to
// back in reads of one chunk, as a consumer catching up with 1 MiB
// Fetches over 1 MiB chunks does, with the default memory LRU, write
// queue and read-ahead scaled to the test's chunks (64 chunks of memory
// LRU, so 64 in the write queue and of read-ahead budget, a window of
// PrefetchChunks 16). The reader is slower than the store (it waits for
// what each read started), and with lag false the disk cache's writer
// keeps up (the test waits for the writes too), so the counts do not
// depend on timing. With lag, the writer is held for the whole of each
// segment and catches up at its end: a writer that falls behind the
// reader by up to a segment (48 chunks). It returns the chunk buffers
// allocated and the bytes allocated over the pass (the buffers, 20 KiB
// each here, and each read's few KB), and the bytes replayed; the bytes
// are checked against the local log afterwards, read again from the disk
// cache.
func coldPass(t *testing.T, lag bool) (buffers, allocated, replayed int64) {
	t.Helper()
	const chunk = 16 << 10
	local := buildLocalLog(t, 1400, 48*chunk, 0, 17)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, MemoryCacheBytes: 64 * chunk,
		NextSegment: func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
			for i, s := range segments[:len(segments)-1] {
				if s.SegmentID == segment.SegmentID {
					return segments[i+1], true
				}
			}
			return metadata.SegmentManifest{}, false
		}})
	var start, end runtime.MemStats
	runtime.ReadMemStats(&start)
	for i, remote := range segments {
		release, wait := func() {}, func() { tiering.WaitCacheWrites(tier) }
		if lag {
			release, wait = tiering.HoldCacheWrites(tier), func() { tiering.WaitFetches(tier) }
		}
		for offset := remote.BaseOffset; offset <= remote.LastOffset; {
			batches, err := tier.Read(context.Background(), testPartition, remote, offset, chunk, true)
			if err != nil {
				t.Fatalf("segment %d, read %d: %v", i, offset, err)
			}
			replayed += int64(batches.Len())
			offset = batches.NextOffset()
			batches.Release()
			wait()
		}
		release()
		tiering.WaitCacheWrites(tier)
	}
	runtime.ReadMemStats(&end)
	stats := tier.Stats()
	if stats.CacheWritesDropped != 0 || stats.CacheBytes != replayed || stats.ReaderGETWaits != 0 {
		t.Fatalf("stats %+v after a cold replay of %d bytes: want every chunk cached on disk, no reader waiting for the writer", stats, replayed)
	}
	if stats.ChunkGETs == 0 || stats.CacheDiskReads != 0 {
		t.Fatalf("stats %+v: want a cold pass, all from the store", stats)
	}
	t.Logf("writer lagging %v: %d chunks (%d segments) replayed, %d chunk buffers allocated, %d bytes allocated (%.3f per byte replayed)",
		lag, replayed/chunk, len(segments), stats.ChunkBuffers, end.TotalAlloc-start.TotalAlloc, float64(end.TotalAlloc-start.TotalAlloc)/float64(replayed))
	tiering.DropMemoryCache(tier)
	for i, remote := range segments {
		replaySegment(t, tier, local, i, remote, chunk)
	}
	return stats.ChunkBuffers, int64(end.TotalAlloc - start.TotalAlloc), replayed
}

// A cold sequential pass gives each chunk's buffer back to the pool once
// its reader has passed the chunk and the chunk is on disk, so it
// allocates about the buffers of its read-ahead window and of the chunks
// waiting to be written, not one per chunk until the memory LRU is full:
// 20 buffers for 609 chunks with the writer keeping up (65–67 when the
// passed chunks stayed at the LRU's back until it filled: the LRU's 64
// and the window), and 57 with the writer a segment behind (101: the
// LRU's and the write queue's; docs/performance.md, "Cold pass
// buffers"). That is also the memory a replay right
// after a restart touches for the first time.
func TestColdPassChunkBuffersBounded(t *testing.T) {
	const window = tiering.DefaultPrefetchChunks
	for _, c := range []struct {
		lag   bool
		bound int64 // the read-ahead window twice (the one read, the one fetched ahead), and the writer's lag
	}{{false, 2 * window}, {true, 2*window + 48}} {
		if buffers, _, _ := coldPass(t, c.lag); buffers > c.bound {
			t.Errorf("writer lagging %v: %d chunk buffers allocated over a cold pass, want at most %d (the memory LRU holds 64 chunks)", c.lag, buffers, c.bound)
		}
	}
}

// A chunk a sequential reader has passed stays in memory while it waits
// to be written to the disk cache (its only copy), and leaves once it is
// written; a chunk a reader that is not sequential read stays in the
// memory LRU.
func TestPassedChunkLeavesMemoryOnceOnDisk(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	const chunk = 16 << 10
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 8, MemoryCacheBytes: 64 * chunk})
	remote := segments[0]
	memory := func() map[int64]bool {
		held := map[int64]bool{}
		for _, c := range tiering.MemoryChunks(tier) {
			if c.Segment == remote.SegmentID {
				held[c.Index] = true
			}
		}
		return held
	}
	release := tiering.HoldCacheWrites(tier)
	replaySegmentPaced(t, tier, local, 0, remote, 16<<10, func() { tiering.WaitFetches(tier) })
	chunks := (remote.SizeBytes + chunk - 1) / chunk
	if held := memory(); int64(len(held)) != chunks {
		release()
		t.Fatalf("%d of the segment's %d chunks in memory with the writer held, want all (passed, not on disk yet)", len(held), chunks)
	}
	release()
	tiering.WaitCacheWrites(tier)
	if held := memory(); len(held) != 0 {
		t.Fatalf("chunks %v in memory once written: the reader passed them", held)
	}

	// Not sequential: a read in the middle of the segment, found with the
	// offset index.
	middle := remote.BaseOffset + (remote.LastOffset-remote.BaseOffset)/2
	got, err := readBytes(tier, context.Background(), testPartition, remote, middle, 1)
	if err != nil || len(got) == 0 {
		t.Fatalf("read %d: %d bytes, %v", middle, len(got), err)
	}
	tiering.WaitCacheWrites(tier)
	if held := memory(); len(held) == 0 {
		t.Fatal("the chunk a random read loaded from the disk cache is not in memory")
	}
}

// A chunk a sequential reader has passed whose disk cache write fails
// (here the cache directory is gone when the writer gets to it) stays in
// the memory LRU: it was to leave memory only once on disk, and a re-read
// of it is served from memory, with no GET.
func TestPassedChunkStaysInMemoryWhenItsWriteFails(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	const chunk = 16 << 10
	dir := t.TempDir()
	tier := newTier(t, tiering.Config{Bucket: bucket, CacheDir: dir, ChunkBytes: chunk, PrefetchChunks: 8, MemoryCacheBytes: 64 * chunk})
	remote := segments[0]
	release := tiering.HoldCacheWrites(tier)
	replaySegmentPaced(t, tier, local, 0, remote, 16<<10, func() { tiering.WaitFetches(tier) })
	if err := os.RemoveAll(dir); err != nil {
		release()
		t.Fatal(err)
	}
	release()
	tiering.WaitCacheWrites(tier)
	chunks := (remote.SizeBytes + chunk - 1) / chunk
	held := 0
	for _, c := range tiering.MemoryChunks(tier) {
		if c.Segment == remote.SegmentID {
			held++
		}
	}
	if int64(held) != chunks {
		t.Fatalf("%d of the segment's %d chunks in memory after their cache writes failed, want all (not on disk: memory is their only copy)", held, chunks)
	}
	gets := tier.Stats().ChunkGETs
	replaySegment(t, tier, local, 0, remote, chunk)
	if more := tier.Stats().ChunkGETs - gets; more != 0 {
		t.Fatalf("%d chunk GETs re-reading a segment whose chunks are in memory, want 0", more)
	}
}
