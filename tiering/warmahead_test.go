package tiering_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// A warm sequential replay (every chunk in the disk cache, none in
// memory) reads its window ahead from the disk cache too: after the first
// read, which reads its chunks from their files itself, every chunk a
// read needs was loaded into memory ahead of it (off the reader's path),
// across segments (Config.NextSegment) as well, with no GET and the bytes
// those of the local log. Between reads the test waits for the loads
// ahead to finish, so the count does not depend on timing.
func TestWarmReplayReadsAheadFromDisk(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: 32 << 10, PrefetchChunks: 8, // a window larger than any read (batches up to 150 KiB)
		NextSegment: func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
			for i, s := range segments[:len(segments)-1] {
				if s.SegmentID == segment.SegmentID {
					return segments[i+1], true
				}
			}
			return metadata.SegmentManifest{}, false
		}})
	replaySegments(t, tier, local, segments, 16<<10) // cold: fills the disk cache
	tiering.WaitCacheWrites(tier)
	tiering.DropMemoryCache(tier)

	gets, warm := metrics.Counts().Gets, tier.Stats()
	reads := 0
	for i, remote := range segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; reads++ {
			before := tier.Stats()
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
			if err != nil {
				t.Fatalf("read %d: %v", offset, err)
			}
			if want := local.localRead(t, local.sealed[i], offset, 16<<10); !bytes.Equal(got, want) {
				t.Fatalf("read %d: %s", offset, describeDiff(got, want))
			}
			after := tier.Stats()
			if reads > 0 && after.CacheDiskReads != before.CacheDiskReads {
				t.Fatalf("read %d (segment %d, offset %d) read %d chunks from the disk cache on its path, want 0 (loaded ahead)",
					reads, i, offset, after.CacheDiskReads-before.CacheDiskReads)
			}
			if after.CacheMisses != before.CacheMisses {
				t.Fatalf("read %d (offset %d): %d cache misses in a warm replay", reads, offset, after.CacheMisses-before.CacheMisses)
			}
			tiering.WaitCacheWrites(tier) // the loads ahead of this read are in memory
			offset = lastOffsetOf(got) + 1
		}
	}
	end := tier.Stats()
	if n := metrics.Counts().Gets - gets; n != 0 {
		t.Fatalf("%d GETs in a warm replay", n)
	}
	if end.CacheDiskReads == warm.CacheDiskReads {
		t.Fatal("the first read found its chunks in memory: the memory LRU was not emptied")
	}
	if end.CacheDiskReadsAhead == warm.CacheDiskReadsAhead {
		t.Fatal("no chunk was loaded from the disk cache ahead of the reader")
	}
	t.Logf("%d reads: %d chunks read from disk on the reader's path, %d ahead of it", reads,
		end.CacheDiskReads-warm.CacheDiskReads, end.CacheDiskReadsAhead-warm.CacheDiskReadsAhead)
	if end.ReadAheadBytes != 0 || end.ReadChunksHeld != 0 {
		t.Fatalf("after the replay: %d read-ahead bytes in flight, %d chunks held", end.ReadAheadBytes, end.ReadChunksHeld)
	}
}

// A cold replay whose disk writer falls behind and then catches up all
// at once (held here, then released) frees the buffers of the whole write
// queue at once; the pool keeps them (its free list holds as many as the
// write queue, the read-ahead and the reads may free), so when the writer
// falls behind again the replay goes on in reused buffers: the count
// allocated stays flat after the first such round (it grew by the queue
// less 16 buffers per round).
func TestColdReplayChunkBuffersFlat(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk = 16 << 10 // 31-32 chunks a segment: one fits in the write queue (32 chunks)
	tier := newTier(t, tiering.Config{Bucket: store, ChunkBytes: chunk, PrefetchChunks: 8, MemoryCacheBytes: 8 * chunk})
	var allocated []int64
	for i, remote := range segments {
		release := tiering.HoldCacheWrites(tier)
		// A reader slower than the store: one that catches up reads ahead
		// in parallel, a buffer or so more in flight.
		replaySegmentPaced(t, tier, local, i, remote, 16<<10, func() { tiering.WaitFetches(tier) })
		release() // the writer catches up at once, freeing its queue's buffers
		tiering.WaitCacheWrites(tier)
		allocated = append(allocated, tier.Stats().ChunkBuffers)
	}
	t.Logf("chunk buffers allocated after each segment: %v", allocated)
	if stats := tier.Stats(); stats.CacheWritesDropped != 0 {
		t.Fatalf("%d cache writes dropped: the segment did not fit in the write queue", stats.CacheWritesDropped)
	}
	if len(allocated) < 3 {
		t.Fatalf("%d segments, want at least 3", len(allocated))
	}
	if last := allocated[len(allocated)-1]; last != allocated[0] {
		t.Fatalf("chunk buffers allocated after each segment %v: not flat after the first", allocated)
	}
}

// With the remote fetch quota set (KIP-956), read-ahead GETs go at its
// pace: none starts while the quota throttles (a reader's GET is then
// of its own chunk only), and otherwise one fetches at most a second's
// worth of the quota, not a whole window. Without the quota the same
// replay fetches whole windows.
func TestReadAheadPacedByFetchQuota(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk = 16 << 10
	remote := segments[0]
	// The runs of chunks the tier reads (a GET's, or a part of a
	// streamed one's), those that start when only (may be nil) holds.
	replay := func(cfg tiering.Config, only func() bool, throttle func(*tiering.Tier)) (longest int64, reads int) {
		cfg.Bucket, cfg.ChunkBytes, cfg.PrefetchChunks = store, chunk, 16
		tier := newTier(t, cfg)
		runs := watchRuns(tier, only)
		for offset := remote.BaseOffset; offset <= remote.LastOffset; reads++ {
			if throttle != nil {
				throttle(tier)
			}
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
			if want := local.localRead(t, local.sealed[0], offset, 16<<10); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d: %v, %s", offset, err, describeDiff(got, want))
			}
			tiering.WaitCacheWrites(tier) // the read-ahead it started has been asked for
			for _, n := range runs.take() {
				longest = max(longest, n)
			}
			offset = lastOffsetOf(got) + 1
		}
		return longest, reads
	}

	if longest, _ := replay(tiering.Config{}, nil, nil); longest < 8*chunk {
		t.Fatalf("without a quota the longest GET is %d bytes, want a window (at least 8 chunks)", longest)
	}

	// 4 chunks a second: a read-ahead GET is at most 4 chunks past the
	// reader's own.
	// The quota paces the chunks as they are read (TestColdReplayPacedByFetchQuota):
	// its clock moves whenever the replay waits for it.
	running := func() *quotatest.Clock {
		clock := quotatest.NewClock()
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { defer close(stopped); clock.Run(stop, nil) }()
		t.Cleanup(func() { close(stop); <-stopped })
		return clock
	}
	if longest, _ := replay(tiering.Config{FetchMaxBytesPerSecond: 4 * chunk, QuotaClock: running()}, nil, nil); longest > 5*chunk {
		t.Fatalf("with a quota of 4 chunks a second a GET fetched %d bytes, want at most 5 chunks", longest)
	}

	// Throttling before every read (100 chunks taken, 25 s to pay): the
	// GETs that start while it throttles are each of one chunk, the
	// reader's own (no window with it, no read-ahead). Its chunk then
	// waits for the debt, after which read-ahead may start again.
	var current atomic.Pointer[tiering.Tier]
	throttled := func() bool { return current.Load().FetchQuota().ThrottleTime() > 0 }
	if longest, reads := replay(tiering.Config{FetchMaxBytesPerSecond: 4 * chunk, QuotaClock: running()}, throttled, func(tier *tiering.Tier) {
		current.Store(tier)
		tier.FetchQuota().Record(100 * chunk)
	}); longest != chunk {
		t.Fatalf("with the quota throttling, the longest GET that started fetched %d bytes over %d reads, want one chunk (no read-ahead)", longest, reads)
	}
}

// Several sequential readers replaying warm at once (three segments read
// in turns, chunks on disk only) share the memory LRU with what is loaded
// ahead of them: a chunk a reader has passed must not push out the chunks
// loaded ahead of the others before they arrive. So each chunk is loaded
// from its file once, and no read after a reader's first reads a file on
// its path. Between reads the test waits for the loads to finish, so the
// counts do not depend on timing. (Before, a chunk read moved to the front
// of the LRU and the windows ahead aged out behind it: 86 loads for 48
// chunks, and 4 files read on the readers' paths.)
func TestWarmReadersKeepTheirWindows(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	const chunk = 32 << 10 // a window of 8 is larger than any read (batches up to 150 KiB)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, PrefetchChunks: 8, MemoryCacheBytes: 32 * chunk})
	replaySegments(t, tier, local, segments, 16<<10) // cold: fills the disk cache
	tiering.WaitCacheWrites(tier)
	tiering.DropMemoryCache(tier)

	chunks := int64(0)
	for _, s := range segments {
		chunks += (s.SizeBytes + chunk - 1) / chunk
	}
	gets, before := metrics.Counts().Gets, tier.Stats()
	next := make([]int64, len(segments))
	for i, s := range segments {
		next[i] = s.BaseOffset
	}
	for done := 0; done < len(segments); {
		done = 0
		for i, remote := range segments {
			if next[i] > remote.LastOffset {
				done++
				continue
			}
			got, err := readBytes(tier, context.Background(), testPartition, remote, next[i], 16<<10)
			if err != nil {
				t.Fatalf("segment %d, read %d: %v", i, next[i], err)
			}
			if want := local.localRead(t, local.sealed[i], next[i], 16<<10); !bytes.Equal(got, want) {
				t.Fatalf("segment %d, read %d: %s", i, next[i], describeDiff(got, want))
			}
			tiering.WaitCacheWrites(tier) // the loads ahead of this read are in memory
			next[i] = lastOffsetOf(got) + 1
		}
	}
	after := tier.Stats()
	onPath, ahead := after.CacheDiskReads-before.CacheDiskReads, after.CacheDiskReadsAhead-before.CacheDiskReadsAhead
	t.Logf("%d chunks: %d read from their files on a reader's path, %d loaded ahead", chunks, onPath, ahead)
	if n := metrics.Counts().Gets - gets; n != 0 {
		t.Fatalf("%d GETs in a warm replay", n)
	}
	if onPath > int64(len(segments)) || onPath+ahead > chunks {
		t.Fatalf("%d chunks read from files on the readers' paths (want at most one per reader, %d) and %d loaded ahead: %d file reads for %d chunks",
			onPath, len(segments), ahead, onPath+ahead, chunks)
	}
}
