package tiering_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// replaySegment reads a whole remote segment front to back in reads of
// maxBytes, as a catching-up consumer does, checking every read against
// the local log, and returns the bytes read.
func replaySegment(t *testing.T, tier *tiering.Tier, local *localLog, i int, remote metadata.SegmentManifest, maxBytes int) int64 {
	t.Helper()
	return replaySegmentPaced(t, tier, local, i, remote, maxBytes, nil)
}

// replaySegmentPaced is replaySegment calling between (when not nil)
// after each read: a reader slower than the store waits there for what is
// on its way (tiering.WaitFetches), so it never catches up with its
// read-ahead.
func replaySegmentPaced(t *testing.T, tier *tiering.Tier, local *localLog, i int, remote metadata.SegmentManifest, maxBytes int, between func()) int64 {
	t.Helper()
	total := int64(0)
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := readBytes(tier, context.Background(), testPartition, remote, offset, maxBytes)
		if err != nil {
			t.Fatalf("read %d: %v", offset, err)
		}
		if want := local.localRead(t, local.sealed[i], offset, maxBytes); !bytes.Equal(got, want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		total += int64(len(got))
		offset = lastOffsetOf(got) + 1
		if between != nil {
			between()
		}
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
// no chunk buffer is allocated per chunk, and reads return the chunks'
// bytes without copying them (a small fraction of the bytes returned is
// allocated). A read holds its chunks until released; then they go back
// to the pool, which is why the pool does not allocate.
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
		batches, err := tier.Read(context.Background(), testPartition, remote, offset, 16<<10, true)
		if err != nil {
			t.Fatal(err)
		}
		if held := tier.Stats().ReadChunksHeld; held != int64(len(batches.Buffers())) {
			t.Fatalf("read %d: %d chunk references held for %d buffers", offset, held, len(batches.Buffers()))
		}
		returned += int64(batches.Len())
		offset = batches.NextOffset()
		batches.Release()
		batches.Release() // idempotent
	}
	runtime.ReadMemStats(&end)
	if held := tier.Stats().ReadChunksHeld; held != 0 {
		t.Fatalf("%d chunk references held after every read was released", held)
	}
	stats := tier.Stats()
	chunksRead := stats.CacheHits - hits
	if chunksRead < remote.SizeBytes/chunk {
		t.Fatalf("%d chunk hits from the disk cache, want at least %d", chunksRead, remote.SizeBytes/chunk)
	}
	if allocated := stats.ChunkBuffers - before; allocated > 2 {
		t.Fatalf("%d chunk buffers allocated for %d chunks read from disk, want them reused", allocated, chunksRead)
	}
	t.Logf("%d bytes allocated to return %d", end.TotalAlloc-start.TotalAlloc, returned)
	if allocated := int64(end.TotalAlloc - start.TotalAlloc); allocated > returned/8 {
		t.Fatalf("%d bytes allocated to return %d (%d chunks of %d bytes read from disk)", allocated, returned, chunksRead, chunk)
	}
}

// replaySegments reads every segment front to back in reads of maxBytes, one
// after the other as a consumer crossing segments does, and returns the
// bytes read.
func replaySegments(t *testing.T, tier *tiering.Tier, local *localLog, segments []metadata.SegmentManifest, maxBytes int) int64 {
	t.Helper()
	return replaySegmentsPaced(t, tier, local, segments, maxBytes, nil)
}

// replaySegmentsPaced is replaySegments with replaySegmentPaced.
func replaySegmentsPaced(t *testing.T, tier *tiering.Tier, local *localLog, segments []metadata.SegmentManifest, maxBytes int, between func()) int64 {
	t.Helper()
	total := int64(0)
	for i, remote := range segments {
		total += replaySegmentPaced(t, tier, local, i, remote, maxBytes, between)
	}
	return total
}

// Read-ahead is detected by offsets, so it fires whatever the fetch size:
// a sequential replay with reads of a quarter chunk, one chunk (franz-go's,
// librdkafka's and the Java client's default of 1 MiB per partition
// against the default 1 MiB chunks) or several chunks, crossing segments
// with the window running on into the next one (NextSegment, as the
// broker plugs in), makes at most one GET per 4 chunks (issue 18's 0.25
// GETs per MiB with 1 MiB chunks) over segments of twice the largest
// window (so the window is refilled as the reader goes, not fetched once
// per segment), needs no offset index (each read continues the previous
// one, or starts a segment), and fetches each byte once.
func TestSequentialReplayGETsPerChunk(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 1400, 32*chunk, 0, 11)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	size := int64(0)
	for _, s := range segments {
		size += s.SizeBytes
	}
	for _, readBytes := range []int{chunk / 4, chunk, 5 * chunk} {
		metrics, _ := tiering.NewMetricsBucket(bucket, nil)
		tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, NextSegment: nextSegmentIn(segments)})
		replayed := replaySegments(t, tier, local, segments, readBytes)
		stats, counts := tier.Stats(), metrics.Counts()
		chunks := size / chunk
		t.Logf("reads of %d bytes: %d bytes replayed in %d segments, %d GETs for %d chunks (%.3f GETs per chunk), %d bytes fetched, stats %+v",
			readBytes, replayed, len(segments), counts.Gets, chunks, float64(counts.Gets)/float64(chunks), counts.GetBytes, stats)
		if stats.Prefetches == 0 {
			t.Errorf("reads of %d bytes: read-ahead never fired", readBytes)
		}
		if stats.IndexFetches != 0 {
			t.Errorf("reads of %d bytes: %d offset index GETs, want none for a sequential reader", readBytes, stats.IndexFetches)
		}
		if counts.Gets*4 > chunks {
			t.Errorf("reads of %d bytes: %d GETs for %d chunks in %d segments, want at most one per 4 chunks", readBytes, counts.Gets, chunks, len(segments))
		}
		if counts.GetBytes != replayed {
			t.Errorf("reads of %d bytes: %d bytes fetched for %d replayed, want each byte fetched once", readBytes, counts.GetBytes, replayed)
		}
	}
}

// A reader that stops leaves at most one read-ahead window fetched and
// not read: PrefetchChunks for a reader slower than the store, up to
// CaughtUpWindows of them for one that caught up with it (its window
// grew so that several GETs are in flight).
func TestStoppedReaderOverFetchesOneWindow(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 2<<20, 0, 12)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	const prefetch = 16
	for _, tc := range []struct {
		name   string
		paced  bool
		window int64
	}{
		{"slower than the store", true, prefetch},
		{"caught up", false, tiering.CaughtUpWindows * prefetch},
	} {
		metrics, _ := tiering.NewMetricsBucket(bucket, nil)
		tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, PrefetchChunks: prefetch})
		remote := segments[0]
		replayed := int64(0)
		for offset := remote.BaseOffset; replayed < remote.SizeBytes/4; {
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, chunk)
			if err != nil {
				t.Fatal(err)
			}
			replayed += int64(len(got))
			offset = lastOffsetOf(got) + 1
			if tc.paced {
				tiering.WaitFetches(tier)
			}
		}
		tier.Close() // waits for the read-ahead in flight
		// The rest of the chunk the reader stopped in, and the window after it.
		fetched := metrics.Counts().GetBytes
		t.Logf("%s: %d bytes fetched for %d replayed (%d chunks ahead)", tc.name, fetched, replayed, (fetched-replayed)/chunk)
		if fetched > replayed+(tc.window+1)*chunk {
			t.Errorf("%s: %d bytes fetched for %d replayed: more than one window (%d chunks of %d) ahead", tc.name, fetched, replayed, tc.window, chunk)
		}
	}
}

// gatedBucket holds every GET until open is closed, counting those held.
type gatedBucket struct {
	tiering.Bucket
	open chan struct{}
	held atomic.Int64
}

func (b *gatedBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	b.held.Add(1)
	select {
	case <-b.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.Bucket.Get(ctx, key, offset, length)
}

// await polls cond until it holds, failing the test after 10 s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// With every reader thread busy and ReaderMaxPendingTasks reads waiting,
// one more read is refused at once with a retriable ErrBusy (the broker
// answers the partition without data) rather than queued without bound;
// the waiting reads are served once a thread frees.
func TestReaderQueueFullIsBusy(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	gated := &gatedBucket{Bucket: bucket, open: make(chan struct{})}
	tier := newTier(t, tiering.Config{Bucket: gated, ChunkBytes: 64 << 10, ReaderThreads: 1, ReaderMaxPendingTasks: 1})
	remote, info := segments[0], local.sealed[0]
	want := local.localRead(t, info, remote.BaseOffset, 10<<10)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			got, err := readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset, 10<<10)
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New(describeDiff(got, want))
			}
			results <- err
		}()
	}
	await(t, "one read running and one waiting", func() bool { return gated.held.Load() == 1 && tier.Stats().ReadsWaiting == 1 })
	if _, err := readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset, 10<<10); !errors.Is(err, tiering.ErrBusy) || !tiering.IsRetriable(err) {
		t.Fatalf("read past the queue: %v, want ErrBusy", err)
	}
	if tier.Stats().ReadsRejected != 1 {
		t.Fatalf("stats %+v: want one read rejected", tier.Stats())
	}
	close(gated.open)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("queued read: %v", err)
		}
	}
}

// A read whose data did not fit in the Fetch response is asked for again
// at the same offset: the reader stays sequential (no offset index lookup,
// its window kept), and a second reader of the partition at another
// offset does not disturb it.
func TestReReadStaysSequential(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 16 << 10})
	remote, info := segments[0], local.sealed[0]
	read := func(offset int64) int64 {
		t.Helper()
		got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
		if err != nil || !bytes.Equal(got, local.localRead(t, info, offset, 16<<10)) {
			t.Fatalf("read %d: %v", offset, err)
		}
		return lastOffsetOf(got) + 1
	}
	next := read(remote.BaseOffset)
	other := read(read(remote.BaseOffset + (remote.LastOffset-remote.BaseOffset)/2)) // another reader, from the index
	indexFetches, sequential := tier.Stats().IndexFetches, tier.Stats().SequentialReads
	read(next)        // dropped from its response...
	next = read(next) // ...and asked for again
	next = read(next)
	read(other)
	stats := tier.Stats()
	if stats.IndexFetches != indexFetches || stats.SequentialReads != sequential+4 {
		t.Fatalf("stats %+v: want %d index fetches and %d sequential reads", stats, indexFetches, sequential+4)
	}
}

// A read at an offset inside the reader's previous read (the Fetch
// response served only its leading batches, the rest not fitting in what
// the partitions before it left) stays sequential: its window kept, the
// walk going on from where the previous read started, with no offset
// index lookup.
func TestReadInsidePreviousReadStaysSequential(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 16 << 10})
	remote, info := segments[0], local.sealed[0]
	whole, err := readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	served := local.localRead(t, info, remote.BaseOffset, 1) // its first batch only
	inside := lastOffsetOf(served) + 1
	if inside > lastOffsetOf(whole) {
		t.Fatalf("the read ends at %d: no batch after its first", lastOffsetOf(whole))
	}
	indexFetches, sequential := tier.Stats().IndexFetches, tier.Stats().SequentialReads
	got, err := readBytes(tier, context.Background(), testPartition, remote, inside, 16<<10)
	if err != nil || !bytes.Equal(got, local.localRead(t, info, inside, 16<<10)) {
		t.Fatalf("read %d: %v", inside, err)
	}
	if stats := tier.Stats(); stats.IndexFetches != indexFetches || stats.SequentialReads != sequential+1 {
		t.Fatalf("stats %+v: want %d index fetches and %d sequential reads", stats, indexFetches, sequential+1)
	}
}

// A read whose first batch is over maxBytes returns it whole only with
// minOneBatch (KIP-74, a Fetch's first partition); without, it returns
// nothing and no error, holds no chunk, and the reader stays sequential:
// the same offset asked again goes on from its position, with no index
// lookup.
func TestReadWithoutMinOneBatch(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 16 << 10})
	remote, info := segments[0], local.sealed[0]
	first, err := readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset, 1)
	if err != nil || !bytes.Equal(first, local.localRead(t, info, remote.BaseOffset, 1)) {
		t.Fatalf("read %d with minOneBatch: %v", remote.BaseOffset, err)
	}
	next := lastOffsetOf(first) + 1
	indexFetches, sequential := tier.Stats().IndexFetches, tier.Stats().SequentialReads
	batches, err := tier.Read(context.Background(), testPartition, remote, next, 1, false)
	if err != nil || batches != nil {
		t.Fatalf("read %d of at most 1 byte without minOneBatch: %d bytes, %v; want none and no error", next, batches.Len(), err)
	}
	if held := tier.Stats().ReadChunksHeld; held != 0 {
		t.Fatalf("%d chunk references held after a read that returned nothing", held)
	}
	got, err := readBytes(tier, context.Background(), testPartition, remote, next, 1)
	if err != nil || !bytes.Equal(got, local.localRead(t, info, next, 1)) {
		t.Fatalf("read %d with minOneBatch: %v", next, err)
	}
	if stats := tier.Stats(); stats.IndexFetches != indexFetches || stats.SequentialReads != sequential+2 {
		t.Fatalf("stats %+v: want %d index fetches and %d sequential reads", stats, indexFetches, sequential+2)
	}
}

// A cold replay faster than the disk cache's writer still leaves every
// chunk on disk (the read-ahead waits for room in the write-behind queue
// rather than the chunk being dropped), so a warm replay makes no GET even
// without the memory LRU.
func TestColdReplayFillsTheDiskCache(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 512<<10, 0, 13)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, MemoryCacheBytes: -1})
	replayed := replaySegments(t, tier, local, segments, chunk)
	tiering.WaitCacheWrites(tier)
	gets := metrics.Counts().Gets
	if stats := tier.Stats(); stats.CacheWritesDropped != 0 || stats.CacheBytes != replayed {
		t.Fatalf("stats %+v after a cold replay of %d bytes: want every chunk cached on disk", stats, replayed)
	}
	replaySegments(t, tier, local, segments, chunk)
	if more := metrics.Counts().Gets - gets; more != 0 {
		t.Fatalf("warm replay made %d GETs, want none: stats %+v", more, tier.Stats())
	}
}

// A disk cache writer that falls behind slows a cold replay down to it
// instead of letting fetched chunks pile up in memory: with the writer
// held, readers stop once the write queue is full and ReaderThreads GETs
// of their own wait to queue their chunks, so the chunk buffers in use
// stay bounded; once the writer goes on, the replay completes with the
// right bytes and every chunk reaches the disk. (Before, each reader GET
// waited in a goroutine of its own while the reader went on: the replay
// completed with the writer held and every chunk in memory.)
func TestSlowCacheWriterBoundsReplayMemory(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 512<<10, 0, 13)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, MemoryCacheBytes: -1, ReaderThreads: 2})
	release := tiering.HoldCacheWrites(tier)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	done := make(chan int64, 1)
	go func() { done <- replaySegments(t, tier, local, segments, chunk) }()
	for deadline := time.Now().Add(30 * time.Second); tier.Stats().ReaderGETWaits == 0; time.Sleep(time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("the replay completed with the cache writer held: stats %+v", tier.Stats())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reader waited for the held cache writer: stats %+v", tier.Stats())
		}
	}
	// Bounded by the configuration, not by the log: the write queue (32
	// chunks without a memory LRU), and the GETs waiting to queue theirs —
	// ReaderThreads of the readers' own and as many read-ahead ones, each
	// with its chunk and at most the read-ahead budget (4 chunks) — and
	// the chunks of the read in hand. The log has 309 chunks.
	const bound = 32 + 2*2*(1+4) + 2
	if stats := tier.Stats(); stats.ChunkBuffers > bound {
		t.Fatalf("%d chunk buffers allocated with the writer held, want at most %d: stats %+v", stats.ChunkBuffers, bound, stats)
	}
	release()
	released = true
	var replayed int64
	select {
	case replayed = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the replay did not complete once the writer went on: stats %+v", tier.Stats())
	}
	tiering.WaitCacheWrites(tier)
	if stats := tier.Stats(); stats.CacheWritesDropped != 0 || stats.CacheBytes != replayed {
		t.Fatalf("stats %+v after a replay of %d bytes: want every chunk cached on disk", stats, replayed)
	}
}
