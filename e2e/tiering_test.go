//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// tieredTopicConfigs are the configs of a tiered test topic: small
// segments, a small local window, everything else remote and kept
// (retention.ms=-1: the tests' records carry old timestamps).
func tieredTopicConfigs(segmentBytes, localBytes int64) map[string]*string {
	s := func(v string) *string { return &v }
	return map[string]*string{
		"remote.storage.enable": s("true"),
		"segment.bytes":         s(fmt.Sprint(segmentBytes)),
		"local.retention.bytes": s(fmt.Sprint(localBytes)),
		"retention.ms":          s("-1"),
	}
}

// tieredRecord is what a tiering test produces at index i: a value that
// names its index (so order and identity can be checked) padded to size,
// and a timestamp one second apart from its neighbours.
func tieredRecord(topic string, partition int32, i, size int, base time.Time) *kgo.Record {
	value := make([]byte, size)
	header := fmt.Sprintf("%s/%d/%08d/", topic, partition, i)
	copy(value, header)
	rng := rand.New(rand.NewPCG(uint64(i), uint64(partition)))
	for j := len(header); j < size; j++ {
		value[j] = byte('a' + rng.IntN(26))
	}
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(fmt.Sprint(i)), Value: value, Timestamp: base.Add(time.Duration(i) * time.Second)}
}

// tierGen regenerates the records a tiering test produced: record i of
// size bytes at base + i seconds, at offset i of partition 0.
type tierGen struct {
	topic string
	size  int
	base  time.Time
}

func (g tierGen) record(i int) *kgo.Record { return tieredRecord(g.topic, 0, i, g.size, g.base) }

// produce writes records from..to-1 to partition 0 in order with acks=all
// (an idempotent producer: each lands once, at offset i).
func (g tierGen) produce(t *testing.T, cl *kgo.Client, from, to int) {
	t.Helper()
	ctx := testContext(t, 10*time.Minute)
	errs := make(chan error, 1)
	for i := from; i < to; i++ {
		cl.Produce(ctx, g.record(i), func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Fatalf("produce: %v", err)
	default:
	}
}

// produceTiered creates a one-partition tiered topic on b with the given
// segment and local retention sizes and produces records of recordSize
// to it (record i at offset i, timestamps in the past), with a plain
// producer closed after.
func produceTiered(t *testing.T, b *brokerProcess, segmentBytes, localBytes int64, recordSize, records int) tierGen {
	t.Helper()
	topic := uniqueTopic(t)
	createOne(t, newAdmin(t, b.addr), 1, 1, tieredTopicConfigs(segmentBytes, localBytes), topic)
	producer := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	defer producer.Close()
	// One second apart, all in the past.
	g := tierGen{topic: topic, size: recordSize, base: time.Now().Add(-time.Duration(records+3600) * time.Second).Truncate(time.Millisecond)}
	g.produce(t, producer, 0, records)
	return g
}

// requireReplay consumes partition 0 from offset from and checks records
// from..to-1 come back byte-identical, in order, each at its offset.
func (g tierGen) requireReplay(t *testing.T, seeds []string, from, to int) {
	t.Helper()
	g.replayWith(t, seeds, from, to, kgo.FetchMaxWait(500*time.Millisecond), kgo.FetchMaxBytes(16<<20))
}

// replayWith is requireReplay by a consumer with opts (none: franz-go's
// defaults, 1 MiB per partition and 50 MiB per Fetch), closed after.
func (g tierGen) replayWith(t *testing.T, seeds []string, from, to int, opts ...kgo.Opt) {
	t.Helper()
	cl := newClient(t, seeds[0], append([]kgo.Opt{kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{g.topic: {0: kgo.NewOffset().At(int64(from))}})}, opts...)...)
	defer cl.Close()
	ctx := testContext(t, 10*time.Minute)
	next := from
	for next < to {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("replayed records %d..%d of %d..%d before timeout", from, next, from, to)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s[%d] at record %d: %v", topic, p, next, err)
		})
		for _, r := range fetches.Records() {
			if next >= to {
				break
			}
			w := g.record(next)
			if r.Offset != int64(next) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) || !r.Timestamp.Equal(w.Timestamp) {
				t.Fatalf("record %d: got offset %d key %q value %.40q…, want offset %d key %q value %.40q…",
					next, r.Offset, r.Key, r.Value, next, w.Key, w.Value)
			}
			next++
		}
	}
}

// localLogBytes sums the .log files of a partition directory (0 when it
// does not exist).
func localLogBytes(t *testing.T, dataDir, topic string, partition int32) int64 {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition), "*.log"))
	total := int64(0)
	for _, name := range names {
		if info, err := os.Stat(name); err == nil {
			total += info.Size()
		}
	}
	return total
}

// activeBaseOffset returns the base offset of a partition's active
// segment: the name of its last .log file.
func activeBaseOffset(t *testing.T, dataDir, topic string, partition int32) int64 {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition), "*.log"))
	if len(names) == 0 {
		t.Fatalf("no .log file for %s-%d", topic, partition)
	}
	slices.Sort(names) // zero-padded base offsets
	base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(names[len(names)-1]), ".log"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// TestTieringFileBucket: a single node with the embedded default object
// store (file://<data-dir>/bucket) tiers a topic: local disk keeps the
// local window, the bucket the rest, a consumer from offset 0 reads every
// record back (also after a restart), ListOffsets earliest and by
// timestamp land in remote data.
func TestTieringFileBucket(t *testing.T) {
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	bucketDir := filepath.Join(b.dataDir, "bucket")
	testTieredTopic(t, b, func() (objects int, bytes int64) {
		filepath.Walk(bucketDir, func(path string, info os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(path, ".log") {
				objects++
				bytes += info.Size()
			}
			return nil
		})
		return objects, bytes
	})
}

// TestTieringS3: the same against a real S3 server (versitygw); what Strata
// wrote is listed with an independent S3 client (minio-go).
func TestTieringS3(t *testing.T) {
	s3 := startS3(t)
	url := s3.URL("strata-e2e")
	b := startBroker(t, "--object-store", url, "--object-store-prefix", "cluster-a",
		"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	mc := minioClient(t, s3)
	testTieredTopic(t, b, func() (int, int64) { return listLogObjects(t, mc, "strata-e2e", "cluster-a/") })
}

// listLogObjects counts the .log objects under a prefix, and their bytes,
// with an S3 client independent of Strata's.
func listLogObjects(t *testing.T, mc *minio.Client, bucket, prefix string) (objects int, size int64) {
	t.Helper()
	for obj := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasSuffix(obj.Key, ".log") {
			objects++
			size += obj.Size
		}
	}
	return objects, size
}

func testTieredTopic(t *testing.T, b *brokerProcess, bucketLogs func() (int, int64)) {
	const (
		segmentBytes = 256 << 10
		localBytes   = 512 << 10
		records      = 2000
		recordSize   = 4 << 10
	)
	adm := newAdmin(t, b.addr)
	topic := uniqueTopic(t)
	createOne(t, adm, 1, 1, tieredTopicConfigs(segmentBytes, localBytes), topic)
	cl := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	g := tierGen{topic: topic, size: recordSize, base: base}
	g.produce(t, cl, 0, records)
	total := int64(records * recordSize)

	eventually(t, 60*time.Second, "local log shrinks to the local window and the bucket holds the rest", func() error {
		local := localLogBytes(t, b.dataDir, topic, 0)
		objects, remote := bucketLogs()
		// The local window, the active segment and one segment being
		// uploaded or deleted.
		if local > localBytes+3*segmentBytes {
			return fmt.Errorf("local log holds %d bytes", local)
		}
		if remote < total-local-2*segmentBytes {
			return fmt.Errorf("bucket holds %d .log objects, %d bytes, of %d produced", objects, remote, total)
		}
		return nil
	})
	if v := metricValue(t, b, fmt.Sprintf(`strata_tiering_segments_committed_total{topic=%q}`, topic)); v < 5 {
		t.Fatalf("uploaded segments metric %v", v)
	}

	g.requireReplay(t, []string{b.addr}, 0, records)
	if v := metricValue(t, b, fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic)); v < float64(total/2) {
		t.Fatalf("remote fetch bytes %v, want most of %d", v, total)
	}

	ctx := testContext(t, 30*time.Second)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Err != nil || o.Offset != 0 {
		t.Fatalf("earliest offset %+v, want 0", o)
	}
	// Record 10 lies in the first segments, long gone from local disk.
	at := base.Add(10*time.Second - 500*time.Millisecond)
	byTime, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup(topic, 0); o.Err != nil || o.Offset != 10 || o.Timestamp != base.Add(10*time.Second).UnixMilli() {
		t.Fatalf("offset for timestamp %d: %+v, want offset 10", at.UnixMilli(), o)
	}

	// The manifest is in Raft: after a restart the history is still there
	// (stopped first: restart only starts the process, and a second one
	// on the same data directory exits at once while /readyz is still
	// answered by the first).
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	b.restart(t)
	g.requireReplay(t, []string{b.addr}, 0, records)

	// Tiering off with remote.log.delete.on.disable: the remote data goes,
	// the log starts at the local data.
	on, off := "true", "false"
	resps, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: &off},
		{Op: kadm.SetConfig, Name: "remote.log.delete.on.disable", Value: &on},
	}, topic)
	if err := alterErr(t, resps, err, topic); err != nil {
		t.Fatal(err)
	}
	localStart := offsetAt(t, []string{b.addr}, topic, -4)
	eventually(t, time.Minute, "remote data deleted after tiering was turned off", func() error {
		if objects, _ := bucketLogs(); objects > 0 {
			return fmt.Errorf("%d .log objects left", objects)
		}
		if earliest := offsetAt(t, []string{b.addr}, topic, -2); earliest != localStart {
			return fmt.Errorf("earliest offset %d, local log start %d", earliest, localStart)
		}
		return nil
	})
	g.requireReplay(t, []string{b.addr}, int(localStart), records)
}

// startS3 starts a versitygw S3 server with an empty bucket named
// strata-e2e, and exports its credentials for the brokers.
func startS3(t *testing.T) *tieringtest.S3Server {
	t.Helper()
	server, err := tieringtest.StartS3Server(t.TempDir())
	if err != nil {
		t.Fatalf("S3 server (versitygw, installed by make deps): %v", err)
	}
	t.Cleanup(func() { server.Close() })
	tieringtest.SetCredentialsEnv()
	if err := tiering.CreateBucket(testContext(t, 30*time.Second), server.URL("strata-e2e")); err != nil {
		t.Fatal(err)
	}
	return server
}

func minioClient(t *testing.T, server *tieringtest.S3Server) *minio.Client {
	t.Helper()
	mc, err := minio.New(strings.TrimPrefix(server.Endpoint, "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(tieringtest.S3AccessKey, tieringtest.S3SecretKey, ""),
		Region: tieringtest.S3Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// TestTieringConfigs: the tiered-topic configs are validated as Kafka does
// them, with INVALID_CONFIG and a message naming the problem.
func TestTieringConfigs(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	s := func(v string) *string { return &v }
	refused := []map[string]*string{
		{"remote.storage.enable": s("true"), "cleanup.policy": s("compact")},
		{"remote.storage.enable": s("true"), "retention.bytes": s("1000"), "local.retention.bytes": s("2000")},
		{"remote.storage.enable": s("true"), "retention.ms": s("1000"), "local.retention.ms": s("-1")},
		{"remote.storage.enable": s("maybe")},
		{"local.retention.ms": s("-3")},
	}
	for _, configs := range refused {
		r := createOne(t, adm, 1, 1, configs, legalTopic(t))
		if !errors.Is(r.Err, kerr.InvalidConfig) || r.ErrMessage == "" {
			t.Errorf("create with %v: %v %q, want INVALID_CONFIG with a message", describe(configs), r.Err, r.ErrMessage)
		}
	}
	topic := legalTopic(t)
	if r := createOne(t, adm, 1, 1, tieredTopicConfigs(1<<20, 1<<20), topic); r.Err != nil {
		t.Fatal(r.Err)
	}
	ctx := testContext(t, 30*time.Second)
	// Leaving tiering needs remote.log.delete.on.disable=true, as in Kafka.
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: s("false")}}, topic)
	if err := alterErr(t, resps, err, topic); !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("remote.storage.enable=false alone: %v, want INVALID_CONFIG", err)
	}
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: s("false")},
		{Op: kadm.SetConfig, Name: "remote.log.delete.on.disable", Value: s("true")},
	}, topic)
	if err := alterErr(t, resps, err, topic); err != nil {
		t.Fatalf("remote.storage.enable=false with remote.log.delete.on.disable=true: %v", err)
	}
	// Compacting a tiered topic is refused too.
	other := legalTopic(t) + "-2"
	if r := createOne(t, adm, 1, 1, tieredTopicConfigs(1<<20, 1<<20), other); r.Err != nil {
		t.Fatal(r.Err)
	}
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: s("compact")}}, other)
	if err := alterErr(t, resps, err, other); !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("cleanup.policy=compact on a tiered topic: %v, want INVALID_CONFIG", err)
	}
}

func describe(configs map[string]*string) string {
	var parts []string
	for k, v := range configs {
		parts = append(parts, k+"="+*v)
	}
	return strings.Join(parts, ",")
}

// TestLocalDiskLimit: with --local-disk-limit-bytes, producers are
// throttled past 90% of the limit and refused with the retriable
// KAFKA_STORAGE_ERROR at it; once tiering moves data off local disk they
// are accepted again, and every acknowledged record is readable.
func TestLocalDiskLimit(t *testing.T) {
	b := startBroker(t, "--local-disk-limit-bytes", fmt.Sprint(4<<20),
		"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	adm := newAdmin(t, b.addr)
	topic := legalTopic(t)
	// Uploads wait while remote.log.copy.disable is set: nothing can leave.
	configs := tieredTopicConfigs(256<<10, 256<<10)
	configs["remote.log.copy.disable"] = func() *string { v := "true"; return &v }()
	configs["retention.bytes"] = func() *string { v := "-1"; return &v }()
	if r := createOne(t, adm, 1, 1, configs, topic); r.Err != nil {
		t.Fatal(r.Err)
	}
	c := dialRaw(t, b.addr)
	value := strings.Repeat("x", 200<<10)
	throttled, refused, acked := false, false, 0
	for i := 0; i < 40 && !refused; i++ {
		resp := c.roundTrip(produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), value))).(*kmsg.ProduceResponse)
		switch code := resp.Topics[0].Partitions[0].ErrorCode; code {
		case 0:
			acked++
			throttled = throttled || resp.ThrottleMillis > 0
		case kerr.KafkaStorageError.Code:
			refused = true
			if msg := resp.Topics[0].Partitions[0].ErrorMessage; msg == nil || !strings.Contains(*msg, "--local-disk-limit-bytes") {
				t.Fatalf("refusal without a message naming the limit: %v", msg)
			}
		default:
			t.Fatalf("produce %d: error %d", i, code)
		}
		time.Sleep(300 * time.Millisecond) // the broker sums its logs every second
	}
	if !throttled || !refused {
		t.Fatalf("after %d acknowledged batches: throttled %v, refused %v; want both", acked, throttled, refused)
	}
	if v := metricValue(t, b, "strata_produce_disk_limit_refusals_total"); v < 1 {
		t.Fatalf("refusals metric %v", v)
	}
	// Uploads on: local retention frees the disk and producers get in.
	off := "false"
	resps, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.log.copy.disable", Value: &off}}, topic)
	if err := alterErr(t, resps, err, topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "producers accepted again once tiering freed local disk", func() error {
		resp := c.roundTrip(produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), value))).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			return fmt.Errorf("error %d", code)
		}
		acked++
		return nil
	})
	recs := consumeAll(t, b.addr, topic, acked)
	if len(recs) != acked {
		t.Fatalf("read %d records, %d acknowledged", len(recs), acked)
	}
}
