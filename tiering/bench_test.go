package tiering_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// replayFixture is the data every replay benchmark reads: segments
// uploaded once to a versitygw bucket.
type replayFixture struct {
	bucketName string
	url        string
	segments   []metadata.SegmentManifest
	logKeys    []string
	totalBytes int64
	files      []tiering.SegmentFiles // the local segments, ids set
	// uploadRequests estimates the HTTP requests: a .log above one part
	// is a multipart upload (create + parts + complete), the rest one PUT.
	uploadRequests int64
	uploadTime     time.Duration
}

var replay struct {
	once    sync.Once
	fixture *replayFixture
	err     error
	direct  float64 // MB/s of the direct read, for the ratios
	ranges  float64 // MB/s of the direct chunk-range read
}

// BenchmarkRemoteReplay replays a partition's remote segments from
// versitygw, front to back in 1 MiB fetches, as a catching-up consumer
// does: direct (minio-go GetObject of each .log, the limit), through the
// tier with a cold chunk cache, and with a warm one. Knobs: STRATA_BENCH_MIB
// (data size, default 64), STRATA_BENCH_CHUNK_KIB and STRATA_BENCH_PREFETCH
// (Config.ChunkBytes and PrefetchChunks, default the Config defaults).
// cpu-ms/MiB is the test process's CPU (the tier's: the S3 server runs
// apart) per MiB replayed, the cold replay's including the chunk cache
// writes it leaves behind.
//
//	go test -run '^$' -bench RemoteReplay -benchtime 3x ./tiering/
func BenchmarkRemoteReplay(b *testing.B) {
	server := s3Server(b)
	replay.once.Do(func() { replay.fixture, replay.err = newReplayFixture(b) })
	if replay.err != nil {
		b.Fatal(replay.err)
	}
	f := replay.fixture
	mib := float64(f.totalBytes) / (1 << 20)

	// Upload: the same segments again under their ids (overwrites).
	b.Run("upload", func(b *testing.B) {
		bucket := openBucket(b, f.url)
		metrics, _ := tiering.NewMetricsBucket(bucket, nil)
		tier, err := tiering.New(tiering.Config{Bucket: metrics, Prefix: "bench", Logger: testLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		defer tier.Close()
		b.SetBytes(f.totalBytes)
		for range b.N {
			for _, files := range f.files {
				if _, err := tier.Upload(context.Background(), files); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(metrics.Counts().Puts)/float64(b.N)/mib, "PUTs/MiB")
		b.ReportMetric(float64(f.uploadRequests)/mib, "S3-requests/MiB")
	})

	b.Run("direct-minio", func(b *testing.B) {
		client := minioClient(b, server)
		b.SetBytes(f.totalBytes)
		start := time.Now()
		for range b.N {
			for _, key := range f.logKeys {
				object, err := client.GetObject(context.Background(), f.bucketName, key, minio.GetObjectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, object)
				object.Close()
				if err != nil || n == 0 {
					b.Fatalf("read %s: %d bytes, %v", key, n, err)
				}
			}
		}
		replay.direct = float64(f.totalBytes) * float64(b.N) / time.Since(start).Seconds() / 1e6
		b.ReportMetric(1, "GETs/object")
	})
	// The request pattern of a cold tier (one ranged GET per chunk) with the
	// independent client: what the per-request cost of the server allows.
	chunkBytes := int64(benchEnv("STRATA_BENCH_CHUNK_KIB", tiering.DefaultChunkBytes>>10)) << 10
	b.Run("direct-minio-chunk-ranges", func(b *testing.B) {
		client := minioClient(b, server)
		b.SetBytes(f.totalBytes)
		gets := 0
		for range b.N {
			for i, key := range f.logKeys {
				for offset := int64(0); offset < f.segments[i].SizeBytes; offset += chunkBytes {
					options := minio.GetObjectOptions{}
					options.SetRange(offset, min(offset+chunkBytes, f.segments[i].SizeBytes)-1)
					object, err := client.GetObject(context.Background(), f.bucketName, key, options)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, object)
					object.Close()
					if err != nil || n == 0 {
						b.Fatalf("read %s at %d: %d bytes, %v", key, offset, n, err)
					}
					gets++
				}
			}
		}
		b.ReportMetric(float64(gets)/float64(b.N)/(float64(f.totalBytes)/(1<<20)), "GETs/MiB")
		replay.ranges = float64(f.totalBytes) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	})
	for _, warm := range []bool{false, true} {
		name := "tier-cold-cache"
		if warm {
			name = "tier-warm-cache"
		}
		b.Run(name, func(b *testing.B) {
			bucket := openBucket(b, f.url)
			metrics, _ := tiering.NewMetricsBucket(bucket, nil)
			newReplayTier := func() *tiering.Tier {
				tier, err := tiering.New(tiering.Config{
					Bucket: metrics, Prefix: "bench", CacheDir: b.TempDir(), CacheBytes: 2 * f.totalBytes, Logger: testLogger(b),
					ChunkBytes: int64(benchEnv("STRATA_BENCH_CHUNK_KIB", 0)) << 10, PrefetchChunks: benchEnv("STRATA_BENCH_PREFETCH", 0),
				})
				if err != nil {
					b.Fatal(err)
				}
				return tier
			}
			tier := newReplayTier()
			if warm {
				replayAll(b, tier, f) // fill the cache
				tiering.WaitCacheWrites(tier)
			}
			b.SetBytes(f.totalBytes)
			b.ResetTimer()
			gets := metrics.Counts().Gets
			var buffers, diskReads int64 // chunk buffers allocated, chunks read from disk on the readers' path
			before := tier.Stats()
			start, elapsed := time.Now(), time.Duration(0)
			startCPU, cpu := processCPU(), time.Duration(0)
			for range b.N {
				if !warm {
					b.StopTimer()
					tier.Close()
					tier = newReplayTier()
					gets = metrics.Counts().Gets
					b.StartTimer()
					start, startCPU = time.Now(), processCPU()
				}
				replayAll(b, tier, f)
				if !warm {
					elapsed += time.Since(start)
					// The CPU of a cold replay includes writing the chunk
					// cache behind the reader (outside the timed part).
					b.StopTimer()
					tiering.WaitCacheWrites(tier)
					cpu += processCPU() - startCPU
					buffers += tier.Stats().ChunkBuffers
					b.StartTimer()
				}
			}
			if warm {
				elapsed, cpu = time.Since(start), processCPU()-startCPU
				buffers = tier.Stats().ChunkBuffers - before.ChunkBuffers
			}
			diskReads = tier.Stats().CacheDiskReads - before.CacheDiskReads
			b.ReportMetric(float64(buffers)/(mib*float64(b.N)), "chunk-buffers/MiB")
			b.ReportMetric(float64(diskReads)/(mib*float64(b.N)), "disk-reads-on-path/MiB")
			b.StopTimer()
			b.ReportMetric(cpu.Seconds()*1000/(mib*float64(b.N)), "cpu-ms/MiB")
			mbPerSecond := float64(f.totalBytes) * float64(b.N) / elapsed.Seconds() / 1e6
			if replay.direct > 0 {
				b.ReportMetric(mbPerSecond/replay.direct, "x-direct")
			}
			if replay.ranges > 0 {
				b.ReportMetric(mbPerSecond/replay.ranges, "x-ranges")
			}
			if !warm {
				b.ReportMetric(float64(metrics.Counts().Gets-gets)/mib, "GETs/MiB")
			} else {
				b.ReportMetric(float64(metrics.Counts().Gets-gets)/mib/float64(b.N), "GETs/MiB")
			}
			tier.Close()
		})
	}
}

// processCPU is the CPU time (user and system) this process has used: a
// replay's cost on a loaded machine, where wall times say little.
func processCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// benchEnv reads an integer knob of the benchmark from the environment.
func benchEnv(name string, fallback int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return fallback
}

// replayAll reads every segment front to back in 1 MiB fetches.
func replayAll(b *testing.B, tier *tiering.Tier, f *replayFixture) {
	ctx := context.Background()
	for _, remote := range f.segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; {
			batches, err := tier.Read(ctx, testPartition, remote, offset, 1<<20, true)
			if err != nil {
				b.Fatalf("read %d: %v", offset, err)
			}
			offset = batches.NextOffset()
			batches.Release()
		}
	}
}

func newReplayFixture(b *testing.B) (*replayFixture, error) {
	server := s3Server(b)
	totalMiB := benchEnv("STRATA_BENCH_MIB", 64)
	dir, err := os.MkdirTemp("", "strata-bench-log-")
	if err != nil {
		return nil, err
	}
	cleanupAfterTests = append(cleanupAfterTests, func() { os.RemoveAll(dir) })
	log, err := segment.Open(filepath.Join(dir, "orders-3"), 0, segment.Config{SegmentBytes: 16 << 20})
	if err != nil {
		return nil, err
	}
	defer log.Close()
	// 16 records of 1 KiB per batch, values drawn from a random pool so
	// they do not compress away.
	random := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, 1<<20)
	for i := range pool {
		pool[i] = byte(random.Uint32())
	}
	for log.Size() < int64(totalMiB)<<20+(16<<20) { // one more segment: the active one is not uploaded
		records := make([]recordbatch.Record, 16)
		for r := range records {
			at := random.IntN(len(pool) - 1024)
			records[r] = recordbatch.Record{Timestamp: 1_700_000_000_000, Value: pool[at : at+1024]}
		}
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
		if err != nil {
			return nil, err
		}
		h, _ := recordbatch.ParseHeader(batch)
		if _, _, err := log.Append(batch, []segment.AppendBatch{{Length: int32(len(batch)), LastOffsetDelta: h.LastOffsetDelta, MaxTimestamp: h.MaxTimestamp, Records: h.NumRecords}}); err != nil {
			return nil, err
		}
	}
	f := &replayFixture{bucketName: fmt.Sprintf("strata-bench-%d", os.Getpid())}
	f.url = server.URL(f.bucketName)
	if err := tiering.CreateBucket(context.Background(), f.url); err != nil {
		return nil, err
	}
	bucket, err := tiering.OpenBucket(context.Background(), f.url)
	if err != nil {
		return nil, err
	}
	defer bucket.Close()
	metrics, _ := tiering.NewMetricsBucket(bucket, nil)
	tier, err := tiering.New(tiering.Config{Bucket: metrics, Prefix: "bench", Logger: testLogger(b)})
	if err != nil {
		return nil, err
	}
	defer tier.Close()
	local := &localLog{log: log, dir: log.Dir()}
	for _, info := range log.Segments() {
		if info.Active {
			continue
		}
		files := local.files(b, info)
		remote, err := tier.Upload(context.Background(), files)
		if err != nil {
			return nil, err
		}
		files.ID = remote.SegmentID
		f.files = append(f.files, files)
		f.segments = append(f.segments, remote)
		f.totalBytes += remote.SizeBytes
		f.uploadRequests += 4 + 1
		if parts := (remote.SizeBytes + tiering.DefaultUploadPartBytes - 1) / tiering.DefaultUploadPartBytes; parts > 1 {
			f.uploadRequests += parts + 1
		}
		f.logKeys = append(f.logKeys, fmt.Sprintf("bench/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/%020d-%s.log", remote.BaseOffset, uuid.UUID(remote.SegmentID)))
	}
	return f, nil
}
