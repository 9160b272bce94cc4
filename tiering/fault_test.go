package tiering_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// uploadedLog builds a log, uploads its sealed segments to a mem bucket and
// returns them.
func uploadedLog(t *testing.T, batches int) (*localLog, tiering.Bucket, []metadata.SegmentManifest) {
	t.Helper()
	bucket := openBucket(t, "mem://")
	local := buildLocalLog(t, batches, 512<<10, 0, 7)
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	return local, bucket, segments
}

// A store that cannot be reached gives a retriable error and never data;
// chunks already cached are still served; the same reads succeed once the
// store is back.
func TestUnreachableStoreIsRetriable(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	faults := tieringtest.NewFaultBucket(bucket)
	tier := newTier(t, tiering.Config{Bucket: faults, ChunkBytes: 64 << 10, PrefetchChunks: -1})
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]

	faults.SetUnreachable(true)
	data, err := readBytes(tier, ctx, testPartition, remote, remote.BaseOffset, 1<<20)
	if !tiering.IsRetriable(err) || data != nil || tiering.IsCorrupt(err) {
		t.Fatalf("cold read from an unreachable store: %d bytes, %v; want no data and ErrUnavailable", len(data), err)
	}
	faults.SetUnreachable(false)
	first, err := readBytes(tier, ctx, testPartition, remote, remote.BaseOffset, 10<<10)
	if err != nil || !bytes.Equal(first, local.localRead(t, info, remote.BaseOffset, 10<<10)) {
		t.Fatalf("read after the store came back: %v", err)
	}

	faults.SetUnreachable(true)
	cached, err := readBytes(tier, ctx, testPartition, remote, remote.BaseOffset, 10<<10)
	if err != nil || !bytes.Equal(cached, first) {
		t.Fatalf("read of cached chunks while unreachable: %v", err)
	}
	far := remote.LastOffset
	if data, err := readBytes(tier, ctx, testPartition, remote, far, 1<<20); !errors.Is(err, tiering.ErrUnavailable) || data != nil {
		t.Fatalf("uncached read while unreachable: %d bytes, %v", len(data), err)
	}
	if _, err := tier.Upload(ctx, local.files(t, local.sealed[1])); !tiering.IsRetriable(err) {
		t.Fatalf("upload while unreachable: %v", err)
	}
	if _, err := tier.GetManifestSnapshot(ctx, testPartition); !tiering.IsRetriable(err) || errors.Is(err, tiering.ErrNotFound) {
		t.Fatalf("manifest while unreachable: %v", err)
	}
	if _, err := tier.Scrub(ctx, nil); !tiering.IsRetriable(err) {
		t.Fatalf("scrub while unreachable: %v", err)
	}
	faults.SetUnreachable(false)
	if got, err := readBytes(tier, ctx, testPartition, remote, far, 1<<20); err != nil || !bytes.Equal(got, local.localRead(t, info, far, 1<<20)) {
		t.Fatalf("read after recovery: %v", err)
	}
}

// A real S3 endpoint that refuses connections is classified as unavailable
// by the gocloud/aws-sdk path too (not only by the fault wrapper).
func TestRefusedS3EndpointIsRetriable(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()
	bucket := openBucket(t, "s3://nowhere?endpoint=http://"+address+"&region=us-east-1&use_path_style=true")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := bucket.Get(ctx, "some/key", 0, 10); !tiering.IsRetriable(err) {
		t.Fatalf("get from a refused endpoint: %v", err)
	}
	if err := bucket.Upload(ctx, "some/key", strings.NewReader("x"), 5<<20); !tiering.IsRetriable(err) {
		t.Fatalf("upload to a refused endpoint: %v", err)
	}
}

// Transient upload failures are retried and the objects end up whole; a
// store that keeps failing makes Upload return a retriable error.
func TestUploadRetries(t *testing.T) {
	bucket := openBucket(t, "mem://")
	faults := tieringtest.NewFaultBucket(bucket)
	local := buildLocalLog(t, 120, 256<<10, 0, 3)
	tier := newTier(t, tiering.Config{Bucket: faults, UploadAttempts: 4})
	ctx := context.Background()

	faults.FailNext(tieringtest.OpUpload, 3)
	remote, err := tier.Upload(ctx, local.files(t, local.sealed[0]))
	if err != nil {
		t.Fatalf("upload with 3 transient failures: %v", err)
	}
	if got := tier.Stats().Retries; got != 3 {
		t.Fatalf("%d retries, want 3", got)
	}
	key := objectKey(t, bucket, uuid.UUID(remote.SegmentID).String(), ".log")
	reader, err := bucket.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(reader)
	reader.Close()
	if want := readFile(t, local.sealed[0].LogPath); !bytes.Equal(stored, want) {
		t.Fatalf("stored log: %s", describeDiff(stored, want))
	}
	for offset := remote.BaseOffset; offset <= remote.LastOffset; offset += 5 {
		got, err := readBytes(tier, ctx, testPartition, remote, offset, 50<<10)
		if err != nil || !bytes.Equal(got, local.localRead(t, local.sealed[0], offset, 50<<10)) {
			t.Fatalf("read %d after retried upload: %v", offset, err)
		}
	}

	faults.FailNext(tieringtest.OpUpload, 4)
	if _, err := tier.Upload(ctx, local.files(t, local.sealed[1])); !tiering.IsRetriable(err) {
		t.Fatalf("upload failing every attempt: %v, want retriable", err)
	}
	faults.FailNext(tieringtest.OpDelete, 2)
	if err := tier.DeleteSegment(ctx, testPartition, remote); err != nil {
		t.Fatalf("delete with transient failures: %v", err)
	}
}

// concurrencyBucket records the most Upload calls in progress at once.
type concurrencyBucket struct {
	tiering.Bucket
	current, peak atomic.Int64
}

func (b *concurrencyBucket) Upload(ctx context.Context, key string, r io.Reader, partSize int) error {
	now := b.current.Add(1)
	defer b.current.Add(-1)
	for {
		peak := b.peak.Load()
		if now <= peak || b.peak.CompareAndSwap(peak, now) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	return b.Bucket.Upload(ctx, key, r, partSize)
}

func TestUploadConcurrencyBounded(t *testing.T) {
	bucket := &concurrencyBucket{Bucket: openBucket(t, "mem://")}
	local := buildLocalLog(t, 400, 256<<10, 0, 4)
	tier := newTier(t, tiering.Config{Bucket: bucket, UploadConcurrency: 2})
	var wait sync.WaitGroup
	errs := make(chan error, len(local.sealed))
	for _, info := range local.sealed {
		files := local.files(t, info)
		wait.Add(1)
		go func() {
			defer wait.Done()
			_, err := tier.Upload(context.Background(), files)
			errs <- err
		}()
	}
	wait.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak := bucket.peak.Load(); peak > 2 || peak < 2 {
		t.Fatalf("%d uploads at once over %d segments, want exactly the bound 2", peak, len(local.sealed))
	}
}

// The chunk cache stays within its byte bound on disk and in its
// accounting while serving correct data.
func TestChunkCacheEvictionBounded(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 300)
	cacheDir := t.TempDir()
	const chunk, bound = 32 << 10, 4 * (32 << 10)
	tier := newTier(t, tiering.Config{Bucket: bucket, CacheDir: cacheDir, ChunkBytes: chunk, CacheBytes: bound})
	ctx := context.Background()
	for i, remote := range segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; offset += 3 {
			got, err := readBytes(tier, ctx, testPartition, remote, offset, 40<<10)
			if err != nil || !bytes.Equal(got, local.localRead(t, local.sealed[i], offset, 40<<10)) {
				t.Fatalf("read %d: %v", offset, err)
			}
			if onDisk := chunkBytesOnDisk(t, cacheDir); onDisk > bound {
				t.Fatalf("cache directory holds %d bytes, bound %d", onDisk, bound)
			}
		}
	}
	stats := tier.Stats()
	if stats.CacheEvictions == 0 || stats.CacheBytes > bound {
		t.Fatalf("stats %+v: want evictions and at most %d bytes", stats, bound)
	}
}

func chunkBytesOnDisk(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, entry := range entries {
		if info, err := entry.Info(); err == nil && strings.HasSuffix(entry.Name(), ".chunk") {
			total += info.Size()
		}
	}
	return total
}

// Concurrent readers of the same chunks share one GET per chunk and one
// fetch of the offset index; counted by the metrics wrapper.
func TestConcurrentReadersShareGETs(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	registry := prometheus.NewRegistry()
	metrics, err := tiering.NewMetricsBucket(bucket, registry)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowBucket{Bucket: metrics, delay: 20 * time.Millisecond}
	const chunk = 64 << 10
	tier := newTier(t, tiering.Config{Bucket: slow, ChunkBytes: chunk, PrefetchChunks: -1})
	remote, info := segments[0], local.sealed[0]
	offset := remote.BaseOffset + (remote.LastOffset-remote.BaseOffset)/2
	const maxBytes = 200 << 10
	want := local.localRead(t, info, offset, maxBytes)

	var wait sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		wait.Add(1)
		go func() {
			defer wait.Done()
			<-start
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, maxBytes)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("concurrent read: %v, %s", err, describeDiff(got, want))
			}
		}()
	}
	close(start)
	wait.Wait()
	counts := metrics.Counts()
	// Chunks touched: the walk from the indexed position to the end of the
	// returned bytes, plus the next header when the budget left room for it.
	maxChunks := int64(maxBytes/chunk + 3)
	if counts.Gets < 2 || counts.Gets > 1+maxChunks {
		t.Fatalf("%d GETs for 16 readers, want 1 index + at most %d chunks", counts.Gets, maxChunks)
	}
	stats := tier.Stats()
	if stats.IndexFetches != 1 || stats.SharedFetches == 0 {
		t.Fatalf("stats %+v: want one index fetch and shared chunk fetches", stats)
	}
	if got := testutil.ToFloat64(prometheusCounter(t, registry, "strata_tiering_bucket_gets_total")); int64(got) != counts.Gets {
		t.Fatalf("prometheus GET counter %v, counts %d", got, counts.Gets)
	}
	if err := registry.Register(tiering.NewTierCollector(tier)); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(registry, "strata_tiering_cache_misses_total"); err != nil || n != 1 {
		t.Fatalf("tier collector: %d, %v", n, err)
	}
}

func prometheusCounter(t *testing.T, registry *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() == name {
			value := family.GetMetric()[0].GetCounter().GetValue()
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "copy"}, func() float64 { return value })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// slowBucket delays GETs so that concurrent readers overlap.
type slowBucket struct {
	tiering.Bucket
	delay time.Duration
}

func (b *slowBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	time.Sleep(b.delay)
	return b.Bucket.Get(ctx, key, offset, length)
}

// A sequential reader has the next chunks fetched ahead, so its later
// reads are cache hits.
func TestSequentialReaderPrefetches(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	tier := newTier(t, tiering.Config{Bucket: metrics, ChunkBytes: 32 << 10, PrefetchChunks: 4})
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := readBytes(tier, ctx, testPartition, remote, offset, 16<<10)
		if err != nil || !bytes.Equal(got, local.localRead(t, info, offset, 16<<10)) {
			t.Fatalf("read %d: %v", offset, err)
		}
		offset = lastOffsetOf(got) + 1
		time.Sleep(2 * time.Millisecond) // a consumer processing what it got
	}
	stats := tier.Stats()
	chunks := (remote.SizeBytes + 32<<10 - 1) / (32 << 10)
	if stats.Prefetches == 0 || stats.CacheHits < stats.CacheMisses || metrics.Counts().Gets > chunks+1 {
		t.Fatalf("stats %+v, %d GETs for %d chunks: want prefetches, mostly hits, one GET per chunk", stats, metrics.Counts().Gets, chunks)
	}
}

func lastOffsetOf(data []byte) int64 {
	last := int64(-1)
	for at := 0; at < len(data); {
		base := int64(uint64(data[at])<<56 | uint64(data[at+1])<<48 | uint64(data[at+2])<<40 | uint64(data[at+3])<<32 | uint64(data[at+4])<<24 | uint64(data[at+5])<<16 | uint64(data[at+6])<<8 | uint64(data[at+7]))
		length := int(data[at+8])<<24 | int(data[at+9])<<16 | int(data[at+10])<<8 | int(data[at+11])
		delta := int64(data[at+23])<<24 | int64(data[at+24])<<16 | int64(data[at+25])<<8 | int64(data[at+26])
		last = base + delta
		at += 12 + length
	}
	return last
}

// Bytes damaged in the store are never returned: reads of the damaged
// batch fail as corrupt (not retriable), others still work.
func TestCorruptObjectNeverReturned(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	key := objectKey(t, bucket, uuid.UUID(remote.SegmentID).String(), ".log")
	data := readFile(t, info.LogPath)
	damagedAt := len(data) / 2
	data[damagedAt] ^= 0x40
	if err := bucket.Upload(ctx, key, bytes.NewReader(data), 5<<20); err != nil {
		t.Fatal(err)
	}
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 16 << 10})
	sawCorrupt := false
	for offset := remote.BaseOffset; offset <= remote.LastOffset; offset++ {
		got, err := readBytes(tier, ctx, testPartition, remote, offset, 1)
		want := local.localRead(t, info, offset, 1)
		switch {
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("read %d returned wrong data: %s", offset, describeDiff(got, want))
		case err != nil && (!tiering.IsCorrupt(err) || tiering.IsRetriable(err) || got != nil):
			t.Fatalf("read %d: %v (%d bytes), want a corrupt error and no data", offset, err, len(got))
		case err != nil:
			sawCorrupt = true
		}
	}
	if !sawCorrupt {
		t.Fatal("no read noticed the damaged byte")
	}
}

// A damaged file in the chunk cache is detected and the chunk fetched
// again: damage inside a batch fails its CRC-32C, and damage to the first
// batch's partition leader epoch (bytes 12–15, which the batch CRC does
// not cover) fails the check against the manifest's epochs
// (TestDamagedCacheFileNeverServed damages every field).
func TestCorruptCacheFileRefetched(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int
	}{{"inside a batch", 100}, {"leader epoch", 13}} {
		t.Run(tc.name, func(t *testing.T) { testCorruptCacheFileRefetched(t, tc.at) })
	}
}

func testCorruptCacheFileRefetched(t *testing.T, damageAt int) {
	local, bucket, segments := uploadedLog(t, 200)
	cacheDir := t.TempDir()
	tier := newTier(t, tiering.Config{Bucket: bucket, CacheDir: cacheDir, ChunkBytes: 64 << 10, PrefetchChunks: -1, MemoryCacheBytes: -1})
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	want := local.localRead(t, info, remote.BaseOffset, 30<<10)
	if got, err := readBytes(tier, ctx, testPartition, remote, remote.BaseOffset, 30<<10); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read: %v", err)
	}
	var files []string
	for deadline := time.Now().Add(10 * time.Second); len(files) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(cacheDir, "*.chunk")) // written after the reader got its bytes
	}
	if len(files) == 0 {
		t.Fatal("nothing cached")
	}
	for _, file := range files {
		data := readFile(t, file)
		data[damageAt] ^= 0xff
		os.WriteFile(file, data, 0o644)
	}
	if got, err := readBytes(tier, ctx, testPartition, remote, remote.BaseOffset, 30<<10); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read over a damaged cache: %v, %s", err, describeDiff(got, want))
	}
	if tier.Stats().CorruptChunks == 0 {
		t.Fatal("damaged cache file not noticed")
	}
}

// Close stops prefetches in flight and later calls fail with ErrClosed.
func TestCloseStopsBackgroundFetches(t *testing.T) {
	_, bucket, segments := uploadedLog(t, 150)
	tier, err := tiering.New(tiering.Config{Bucket: &slowBucket{Bucket: bucket, delay: 50 * time.Millisecond}, ChunkBytes: 16 << 10, PrefetchChunks: 8, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBytes(tier, context.Background(), testPartition, segments[0], segments[0].BaseOffset, 1); err != nil {
		t.Fatal(err)
	}
	if err := tier.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := readBytes(tier, context.Background(), testPartition, segments[0], segments[0].BaseOffset, 1); !errors.Is(err, tiering.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bucket := openBucket(t, "mem://")
	for _, c := range []struct {
		name   string
		config tiering.Config
		ok     bool
	}{
		{"defaults", tiering.Config{Bucket: bucket}, true},
		{"no bucket", tiering.Config{}, false},
		{"slash prefix", tiering.Config{Bucket: bucket, Prefix: "/x"}, false},
		{"tiny chunk", tiering.Config{Bucket: bucket, ChunkBytes: 100}, false},
		{"cache below a chunk", tiering.Config{Bucket: bucket, ChunkBytes: 1 << 20, CacheBytes: 1 << 19}, false},
		{"small parts", tiering.Config{Bucket: bucket, UploadPartBytes: 1 << 20}, false},
		{"negative concurrency", tiering.Config{Bucket: bucket, UploadConcurrency: -1}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.config.Validate()
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, tiering.ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// A prefetch that fails does not fail the reader that needed its chunk:
// the reader fetches the chunk itself.
func TestFailedPrefetchRetriedByReader(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	faults := tieringtest.NewFaultBucket(bucket)
	tier := newTier(t, tiering.Config{Bucket: faults, ChunkBytes: 16 << 10, PrefetchChunks: 4, ReadAttempts: 1})
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	// Not at the segment's start: not sequential yet, no prefetch.
	offset := remote.BaseOffset + 5
	for i := 0; offset <= remote.LastOffset && i < 40; i++ {
		got, err := readBytes(tier, ctx, testPartition, remote, offset, 4<<10)
		if err != nil || !bytes.Equal(got, local.localRead(t, info, offset, 4<<10)) {
			t.Fatalf("read %d (after %d injected faults): %v", offset, faults.Injected(), err)
		}
		if i == 0 {
			faults.FailNext(tieringtest.OpGet, 1) // the first prefetch's GET
		}
		offset = lastOffsetOf(got) + 1
	}
	if faults.Injected() != 1 || tier.Stats().Prefetches == 0 {
		t.Fatalf("%d faults injected, stats %+v", faults.Injected(), tier.Stats())
	}
}

// An offset index pointing into the middle of a batch never yields wrong
// data: reads through the bad entry fail as corrupt, the others are right.
func TestWrongOffsetIndexNeverServesWrongData(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	index := readFile(t, info.OffsetIndexPath)
	if len(index) < 16 {
		t.Fatalf("index of %d bytes, want at least 2 entries", len(index))
	}
	// Shift the second entry's position by 7 bytes: inside its batch.
	position := uint32(index[12])<<24 | uint32(index[13])<<16 | uint32(index[14])<<8 | uint32(index[15])
	position += 7
	index[12], index[13], index[14], index[15] = byte(position>>24), byte(position>>16), byte(position>>8), byte(position)
	if err := bucket.Upload(ctx, objectKey(t, bucket, uuid.UUID(remote.SegmentID).String(), ".index"), bytes.NewReader(index), 5<<20); err != nil {
		t.Fatal(err)
	}
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 16 << 10})
	corrupt := 0
	// Backwards, so that every read looks its position up in the index (a
	// read at or inside the reader's previous read continues from it).
	for offset := remote.LastOffset; offset >= remote.BaseOffset; offset-- {
		got, err := readBytes(tier, ctx, testPartition, remote, offset, 8<<10)
		switch {
		case err == nil && !bytes.Equal(got, local.localRead(t, info, offset, 8<<10)):
			t.Fatalf("read %d returned wrong data", offset)
		case err != nil && (!tiering.IsCorrupt(err) || got != nil):
			t.Fatalf("read %d: %v", offset, err)
		case err != nil:
			corrupt++
		}
	}
	if corrupt == 0 {
		t.Fatal("no read went through the damaged index entry")
	}
}

// TestCacheDirLeftoversRemoved: chunk files and interrupted chunk writes
// (…chunk.tmpXXXXXXXX) of an earlier process are gone at New (chunk
// files become spare files to overwrite, TestChunkFilesOfEarlierProcessReused);
// other files are left alone.
func TestCacheDirLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	leftovers := []string{"0f0e0d0c-0b0a-0908-0706-050403020100-0000000001.chunk", "0f0e0d0c-0b0a-0908-0706-050403020100-0000000002.chunk.tmp1a2b3c4d"}
	for _, name := range append(leftovers, "keep.txt") {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bucket, err := tiering.OpenBucket(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	newTier(t, tiering.Config{Bucket: bucket, CacheDir: dir})
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s left in the cache dir: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
		t.Errorf("a file not of the cache was removed: %v", err)
	}
}

// TestTimestampStart: the remote time index gives a start from which the
// first batch reaching a timestamp is found, as the local log finds it,
// without reading the segment from its start; a corrupt .timeindex is a
// CorruptError.
func TestTimestampStart(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 400)
	tier := newTier(t, tiering.Config{Bucket: bucket})
	ctx := context.Background()
	for s, remote := range segments {
		info := local.sealed[s]
		for ts := remote.FirstTimestamp - 5; ts <= remote.MaxTimestamp; ts += 97 {
			start, err := tier.TimestampStart(ctx, testPartition, remote, ts)
			if err != nil {
				t.Fatal(err)
			}
			if start < remote.BaseOffset || start > remote.LastOffset {
				t.Fatalf("segment %d, timestamp %d: start %d outside the segment", s, ts, start)
			}
			want, found, err := local.log.FindTimestamp(ts, 0)
			if err != nil || !found {
				t.Fatalf("local FindTimestamp(%d): %v %v", ts, found, err)
			}
			wantHeader, _ := recordbatch.ParseHeader(want)
			// Walking the segment's batches from start reaches the same
			// batch as the local log, and no batch before start reaches ts.
			var got int64 = -1
			for offset := start; offset <= remote.LastOffset && got < 0; {
				data := local.localRead(t, info, offset, 1<<20)
				spans, err := recordbatch.Split(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, sp := range spans {
					h, _ := recordbatch.ParseHeader(data[sp.Position:])
					offset = h.LastOffset() + 1
					if h.MaxTimestamp >= ts {
						got = h.BaseOffset
						break
					}
				}
			}
			if wantHeader.BaseOffset >= remote.BaseOffset && wantHeader.BaseOffset <= remote.LastOffset && got != wantHeader.BaseOffset {
				t.Fatalf("segment %d, timestamp %d: walk from %d found batch %d, the local log %d", s, ts, start, got, wantHeader.BaseOffset)
			}
		}
	}
	// A .timeindex whose entries go backwards is refused.
	corrupt := segments[0]
	key := ""
	bucket.Iter(ctx, "", func(k string, _ int64) error {
		if strings.HasSuffix(k, uuid.UUID(corrupt.SegmentID).String()+".timeindex") {
			key = k
		}
		return nil
	})
	if err := bucket.Upload(ctx, key, bytes.NewReader(make([]byte, 24)), 5<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := tier.TimestampStart(ctx, testPartition, corrupt, 0); !tiering.IsCorrupt(err) {
		t.Fatalf("corrupt .timeindex: %v, want a CorruptError", err)
	}
}

// TestUploadDescribedRefusesAChangedFile: a segment that changed after it
// was described (and committed as "copy started") is not uploaded under
// that description.
func TestUploadDescribedRefusesAChangedFile(t *testing.T) {
	local := buildLocalLog(t, 120, 256<<10, 0, 3)
	files := local.files(t, local.sealed[0])
	copied := filepath.Join(t.TempDir(), "copy.log")
	if err := os.WriteFile(copied, readFile(t, files.LogPath), 0o644); err != nil {
		t.Fatal(err)
	}
	files.LogPath = copied
	described, err := tiering.DescribeSegment(files)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(copied, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	bucket := openBucket(t, "mem://")
	tier := newTier(t, tiering.Config{Bucket: bucket})
	if err := tier.UploadDescribed(context.Background(), files, described); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("upload of a changed segment: %v", err)
	}
	objects := 0
	bucket.Iter(context.Background(), "", func(string, int64) error { objects++; return nil })
	if objects != 0 {
		t.Fatalf("%d objects written for a refused upload", objects)
	}
}

// A read over several chunks returns the chunks' bytes as they are, one
// buffer per chunk (the inner ones whole), and a batch that spans two
// chunks is checked across the boundary: damage to its part in the second
// chunk fails its CRC, and the read returns an error and holds nothing.
func TestReadSpanningChunks(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	ctx := context.Background()
	remote, info := segments[0], local.sealed[0]
	const chunk = 4 << 10
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, CacheBytes: 1 << 20, PrefetchChunks: -1})
	batches, err := tier.Read(ctx, testPartition, remote, remote.BaseOffset, 64<<10, true)
	if err != nil {
		t.Fatal(err)
	}
	buffers := batches.Buffers()
	if want := local.localRead(t, info, remote.BaseOffset, 64<<10); !bytes.Equal(batches.AppendTo(nil), want) || len(buffers) < 3 {
		t.Fatalf("%d bytes in %d buffers, want the %d local bytes in several", batches.Len(), len(buffers), len(want))
	}
	for i, b := range buffers[1 : len(buffers)-1] {
		if len(b) != chunk {
			t.Fatalf("inner buffer %d holds %d bytes, want a whole chunk", i+1, len(b))
		}
	}
	batches.Release()

	// Damage the last byte of the first batch that crosses a chunk
	// boundary (in the chunk after the boundary).
	data := readFile(t, info.LogPath)
	spans, err := recordbatch.Split(data)
	if err != nil {
		t.Fatal(err)
	}
	damagedAt := -1
	for _, sp := range spans {
		first, last := int(sp.Position)/chunk, int(sp.Position+sp.Length-1)/chunk
		if first != last && int(sp.Position+sp.Length) <= 64<<10 {
			damagedAt = int(sp.Position + sp.Length - 1)
			break
		}
	}
	if damagedAt < 0 {
		t.Fatal("no batch spans a chunk boundary")
	}
	data[damagedAt] ^= 0x01
	key := objectKey(t, bucket, uuid.UUID(remote.SegmentID).String(), ".log")
	if err := bucket.Upload(ctx, key, bytes.NewReader(data), 5<<20); err != nil {
		t.Fatal(err)
	}
	damaged := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, CacheBytes: 1 << 20, PrefetchChunks: -1})
	if got, err := damaged.Read(ctx, testPartition, remote, remote.BaseOffset, 64<<10, true); !tiering.IsCorrupt(err) || got != nil {
		t.Fatalf("read over a batch damaged past a chunk boundary (byte %d): %v with %d bytes, want a corrupt error and no data", damagedAt, err, got.Len())
	}
	if held := damaged.Stats().ReadChunksHeld; held != 0 {
		t.Fatalf("%d chunk references held after a failed read", held)
	}
}
