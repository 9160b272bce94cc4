package tiering_test

import (
	"cmp"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// A sequential replay makes one GET per segment, whatever the read size:
// the first run's GET goes from chunk 0 to the segment's end (a
// whole-object GET, which a store like versitygw serves by sendfile), is
// parked after the run, and the read-ahead runs after it read on from it;
// each byte is still read from the bodies once, and only the bytes the
// replay needs (counted by what the bodies returned).
func TestSequentialReplayStreamsOneGETPerSegment(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 1400, 32*chunk, 0, 11)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	for _, readBytes := range []int{chunk / 4, chunk, 5 * chunk} {
		metrics, _ := tiering.NewMetricsBucket(bucket, nil)
		tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, NextSegment: nextSegmentIn(segments)})
		replayed := replaySegmentsPaced(t, tier, local, segments, readBytes, func() { tiering.WaitFetches(tier) })
		tiering.WaitCacheWrites(tier)
		stats, counts := tier.Stats(), metrics.Counts()
		t.Logf("reads of %d bytes: %d bytes replayed in %d segments, %d GETs, %d bytes fetched, %d streams open", readBytes, replayed, len(segments), counts.Gets, counts.GetBytes, stats.OpenStreams)
		if counts.Gets != int64(len(segments)) {
			t.Errorf("reads of %d bytes: %d GETs for %d segments, want one per segment", readBytes, counts.Gets, len(segments))
		}
		if stats.ChunkGETs != counts.Gets {
			t.Errorf("reads of %d bytes: ChunkGETs %d, the bucket saw %d", readBytes, stats.ChunkGETs, counts.Gets)
		}
		if counts.GetBytes != replayed {
			t.Errorf("reads of %d bytes: %d bytes fetched for %d replayed, want each byte fetched once", readBytes, counts.GetBytes, replayed)
		}
		if stats.OpenStreams != 0 {
			t.Errorf("reads of %d bytes: %d streams open after the replay read every segment to its end", readBytes, stats.OpenStreams)
		}
	}
}

// closeBucket records the Close of every GET's body, and breaks a body
// after breakAfter bytes (when positive) once, for the next GET made after
// it is set.
// With stall, that body stalls instead (until its GET's context ends).
type closeBucket struct {
	tiering.Bucket
	mu         sync.Mutex
	bodies     []*closeBody
	breakAfter int64
	stall      bool
	// slow, when set, makes every body a slow connection: each read
	// returns at most 4 KiB after sleeping slow. open counts the bodies
	// not closed yet, mostOpen the most at once.
	slow           time.Duration
	open, mostOpen int
}

type closeBody struct {
	io.ReadCloser
	bucket         *closeBucket
	ctx            context.Context
	offset, length int64
	closed         atomic.Bool
	left           int64 // bytes before it fails; -1: never
	stall          bool
	read           atomic.Int64 // bytes read from it
}

var errBroken = errors.New("connection reset (test)")

func (b *closeBody) Read(p []byte) (int, error) {
	if b.bucket.slow > 0 {
		time.Sleep(b.bucket.slow)
		p = p[:min(len(p), 4<<10)]
	}
	if b.left == 0 && b.stall {
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	if b.left == 0 {
		return 0, errBroken
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, err
}

func (b *closeBody) Close() error {
	if !b.closed.Swap(true) {
		b.bucket.mu.Lock()
		b.bucket.open--
		b.bucket.mu.Unlock()
	}
	return b.ReadCloser.Close()
}

func (b *closeBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r, err := b.Bucket.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	body := &closeBody{ReadCloser: r, bucket: b, ctx: ctx, offset: offset, length: length, left: -1}
	if b.breakAfter > 0 {
		body.left, body.stall, b.breakAfter = b.breakAfter, b.stall, 0
	}
	b.bodies = append(b.bodies, body)
	b.open++
	b.mostOpen = max(b.mostOpen, b.open)
	return body, nil
}

func (b *closeBucket) snapshot() []*closeBody {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*closeBody(nil), b.bodies...)
}

// streamFixture is a log of 2 MiB segments uploaded to a mem:// bucket,
// and a tier of 16 KiB chunks reading it through bodies (observing each
// GET's body) and metrics, with cfg applied.
type streamFixture struct {
	local    *localLog
	segments []metadata.SegmentManifest
	bodies   *closeBucket
	metrics  *tiering.MetricsBucket
	tier     *tiering.Tier
}

const streamChunk = 16 << 10

func newStreamFixture(t *testing.T, cfg tiering.Config) streamFixture {
	t.Helper()
	f := streamFixture{local: buildLocalLog(t, 700, 2<<20, 0, 12)}
	bucket := openBucket(t, "mem://")
	f.segments = f.local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	f.bodies = &closeBucket{Bucket: bucket}
	f.metrics, _ = tiering.NewMetricsBucket(f.bodies, nil)
	cfg.Bucket, cfg.ChunkBytes, cfg.PrefetchChunks = f.metrics, streamChunk, 16
	f.tier = newTier(t, cfg)
	return f
}

// replayed is what replayFirst saw: the bytes replayed and how long it
// took, the most GETs open at once and the bucket's counts.
type replayed struct {
	bytes    int64
	took     time.Duration
	mostOpen int
	counts   tiering.BucketCounts
}

// replayFirst replays the fixture's first segment in reads of a chunk,
// calling between after each read (when not nil), and waits for the
// cache writes it queued.
func (f streamFixture) replayFirst(t *testing.T, between func()) replayed {
	t.Helper()
	began := time.Now()
	n := replaySegmentPaced(t, f.tier, f.local, 0, f.segments[0], streamChunk, between)
	took := time.Since(began)
	tiering.WaitCacheWrites(f.tier)
	f.bodies.mu.Lock()
	defer f.bodies.mu.Unlock()
	return replayed{bytes: n, took: took, mostOpen: f.bodies.mostOpen, counts: f.metrics.Counts()}
}

// stopMidSegment reads the first few chunks of segment i sequentially
// from offset (its base offset when -1), waits for the read-ahead to
// park its GET, and returns the offset the reader would go on from.
func (f streamFixture) stopMidSegment(t *testing.T, i int, offset int64) int64 {
	t.Helper()
	remote := f.segments[i]
	if offset < 0 {
		offset = remote.BaseOffset
	}
	for range 3 {
		got, err := readBytes(f.tier, context.Background(), testPartition, remote, offset, streamChunk)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.local.localRead(t, f.local.sealed[i], offset, streamChunk); string(got) != string(want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		offset = lastOffsetOf(got) + 1
		tiering.WaitFetches(f.tier) // a reader slower than the store
	}
	tiering.WaitCacheWrites(f.tier)
	if open := f.tier.Stats().OpenStreams; open != 1 {
		t.Fatalf("%d streams open after a reader stopped mid-segment, want 1", open)
	}
	return offset
}

// onlyBody returns the one GET made so far, which must still be open.
func (f streamFixture) onlyBody(t *testing.T) *closeBody {
	t.Helper()
	all := f.bodies.snapshot()
	if len(all) != 1 || all[0].closed.Load() {
		t.Fatalf("%d GETs (first closed: %v), want one still open", len(all), len(all) > 0 && all[0].closed.Load())
	}
	return all[0]
}

// A reader that stops mid-segment leaves its GET parked; once it has been
// idle for 10 s (a clock the test moves on; the idle timer's tick called
// as it would fire) it is closed: the gauge goes back to 0 and the body
// is closed, the rest of it unread.
func TestParkedStreamClosedWhenIdle(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{})
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	tick := tiering.StreamsClock(f.tier, func() time.Time { return time.Unix(0, now.Load()) })
	f.stopMidSegment(t, 0, -1)
	body := f.onlyBody(t)
	now.Add(int64(9 * time.Second))
	tick()
	if open := f.tier.Stats().OpenStreams; open != 1 || body.closed.Load() {
		t.Fatalf("after 9 s idle: %d streams open (body closed: %v), want still parked", open, body.closed.Load())
	}
	now.Add(int64(time.Second))
	tick()
	if open := f.tier.Stats().OpenStreams; open != 0 || !body.closed.Load() {
		t.Fatalf("after 10 s idle: %d streams open (body closed: %v), want closed", open, body.closed.Load())
	}
	if fetched, size := f.metrics.Counts().GetBytes, f.segments[0].SizeBytes; fetched >= size {
		t.Fatalf("%d bytes read of a %d byte segment the reader stopped in", fetched, size)
	}
}

// Tier.Close closes the streams parked.
func TestCloseClosesParkedStreams(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{})
	f.stopMidSegment(t, 0, -1)
	body := f.onlyBody(t)
	f.tier.Close()
	if open := f.tier.Stats().OpenStreams; open != 0 || !body.closed.Load() {
		t.Fatalf("after Close: %d streams open (body closed: %v), want closed", open, body.closed.Load())
	}
}

// At most Config.ReaderThreads streams stay parked: parking one more
// closes the least recently parked.
func TestParkedStreamsBoundedByReaderThreads(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{ReaderThreads: 1})
	f.stopMidSegment(t, 0, -1)
	first := f.onlyBody(t)
	f.stopMidSegment(t, 1, -1) // asserts one open
	all := f.bodies.snapshot()
	if len(all) != 2 {
		t.Fatalf("%d GETs, want one per segment", len(all))
	}
	if !first.closed.Load() || all[1].closed.Load() {
		t.Fatalf("segment 0's body closed %v, segment 1's %v: want the first closed for the second", first.closed.Load(), all[1].closed.Load())
	}
}

// A parked stream that fails when the run continuing it reads its first
// chunk (the store closed the idle connection) is closed, and the run
// gets its chunks with a new GET from there to the segment's end: the
// reader sees no error and the right bytes.
func TestParkedStreamFailingGivesWayToNewGET(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{})
	next := f.stopMidSegment(t, 0, -1)
	parked := f.onlyBody(t)
	parked.left = 0 // breaks at its next read (the test's write happens before the reads below start)
	remote := f.segments[0]
	for offset := next; offset <= remote.LastOffset; {
		got, err := readBytes(f.tier, context.Background(), testPartition, remote, offset, 4*streamChunk)
		if err != nil {
			t.Fatalf("read %d after the parked stream broke: %v", offset, err)
		}
		if want := f.local.localRead(t, f.local.sealed[0], offset, 4*streamChunk); string(got) != string(want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		offset = lastOffsetOf(got) + 1
		tiering.WaitFetches(f.tier) // a reader slower than the store: it never catches up with its stream
	}
	tiering.WaitCacheWrites(f.tier)
	all := f.bodies.snapshot()
	if len(all) != 2 {
		t.Fatalf("%d GETs, want the parked one and one new one", len(all))
	}
	if !parked.closed.Load() {
		t.Error("the broken parked body was not closed")
	}
	if again := all[1]; again.offset <= parked.offset || again.offset+again.length != remote.SizeBytes {
		t.Errorf("the new GET is of bytes %d+%d, want from where the parked one stopped to the end (%d)", again.offset, again.length, remote.SizeBytes)
	}
	if open := f.tier.Stats().OpenStreams; open != 0 {
		t.Errorf("%d streams open after the segment was read to its end", open)
	}
}

// A GET whose body breaks in the middle of a run fails the run's flights
// from there and is not parked (closed); the reads that need those
// chunks get them with a new GET, and the replay returns the right bytes.
func TestStreamBrokenMidRunNotParked(t *testing.T) {
	testStreamFailsMidRun(t, false)
}

// A GET whose server stalls in the middle of a run is cancelled once the
// run has taken Config.RequestTimeout: the same as a broken one.
func TestStreamStalledMidRunCancelled(t *testing.T) {
	testStreamFailsMidRun(t, true)
}

func testStreamFailsMidRun(t *testing.T, stall bool) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 2<<20, 0, 12)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	bodies := &closeBucket{Bucket: bucket, breakAfter: 2*chunk + chunk/2, stall: stall}
	cfg := tiering.Config{Bucket: bodies, ChunkBytes: chunk, PrefetchChunks: 16}
	if stall {
		cfg.RequestTimeout = 200 * time.Millisecond
	}
	tier := newTier(t, cfg)
	replaySegmentPaced(t, tier, local, 0, segments[0], chunk, func() { tiering.WaitFetches(tier) })
	tiering.WaitCacheWrites(tier)
	all := bodies.snapshot()
	// The reader's own GET of the chunk that failed, and the read-ahead
	// run that waited for the failed GET's stream (when it started
	// before the reader's: else that one is parked for it).
	if len(all) < 2 || len(all) > 3 {
		t.Fatalf("%d GETs, want the failed one and one or two new ones", len(all))
	}
	fromFailed := false
	for i, body := range all {
		if !body.closed.Load() {
			t.Errorf("GET %d (bytes %d+%d) not closed", i, body.offset, body.length)
		}
		if i > 0 && (body.offset < 2*chunk || body.offset+body.length != segments[0].SizeBytes) {
			t.Errorf("GET %d of bytes %d+%d, want from chunk 2 (the first that failed) or later to the end (%d)", i, body.offset, body.length, segments[0].SizeBytes)
		}
		fromFailed = fromFailed || body.offset == 2*chunk
	}
	if !fromFailed {
		t.Error("no GET from chunk 2, the first that failed")
	}
	if open := tier.Stats().OpenStreams; open != 0 {
		t.Errorf("%d streams open after the replay read the segment to its end", open)
	}
}

// A sequential reader faster than the store's connections (each body
// here a slow connection) catches up with its read-ahead: its next runs
// then do not wait for the stream the run before them reads, but make
// their own ranged GETs, and its window grows past PrefetchChunks (16
// here) in runs of 8, so several GETs of one segment are in flight at
// once (on S3 one connection delivers tens of MB/s). The stream they
// passed is closed, not parked; each byte is still fetched once and the
// reads return the right bytes. Before, every run of the segment waited
// for its one stream (one GET in flight), and later a window that stopped
// at PrefetchChunks had two runs in flight at most.
//
// With ReaderThreads 3 the read-ahead GETs in flight stay within 3 (and
// the reader's own miss).
func TestCaughtUpReaderReadsAheadInParallel(t *testing.T) {
	for _, tc := range []struct {
		name        string
		threads     int
		least, most int
	}{
		{"default threads", 0, 4, tiering.DefaultReaderThreads + 1},
		{"3 threads", 3, 2, 3 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStreamFixture(t, tiering.Config{ReaderThreads: tc.threads})
			f.bodies.slow = 5 * time.Millisecond
			mostTasks := int64(0) // strata_tiering_read_ahead_tasks, sampled after each read
			r := f.replayFirst(t, func() { mostTasks = max(mostTasks, f.tier.Stats().ReadAheadTasks) })
			t.Logf("%d bytes replayed in %v: %d GETs, %d bytes fetched, at most %d open at once, read-ahead tasks seen up to %d", r.bytes, r.took, r.counts.Gets, r.counts.GetBytes, r.mostOpen, mostTasks)
			if r.mostOpen < tc.least || r.mostOpen > tc.most {
				t.Errorf("at most %d GETs of the segment open at once, want %d to %d", r.mostOpen, tc.least, tc.most)
			}
			if threads := int64(cmp.Or(tc.threads, tiering.DefaultReaderThreads)); mostTasks < 2 || mostTasks > threads {
				t.Errorf("read-ahead tasks seen up to %d, want several and at most the %d reader threads", mostTasks, threads)
			}
			if r.counts.GetBytes != r.bytes {
				t.Errorf("%d bytes fetched for %d replayed, want each byte fetched once", r.counts.GetBytes, r.bytes)
			}
			if open := f.tier.Stats().OpenStreams; open != 0 {
				t.Errorf("%d streams open after the segment was read to its end", open)
			}
			for i, body := range f.bodies.snapshot() {
				// The first GET streams the segment for the reader's
				// first run (the initial window, 8 chunks); the run
				// waiting to read on from it gets a GET of its own once
				// the reader catches up (17 chunks came over it before).
				if read := body.read.Load(); i == 0 && read > 8*streamChunk {
					t.Errorf("the first GET delivered %d chunks, want at most the first run's 8", read/streamChunk)
				}
				if !body.closed.Load() {
					t.Errorf("GET %d (bytes %d+%d) left open: a stream passed by a parallel run must be closed", i, body.offset, body.length)
				}
				// The reader's first GET streams the segment; once it
				// caught up, its runs stay ranged GETs of their own,
				// never again one stream for the rest of the segment
				// (runs of 8 chunks; the last takes the segment's end).
				if chunks := body.length / streamChunk; i > 0 && chunks > 16 {
					t.Errorf("GET %d (chunks %d+%d) streams on after the reader caught up", i, body.offset/streamChunk, chunks)
				}
			}
		})
	}
}

// Under a remote fetch quota lower than the store delivers, a reader
// catches up with the quota's pace, not the store's: one pacer serves
// every run, so its window does not grow past PrefetchChunks (two runs of 8 at most, and its own miss),
// and the read-ahead does not pile up the quota's debt (a throttled
// broker answers remote partitions without data). Before, the window grew
// as for a slow store, and a replay throttled to 50 MiB/s got 25–35 MB/s.
func TestCaughtUpReaderUnderFetchQuotaKeepsItsWindow(t *testing.T) {
	// 2 MiB/s, 128 chunks a second: low enough that a busy machine
	// running the test still reads faster than the quota (saturates it).
	f := newStreamFixture(t, tiering.Config{FetchMaxBytesPerSecond: 2 << 20})
	r := f.replayFirst(t, nil)
	t.Logf("%d bytes replayed in %v under 2 MiB/s: %d GETs, %d bytes fetched, at most %d open at once", r.bytes, r.took, r.counts.Gets, r.counts.GetBytes, r.mostOpen)
	if r.mostOpen > 3 {
		t.Errorf("at most %d GETs of the segment open at once under the fetch quota, want at most 3 (two runs and the reader's own)", r.mostOpen)
	}
	if r.counts.GetBytes != r.bytes {
		t.Errorf("%d bytes fetched for %d replayed, want each byte fetched once", r.counts.GetBytes, r.bytes)
	}
}

// Under a remote fetch quota higher than the store delivers (64 MiB/s
// against connections of 4 KiB per 5 ms), a reader that catches up with
// its read-ahead caught up with the store, not the quota: the pacer holds
// nothing back, so the window grows as without a quota and the reader
// gets several GETs at once. Before, any quota kept the window at
// PrefetchChunks: two runs, about two connections' worth.
func TestCaughtUpReaderUnderAHigherFetchQuotaGrowsItsWindow(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{FetchMaxBytesPerSecond: 64 << 20})
	f.bodies.slow = 5 * time.Millisecond
	r := f.replayFirst(t, nil)
	t.Logf("%d bytes replayed in %v under 64 MiB/s: %d GETs, %d bytes fetched, at most %d open at once", r.bytes, r.took, r.counts.Gets, r.counts.GetBytes, r.mostOpen)
	if r.mostOpen < 4 {
		t.Errorf("at most %d GETs of the segment open at once, want at least 4: the quota was not what held the reader back", r.mostOpen)
	}
	if r.counts.GetBytes != r.bytes {
		t.Errorf("%d bytes fetched for %d replayed, want each byte fetched once", r.counts.GetBytes, r.bytes)
	}
}

// A parallel run of a caught-up reader whose connection breaks mid-body
// (after a chunk and a half) fails the chunks it had not delivered; the
// reader fetches those on its own, with retries, and the replay returns
// the right bytes (replayFirst compares every read with the local log).
// The broken body is closed, no stream is left parked, and the chunks
// fetched twice are at most the failed run's.
func TestCaughtUpReaderSurvivesABrokenParallelRun(t *testing.T) {
	f := newStreamFixture(t, tiering.Config{})
	f.bodies.slow = time.Millisecond
	armed := false
	r := f.replayFirst(t, func() {
		// Once runs are in flight in parallel, break the next GET made.
		if !armed && f.tier.Stats().ReadAheadTasks >= 2 {
			f.bodies.mu.Lock()
			f.bodies.breakAfter, armed = 3*streamChunk/2, true
			f.bodies.mu.Unlock()
		}
	})
	t.Logf("%d bytes replayed in %v: %d GETs, %d bytes fetched, at most %d open at once", r.bytes, r.took, r.counts.Gets, r.counts.GetBytes, r.mostOpen)
	if !armed {
		t.Fatal("the reader never had two read-ahead runs in flight")
	}
	broken := 0
	for i, body := range f.bodies.snapshot() {
		if body.left == 0 {
			broken++
		}
		if !body.closed.Load() {
			t.Errorf("GET %d (bytes %d+%d) left open", i, body.offset, body.length)
		}
	}
	if broken != 1 {
		t.Errorf("%d GETs broke, want the one armed", broken)
	}
	if extra := r.counts.GetBytes - r.bytes; extra < 0 || extra > 8*streamChunk {
		t.Errorf("%d bytes fetched for %d replayed: want at most the failed run's 8 chunks fetched again", r.counts.GetBytes, r.bytes)
	}
	if open := f.tier.Stats().OpenStreams; open != 0 {
		t.Errorf("%d streams open after the segment was read to its end", open)
	}
}
