package tiering_test

import (
	"cmp"
	"context"
	"errors"
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

// A reader whose Fetch ends while its own read of a chunk file waits for
// the fetch quota (loadOnPath) returns the context's error at once and
// reads no file: the wait does not outlive the Fetch, and nothing is read
// for nobody.
func TestOwnPathReadWaitingForQuotaEndsWithItsFetch(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk, rate = 16 << 10, 4 * (16 << 10)
	clock := quotatest.NewClock()
	tier := newTier(t, tiering.Config{Bucket: store, ChunkBytes: chunk, PrefetchChunks: -1, FetchMaxBytesPerSecond: rate, QuotaClock: clock})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, nil)
	}()
	remote := segments[0]
	replaySegmentPaced(t, tier, local, 0, remote, chunk, nil) // cold, paced: fills the disk cache
	tiering.WaitCacheWrites(tier)
	close(stop)
	<-stopped // the clock stands still from here: every quota wait blocks
	tiering.DropMemoryCache(tier)
	var filesRead atomic.Int64
	tiering.BeforeDiskRead(tier, func([16]byte, int64) { filesRead.Add(1) })

	// Read on until a read waits for the quota (the bucket may still pay
	// for one chunk at once).
	for offset := remote.BaseOffset; ; {
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			data []byte
			err  error
		}
		done := make(chan result, 1)
		before := filesRead.Load()
		go func() {
			data, err := readBytes(tier, ctx, testPartition, remote, offset, chunk)
			done <- result{data, err}
		}()
		var r result
		for waiting := false; !waiting; {
			select {
			case r = <-done:
				waiting = true // done without a wait: read on
				continue
			default:
			}
			if clock.Timers() == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			cancel()
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("read %d still waits for the quota 10 s after its Fetch ended", offset)
			}
			if !errors.Is(r.err, context.Canceled) || r.data != nil {
				t.Fatalf("read %d cancelled while it waited for the quota: %d bytes, %v; want context.Canceled", offset, len(r.data), r.err)
			}
			if n := filesRead.Load() - before; n != 0 {
				t.Fatalf("%d chunk files read by the cancelled read, want none", n)
			}
			return
		}
		cancel()
		if r.err != nil {
			t.Fatalf("read %d: %v", offset, r.err)
		}
		if offset = lastOffsetOf(r.data) + 1; offset > remote.LastOffset {
			t.Fatal("the segment was read to its end without a wait for the quota, with the quota's clock standing still")
		}
	}
}
