package tiering_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/strata-log/strata/tiering"
)

// A sequential reader whose read ends a segment is done with the
// segment's last chunk too (its next read is in the next segment): the
// chunk leaves the memory LRU like the chunks before it (each on disk
// already: chunkCache.passed), while the chunks loaded ahead of other
// readers stay. Here reader B starts a warm replay of segment 1 (its
// window is loaded ahead from the disk cache), then reader A replays
// segment 0 to its end: no chunk of segment 0 may then be left in memory,
// and B's window must be. Before the passed chunks left memory, they went
// to its back, and the test asked that every chunk of segment 0 be due to
// leave before any of B's window: the segment's last chunk once stayed at
// the front, younger than B's window, and once memory ran short it pushed
// chunks of that window out to be loaded again (as it did in the bench's
// warm pass with three partitions, each segment's last chunk lingering
// from the cold pass). Between reads the test waits for the loads ahead
// to finish, so the order does not depend on timing.
func TestSegmentEndLeavesMemoryFirst(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	const chunk = 32 << 10 // a window of 8 is larger than any read (batches up to 150 KiB)
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 8, MemoryCacheBytes: 64 * chunk})
	replaySegments(t, tier, local, segments, 16<<10) // cold: fills the disk cache
	tiering.WaitCacheWrites(tier)
	tiering.DropMemoryCache(tier)

	read := func(i int, offset int64) (next, end int64) {
		t.Helper()
		got, err := readBytes(tier, context.Background(), testPartition, segments[i], offset, 16<<10)
		if err != nil {
			t.Fatalf("segment %d, read %d: %v", i, offset, err)
		}
		if want := local.localRead(t, local.sealed[i], offset, 16<<10); !bytes.Equal(got, want) {
			t.Fatalf("segment %d, read %d: %s", i, offset, describeDiff(got, want))
		}
		tiering.WaitCacheWrites(tier) // the loads ahead of this read are in memory
		return lastOffsetOf(got) + 1, int64(len(got))
	}
	a, b := segments[0], segments[1]
	next, position := b.BaseOffset, int64(0)
	for range 3 {
		var n int64
		next, n = read(1, next)
		position += n
	}
	for offset := a.BaseOffset; offset <= a.LastOffset; {
		offset, _ = read(0, offset)
	}

	// B's next read starts in chunk position/chunk: from there on
	// segment 1 is ahead of it.
	order := tiering.MemoryChunks(tier)
	aheadOfB := 0
	for _, c := range order {
		switch {
		case c.Segment == a.SegmentID:
			t.Fatalf("chunk %d of segment 0, which reader A has passed (and which is on disk), is still in the memory LRU: %v", c.Index, order)
		case c.Segment == b.SegmentID && c.Index >= position/chunk:
			aheadOfB++
		}
	}
	if aheadOfB == 0 {
		t.Fatal("no chunk loaded ahead of reader B in memory")
	}
}
