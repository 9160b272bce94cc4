//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestReplayDefaultFetchSizes: a tiered topic replayed from the bucket by
// each client with its default fetch sizes, after a restart (empty chunk
// cache). The counts do not depend on timing: the read-ahead fires (the
// consumer is known sequential by its offsets, not by its fetch size),
// the replay makes at most 0.25 GETs per MiB (1 MiB chunks, the window
// refilled half a window at a time) and fetches each byte about once, and
// every record comes back at its offset. The segments (16 MiB) are
// larger than the first window (8 MiB), so a reader is only kept in
// read-ahead by being known sequential, and the window has to run on into
// the next segment (with 8 MiB segments a segment's first read fetched
// all of it, and that hid a GET per chunk there). Before that, with
// retention passes an hour apart, local disk is back within local
// retention plus a segment once the uploads are done: uploaded segments
// past local retention leave at once.
//
// The clients, each with nothing set but what it needs to read the
// partition from offset 0:
//   - franz-go: 1 MiB per partition, 50 MiB per Fetch, 5 s max wait.
//   - librdkafka (confluent-kafka-python): 1 MiB per partition
//     (fetch.message.max.bytes), 50 MiB per Fetch, 500 ms max wait, and
//     it fetches ahead of the application into its queue (up to 64 MiB).
//   - kafka-python: 1 MiB per partition, 50 MiB per Fetch, 500 ms max
//     wait, the Java consumer's defaults (max.partition.fetch.bytes,
//     fetch.max.bytes, fetch.max.wait.ms): it stands in for the Java
//     client, which needs a JVM this suite does not have.
func TestReplayDefaultFetchSizes(t *testing.T) {
	for _, c := range []struct {
		name   string
		replay func(t *testing.T, addr string, g tierGen, records int)
	}{
		{"franz-go", func(t *testing.T, addr string, g tierGen, records int) { g.replayWith(t, []string{addr}, 0, records) }},
		{"librdkafka", func(t *testing.T, addr string, g tierGen, records int) {
			g.replayScript(t, addr, librdkafkaReplayScript, records)
		}},
		{"kafka-python", func(t *testing.T, addr string, g tierGen, records int) {
			g.replayScript(t, addr, kafkaPythonReplayScript, records)
		}},
	} {
		t.Run(c.name, func(t *testing.T) { testReplayDefaultFetchSizes(t, c.replay) })
	}
}

// testReplayDefaultFetchSizes tiers 48 MiB (about 30 MiB of it in the
// bucket only), restarts the broker and checks the bucket reads of replay
// (a consumer of partition 0 from offset 0 that checks every record).
func testReplayDefaultFetchSizes(t *testing.T, replay func(t *testing.T, addr string, g tierGen, records int)) {
	const (
		segmentBytes = 16 << 20
		localBytes   = 8 << 20
		recordSize   = 4 << 10
		records      = 12 * 1024 // 48 MiB
	)
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "3600000")
	g := produceTiered(t, b, segmentBytes, localBytes, recordSize, records)
	topic := g.topic

	// Kafka's local retention keeps less than local.retention.bytes plus
	// the oldest segment it keeps (the active one included); the rest is
	// in the bucket only, and is what the replay reads from it.
	eventually(t, 30*time.Second, "local disk within local retention plus a segment, without a retention pass", func() error {
		if local := localLogBytes(t, b.dataDir, topic, 0); local > localBytes+segmentBytes {
			return fmt.Errorf("local log holds %d bytes (lag %v)", local, metricOrZero(t, b, fmt.Sprintf(`strata_tiering_upload_lag_bytes{topic=%q}`, topic)))
		}
		if lag := metricOrZero(t, b, fmt.Sprintf(`strata_tiering_upload_lag_bytes{topic=%q}`, topic)); lag != 0 {
			return fmt.Errorf("upload lag %v bytes", lag)
		}
		// The lag gauge is set by the tier manager's passes: it may still
		// read 0 just after a roll. Every sealed segment is uploaded when
		// the latest tiered offset is the one before the active segment's
		// (else the last one is uploaded after the restart, during the
		// replay, and its upload's GET counts with the replay's).
		if tiered, active := offsetAt(t, []string{b.addr}, topic, -5), activeBaseOffset(t, b.dataDir, topic, 0); tiered != active-1 {
			return fmt.Errorf("latest tiered offset %d, the active segment starts at %d", tiered, active)
		}
		return nil
	})

	// A restart (stopped first: restart only starts the process): an
	// empty chunk cache.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	b.restart(t)
	gets := metricValue(t, b, "strata_tiering_bucket_gets_total")
	getBytes := metricValue(t, b, "strata_tiering_bucket_get_bytes_total")
	prefetches := metricValue(t, b, "strata_tiering_prefetches_total")
	started := time.Now()
	replay(t, b.addr, g, records)
	took := time.Since(started)
	replayed := metricValue(t, b, fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic))
	gets = metricValue(t, b, "strata_tiering_bucket_gets_total") - gets
	getBytes = metricValue(t, b, "strata_tiering_bucket_get_bytes_total") - getBytes
	prefetches = metricValue(t, b, "strata_tiering_prefetches_total") - prefetches
	mib := replayed / (1 << 20)
	t.Logf("replayed %.1f MiB from the bucket in %v: %v GETs (%.3f per MiB), %v bytes fetched (%.3f per byte replayed), %v chunks read ahead",
		mib, took.Round(time.Millisecond), gets, gets/mib, getBytes, getBytes/replayed, prefetches)
	if mib < 24 {
		t.Fatalf("only %.1f MiB replayed from the bucket, want most of the 48 MiB produced", mib)
	}
	if prefetches == 0 {
		t.Errorf("read-ahead never fired for a consumer with default fetch sizes")
	}
	if gets/mib > 0.25 {
		t.Errorf("%.3f GETs per MiB replayed, want at most 0.25", gets/mib)
	}
	if getBytes > 1.05*replayed+(1<<20) {
		t.Errorf("%v bytes fetched from the bucket for %v replayed, want at most 1.05x", getBytes, replayed)
	}
}

// The replay scripts read records 0..n-1 of partition 0 of a topic from
// offset 0 with the client's default fetch settings and print a line per
// record: offset, key, timestamp (ms) and the SHA-256 of the value, for
// replayScript to check against tieredRecord.

const librdkafkaReplayScript = confluentPoll + `
import sys, hashlib
from confluent_kafka import Consumer, TopicPartition
addr, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": addr, "group.id": "e2e-replay", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
out = []
poll(c, n, 120, lambda m: out.append("%d %s %d %s" % (m.offset(), m.key().decode(), m.timestamp()[1], hashlib.sha256(m.value()).hexdigest())))
c.close()
print("\n".join(out))
`

const kafkaPythonReplayScript = `
import sys, time, hashlib
from kafka import KafkaConsumer, TopicPartition
addr, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek(tp, 0)
out, got = [], 0
deadline = time.time() + 120
while got < n and time.time() < deadline:
    for msgs in c.poll(timeout_ms=1000).values():
        for m in msgs:
            if got < n:
                out.append("%d %s %d %s" % (m.offset, m.key.decode(), m.timestamp, hashlib.sha256(m.value).hexdigest()))
                got += 1
c.close()
print("\n".join(out))
`

// replayScript runs a replay script (python3) against addr and checks
// that records 0..n-1 came back in order, each at its offset with its key,
// timestamp and value.
func (g tierGen) replayScript(t *testing.T, addr, script string, n int) {
	t.Helper()
	requireTool(t, "/usr/bin/python3")
	path := filepath.Join(t.TempDir(), "replay.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runCmd(t, nil, 180*time.Second, "/usr/bin/python3", path, addr, g.topic, strconv.Itoa(n))
	lines := bufio.NewScanner(bytes.NewReader(out))
	next := 0
	for lines.Scan() {
		if next >= n {
			t.Fatalf("more than the %d records asked for: %q", n, lines.Text())
		}
		w := g.record(next)
		sum := sha256.Sum256(w.Value)
		want := fmt.Sprintf("%d %s %d %s", next, w.Key, w.Timestamp.UnixMilli(), hex.EncodeToString(sum[:]))
		if got := lines.Text(); got != want {
			t.Fatalf("record %d: got %q, want %q (offset, key, timestamp, SHA-256 of the value %.40q…)", next, got, want, w.Value)
		}
		next++
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("replayed records 0..%d of 0..%d before the script's deadline", next, n)
	}
}
