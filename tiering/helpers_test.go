package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// The real S3 server is started once, on first use, and stopped by
// TestMain.
var s3Shared struct {
	once    sync.Once
	missing bool // versitygw is not installed
	dir     string
	server  *tieringtest.S3Server
	err     error
}

func TestMain(m *testing.M) {
	tieringtest.SetCredentialsEnv()
	code := m.Run()
	for _, cleanup := range cleanupAfterTests {
		cleanup()
	}
	if s3Shared.server != nil {
		s3Shared.server.Close()
	}
	if s3Shared.dir != "" {
		os.RemoveAll(s3Shared.dir)
	}
	os.Exit(code)
}

// s3Server returns the shared versitygw server; the test fails when it
// cannot be started. When versitygw is not installed the test is skipped so
// that `go test ./...` passes on a fresh machine, except under CI (CI=true),
// where it fails: CI must not pass without the real S3 server.
func s3Server(tb testing.TB) *tieringtest.S3Server {
	tb.Helper()
	s3Shared.once.Do(func() {
		if _, s3Shared.err = tieringtest.VersityGWBinary(); s3Shared.err != nil {
			s3Shared.missing = true
			return
		}
		s3Shared.dir, s3Shared.err = os.MkdirTemp("", "strata-versitygw-")
		if s3Shared.err == nil {
			s3Shared.server, s3Shared.err = tieringtest.StartS3Server(s3Shared.dir)
		}
	})
	if s3Shared.missing && os.Getenv("CI") != "true" {
		tb.Skipf("SKIP: real S3 server (versitygw) not installed (a failure when CI=true): %v", s3Shared.err)
	}
	if s3Shared.err != nil {
		tb.Fatalf("real S3 server (versitygw) needed: %v", s3Shared.err)
	}
	return s3Shared.server
}

var bucketCounter atomic.Int64

// cleanupAfterTests run when every test and benchmark is done.
var cleanupAfterTests []func()

// backend is one object store the acceptance suite runs against.
type backend struct {
	name string
	// open returns a fresh, empty bucket's URL and an independent view of
	// what it holds.
	open func(t testing.TB) (url string, view objectView)
}

// objectView lists a bucket's objects without going through Strata's code.
type objectView func(t testing.TB) map[string][]byte

var backends = []backend{
	{name: "mem", open: func(t testing.TB) (string, objectView) { return "mem://", nil }},
	{name: "file", open: func(t testing.TB) (string, objectView) {
		dir := filepath.Join(t.TempDir(), "bucket")
		url := "file://" + dir
		if err := tiering.CreateBucket(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		return url, func(t testing.TB) map[string][]byte { return filesUnder(t, dir) }
	}},
	{name: "s3-versitygw", open: func(t testing.TB) (string, objectView) {
		server := s3Server(t)
		name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
		url := server.URL(name)
		if err := tiering.CreateBucket(context.Background(), url); err != nil {
			t.Fatalf("create bucket: %v\nserver output:\n%s", err, server.Output())
		}
		return url, func(t testing.TB) map[string][]byte { return minioObjects(t, server, name) }
	}},
}

// filesUnder reads a fileblob directory directly (skipping fileblob's
// .attrs side files).
func filesUnder(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	objects := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() || strings.HasSuffix(path, ".attrs") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(dir, path)
		objects[filepath.ToSlash(relative)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objects
}

// minioObjects lists and reads a bucket with minio-go, an S3 client
// independent of the aws-sdk-go-v2 one Strata uses.
func minioObjects(t testing.TB, server *tieringtest.S3Server, bucket string) map[string][]byte {
	t.Helper()
	client := minioClient(t, server)
	ctx := context.Background()
	objects := make(map[string][]byte)
	for info := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if info.Err != nil {
			t.Fatalf("minio list: %v", info.Err)
		}
		object, err := client.GetObject(ctx, bucket, info.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("minio get %s: %v", info.Key, err)
		}
		data, err := io.ReadAll(object)
		object.Close()
		if err != nil {
			t.Fatalf("minio read %s: %v", info.Key, err)
		}
		if int64(len(data)) != info.Size {
			t.Fatalf("minio: %s listed with %d bytes, read %d", info.Key, info.Size, len(data))
		}
		objects[info.Key] = data
	}
	return objects
}

func minioClient(t testing.TB, server *tieringtest.S3Server) *minio.Client {
	t.Helper()
	client, err := minio.New(strings.TrimPrefix(server.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(tieringtest.S3AccessKey, tieringtest.S3SecretKey, ""),
		Region:       tieringtest.S3Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func openBucket(t testing.TB, url string) *tiering.BlobBucket {
	t.Helper()
	bucket, err := tiering.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	return bucket
}

func newTier(t testing.TB, cfg tiering.Config) *tiering.Tier {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
		cfg.MaxRetryBackoff = 10 * time.Millisecond
	}
	tier, err := tiering.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

var testPartition = metadata.TopicPartition{
	Topic:     "orders",
	TopicID:   [16]byte{0x5e, 0x1f, 0x00, 0x2a, 0x9b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6},
	Partition: 3,
}

// localLog is a real partition log built with broker/segment.
type localLog struct {
	log    *segment.Log
	sealed []segment.SegmentInfo
	dir    string
}

// buildLocalLog appends batches (mixed codecs, sizes, leader epochs; some
// larger than a chunk) to a log starting at startOffset, with segments
// rolled at segmentBytes, and returns it with its sealed segments.
func buildLocalLog(t testing.TB, batches int, segmentBytes int64, startOffset int64, seed uint64) *localLog {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "orders-3")
	log, err := segment.Open(dir, startOffset, segment.Config{SegmentBytes: segmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	random := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	codecs := []recordbatch.Codec{recordbatch.None, recordbatch.Gzip, recordbatch.Snappy, recordbatch.LZ4, recordbatch.Zstd}
	timestamp := int64(1_700_000_000_000)
	for i := 0; i < batches; i++ {
		count := 1 + random.IntN(12)
		valueSize := 10 + random.IntN(2000)
		if i%97 == 50 {
			count, valueSize = 1, 150<<10 // larger than the test chunk size
		}
		records := make([]recordbatch.Record, count)
		for r := range records {
			timestamp += int64(random.IntN(50))
			value := make([]byte, valueSize)
			for j := range value {
				value[j] = byte(random.IntN(16)) // compressible, not constant
			}
			records[r] = recordbatch.Record{Timestamp: timestamp, Key: []byte(fmt.Sprintf("key-%d", random.IntN(100))), Value: value}
		}
		codec := codecs[i%len(codecs)]
		if valueSize > 100<<10 {
			codec = recordbatch.None
		}
		batch, err := recordbatch.Build(recordbatch.BuildOptions{Codec: codec, PartitionLeaderEpoch: int32(i / 150)}, records)
		if err != nil {
			t.Fatal(err)
		}
		h, err := recordbatch.ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = log.Append(batch, []segment.AppendBatch{{Length: int32(len(batch)), LastOffsetDelta: h.LastOffsetDelta, MaxTimestamp: h.MaxTimestamp, Records: h.NumRecords}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Flush(); err != nil {
		t.Fatal(err)
	}
	l := &localLog{log: log, dir: dir}
	for _, info := range log.Segments() {
		if !info.Active {
			l.sealed = append(l.sealed, info)
		}
	}
	if len(l.sealed) < 2 {
		t.Fatalf("want at least 2 sealed segments, got %d", len(l.sealed))
	}
	return l
}

// files returns the upload request of a sealed segment, with a made-up
// producer snapshot.
func (l *localLog) files(t testing.TB, info segment.SegmentInfo) tiering.SegmentFiles {
	t.Helper()
	return tiering.SegmentFiles{
		Partition: testPartition, BaseOffset: info.BaseOffset,
		LogPath: info.LogPath, OffsetIndexPath: info.OffsetIndexPath, TimeIndexPath: info.TimeIndexPath,
		ProducerSnapshot: []byte(fmt.Sprintf("producer state at %d", info.EndOffset)),
	}
}

// uploadAll uploads every sealed segment and returns their descriptors.
func (l *localLog) uploadAll(t testing.TB, tier *tiering.Tier) []metadata.SegmentManifest {
	t.Helper()
	var segments []metadata.SegmentManifest
	for _, info := range l.sealed {
		remote, err := tier.Upload(context.Background(), l.files(t, info))
		if err != nil {
			t.Fatalf("upload segment %d: %v", info.BaseOffset, err)
		}
		segments = append(segments, remote)
	}
	return segments
}

// localRead is what a local Fetch of one segment returns.
func (l *localLog) localRead(t testing.TB, info segment.SegmentInfo, offset int64, maxBytes int) []byte {
	t.Helper()
	data, err := l.log.Read(offset, int32(maxBytes), info.EndOffset, true)
	if err != nil {
		t.Fatalf("local read at %d: %v", offset, err)
	}
	return data
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// describeDiff names the first differing byte of two reads.
func describeDiff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d (got %d bytes, want %d)", i, len(got), len(want))
		}
	}
	return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
}

// testLogger collects the tier's log and prints it only when the test
// fails.
func testLogger(t testing.TB) *slog.Logger {
	buffer := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tier log:\n%s", buffer.String())
		}
	})
	return slog.New(slog.NewTextHandler(buffer, nil))
}

type syncBuffer struct {
	mu     sync.Mutex // guards buffer
	buffer bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buffer.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}

// readBytes is Tier.Read for a test that compares bytes: the batches
// copied into one slice, and released.
func readBytes(tier *tiering.Tier, ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int) ([]byte, error) {
	batches, err := tier.Read(ctx, p, segment, offset, maxBytes, true)
	if err != nil {
		return nil, err
	}
	defer batches.Release()
	return batches.AppendTo(nil), nil
}
