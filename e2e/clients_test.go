//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/internal/childproc"
)

// Real non-Go clients: kcat (librdkafka), confluent-kafka-python
// (librdkafka) and kafka-python. They are installed by make deps; a missing
// one fails the test rather than skipping it, so CI never passes silently.

func requireTool(tb testing.TB, path string) {
	tb.Helper()
	if _, err := exec.LookPath(path); err != nil {
		tb.Fatalf("%s is not installed (make deps installs it): %v", path, err)
	}
}

func runCmd(tb testing.TB, stdin []byte, timeout time.Duration, name string, args ...string) []byte {
	tb.Helper()
	ctx := testContext(tb, timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := childproc.Start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		tb.Fatalf("%s %s: %v\nstderr:\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// codecOf reads a topic with franz-go and returns the set of codecs seen.
func codecsOf(tb testing.TB, addr, topic string, n int) map[uint8]int {
	tb.Helper()
	seen := map[uint8]int{}
	for _, r := range consumeAll(tb, addr, topic, n) {
		seen[r.Attrs.CompressionType()]++
	}
	return seen
}

func TestKcat(t *testing.T) {
	requireTool(t, "kcat")
	b := sharedBroker(t)

	t.Run("metadata", func(t *testing.T) {
		topic := uniqueTopic(t)
		createTopic(t, b.addr, topic, 3, nil)
		out := string(runCmd(t, nil, 30*time.Second, "kcat", "-b", b.addr, "-L", "-t", topic))
		for _, want := range []string{"1 brokers:", "broker 1 at " + b.addr, "controller", "topic \"" + topic + "\" with 3 partitions"} {
			if !strings.Contains(out, want) {
				t.Fatalf("kcat -L output lacks %q:\n%s", want, out)
			}
		}
	})

	for _, codec := range []struct {
		name string
		attr uint8
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run("produce-consume-"+codec.name, func(t *testing.T) {
			topic := uniqueTopic(t)
			var in bytes.Buffer
			const n = 2000
			for i := 0; i < n; i++ {
				fmt.Fprintf(&in, "kcat-%s-%05d-%s\n", codec.name, i, strings.Repeat("z", i%50))
			}
			// Auto-creates the topic (one partition).
			runCmd(t, in.Bytes(), 60*time.Second, "kcat", "-b", b.addr, "-P", "-t", topic, "-z", codec.name,
				"-X", "linger.ms=20", "-X", "enable.idempotence=true")
			out := runCmd(t, nil, 60*time.Second, "kcat", "-b", b.addr, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o %s\n")
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			want := strings.Split(strings.TrimRight(in.String(), "\n"), "\n")
			if len(lines) != n {
				t.Fatalf("kcat consumed %d records, want %d", len(lines), n)
			}
			for i, line := range lines {
				if line != fmt.Sprintf("%d %s", i, want[i]) {
					t.Fatalf("record %d: got %q want %q", i, line, fmt.Sprintf("%d %s", i, want[i]))
				}
			}
			codecs := codecsOf(t, b.addr, topic, n)
			if len(codecs) != 1 || codecs[codec.attr] != n {
				t.Fatalf("codecs stored: %v, want all %d records with codec %d (%s)", codecs, n, codec.attr, codec.name)
			}
		})
	}
}

// confluentPoll is the Python the confluent-kafka scripts consume with:
// poll(c, n, seconds, each) hands each of the first n messages of consumer
// c to each, exits with status 1 on a consume error, and returns how many
// came before seconds passed.
const confluentPoll = `
import sys, time
def poll(c, n, seconds, each):
    got, deadline = 0, time.time() + seconds
    while got < n and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            print("consume error: %s" % m.error(), file=sys.stderr)
            sys.exit(1)
        each(m)
        got += 1
    return got
`

const confluentScript = confluentPoll + `
import sys, json
from confluent_kafka import Producer, Consumer, TopicPartition
addr, topic, codec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = Producer({"bootstrap.servers": addr, "compression.type": codec, "enable.idempotence": True, "linger.ms": 10})
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
for i in range(n):
    p.produce(topic, key=("k%d" % i).encode(), value=("confluent-%s-%d" % (codec, i)).encode(), partition=i % 2, on_delivery=report)
    if i % 1000 == 0:
        p.poll(0)
left = p.flush(60)
if left or errors:
    print("produce failed: %d unflushed, errors %s" % (left, errors[:3]), file=sys.stderr)
    sys.exit(1)
c = Consumer({"bootstrap.servers": addr, "group.id": "e2e-confluent", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
got = {0: [], 1: []}
poll(c, n, 60, lambda m: got[m.partition()].append((m.offset(), m.key().decode(), m.value().decode())))
c.close()
print(json.dumps(got))
`

const kafkaPythonScript = `
import sys, json, time
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
addr, topic, codec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kw = {} if codec == "none" else {"compression_type": codec}
p = KafkaProducer(bootstrap_servers=addr, acks="all", linger_ms=10, **kw)
futures = [p.send(topic, key=("k%d" % i).encode(), value=("kafkapython-%s-%d" % (codec, i)).encode(), partition=i % 2) for i in range(n)]
p.flush(60)
for f in futures:
    f.get(timeout=60)
p.close()
c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", consumer_timeout_ms=10000)
c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
c.seek_to_beginning()
got = {0: [], 1: []}
deadline = time.time() + 60
while sum(len(v) for v in got.values()) < n and time.time() < deadline:
    for tp, msgs in c.poll(timeout_ms=1000).items():
        for m in msgs:
            got[tp.partition].append((m.offset, m.key.decode(), m.value.decode()))
c.close()
print(json.dumps(got))
`

// runPythonClient runs a client script that produces n records across two
// partitions and consumes them back, and checks order and content.
// skipsUselessCompression: the client sends a batch uncompressed when
// compressing does not make it smaller (kafka-python), so a few small
// batches may carry no codec.
func runPythonClient(t *testing.T, addr, script, prefix, codec string, wantAttr uint8, skipsUselessCompression bool) {
	path := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	topic := uniqueTopic(t)
	createTopic(t, addr, topic, 2, nil)
	const n = 3000
	out := runCmd(t, nil, 180*time.Second, "/usr/bin/python3", path, addr, topic, codec, fmt.Sprint(n))
	var got map[string][][3]any
	if err := jsonUnmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	total := 0
	for part, recs := range got {
		for i, r := range recs {
			offset := int(r[0].(float64))
			if offset != i {
				t.Fatalf("partition %s: record %d at offset %d", part, i, offset)
			}
			idx := 2*i + int(part[0]-'0')
			if r[1] != fmt.Sprintf("k%d", idx) || r[2] != fmt.Sprintf("%s-%s-%d", prefix, codec, idx) {
				t.Fatalf("partition %s offset %d: got %v, want k%d", part, offset, r, idx)
			}
		}
		total += len(recs)
	}
	if total != n {
		t.Fatalf("consumed %d records, want %d", total, n)
	}
	codecs := codecsOf(t, addr, topic, n)
	if skipsUselessCompression && wantAttr != 0 {
		if codecs[wantAttr] < n*9/10 || codecs[wantAttr]+codecs[0] != n {
			t.Fatalf("codecs stored: %v, want codec %d for nearly all and none for the rest", codecs, wantAttr)
		}
		return
	}
	if len(codecs) != 1 || codecs[wantAttr] != n {
		t.Fatalf("codecs stored: %v, want codec %d for all", codecs, wantAttr)
	}
}

func TestConfluentKafkaPython(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	b := sharedBroker(t)
	for _, c := range []struct {
		codec string
		attr  uint8
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run(c.codec, func(t *testing.T) {
			runPythonClient(t, b.addr, confluentScript, "confluent", c.codec, c.attr, false)
		})
	}
}

func TestKafkaPython(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	b := sharedBroker(t)
	// kafka-python's snappy, lz4 and zstd need python3-snappy, python3-lz4
	// and python3-zstandard (installed by make deps).
	for _, c := range []struct {
		codec string
		attr  uint8
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run(c.codec, func(t *testing.T) {
			runPythonClient(t, b.addr, kafkaPythonScript, "kafkapython", c.codec, c.attr, true)
		})
	}
}

var _ = kgo.NoCompression
