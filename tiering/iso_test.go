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
// files since the replay began are at most one chunk (the pacer's burst)
// plus the quota times the time elapsed. The loads ahead pay before they
// read (loadAhead), and so does a reader's own read of a file on its path
// (loadOnPath), with read-ahead and without (every file read on the
// reader's path). That one was not paced before: the bound was two
// chunks with read-ahead (the replay read its first file on its own
// path), and without read-ahead the replay failed it at once (32,768
// bytes within 0 s against 16,384).
func TestWarmReplayPacedByFetchQuota(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prefetch int
	}{
		{"read-ahead", 16},
		// Every chunk file read on the reader's path: before loadOnPath
		// paced them, the whole replay read at once.
		{"no read-ahead", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			tier := newTier(t, tiering.Config{Bucket: store, ChunkBytes: chunk, PrefetchChunks: tc.prefetch, FetchMaxBytesPerSecond: rate, QuotaClock: clock,
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
				if n, limit := read.Load(), chunk+int64(math.Ceil(rate*elapsed.Seconds())); n > limit {
					violation = cmp.Or(violation, fmt.Sprintf("%d bytes read from the disk cache within %s of the warm replay: more than a chunk plus the quota's, %d", n, elapsed, limit))
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

		})
	}
}
