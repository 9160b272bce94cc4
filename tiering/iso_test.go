package tiering_test

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// With remote.log.manager.fetch.max.bytes.per.second set, a warm replay
// (chunks in the disk cache, none in memory) takes the bytes from the
// cache's files at the quota: at every moment the bytes read from the
// files since the replay began are at most two chunks (the pacer's burst,
// and the one chunk a reader reads on its own path before anything was
// loaded ahead of it, which is not paced) plus the quota times the time
// elapsed. The loads ahead pay before they read (loadAhead), and with
// Config.NextSegment (as the broker sets it) they cross into the next
// segment, so a sequential replay reads one file on its own path, its
// first. A guard for that bound (it held before this test too), not a
// change.
func TestWarmReplayPacedByFetchQuota(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	if len(segments) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segments))
	}
	const chunk, rate = 16 << 10, 4 * (16 << 10)
	clock := quotatest.NewClock()
	sizes := map[[16]byte]int64{}
	for _, s := range segments {
		sizes[s.SegmentID] = s.SizeBytes
	}
	tier := newTier(t, tiering.Config{Bucket: store, ChunkBytes: chunk, PrefetchChunks: 16, FetchMaxBytesPerSecond: rate, QuotaClock: clock,
		NextSegment: func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
			for i, s := range segments[:len(segments)-1] {
				if s.SegmentID == segment.SegmentID {
					return segments[i+1], true
				}
			}
			return metadata.SegmentManifest{}, false
		}})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, nil) // time passes only while a read waits for the quota
	}()
	defer func() { close(stop); <-stopped }()
	replaySegments(t, tier, local, segments, 16<<10) // cold, paced: fills the disk cache
	tiering.WaitCacheWrites(tier)
	tiering.DropMemoryCache(tier)

	var (
		read      atomic.Int64 // bytes of the chunk files read since origin
		mu        sync.Mutex   // guards origin and violation
		origin    = clock.Now()
		violation string
	)
	check := func(now time.Time) {
		mu.Lock()
		defer mu.Unlock()
		elapsed := now.Sub(origin)
		if n, limit := read.Load(), 2*chunk+int64(math.Ceil(rate*elapsed.Seconds())); n > limit {
			violation = cmp.Or(violation, fmt.Sprintf("%d bytes read from the disk cache within %s of the warm replay: more than two chunks plus the quota's, %d", n, elapsed, limit))
		}
	}
	tiering.BeforeDiskRead(tier, func(segment [16]byte, index int64) {
		read.Add(min(chunk, sizes[segment]-index*chunk))
		check(clock.Now())
	})
	before := tier.Stats()
	replaySegments(t, tier, local, segments, 16<<10) // warm
	tiering.WaitCacheWrites(tier)
	after := tier.Stats()
	if after.CacheMisses != before.CacheMisses || after.CacheDiskReads == before.CacheDiskReads {
		t.Fatalf("warm replay: %d cache misses (want 0), %d files read on the reader's path (want some)",
			after.CacheMisses-before.CacheMisses, after.CacheDiskReads-before.CacheDiskReads)
	}
	mu.Lock()
	defer mu.Unlock()
	if violation != "" {
		t.Fatal(violation)
	}
	t.Logf("%d bytes read from the disk cache in %s (fake): %d files on the reader's path, %d ahead", read.Load(), clock.Now().Sub(origin),
		after.CacheDiskReads-before.CacheDiskReads, after.CacheDiskReadsAhead-before.CacheDiskReadsAhead)
}
