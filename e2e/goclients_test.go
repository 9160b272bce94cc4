//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafka "github.com/segmentio/kafka-go"
)

// Black-box tests with two more Go clients: IBM/sarama (pinned to a modern
// and to old Kafka versions, so old request versions are exercised) and
// segmentio/kafka-go. Both read with explicitly assigned partitions; group
// consumers are covered in groups_test.go.

// clientLog collects a client library's log lines; it is printed only when
// the test fails. It stays safe to write to after the test ended (clients
// log from background goroutines while closing).
type clientLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *clientLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *clientLog) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, format, args...)
	l.buf.WriteByte('\n')
}

func newClientLog(tb testing.TB, name string) *clientLog {
	l := &clientLog{}
	tb.Cleanup(func() {
		if tb.Failed() {
			l.mu.Lock()
			data := l.buf.String()
			l.mu.Unlock()
			if len(data) > 20000 {
				data = data[len(data)-20000:]
			}
			tb.Logf("%s log (tail):\n%s", name, data)
		}
	})
	return l
}

// within runs f and fails the test if it does not return before ctx ends:
// sarama's synchronous calls take no context, so a hang would otherwise only
// end with the go test timeout.
func within(tb testing.TB, ctx context.Context, what string, f func() error) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
	case <-ctx.Done():
		tb.Fatalf("%s: no answer before the deadline (%v)", what, ctx.Err())
	}
}

// goClientValue is the deterministic value of record i of a case: mostly
// compressible text with some binary bytes, varying lengths, and an empty
// value every 50 records.
func goClientValue(tag string, i int) []byte {
	if i%50 == 0 {
		return []byte{}
	}
	r := rand.New(rand.NewPCG(uint64(i), uint64(len(tag))))
	n := 16 + r.IntN(400)
	b := fmt.Appendf(make([]byte, 0, n+32), "%s/%06d/", tag, i)
	for len(b) < n {
		if r.IntN(4) == 0 {
			b = append(b, byte(r.UintN(256)))
		} else {
			b = append(b, "abcdefgh"[r.IntN(8)])
		}
	}
	return b
}

// goClientKey is the key of record i; every 7th record has a null key.
func goClientKey(i int) []byte {
	if i%7 == 3 {
		return nil
	}
	return fmt.Appendf(nil, "key-%06d", i)
}

// requireCodec reads the topic with franz-go and checks every batch carries
// the codec the client was asked to use (attrs: 0 none, 1 gzip, 2 snappy,
// 3 lz4, 4 zstd), so a client silently falling back to no compression is
// caught.
func requireCodec(tb testing.TB, addr, topic string, n int, attr uint8) {
	tb.Helper()
	recs := consumeAll(tb, addr, topic, n)
	if len(recs) != n {
		tb.Fatalf("franz-go read %d records, want %d", len(recs), n)
	}
	for _, r := range recs {
		if c := r.Attrs.CompressionType(); c != attr {
			tb.Fatalf("record %d/%d is stored with codec %d, want %d", r.Partition, r.Offset, c, attr)
		}
	}
}

// ---------------------------------------------------------------------------
// sarama

var saramaVersions = []struct {
	name string
	v    sarama.KafkaVersion
}{
	{"kafka-3.6", sarama.V3_6_0_0},
	{"kafka-1.0", sarama.V1_0_0_0},
	{"kafka-0.11", sarama.V0_11_0_0},
}

// saramaLogs routes sarama's logger (a package global) to the running
// test's buffer, printed on failure. sarama.Logger is set once; switching
// the target under a mutex keeps goroutines of closed clients, which may
// still log, race-free. Tests in this package run sequentially.
var saramaLogs struct {
	once sync.Once
	mu   sync.Mutex
	cur  *clientLog
}

type saramaSink struct{}

func (saramaSink) Write(p []byte) (int, error) {
	saramaLogs.mu.Lock()
	l := saramaLogs.cur
	saramaLogs.mu.Unlock()
	if l != nil {
		l.Write(p)
	}
	return len(p), nil
}

func useSaramaLog(tb testing.TB) {
	saramaLogs.once.Do(func() { sarama.Logger = log.New(saramaSink{}, "[sarama] ", log.Lmicroseconds) })
	l := newClientLog(tb, "sarama")
	saramaLogs.mu.Lock()
	saramaLogs.cur = l
	saramaLogs.mu.Unlock()
	tb.Cleanup(func() {
		saramaLogs.mu.Lock()
		if saramaLogs.cur == l {
			saramaLogs.cur = nil
		}
		saramaLogs.mu.Unlock()
	})
}

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = "strata-e2e-sarama"
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 15 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Metadata.Retry.Max = 3
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Admin.Timeout = 15 * time.Second
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	return cfg
}

// saramaConsume reads n records of one partition from offset start
// (sarama.OffsetOldest for the beginning); end is the partition's end offset.
func saramaConsume(tb testing.TB, ctx context.Context, consumer sarama.Consumer, topic string, partition int32, start int64, n int, end int64) []*sarama.ConsumerMessage {
	tb.Helper()
	var pc sarama.PartitionConsumer
	within(tb, ctx, fmt.Sprintf("sarama ConsumePartition(%s, %d, %d)", topic, partition, start), func() (err error) {
		pc, err = consumer.ConsumePartition(topic, partition, start)
		return err
	})
	closed := false
	defer func() {
		if !closed {
			pc.AsyncClose()
		}
	}()
	var out []*sarama.ConsumerMessage
	for len(out) < n {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				tb.Fatalf("partition %d: message channel closed after %d of %d records", partition, len(out), n)
			}
			out = append(out, m)
		case err := <-pc.Errors():
			tb.Fatalf("partition %d: consumer error after %d of %d records: %v", partition, len(out), n, err)
		case <-ctx.Done():
			tb.Fatalf("partition %d: consumed %d of %d records before the deadline", partition, len(out), n)
		}
	}
	// The high watermark the broker reports must be exactly the end of what
	// was produced: nothing extra is in the log.
	if hw := pc.HighWaterMarkOffset(); hw != end {
		tb.Fatalf("partition %d: high watermark %d, want %d", partition, hw, end)
	}
	closed = true
	within(tb, ctx, "close partition consumer", pc.Close)
	return out
}

// TestSaramaProduceConsume: an idempotent sarama SyncProducer (acks=all)
// writes records with keys, headers and timestamps to three partitions with
// each codec, pinned to a modern and to old Kafka versions; a sarama
// Consumer reads every partition from the oldest offset and gets each
// record back once, in order, byte-exact.
func TestSaramaProduceConsume(t *testing.T) {
	b := sharedBroker(t)
	codecs := []struct {
		name  string
		codec sarama.CompressionCodec
		attr  uint8
		min   sarama.KafkaVersion
	}{
		{"none", sarama.CompressionNone, 0, sarama.V0_11_0_0},
		{"gzip", sarama.CompressionGZIP, 1, sarama.V0_11_0_0},
		{"snappy", sarama.CompressionSnappy, 2, sarama.V0_11_0_0},
		{"lz4", sarama.CompressionLZ4, 3, sarama.V0_11_0_0},
		{"zstd", sarama.CompressionZSTD, 4, sarama.V2_1_0_0},
	}
	const records = 2000
	const partitions = 3
	const single = 30 // sent one at a time with SendMessage, the rest with SendMessages
	for _, ver := range saramaVersions {
		for _, tc := range codecs {
			if !ver.v.IsAtLeast(tc.min) {
				continue // sarama refuses zstd below Kafka 2.1, as Kafka does
			}
			t.Run(ver.name+"/"+tc.name, func(t *testing.T) {
				useSaramaLog(t)
				ctx := testContext(t, 60*time.Second)
				topic := legalTopic(t)
				createTopic(t, b.addr, topic, partitions, nil)

				cfg := saramaConfig(ver.v)
				cfg.Producer.Idempotent = true
				cfg.Net.MaxOpenRequests = 1
				cfg.Producer.RequiredAcks = sarama.WaitForAll
				cfg.Producer.Retry.Max = 5
				cfg.Producer.Retry.Backoff = 50 * time.Millisecond
				cfg.Producer.Return.Successes = true
				cfg.Producer.Return.Errors = true
				cfg.Producer.Timeout = 10 * time.Second
				cfg.Producer.Compression = tc.codec
				cfg.Producer.Partitioner = sarama.NewManualPartitioner
				cfg.Producer.Flush.MaxMessages = 250 // several requests, so several batches per partition
				if err := cfg.Validate(); err != nil {
					t.Fatalf("sarama config: %v", err)
				}
				var producer sarama.SyncProducer
				within(t, ctx, "sarama NewSyncProducer (InitProducerId)", func() (err error) {
					producer, err = sarama.NewSyncProducer([]string{b.addr}, cfg)
					return err
				})
				var closeOnce sync.Once
				closeProducer := func() (err error) {
					closeOnce.Do(func() { err = producer.Close() })
					return err
				}
				defer closeProducer() // sarama panics when a producer is closed twice

				base := time.UnixMilli(time.Now().UnixMilli())
				msgs := make([]*sarama.ProducerMessage, records)
				for i := range msgs {
					m := &sarama.ProducerMessage{
						Topic:     topic,
						Partition: int32(i % partitions),
						Value:     sarama.ByteEncoder(goClientValue(tc.name, i)),
						Timestamp: base.Add(time.Duration(i) * time.Millisecond),
						Headers: []sarama.RecordHeader{
							{Key: []byte("index"), Value: []byte(strconv.Itoa(i))},
							{Key: []byte("codec"), Value: []byte(tc.name)},
						},
					}
					if k := goClientKey(i); k != nil {
						m.Key = sarama.ByteEncoder(k)
					}
					msgs[i] = m
				}
				for i := 0; i < single; i++ {
					var p int32
					var off int64
					within(t, ctx, fmt.Sprintf("SendMessage %d", i), func() (err error) {
						p, off, err = producer.SendMessage(msgs[i])
						return err
					})
					if p != int32(i%partitions) || off != int64(i/partitions) {
						t.Fatalf("SendMessage %d: acknowledged at %d/%d, want %d/%d", i, p, off, i%partitions, i/partitions)
					}
				}
				within(t, ctx, "SendMessages", func() error {
					err := producer.SendMessages(msgs[single:])
					var perrs sarama.ProducerErrors
					if errors.As(err, &perrs) && len(perrs) > 0 {
						return fmt.Errorf("%d of %d messages failed, first: %v", len(perrs), records-single, perrs[0].Err)
					}
					return err
				})
				for i, m := range msgs {
					if m.Partition != int32(i%partitions) || m.Offset != int64(i/partitions) {
						t.Fatalf("message %d acknowledged at %d/%d, want %d/%d", i, m.Partition, m.Offset, i%partitions, i/partitions)
					}
				}
				within(t, ctx, "close producer", closeProducer)

				var client sarama.Client
				within(t, ctx, "sarama NewClient", func() (err error) {
					client, err = sarama.NewClient([]string{b.addr}, saramaConfig(ver.v))
					return err
				})
				defer client.Close()
				consumer, err := sarama.NewConsumerFromClient(client)
				if err != nil {
					t.Fatal(err)
				}
				defer consumer.Close()
				for p := int32(0); p < partitions; p++ {
					want := (records - int(p) + partitions - 1) / partitions
					// ListOffsets: earliest, latest, and by the timestamp of
					// a record in the middle (timestamps grow along each
					// partition, so the answer is that record's offset).
					mid := want / 2
					for _, q := range []struct {
						name string
						ts   int64
						want int64
					}{
						{"OffsetOldest", sarama.OffsetOldest, 0},
						{"OffsetNewest", sarama.OffsetNewest, int64(want)},
						{"timestamp of offset " + strconv.Itoa(mid), msgs[mid*partitions+int(p)].Timestamp.UnixMilli(), int64(mid)},
					} {
						var off int64
						within(t, ctx, fmt.Sprintf("GetOffset(%d, %s)", p, q.name), func() (err error) {
							off, err = client.GetOffset(topic, p, q.ts)
							return err
						})
						if off != q.want {
							t.Fatalf("partition %d: GetOffset(%s) = %d, want %d", p, q.name, off, q.want)
						}
					}
					// From the middle of a (compressed) batch: the broker
					// answers with whole batches, the client skips ahead.
					got := saramaConsume(t, ctx, consumer, topic, p, int64(mid), 5, int64(want))
					for j, m := range got {
						if m.Offset != int64(mid+j) || !bytes.Equal(m.Value, goClientValue(tc.name, (mid+j)*partitions+int(p))) {
							t.Fatalf("partition %d from offset %d: record %d is offset %d (%d value bytes)", p, mid, j, m.Offset, len(m.Value))
						}
					}
					got = saramaConsume(t, ctx, consumer, topic, p, sarama.OffsetOldest, want, int64(want))
					for j, m := range got {
						i := j*partitions + int(p)
						if m.Topic != topic || m.Partition != p || m.Offset != int64(j) {
							t.Fatalf("partition %d record %d: got %s/%d/%d", p, j, m.Topic, m.Partition, m.Offset)
						}
						if !bytes.Equal(m.Key, goClientKey(i)) || (goClientKey(i) == nil) != (m.Key == nil) {
							t.Fatalf("record %d (%d/%d): key %q, want %q", i, p, j, m.Key, goClientKey(i))
						}
						if !bytes.Equal(m.Value, goClientValue(tc.name, i)) {
							t.Fatalf("record %d (%d/%d): value differs: got %d bytes %.40q, want %d bytes %.40q",
								i, p, j, len(m.Value), m.Value, len(goClientValue(tc.name, i)), goClientValue(tc.name, i))
						}
						if !m.Timestamp.Equal(msgs[i].Timestamp) {
							t.Fatalf("record %d (%d/%d): timestamp %v, want %v", i, p, j, m.Timestamp, msgs[i].Timestamp)
						}
						if len(m.Headers) != 2 ||
							string(m.Headers[0].Key) != "index" || string(m.Headers[0].Value) != strconv.Itoa(i) ||
							string(m.Headers[1].Key) != "codec" || string(m.Headers[1].Value) != tc.name {
							var hs []string
							for _, h := range m.Headers {
								hs = append(hs, string(h.Key)+"="+string(h.Value))
							}
							t.Fatalf("record %d (%d/%d): headers %v, want [index=%d codec=%s]", i, p, j, hs, i, tc.name)
						}
					}
				}
				requireCodec(t, b.addr, topic, records, tc.attr)
			})
		}
	}
}

// TestSaramaClusterAdmin: sarama's ClusterAdmin creates (also validate-only
// and a duplicate), describes, lists, grows and deletes a topic, pinned to
// a modern and to old Kafka versions.
func TestSaramaClusterAdmin(t *testing.T) {
	b := sharedBroker(t)
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			useSaramaLog(t)
			ctx := testContext(t, 60*time.Second)
			var admin sarama.ClusterAdmin
			within(t, ctx, "sarama NewClusterAdmin", func() (err error) {
				admin, err = sarama.NewClusterAdmin([]string{b.addr}, saramaConfig(ver.v))
				return err
			})
			defer admin.Close()

			topic := legalTopic(t)
			retention := "3600000"
			detail := &sarama.TopicDetail{
				NumPartitions:     3,
				ReplicationFactor: 1,
				ConfigEntries:     map[string]*string{"retention.ms": &retention},
			}
			describe := func(name string) *sarama.TopicMetadata {
				t.Helper()
				var md []*sarama.TopicMetadata
				within(t, ctx, "DescribeTopics "+name, func() (err error) {
					md, err = admin.DescribeTopics([]string{name})
					return err
				})
				if len(md) != 1 || md[0].Name != name {
					t.Fatalf("DescribeTopics %s: got %d topics (%+v)", name, len(md), md)
				}
				return md[0]
			}
			listed := func() map[string]sarama.TopicDetail {
				t.Helper()
				var all map[string]sarama.TopicDetail
				within(t, ctx, "ListTopics", func() (err error) {
					all, err = admin.ListTopics()
					return err
				})
				return all
			}
			requirePartitions := func(n int) {
				t.Helper()
				md := describe(topic)
				if !errors.Is(md.Err, sarama.ErrNoError) {
					t.Fatalf("DescribeTopics %s: %v", topic, md.Err)
				}
				if md.IsInternal {
					t.Fatalf("DescribeTopics %s: reported internal", topic)
				}
				if len(md.Partitions) != n {
					t.Fatalf("DescribeTopics %s: %d partitions, want %d", topic, len(md.Partitions), n)
				}
				sort.Slice(md.Partitions, func(i, j int) bool { return md.Partitions[i].ID < md.Partitions[j].ID })
				for i, p := range md.Partitions {
					if p.ID != int32(i) || !errors.Is(p.Err, sarama.ErrNoError) || p.Leader != 1 ||
						fmt.Sprint(p.Replicas) != "[1]" || fmt.Sprint(p.Isr) != "[1]" {
						t.Fatalf("DescribeTopics %s partition %d: id %d err %v leader %d replicas %v isr %v; want leader 1, replicas [1], isr [1]",
							topic, i, p.ID, p.Err, p.Leader, p.Replicas, p.Isr)
					}
				}
			}

			// Validate-only creates nothing.
			dry := topic + "-dry"
			within(t, ctx, "CreateTopic validateOnly", func() error { return admin.CreateTopic(dry, detail, true) })
			if md := describe(dry); !errors.Is(md.Err, sarama.ErrUnknownTopicOrPartition) {
				t.Fatalf("after a validate-only CreateTopic, DescribeTopics %s: %v, want UNKNOWN_TOPIC_OR_PARTITION", dry, md.Err)
			}

			within(t, ctx, "CreateTopic", func() error { return admin.CreateTopic(topic, detail, false) })
			requirePartitions(3)

			var err error
			within(t, ctx, "CreateTopic again", func() error { err = admin.CreateTopic(topic, detail, false); return nil })
			if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				t.Fatalf("CreateTopic of an existing topic: %v, want TOPIC_ALREADY_EXISTS", err)
			}

			bad := "-1"
			badDetail := &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
				ConfigEntries: map[string]*string{"no.such.config": &bad}}
			within(t, ctx, "CreateTopic with an unknown config", func() error {
				err = admin.CreateTopic(topic+"-badcfg", badDetail, false)
				return nil
			})
			if !errors.Is(err, sarama.ErrInvalidConfig) {
				t.Fatalf("CreateTopic with an unknown config: %v, want INVALID_CONFIG", err)
			}

			var entries []sarama.ConfigEntry
			within(t, ctx, "DescribeConfig", func() (err error) {
				entries, err = admin.DescribeConfig(sarama.ConfigResource{
					Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"},
				})
				return err
			})
			if len(entries) != 1 || entries[0].Name != "retention.ms" || entries[0].Value != retention || entries[0].Default {
				t.Fatalf("DescribeConfig retention.ms: %+v, want one non-default entry %s", entries, retention)
			}

			all := listed()
			d, ok := all[topic]
			if !ok {
				t.Fatalf("ListTopics does not list %s", topic)
			}
			if d.NumPartitions != 3 || d.ReplicationFactor != 1 {
				t.Fatalf("ListTopics %s: %d partitions, replication factor %d; want 3, 1", topic, d.NumPartitions, d.ReplicationFactor)
			}
			if v := d.ConfigEntries["retention.ms"]; v == nil || *v != retention {
				t.Fatalf("ListTopics %s: retention.ms %v, want %s", topic, v, retention)
			}
			if _, ok := all[dry]; ok {
				t.Fatalf("ListTopics lists %s, created validate-only", dry)
			}

			if ver.v.IsAtLeast(sarama.V1_0_0_0) { // CreatePartitions exists from Kafka 1.0
				within(t, ctx, "CreatePartitions", func() error { return admin.CreatePartitions(topic, 5, nil, false) })
				requirePartitions(5)
			}

			within(t, ctx, "DeleteTopic", func() error { return admin.DeleteTopic(topic) })
			if md := describe(topic); !errors.Is(md.Err, sarama.ErrUnknownTopicOrPartition) {
				t.Fatalf("after DeleteTopic, DescribeTopics %s: %v, want UNKNOWN_TOPIC_OR_PARTITION", topic, md.Err)
			}
			if _, ok := listed()[topic]; ok {
				t.Fatalf("ListTopics still lists %s after DeleteTopic", topic)
			}
			within(t, ctx, "DeleteTopic again", func() error { err = admin.DeleteTopic(topic); return nil })
			if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Fatalf("DeleteTopic of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// kafka-go

func kafkaGoTransport(tb testing.TB) *kafka.Transport {
	tr := &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ClientID:    "strata-e2e-kafka-go",
		IdleTimeout: 30 * time.Second,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return tr
}

// kafkaGoPartitioner sends the record with key "key-N" to partition N%n.
// kafka-go's Writer ignores Message.Partition, so the tests route by key.
func kafkaGoPartitioner(n int) kafka.Balancer {
	return kafka.BalancerFunc(func(msg kafka.Message, partitions ...int) int {
		i, err := strconv.Atoi(strings.TrimPrefix(string(msg.Key), "key-"))
		if err != nil || len(partitions) != n {
			panic(fmt.Sprintf("unexpected key %q or partitions %v", msg.Key, partitions))
		}
		return partitions[i%n]
	})
}

func kafkaGoMessages(tag string, n int, base time.Time) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   fmt.Appendf(nil, "key-%06d", i),
			Value: goClientValue(tag, i),
			Time:  base.Add(time.Duration(i) * time.Millisecond),
			Headers: []kafka.Header{
				{Key: "index", Value: []byte(strconv.Itoa(i))},
			},
		}
	}
	return msgs
}

// kafkaGoRead reads n records of one partition from offset start with a
// partition Reader (no consumer group).
func kafkaGoRead(tb testing.TB, ctx context.Context, addr, topic string, partition int, start int64, n int, logs *clientLog) []kafka.Message {
	tb.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     []string{addr},
		Topic:       topic,
		Partition:   partition,
		MinBytes:    1,
		MaxBytes:    1 << 20,
		MaxWait:     250 * time.Millisecond,
		ErrorLogger: logs,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		tb.Fatalf("SetOffset: %v", err)
	}
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			tb.Fatalf("partition %d: ReadMessage after %d of %d records: %v", partition, len(out), n, err)
		}
		out = append(out, m)
	}
	if start == kafka.FirstOffset {
		start = 0
	}
	if off := r.Offset(); off != start+int64(n) {
		tb.Fatalf("partition %d: reader at offset %d after %d records from %d", partition, off, n, start)
	}
	return out
}

// kafkaGoOffsets lists the first and last offsets of partitions 0..n-1.
func kafkaGoOffsets(tb testing.TB, ctx context.Context, client *kafka.Client, topic string, n int) map[int]kafka.PartitionOffsets {
	tb.Helper()
	var reqs []kafka.OffsetRequest
	for p := 0; p < n; p++ {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		tb.Fatalf("ListOffsets: %v", err)
	}
	out := map[int]kafka.PartitionOffsets{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			tb.Fatalf("ListOffsets %s[%d]: %v", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po
	}
	if len(out) != n {
		tb.Fatalf("ListOffsets %s: answers for %d partitions, want %d", topic, len(out), n)
	}
	return out
}

// TestKafkaGoWriterReader: a kafka-go Writer (acks=all) writes records with
// each codec to three partitions; a partition Reader per partition reads
// them back once, in order, byte-exact, and ListOffsets agrees.
func TestKafkaGoWriterReader(t *testing.T) {
	b := sharedBroker(t)
	codecs := []struct {
		name  string
		codec kafka.Compression
		attr  uint8
	}{
		{"none", 0, 0},
		{"gzip", kafka.Gzip, 1},
		{"snappy", kafka.Snappy, 2},
		{"lz4", kafka.Lz4, 3},
		{"zstd", kafka.Zstd, 4},
	}
	const records = 2000
	const partitions = 3
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			logs := newClientLog(t, "kafka-go")
			ctx := testContext(t, 60*time.Second)
			topic := legalTopic(t)
			createTopic(t, b.addr, topic, partitions, nil)

			w := &kafka.Writer{
				Addr:         kafka.TCP(b.addr),
				Topic:        topic,
				Balancer:     kafkaGoPartitioner(partitions),
				RequiredAcks: kafka.RequireAll,
				Compression:  tc.codec,
				BatchSize:    200,
				BatchTimeout: 5 * time.Millisecond,
				ReadTimeout:  15 * time.Second,
				WriteTimeout: 15 * time.Second,
				MaxAttempts:  3,
				Transport:    kafkaGoTransport(t),
				ErrorLogger:  logs,
			}
			base := time.UnixMilli(time.Now().UnixMilli())
			msgs := kafkaGoMessages(tc.name, records, base)
			// Two calls: the second appends to partitions that already
			// hold batches.
			for _, part := range [][]kafka.Message{msgs[:records/2], msgs[records/2:]} {
				if err := w.WriteMessages(ctx, part...); err != nil {
					t.Fatalf("WriteMessages: %v", err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Writer.Close: %v", err)
			}

			for p := 0; p < partitions; p++ {
				want := (records - p + partitions - 1) / partitions
				// From the middle of a (compressed) batch first.
				mid := want / 2
				for j, m := range kafkaGoRead(t, ctx, b.addr, topic, p, int64(mid), 5, logs) {
					if m.Offset != int64(mid+j) || !bytes.Equal(m.Value, msgs[(mid+j)*partitions+p].Value) {
						t.Fatalf("partition %d from offset %d: record %d is offset %d (%d value bytes)", p, mid, j, m.Offset, len(m.Value))
					}
				}
				got := kafkaGoRead(t, ctx, b.addr, topic, p, kafka.FirstOffset, want, logs)
				for j, m := range got {
					i := j*partitions + p
					exp := msgs[i]
					if m.Topic != topic || m.Partition != p || m.Offset != int64(j) {
						t.Fatalf("partition %d record %d: got %s/%d/%d", p, j, m.Topic, m.Partition, m.Offset)
					}
					if !bytes.Equal(m.Key, exp.Key) {
						t.Fatalf("record %d (%d/%d): key %q, want %q", i, p, j, m.Key, exp.Key)
					}
					if !bytes.Equal(m.Value, exp.Value) {
						t.Fatalf("record %d (%d/%d): value differs: got %d bytes, want %d", i, p, j, len(m.Value), len(exp.Value))
					}
					if !m.Time.Equal(exp.Time) {
						t.Fatalf("record %d (%d/%d): time %v, want %v", i, p, j, m.Time, exp.Time)
					}
					if len(m.Headers) != 1 || m.Headers[0].Key != "index" || string(m.Headers[0].Value) != strconv.Itoa(i) {
						t.Fatalf("record %d (%d/%d): headers %v", i, p, j, m.Headers)
					}
				}
			}
			client := &kafka.Client{Addr: kafka.TCP(b.addr), Timeout: 15 * time.Second, Transport: kafkaGoTransport(t)}
			for p, po := range kafkaGoOffsets(t, ctx, client, topic, partitions) {
				want := int64((records - p + partitions - 1) / partitions)
				if po.FirstOffset != 0 || po.LastOffset != want {
					t.Fatalf("ListOffsets partition %d: first %d last %d, want 0 and %d", p, po.FirstOffset, po.LastOffset, want)
				}
			}
			requireCodec(t, b.addr, topic, records, tc.attr)
		})
	}
}

// TestKafkaGoAdmin: kafka-go's Client creates a topic (with a config, and
// validate-only), reads its metadata and configs, lists offsets (first,
// last, by timestamp) after a write, and deletes it; kafka-go's Conn reads
// partitions and offsets and does a produce/fetch round trip of its own.
func TestKafkaGoAdmin(t *testing.T) {
	b := sharedBroker(t)
	logs := newClientLog(t, "kafka-go")
	ctx := testContext(t, 60*time.Second)
	client := &kafka.Client{Addr: kafka.TCP(b.addr), Timeout: 15 * time.Second, Transport: kafkaGoTransport(t)}
	topic := legalTopic(t)
	const partitions = 3

	// (No validate-only CreateTopics here: kafka-go's Transport then waits
	// for the topic to show up in Metadata until its timeout. sarama's test
	// covers validate-only.)
	create := func(topics ...kafka.TopicConfig) map[string]error {
		t.Helper()
		res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
		if err != nil {
			t.Fatalf("CreateTopics: %v", err)
		}
		return res.Errors
	}
	cfg := kafka.TopicConfig{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "7200000"}},
	}
	if errs := create(cfg); len(errs) != 1 || errs[topic] != nil {
		t.Fatalf("CreateTopics: %v", errs)
	}
	if errs := create(cfg); !errors.Is(errs[topic], kafka.TopicAlreadyExists) {
		t.Fatalf("CreateTopics of an existing topic: %v, want TOPIC_ALREADY_EXISTS", errs[topic])
	}

	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Controller.ID != 1 {
		t.Fatalf("Metadata: brokers %+v controller %+v, want node 1 as the only broker and the controller", md.Brokers, md.Controller)
	}
	if len(md.Topics) != 1 || md.Topics[0].Name != topic || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != partitions {
		t.Fatalf("Metadata %s: %+v", topic, md.Topics)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Error != nil || p.Leader.ID != 1 || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Fatalf("Metadata %s partition %d: %+v", topic, p.ID, p)
		}
	}

	dc, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"retention.ms"},
	}}})
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	if len(dc.Resources) != 1 || dc.Resources[0].Error != nil || len(dc.Resources[0].ConfigEntries) != 1 ||
		dc.Resources[0].ConfigEntries[0].ConfigName != "retention.ms" || dc.Resources[0].ConfigEntries[0].ConfigValue != "7200000" ||
		dc.Resources[0].ConfigEntries[0].IsDefault {
		t.Fatalf("DescribeConfigs %s retention.ms: %+v", topic, dc.Resources)
	}

	// Ten records per partition, one second apart, so a timestamp lookup
	// has a unique answer.
	const perPartition = 10
	base := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	w := &kafka.Writer{
		Addr: kafka.TCP(b.addr), Topic: topic, Balancer: kafkaGoPartitioner(partitions),
		RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond,
		ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second,
		Transport: kafkaGoTransport(t), ErrorLogger: logs,
	}
	msgs := make([]kafka.Message, partitions*perPartition)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   fmt.Appendf(nil, "key-%06d", i),
			Value: fmt.Appendf(nil, "value-%d", i),
			Time:  base.Add(time.Duration(i/partitions) * time.Second),
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Writer.Close: %v", err)
	}
	for p, po := range kafkaGoOffsets(t, ctx, client, topic, partitions) {
		if po.FirstOffset != 0 || po.LastOffset != perPartition {
			t.Fatalf("ListOffsets partition %d: first %d last %d, want 0 and %d", p, po.FirstOffset, po.LastOffset, perPartition)
		}
	}
	// By timestamp: the record at offset 4 of partition 1 has time base+4s;
	// asking for base+3.5s must answer offset 4 (first record at or after).
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.TimeOffsetOf(1, base.Add(3500*time.Millisecond))},
	}})
	if err != nil {
		t.Fatalf("ListOffsets by time: %v", err)
	}
	if pos := res.Topics[topic]; len(pos) != 1 || pos[0].Error != nil || len(pos[0].Offsets) != 1 {
		t.Fatalf("ListOffsets by time: %+v", res.Topics)
	} else if _, ok := pos[0].Offsets[4]; !ok {
		// (kafka-go reports the requested timestamp, not the record's, so
		// only the offset is checked.)
		t.Fatalf("ListOffsets by time: offsets %v, want offset 4", pos[0].Offsets)
	}

	// Conn: metadata, offsets, and a produce/fetch round trip on the
	// partition leader's connection.
	conn, err := kafka.DialLeader(ctx, "tcp", b.addr, topic, 2)
	if err != nil {
		t.Fatalf("DialLeader: %v", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("Conn.ReadPartitions: %v", err)
	}
	if len(parts) != partitions {
		t.Fatalf("Conn.ReadPartitions: %d partitions, want %d", len(parts), partitions)
	}
	first, last, err := conn.ReadOffsets()
	if err != nil || first != 0 || last != perPartition {
		t.Fatalf("Conn.ReadOffsets: %d, %d, %v; want 0, %d", first, last, err, perPartition)
	}
	var extra []kafka.Message
	for i := 0; i < 50; i++ {
		extra = append(extra, kafka.Message{Key: fmt.Appendf(nil, "conn-%d", i), Value: goClientValue("conn", i)})
	}
	if _, err := conn.WriteCompressedMessages(kafka.Snappy.Codec(), extra...); err != nil {
		t.Fatalf("Conn.WriteCompressedMessages: %v", err)
	}
	if _, err := conn.Seek(perPartition, kafka.SeekAbsolute); err != nil {
		t.Fatalf("Conn.Seek: %v", err)
	}
	var read []kafka.Message
	for len(read) < len(extra) {
		batch := conn.ReadBatch(1, 1<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			read = append(read, m)
		}
		if err := batch.Close(); err != nil {
			t.Fatalf("Conn.ReadBatch after %d of %d records: %v", len(read), len(extra), err)
		}
	}
	if len(read) != len(extra) {
		t.Fatalf("Conn read %d records, want %d", len(read), len(extra))
	}
	for i, m := range read {
		if m.Offset != int64(perPartition+i) || !bytes.Equal(m.Key, extra[i].Key) || !bytes.Equal(m.Value, extra[i].Value) {
			t.Fatalf("Conn record %d: offset %d key %q (%d value bytes); want offset %d key %q (%d value bytes)",
				i, m.Offset, m.Key, len(m.Value), perPartition+i, extra[i].Key, len(extra[i].Value))
		}
	}
	if _, last, err := conn.ReadOffsets(); err != nil || last != perPartition+int64(len(extra)) {
		t.Fatalf("Conn.ReadOffsets after the write: last %d, %v; want %d", last, err, perPartition+len(extra))
	}

	del, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	if e, ok := del.Errors[topic]; !ok || e != nil {
		t.Fatalf("DeleteTopics %s: %v (answered: %v)", topic, e, ok)
	}
	// kafka-go's Client answers Metadata from its Transport's cache, so the
	// topic list is asked for on a Conn bound to no topic: it then asks for
	// all topics (a Conn bound to the topic would ask for it with
	// auto-creation on, and the broker would rightly re-create it).
	plain, err := kafka.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer plain.Close()
	plain.SetDeadline(deadline)
	all, err := plain.ReadPartitions()
	if err != nil {
		t.Fatalf("Conn.ReadPartitions after DeleteTopics: %v", err)
	}
	for _, p := range all {
		if p.Topic == topic {
			t.Fatalf("%s still in Metadata after DeleteTopics", topic)
		}
	}
	del, err = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("DeleteTopics again: %v", err)
	}
	if !errors.Is(del.Errors[topic], kafka.UnknownTopicOrPartition) {
		t.Fatalf("DeleteTopics of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", del.Errors[topic])
	}
}
