package tiering_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// bodyBucket counts the bytes read from the bodies of .log GETs.
type bodyBucket struct {
	tiering.Bucket
	read atomic.Int64
}

func (b *bodyBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	body, err := b.Bucket.Get(ctx, key, offset, length)
	if err != nil || !strings.HasSuffix(key, ".log") {
		return body, err
	}
	return &countedBody{ReadCloser: body, read: &b.read}, nil
}

type countedBody struct {
	io.ReadCloser
	read *atomic.Int64
}

func (c *countedBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// With remote.log.manager.fetch.max.bytes.per.second set, a cold replay
// takes the bytes from the store at the quota: at every moment, the
// bytes read from the store since the replay began are at most one chunk
// (the pacer's burst) plus the quota times the time elapsed, read-ahead
// included. Before, an admitted reader and its read-ahead read whole
// windows at full speed: the whole replay went in no time at all.
func TestColdReplayPacedByFetchQuota(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk, rate = 16 << 10, 4 * (16 << 10)
	bucket := &bodyBucket{Bucket: store}
	clock := quotatest.NewClock()
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 16, FetchMaxBytesPerSecond: rate, QuotaClock: clock})
	origin := clock.Now()

	var (
		mu        sync.Mutex // guards violation
		violation string
	)
	check := func(now time.Time) {
		elapsed := now.Sub(origin)
		if read, limit := bucket.read.Load(), chunk+int64(math.Ceil(rate*elapsed.Seconds())); read > limit {
			mu.Lock()
			violation = cmp.Or(violation, fmt.Sprintf("%d bytes read from the store within %s of the replay: more than a chunk plus the quota's, %d", read, elapsed, limit))
			mu.Unlock()
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, check) // time passes only while the replay waits for the quota
	}()
	var total int64
	for i, remote := range segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; {
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
			if want := local.localRead(t, local.sealed[i], offset, 16<<10); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("segment %d read %d: %v, %s", i, offset, err, describeDiff(got, want))
			}
			offset = lastOffsetOf(got) + 1
		}
		total += remote.SizeBytes
	}
	tiering.WaitCacheWrites(tier)
	close(stop)
	<-stopped
	check(clock.Now())
	if violation != "" {
		t.Fatal(violation)
	}
	// The quota did not waste time either: the replay took about what the
	// quota says for the bytes read (read-ahead past the end included).
	elapsed := clock.Now().Sub(origin)
	if read := bucket.read.Load(); read < total || elapsed < time.Duration(float64(read-chunk)/rate*float64(time.Second)) {
		t.Fatalf("%d bytes read (the log is %d) in %s at %d B/s", read, total, elapsed, rate)
	}
}

// Three readers replaying cold at once under the fetch quota, sized as
// the broker's defaults (chunks of a MiB: a memory LRU and read-ahead
// budget of 64 chunks, a window of 16, segments of 32 chunks, each reader
// going on into a second segment with NextSegment), pay for exactly the
// bytes they take from the store and the disk cache, and take each chunk
// from the store once: no chunk is paid twice, none is paid for without
// being read (a cancelled GET or load), the last short chunk is paid for
// its size. So a saturated quota (someone waits for it all the time)
// reads the store at its rate. What a replay stopped early returns falls
// short of that by what its read-ahead had fetched and not yet returned
// (logged: up to the readers' windows; strata-bench's throttled replay
// stops after 6 s and counts the bytes returned).
func TestConcurrentColdReplaysPayEachChunkOnce(t *testing.T) {
	store := openBucket(t, "mem://")
	local := buildLocalLog(t, 1000, 512<<10, 0, 7)
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: store}))
	if len(segments) < 6 {
		t.Fatalf("%d segments, want at least 6", len(segments))
	}
	const readers, chunk, rate = 3, 16 << 10, 20 * (16 << 10)
	bucket := &bodyBucket{Bucket: store}
	clock := quotatest.NewClock()
	sizes := map[[16]byte]int64{}
	for _, s := range segments {
		sizes[s.SegmentID] = s.SizeBytes
	}
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 16, MemoryCacheBytes: 64 * chunk,
		FetchMaxBytesPerSecond: rate, QuotaClock: clock,
		// Reader i reads segments i and i+readers.
		NextSegment: func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
			for i, s := range segments[:readers] {
				if s.SegmentID == segment.SegmentID {
					return segments[i+readers], true
				}
			}
			return metadata.SegmentManifest{}, false
		}})
	var paid, disk atomic.Int64 // bytes the quota took; bytes of chunk files read
	tiering.OnPace(tier, func(n int64) { paid.Add(n) })
	tiering.BeforeDiskRead(tier, func(segment [16]byte, index int64) { disk.Add(min(chunk, sizes[segment]-index*chunk)) })
	var total, returned atomic.Int64
	// What the store served ahead of what the readers were returned (the
	// read-ahead not read yet): the most, and at 6 s.
	var lead, leadAt6s int64
	origin := clock.Now()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, func(now time.Time) { // time passes only while a read waits for the quota
			ahead := bucket.read.Load() - returned.Load()
			lead = max(lead, ahead)
			if now.Sub(origin) < 6*time.Second {
				leadAt6s = ahead
			}
		})
	}()
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			for _, s := range []int{i, i + readers} {
				remote := segments[s]
				total.Add(remote.SizeBytes)
				for offset := remote.BaseOffset; offset <= remote.LastOffset; {
					got, err := readBytes(tier, context.Background(), testPartition, remote, offset, chunk)
					if want := local.localRead(t, local.sealed[s], offset, chunk); err != nil || !bytes.Equal(got, want) {
						t.Errorf("segment %d read %d: %v, %s", s, offset, err, describeDiff(got, want))
						return
					}
					returned.Add(int64(len(got)))
					offset = lastOffsetOf(got) + 1
				}
			}
		})
	}
	wg.Wait()
	tiering.WaitCacheWrites(tier)
	close(stop)
	<-stopped
	t.Logf("log %d bytes: %d returned, %d from the store, %d from the disk cache, %d paid for in %s at %d B/s; the store ahead of the readers by at most %.1f chunks, %.1f at 6 s",
		total.Load(), returned.Load(), bucket.read.Load(), disk.Load(), paid.Load(), clock.Now().Sub(origin), rate, float64(lead)/chunk, float64(leadAt6s)/chunk)
	if t.Failed() {
		return
	}
	if store, n := bucket.read.Load(), total.Load(); store != n {
		t.Fatalf("%d bytes from the store for a log of %d: a chunk fetched twice, or past the log", store, n)
	}
	// A chunk file is read only when the chunk left the memory LRU
	// before its reader got to it (a reader held back that long): paid
	// again, as any read of the disk cache.
	if read := bucket.read.Load() + disk.Load(); paid.Load() != read {
		t.Fatalf("the quota took %d bytes, the store and the disk cache served %d", paid.Load(), read)
	}
}
