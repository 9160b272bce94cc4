package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// heldBucket holds the .log GETs that hold selects until open is called,
// and measures the bytes of .log GETs in flight (from the request until
// its body is closed).
type heldBucket struct {
	tiering.Bucket
	hold func(key string, offset int64) bool

	mu       sync.Mutex
	changed  *sync.Cond
	opened   chan struct{}
	isOpen   bool
	held     int
	inFlight int64
	peak     int64
	gets     map[string]int // by key@offset
}

func newHeldBucket(bucket tiering.Bucket, hold func(key string, offset int64) bool) *heldBucket {
	g := &heldBucket{Bucket: bucket, hold: hold, opened: make(chan struct{}), gets: make(map[string]int)}
	g.changed = sync.NewCond(&g.mu)
	return g
}

func (g *heldBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if !strings.HasSuffix(key, ".log") {
		return g.Bucket.Get(ctx, key, offset, length)
	}
	g.mu.Lock()
	g.gets[fmt.Sprintf("%s@%d", key, offset)]++
	g.inFlight += length
	g.peak = max(g.peak, g.inFlight)
	held := !g.isOpen && g.hold(key, offset)
	if held {
		g.held++
	}
	g.changed.Broadcast()
	g.mu.Unlock()
	if held {
		select {
		case <-g.opened:
		case <-ctx.Done():
		}
	}
	done := func() {
		g.mu.Lock()
		g.inFlight -= length
		g.mu.Unlock()
	}
	body, err := g.Bucket.Get(ctx, key, offset, length)
	if err != nil {
		done()
		return nil, err
	}
	return &measuredBody{ReadCloser: body, done: sync.OnceFunc(done)}, nil
}

type measuredBody struct {
	io.ReadCloser
	done func()
}

func (b *measuredBody) Close() error {
	b.done()
	return b.ReadCloser.Close()
}

// runBytes measures the runs of chunks a tier reads (tiering.OnRun): the
// bytes of those under way and their peak, and the length of each that
// started when only (if set) held. A run is what a GET used to be: with
// a sequential reader's GET streamed over several runs, the bytes a GET
// asks for are no longer the bytes it reads.
type runBytes struct {
	only     func() bool
	mu       sync.Mutex
	inFlight int64
	peak     int64
	lengths  []int64
	runs     int
}

func watchRuns(tier *tiering.Tier, only func() bool) *runBytes {
	r := &runBytes{only: only}
	tiering.OnRun(tier, func(bytes int64) func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.runs++
		r.inFlight += bytes
		r.peak = max(r.peak, r.inFlight)
		if r.only == nil || r.only() {
			r.lengths = append(r.lengths, bytes)
		}
		return func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.inFlight -= bytes
		}
	})
	return r
}

func (r *runBytes) counts() (inFlight, peak int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight, r.peak
}

// take returns the lengths recorded since the last take.
func (r *runBytes) take() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lengths
	r.lengths = nil
	return out
}

// awaitHeld waits until n GETs are held at the gate.
func (g *heldBucket) awaitHeld(t *testing.T, n int) {
	t.Helper()
	timer := time.AfterFunc(20*time.Second, func() {
		g.mu.Lock()
		g.changed.Broadcast()
		g.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(20 * time.Second)
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.held < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d GETs held at the gate, want %d", g.held, n)
		}
		g.changed.Wait()
	}
}

func (g *heldBucket) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOpen {
		g.isOpen = true
		close(g.opened)
	}
}

func (g *heldBucket) counts() (inFlight, peak int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.peak
}

// With 64 partitions replaying at once, the bytes fetched ahead of all
// readers stay within ReadAheadBytes: each read-ahead GET is shortened to
// what the budget has left, so windows shrink instead of adding up (64
// readers × 8 chunks here, 64 × 16 MiB with the defaults). What is in
// flight is the chunk each reader waits for plus at most the budget.
func TestReadAheadBudgetWithManyReaders(t *testing.T) {
	const readers, chunk, budget = 64, 16 << 10, 8 * (16 << 10)
	local := buildLocalLog(t, 250, 512<<10, 0, 7)
	store := openBucket(t, "mem://")
	uploader := newTier(t, tiering.Config{Bucket: store})
	partitions := make([]metadata.TopicPartition, readers)
	segments := make([]metadata.SegmentManifest, readers)
	for i := range readers {
		partitions[i] = metadata.TopicPartition{Topic: "replay", TopicID: testPartition.TopicID, Partition: int32(i)}
		files := local.files(t, local.sealed[0])
		files.Partition = partitions[i]
		remote, err := uploader.Upload(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		segments[i] = remote
	}
	gate := newHeldBucket(store, func(string, int64) bool { return true })
	tier := newTier(t, tiering.Config{Bucket: gate, ChunkBytes: chunk, PrefetchChunks: 16, ReadAheadBytes: budget,
		MemoryCacheBytes: 4 << 20, ReaderThreads: readers, ReaderMaxPendingTasks: readers})
	runs := watchRuns(tier, nil)

	// Every reader's first read misses: each asks for its window at once.
	results := make([][]byte, readers)
	errs := make([]error, readers)
	var reads sync.WaitGroup
	for i := range readers {
		reads.Go(func() {
			results[i], errs[i] = readBytes(tier, context.Background(), partitions[i], segments[i], segments[i].BaseOffset, 16<<10)
		})
	}
	gate.awaitHeld(t, readers)
	if inFlight, _ := runs.counts(); inFlight > budget+readers*chunk {
		t.Fatalf("%d bytes requested by %d readers' first reads, want at most the budget %d plus a chunk each", inFlight, readers, budget)
	}
	if ahead := tier.Stats().ReadAheadBytes; ahead > budget {
		t.Fatalf("read-ahead in flight %d, budget %d", ahead, budget)
	}
	gate.open()
	reads.Wait()
	for i := range readers {
		if want := local.localRead(t, local.sealed[0], segments[i].BaseOffset, 16<<10); errs[i] != nil || !bytes.Equal(results[i], want) {
			t.Fatalf("reader %d: %v, %s", i, errs[i], describeDiff(results[i], want))
		}
	}

	// Then all replay their segment to its end at once.
	prefetchesBefore := tier.Stats().Prefetches
	for i := range readers {
		reads.Go(func() {
			for offset := lastOffsetOf(results[i]) + 1; offset <= segments[i].LastOffset; {
				got, err := readBytes(tier, context.Background(), partitions[i], segments[i], offset, 16<<10)
				if err != nil {
					errs[i] = fmt.Errorf("read %d: %w", offset, err)
					return
				}
				if want := local.localRead(t, local.sealed[0], offset, 16<<10); !bytes.Equal(got, want) {
					errs[i] = fmt.Errorf("read %d: %s", offset, describeDiff(got, want))
					return
				}
				offset = lastOffsetOf(got) + 1
			}
		})
	}
	reads.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	if _, peak := runs.counts(); peak > budget+readers*chunk {
		t.Fatalf("peak of %d bytes in flight, want at most the budget %d plus a chunk per reader", peak, budget)
	}
	if tier.Stats().Prefetches == prefetchesBefore {
		t.Fatal("no chunk was read ahead: the budget should shrink windows, not disable them")
	}
}

// A sequential reader nearing a segment's end has the next segment's first
// chunks read ahead (Config.NextSegment), so its first read there starts
// no GET of its own.
func TestReadAheadCrossesIntoNextSegment(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	next := segments[1]
	nextLog := uuid.UUID(next.SegmentID).String()
	gate := newHeldBucket(store, func(key string, offset int64) bool { return strings.Contains(key, nextLog) })
	tier := newTier(t, tiering.Config{Bucket: gate, ChunkBytes: 64 << 10, PrefetchChunks: 8, NextSegment: nextSegmentIn(segments)})
	replaySegment(t, tier, local, 0, segments[0], 16<<10)
	gate.awaitHeld(t, 1) // the next segment's read-ahead, asked before any read of it
	gate.open()
	got, err := readBytes(tier, context.Background(), testPartition, next, next.BaseOffset, 16<<10)
	if want := local.localRead(t, local.sealed[1], next.BaseOffset, 16<<10); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read of the next segment: %v, %s", err, describeDiff(got, want))
	}
	n := 0
	gate.mu.Lock() // the read-ahead of later chunks may still be GETting
	for k, count := range gate.gets {
		if strings.Contains(k, nextLog) && strings.HasSuffix(k, "@0") {
			n += count
		}
	}
	gate.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d GETs of the next segment's first chunk, want 1 (the read-ahead's)", n)
	}
}

// nextSegmentIn is a Config.NextSegment over segments (a partition's
// manifest, in order), as the broker plugs in.
func nextSegmentIn(segments []metadata.SegmentManifest) func(metadata.TopicPartition, metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
	return func(_ metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
		for i, s := range segments[:len(segments)-1] {
			if s.SegmentID == segment.SegmentID {
				return segments[i+1], true
			}
		}
		return metadata.SegmentManifest{}, false
	}
}
