package tiering_test

import (
	"cmp"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/strata-log/strata/tiering"
)

// bodyGateBucket opens the .log GETs at once (the store serves the object
// as it was when the GET began, as S3 does) but holds their bodies' bytes
// until open is closed; opened receives once per .log GET opened.
type bodyGateBucket struct {
	tiering.Bucket
	open   chan struct{}
	opened chan struct{}
	suffix string // the objects gated; default ".log"
}

func (b *bodyGateBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	body, err := b.Bucket.Get(ctx, key, offset, length)
	if err != nil || !strings.HasSuffix(key, cmp.Or(b.suffix, ".log")) {
		return body, err
	}
	select {
	case b.opened <- struct{}{}:
	default:
	}
	return &gatedBody{ReadCloser: body, open: b.open, ctx: ctx}, nil
}

type gatedBody struct {
	io.ReadCloser
	open <-chan struct{}
	ctx  context.Context
}

func (g *gatedBody) Read(p []byte) (int, error) {
	select {
	case <-g.open:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	return g.ReadCloser.Read(p)
}

// DeleteSegment drops the segment's chunks from the caches (cache.go:
// removeSegment, "deleted remotely"), but a GET of the segment already
// under way when it runs (a sequential reader's miss and its read-ahead
// window, here held by the store until the delete is done) puts its
// chunks into the memory LRU and the disk cache after it: chunks of a
// segment that no longer exists take cache space from live ones until the
// LRU pushes them out. The interleaving is forced: the GET is open before
// the delete and its body delivers nothing until after it.
func TestDeletedSegmentNotCachedAgainByAGETUnderWay(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	gate := &bodyGateBucket{Bucket: bucket, open: make(chan struct{}), opened: make(chan struct{}, 1)}
	const chunk = 16 << 10
	tier := newTier(t, tiering.Config{Bucket: gate, ChunkBytes: chunk, PrefetchChunks: 8})
	remote := segments[0]
	var read sync.WaitGroup
	read.Go(func() {
		got, err := readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset, chunk)
		if err != nil {
			t.Errorf("read begun before the delete: %v", err)
			return
		}
		if want := local.localRead(t, local.sealed[0], remote.BaseOffset, chunk); string(got) != string(want) {
			t.Errorf("read begun before the delete: %s", describeDiff(got, want))
		}
	})
	<-gate.opened // the reader's GET (its chunk and the window after it) is under way
	if err := tier.DeleteSegment(context.Background(), testPartition, remote); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	read.Wait()
	tiering.WaitFetches(tier)
	tiering.WaitCacheWrites(tier)
	var inMemory []int64
	for _, c := range tiering.MemoryChunks(tier) {
		if c.Segment == remote.SegmentID {
			inMemory = append(inMemory, c.Index)
		}
	}
	var onDisk []int64
	for index := int64(0); index <= (remote.SizeBytes-1)/chunk; index++ {
		if _, _, ok := tiering.CacheFileOf(tier, remote, index); ok {
			onDisk = append(onDisk, index)
		}
	}
	if len(inMemory) > 0 || len(onDisk) > 0 {
		t.Fatalf("after DeleteSegment, chunks of the deleted segment cached: in memory %v, on disk %v", inMemory, onDisk)
	}
}

// The same for the segment's offset index: an .index GET under way when
// DeleteSegment runs does not put the decoded index back into the index
// cache.
func TestDeletedSegmentIndexNotCachedAgainByAGETUnderWay(t *testing.T) {
	_, bucket, segments := uploadedLog(t, 250)
	gate := &bodyGateBucket{Bucket: bucket, open: make(chan struct{}), opened: make(chan struct{}, 1), suffix: ".index"}
	tier := newTier(t, tiering.Config{Bucket: gate, ChunkBytes: 16 << 10})
	remote := segments[0]
	var read sync.WaitGroup
	read.Go(func() {
		// Begun before the delete, it may end either way (its .log GET
		// starts after the delete); only the index cache is checked.
		readBytes(tier, context.Background(), testPartition, remote, remote.BaseOffset+100, 4096)
	})
	<-gate.opened // the reader's index GET is under way
	if err := tier.DeleteSegment(context.Background(), testPartition, remote); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	read.Wait()
	tiering.WaitFetches(tier)
	if tiering.IndexCached(tier, remote.SegmentID) {
		t.Fatal("after DeleteSegment, the deleted segment's offset index is cached")
	}
}
