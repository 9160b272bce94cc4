package tiering_test

import (
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
		replayed := replaySegments(t, tier, local, segments, readBytes)
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
}

type closeBody struct {
	io.ReadCloser
	ctx            context.Context
	offset, length int64
	closed         atomic.Bool
	left           int64 // bytes before it fails; -1: never
	stall          bool
}

var errBroken = errors.New("connection reset (test)")

func (b *closeBody) Read(p []byte) (int, error) {
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
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, err
}

func (b *closeBody) Close() error {
	b.closed.Store(true)
	return b.ReadCloser.Close()
}

func (b *closeBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r, err := b.Bucket.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	body := &closeBody{ReadCloser: r, ctx: ctx, offset: offset, length: length, left: -1}
	if b.breakAfter > 0 {
		body.left, body.stall, b.breakAfter = b.breakAfter, b.stall, 0
	}
	b.bodies = append(b.bodies, body)
	return body, nil
}

func (b *closeBucket) snapshot() []*closeBody {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*closeBody(nil), b.bodies...)
}

// stopMidSegment reads the first few chunks of segments[0] sequentially
// and waits for the read-ahead to park its GET.
func stopMidSegment(t *testing.T, tier *tiering.Tier, local *localLog, remote metadata.SegmentManifest, chunk int) {
	t.Helper()
	offset := remote.BaseOffset
	for range 3 {
		got, err := readBytes(tier, context.Background(), testPartition, remote, offset, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if want := local.localRead(t, local.sealed[0], offset, chunk); string(got) != string(want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		offset = lastOffsetOf(got) + 1
	}
	tiering.WaitCacheWrites(tier)
	if open := tier.Stats().OpenStreams; open != 1 {
		t.Fatalf("%d streams open after a reader stopped mid-segment, want 1", open)
	}
}

// A reader that stops mid-segment leaves its GET parked; once it has been
// idle for 10 s (a clock the test moves on) it is closed: the gauge goes
// back to 0 and the body is closed, the rest of it unread.
func TestParkedStreamClosedWhenIdle(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 2<<20, 0, 12)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	bodies := &closeBucket{Bucket: bucket}
	metrics, _ := tiering.NewMetricsBucket(bodies, nil)
	tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: chunk, PrefetchChunks: 16})
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	sweep := tiering.StreamsClock(tier, func() time.Time { return time.Unix(0, now.Load()) })
	stopMidSegment(t, tier, local, segments[0], chunk)
	all := bodies.snapshot()
	if len(all) != 1 || all[0].closed.Load() {
		t.Fatalf("%d GETs (first closed: %v), want one still open", len(all), len(all) > 0 && all[0].closed.Load())
	}
	now.Add(int64(9 * time.Second))
	sweep()
	if open := tier.Stats().OpenStreams; open != 1 || all[0].closed.Load() {
		t.Fatalf("after 9 s idle: %d streams open (body closed: %v), want still parked", open, all[0].closed.Load())
	}
	now.Add(int64(time.Second))
	sweep()
	if open := tier.Stats().OpenStreams; open != 0 || !all[0].closed.Load() {
		t.Fatalf("after 10 s idle: %d streams open (body closed: %v), want closed", open, all[0].closed.Load())
	}
	if fetched, size := metrics.Counts().GetBytes, segments[0].SizeBytes; fetched >= size {
		t.Fatalf("%d bytes read of a %d byte segment the reader stopped in", fetched, size)
	}
}

// Tier.Close closes the streams parked.
func TestCloseClosesParkedStreams(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 2<<20, 0, 12)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	bodies := &closeBucket{Bucket: bucket}
	tier := newTier(t, tiering.Config{Bucket: bodies, ChunkBytes: chunk, PrefetchChunks: 16})
	stopMidSegment(t, tier, local, segments[0], chunk)
	all := bodies.snapshot()
	if len(all) != 1 || all[0].closed.Load() {
		t.Fatalf("%d GETs, want one still open", len(all))
	}
	tier.Close()
	if open := tier.Stats().OpenStreams; open != 0 || !all[0].closed.Load() {
		t.Fatalf("after Close: %d streams open (body closed: %v), want closed", open, all[0].closed.Load())
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
	replaySegment(t, tier, local, 0, segments[0], chunk)
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
