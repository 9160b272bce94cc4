//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// compactedRecord is one record as a client read it from a compacted topic.
type compactedRecord struct {
	offset int64
	key    string
	value  *string // nil: tombstone
}

// TestCompaction runs the log cleaner for real on one broker: a compacted
// user topic shrinks to the latest value per key, keeps its offsets and
// reads the same with every client; __consumer_offsets stays bounded under
// 100k commits.
func TestCompaction(t *testing.T) {
	b := startBroker(t, "--log-cleaner-backoff-ms", "200", "--offsets-topic-num-partitions", "1",
		"--offsets-topic-segment-bytes", "65536")
	t.Run("user-topic", func(t *testing.T) { testCompactedUserTopic(t, b) })
	t.Run("offsets-topic-bounded", func(t *testing.T) { testOffsetsTopicBounded(t, b) })
}

func testCompactedUserTopic(t *testing.T, b *brokerProcess) {
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("16384"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"delete.retention.ms":       kadm.StringPtr("0"),
	})
	ctx := testContext(t, 3*time.Minute)

	// 20k records over 500 keys, a mix of codecs; the last write of every
	// tenth key is a tombstone. produced[offset] is what went in there.
	const records, keys = 20000, 500
	produced := map[int64]compactedRecord{}
	latest := map[string]int64{}
	for i, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(8000))
		var rs []*kgo.Record
		for j := i * records / 3; j < (i+1)*records/3; j++ {
			key := fmt.Sprintf("key-%03d", j%keys)
			value := []byte(fmt.Sprintf("value-%d", j))
			if j >= records-keys && (j%keys)%10 == 0 {
				value = nil
			}
			rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(key), Value: value})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range rs {
			rec := compactedRecord{offset: r.Offset, key: string(r.Key)}
			if r.Value != nil {
				v := string(r.Value)
				rec.value = &v
			}
			produced[r.Offset] = rec
			latest[rec.key] = r.Offset
		}
	}
	// Writes to other keys roll the segments past the last real record, so
	// everything above is cleanable.
	roll := newClient(t, b.addr, manualPartitioner())
	for range 8 {
		rs := make([]*kgo.Record, 10)
		for i := range rs {
			rs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte("roll"), Value: make([]byte, 400)}
		}
		if err := roll.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end := int64(len(produced)) + 80

	dir := filepath.Join(b.dataDir, topic+"-0")
	// What was appended (the cleaner may already be at work meanwhile).
	written := int64(metricValue(t, b, `strata_topic_bytes_in_total{topic="`+topic+`"}`))
	// A finished pass (its metric) that removed whole batches (its log
	// line), so the clients below also read past the empty filler batches
	// that stand in for them; sizes are compared after it (a swap in
	// progress renames files).
	removed := `strata_log_cleaner_records_removed_total{topic="` + topic + `"}`
	wholeBatches := regexp.MustCompile(`topic=` + regexp.QuoteMeta(topic) + ` .*batches_removed=[1-9]`)
	waitFor(t, 60*time.Second, "the cleaner to compact the topic", func() bool {
		logText, _ := os.ReadFile(b.logPath)
		return strings.Contains(metrics(t, b), removed) && wholeBatches.Match(logText) && logBytes(t, dir)*5 < written
	})
	// Then a pass that found nothing left to clean: every sealed segment
	// is compacted.
	skipped := `strata_log_cleaner_passes_total{result="skipped",topic="` + topic + `"}`
	before := metricOrZero(t, b, skipped)
	waitFor(t, 30*time.Second, "a cleaner pass with nothing left to clean", func() bool {
		return metricOrZero(t, b, skipped) > before
	})
	cleaned := logBytes(t, dir)
	t.Logf("partition log: %d bytes written, %d after cleaning", written, cleaned)

	// What every client must see: increasing offsets, each record exactly
	// what was produced at its offset, and replaying them gives each key's
	// latest value (tombstoned keys gone).
	check := func(t *testing.T, client string, got []compactedRecord) {
		t.Helper()
		state := map[string]int64{}
		last := int64(-1)
		for _, r := range got {
			if r.offset <= last {
				t.Fatalf("%s: offset %d after %d", client, r.offset, last)
			}
			last = r.offset
			if r.key == "roll" {
				continue
			}
			want, ok := produced[r.offset]
			if !ok || want.key != r.key || (want.value == nil) != (r.value == nil) || (want.value != nil && *want.value != *r.value) {
				t.Fatalf("%s: offset %d holds %s=%v, produced %s=%v", client, r.offset, r.key, deref(r.value), want.key, deref(want.value))
			}
			if r.value == nil {
				delete(state, r.key)
			} else {
				state[r.key] = r.offset
			}
		}
		if len(got) > len(produced)/5 {
			t.Errorf("%s read %d records of %d produced: not compacted", client, len(got), len(produced))
		}
		for key, offset := range latest {
			at, ok := state[key]
			switch {
			case produced[offset].value == nil && ok:
				t.Errorf("%s: tombstoned key %s still has the value at %d", client, key, at)
			case produced[offset].value != nil && at != offset:
				t.Errorf("%s: key %s ends at offset %d, want its latest %d", client, key, at, offset)
			}
		}
		t.Logf("%s read %d records", client, len(got))
	}

	t.Run("franz-go", func(t *testing.T) {
		cl := newClient(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
			kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(16<<10))
		var got []compactedRecord
		for next := int64(0); next < end; {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("franz-go stopped at offset %d of %d", next, end)
			}
			fetches.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
			fetches.EachRecord(func(r *kgo.Record) {
				got = append(got, fromValue(r.Offset, r.Key, r.Value))
				next = r.Offset + 1
			})
		}
		check(t, "franz-go", got)
	})
	t.Run("sarama", func(t *testing.T) {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V3_6_0_0
		cfg.Consumer.Fetch.Default = 16 << 10
		consumer, err := sarama.NewConsumer([]string{b.addr}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var got []compactedRecord
		for next := int64(0); next < end; {
			select {
			case m := <-pc.Messages():
				got = append(got, fromValue(m.Offset, m.Key, m.Value))
				next = m.Offset + 1
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatalf("sarama stopped at offset %d of %d", next, end)
			}
		}
		check(t, "sarama", got)
	})
	t.Run("kcat", func(t *testing.T) {
		requireTool(t, "kcat")
		out := runCmd(t, nil, 60*time.Second, "kcat", "-b", b.addr, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
			"-Z", "-X", "message.max.bytes=65536", "-X", "fetch.max.bytes=65536", "-X", "max.partition.fetch.bytes=16384", "-f", "%o\t%k\t%s\n")
		check(t, "kcat", parseLines(t, out, "NULL"))
	})
	for name, script := range map[string]string{"confluent-kafka-python": confluentCompactedScript, "kafka-python": kafkaPythonCompactedScript} {
		t.Run(name, func(t *testing.T) {
			requireTool(t, "/usr/bin/python3")
			path := filepath.Join(t.TempDir(), "read.py")
			if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			out := runCmd(t, nil, 90*time.Second, "/usr/bin/python3", path, b.addr, topic, strconv.FormatInt(end, 10))
			check(t, name, parseLines(t, out, "\x00null"))
		})
	}
}

func fromValue(offset int64, key, value []byte) compactedRecord {
	r := compactedRecord{offset: offset, key: string(key)}
	if value != nil {
		v := string(value)
		r.value = &v
	}
	return r
}

// parseLines reads "offset\tkey\tvalue" lines; null marks a tombstone.
func parseLines(t *testing.T, out []byte, null string) []compactedRecord {
	t.Helper()
	var got []compactedRecord
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) != 3 {
			t.Fatalf("unexpected output line %q", line)
		}
		offset, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		r := compactedRecord{offset: offset, key: fields[1]}
		if fields[2] != null {
			v := fields[2]
			r.value = &v
		}
		got = append(got, r)
	}
	return got
}

const confluentCompactedScript = `
import sys
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
addr, topic, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({'bootstrap.servers': addr, 'group.id': 'compacted-reader', 'enable.auto.commit': False,
              'fetch.max.bytes': 65536, 'message.max.bytes': 65536, 'max.partition.fetch.bytes': 16384})
c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
out = []
nxt = 0
while nxt < end:
    m = c.poll(30)
    if m is None:
        sys.exit('no record within 30 s at offset %d of %d' % (nxt, end))
    if m.error():
        sys.exit(str(m.error()))
    v = m.value()
    out.append('%d\t%s\t%s' % (m.offset(), m.key().decode(), '\x00null' if v is None else v.decode()))
    nxt = m.offset() + 1
c.close()
print('\n'.join(out))
`

const kafkaPythonCompactedScript = `
import sys
from kafka import KafkaConsumer, TopicPartition
addr, topic, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=addr, enable_auto_commit=False, fetch_max_bytes=65536,
                  max_partition_fetch_bytes=16384, consumer_timeout_ms=30000)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
out = []
nxt = 0
for m in c:
    v = m.value
    out.append('%d\t%s\t%s' % (m.offset, m.key.decode(), '\x00null' if v is None else v.decode()))
    nxt = m.offset + 1
    if nxt >= end:
        break
if nxt < end:
    sys.exit('stopped at offset %d of %d (position %d)' % (nxt, end, c.position(tp)))
c.close()
print('\n'.join(out))
`

// testOffsetsTopicBounded: 100k offset commits (10k requests of 10
// partitions) leave __consumer_offsets at a fraction of what was written,
// and the group's offsets are the last ones committed.
func testOffsetsTopicBounded(t *testing.T, b *brokerProcess) {
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 10, nil)
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := testContext(t, 3*time.Minute)
	const requests = 10000
	for i := range requests {
		var offsets kadm.Offsets
		for p := range int32(10) {
			offsets.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(i), LeaderEpoch: -1, Metadata: "m"})
		}
		if err := adm.CommitAllOffsets(ctx, "bounded", offsets); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	dir := filepath.Join(b.dataDir, "__consumer_offsets-0")
	var size int64
	waitFor(t, 60*time.Second, "the cleaner to compact __consumer_offsets", func() bool {
		size = logBytes(t, dir)
		return size < 1<<20
	})
	// Cleaned segments are merged, so the file count stays bounded too.
	var files int
	waitFor(t, 60*time.Second, "the cleaner to merge __consumer_offsets segments", func() bool {
		entries, _ := os.ReadDir(dir)
		files = len(entries)
		return files < 100 // 458 when segments were cleaned one for one
	})
	t.Logf("__consumer_offsets-0 after 100k commits: %d bytes of segments, %d files", size, files)
	fetched, err := adm.FetchOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(10) {
		if o, ok := fetched.Lookup(topic, p); !ok || o.At != requests-1 || o.Metadata != "m" {
			t.Fatalf("partition %d: committed %+v, want %d", p, o, requests-1)
		}
	}
}

// metricValue returns the value of one series on the broker's /metrics.
func metricValue(t *testing.T, b *brokerProcess, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics(t, b), "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("/metrics lacks %s", series)
	return 0
}

// metricOrZero is metricValue, or 0 while the series does not exist yet.
func metricOrZero(t *testing.T, b *brokerProcess, series string) float64 {
	t.Helper()
	if !strings.Contains(metrics(t, b), series+" ") {
		return 0
	}
	return metricValue(t, b, series)
}

// logBytes sums the .log files of a partition directory.
func logBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // swapped away meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
	}
	return total
}

func metrics(t *testing.T, b *brokerProcess) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(testContext(t, 10*time.Second), http.MethodGet, "http://"+b.admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
