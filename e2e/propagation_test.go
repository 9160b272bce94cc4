//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata a client can act on: a topic that CreateTopics (or
// CreatePartitions) answered for is listed, with every partition and a
// leader for each, in the very first Metadata answer of every broker; a
// deleted topic is gone from all of them. Each client library creates,
// describes and produces in a loop on a 3-node cluster.
//
// The clients run side by side on the one cluster, each on its own
// topics: a round spends most of its time waiting (for the quorum, and
// about a second for the followers of a new partition before the first
// acks=all produce is answered), not computing, so the sweep takes the
// time of the slowest client rather than of all four, and the brokers
// apply changes from several clients interleaved, as in production.

const (
	propagationRounds     = 50
	propagationPartitions = 3
)

func TestMetadataPropagation(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testContext(t, 15*time.Minute)
	// One franz-go client whose connections reach each broker directly:
	// the checks ask every broker, not whichever the client picks.
	direct := c.client(t)
	adm := kadm.NewClient(direct)
	// Each client's sweep is a subtest of its own, all running at once
	// (goroutines rather than t.Parallel, which go test caps at GOMAXPROCS:
	// 2 on the CI machine).
	var sweeps sync.WaitGroup
	defer sweeps.Wait()
	run := func(name string, f func(t *testing.T)) { sweeps.Go(func() { t.Run(name, f) }) }

	run("franz-go", func(t *testing.T) {
		// A producer that gives up on the first unknown-topic answer
		// instead of retrying, so a miss fails the round.
		producer := c.client(t, kgo.UnknownTopicRetries(0), kgo.RequiredAcks(kgo.AllISRAcks()), manualPartitioner())
		var took []time.Duration
		for round := range propagationRounds {
			topic := fmt.Sprintf("franz-%d-%s", round, uniqueTopic(t))
			start := time.Now()
			resp, err := adm.CreateTopic(ctx, propagationPartitions, 3, nil, topic)
			if err != nil || resp.Err != nil {
				t.Fatalf("round %d: create: %v %v %s", round, err, resp.Err, resp.ErrMessage)
			}
			took = append(took, time.Since(start))
			described, err := adm.Metadata(ctx, topic)
			if err != nil {
				t.Fatalf("round %d: describe: %v", round, err)
			}
			td := described.Topics[topic]
			if td.Err != nil || len(td.Partitions) != propagationPartitions {
				t.Fatalf("round %d: first describe after create: %v, %d partitions", round, td.Err, len(td.Partitions))
			}
			for _, p := range td.Partitions {
				if p.Err != nil || p.Leader < 0 {
					t.Fatalf("round %d: partition %d: %v, leader %d", round, p.Partition, p.Err, p.Leader)
				}
			}
			requireListedByEveryBroker(t, ctx, c, direct, topic, propagationPartitions)
			for p := range int32(propagationPartitions) {
				if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
					t.Fatalf("round %d: produce to partition %d: %v", round, p, err)
				}
			}
			deleteEverywhere(t, ctx, c, direct, adm, topic)
		}
		logLatencies(t, "CreateTopics (franz-go, RF=3, 3 partitions)", took)
	})

	run("sarama", func(t *testing.T) {
		useSaramaLog(t)
		cfg := saramaConfig(sarama.V3_6_0_0)
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.Retry.Max = 0 // a miss fails the round
		client, err := sarama.NewClient(c.seeds(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		producer, err := sarama.NewSyncProducerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		for round := range propagationRounds {
			topic := fmt.Sprintf("sarama-%d-%s", round, uniqueTopic(t))
			within(t, ctx, "sarama CreateTopic", func() error {
				return admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: propagationPartitions, ReplicationFactor: 3}, false)
			})
			// The first Metadata answer of every broker.
			brokers := client.Brokers()
			if len(brokers) != 3 {
				t.Fatalf("sarama knows %d brokers", len(brokers))
			}
			for _, b := range brokers {
				within(t, ctx, "sarama GetMetadata", func() error {
					if ok, _ := b.Connected(); !ok {
						if err := b.Open(cfg); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
							return err
						}
					}
					md, err := b.GetMetadata(&sarama.MetadataRequest{Version: 7, Topics: []string{topic}})
					if err != nil {
						return err
					}
					if len(md.Topics) != 1 || md.Topics[0].Err != sarama.ErrNoError || len(md.Topics[0].Partitions) != propagationPartitions {
						return fmt.Errorf("round %d: broker %d: first metadata after create: %+v", round, b.ID(), md.Topics)
					}
					for _, p := range md.Topics[0].Partitions {
						if p.Err != sarama.ErrNoError || p.Leader < 0 {
							return fmt.Errorf("round %d: broker %d: partition %d: %v, leader %d", round, b.ID(), p.ID, p.Err, p.Leader)
						}
					}
					return nil
				})
			}
			for p := range int32(propagationPartitions) {
				within(t, ctx, "sarama SendMessage", func() error {
					_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("v")})
					return err
				})
			}
			deleteEverywhere(t, ctx, c, direct, adm, topic)
		}
	})

	run("kafka-go", func(t *testing.T) {
		logs := newClientLog(t, "kafka-go")
		tr := kafkaGoTransport(t)
		client := &kafka.Client{Addr: kafka.TCP(c.seeds()...), Transport: tr, Timeout: 30 * time.Second}
		for round := range propagationRounds {
			topic := fmt.Sprintf("kafkago-%d-%s", round, uniqueTopic(t))
			created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: propagationPartitions, ReplicationFactor: 3}}})
			if err != nil || created.Errors[topic] != nil {
				t.Fatalf("round %d: create: %v %v", round, err, created.Errors[topic])
			}
			// kafka-go answers Metadata from its transport's cache, which it
			// refreshes right after CreateTopics (from whichever broker it
			// asks): that refreshed answer must already list the topic. A
			// fresh transport per node asks each node itself.
			check := func(who string, md *kafka.MetadataResponse) {
				if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != propagationPartitions {
					t.Fatalf("round %d: %s: first metadata after create: %+v", round, who, md.Topics)
				}
				for _, p := range md.Topics[0].Partitions {
					if p.Error != nil || p.Leader.ID < 0 || p.Leader.Host == "" {
						t.Fatalf("round %d: %s: partition %d: %v, leader %+v", round, who, p.ID, p.Error, p.Leader)
					}
				}
			}
			md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
			if err != nil {
				t.Fatalf("round %d: metadata: %v", round, err)
			}
			check("the creating client", md)
			for _, addr := range c.seeds() {
				fresh := kafkaGoTransport(t)
				one := &kafka.Client{Addr: kafka.TCP(addr), Transport: fresh, Timeout: 30 * time.Second}
				md, err := one.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
				if err != nil {
					t.Fatalf("round %d: metadata from %s: %v", round, addr, err)
				}
				check(addr, md)
				fresh.CloseIdleConnections()
			}
			// The writer gets a transport of its own: the shared one
			// refreshes its cache every few seconds with requests that
			// may have left before the create (a client-side race).
			writerTransport := kafkaGoTransport(t)
			w := &kafka.Writer{Addr: kafka.TCP(c.seeds()...), Topic: topic, Transport: writerTransport, RequiredAcks: kafka.RequireAll,
				Balancer: kafkaGoPartitioner(propagationPartitions), MaxAttempts: 1, BatchTimeout: time.Millisecond, ErrorLogger: logs}
			var msgs []kafka.Message
			for i := range propagationPartitions {
				msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "key-%d", i), Value: []byte("v")})
			}
			err = w.WriteMessages(ctx, msgs...)
			w.Close()
			writerTransport.CloseIdleConnections()
			if err != nil {
				t.Fatalf("round %d: produce: %v", round, err)
			}
			deleteEverywhere(t, ctx, c, direct, adm, topic)
		}
	})

	run("confluent-kafka-python", func(t *testing.T) {
		requireTool(t, "/usr/bin/python3")
		out := runPropagationScript(t, confluentPropagationScript, strings.Join(c.seeds(), ","), fmt.Sprint(propagationRounds), fmt.Sprint(propagationPartitions), uniqueTopic(t))
		if !strings.Contains(out, fmt.Sprintf("ok %d rounds", propagationRounds)) {
			t.Fatalf("confluent-kafka-python:\n%s", out)
		}
	})

	run("create partitions", func(t *testing.T) {
		topic := uniqueTopic(t)
		if r := createOne(t, adm, 1, 3, nil, topic); r.Err != nil {
			t.Fatalf("create: %v %s", r.Err, r.ErrMessage)
		}
		for total := 2; total <= 6; total++ {
			resp, err := adm.CreatePartitions(ctx, 1, topic)
			if err != nil || resp[topic].Err != nil {
				t.Fatalf("create partitions to %d: %v %v", total, err, resp[topic].Err)
			}
			requireListedByEveryBroker(t, ctx, c, direct, topic, total)
		}
		deleteEverywhere(t, ctx, c, direct, adm, topic)
	})

	run("timeout 0 answers at once and the topics are created", func(t *testing.T) {
		names := []string{uniqueTopic(t) + "-a", uniqueTopic(t) + "-b"}
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 0
		for _, name := range names {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 2, 3
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, direct)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range resp.Topics {
			// Kafka's answer for a creation it did not wait for.
			wantCode(t, "CreateTopics timeout 0 "+rt.Topic, rt.ErrorCode, kerr.RequestTimedOut)
		}
		eventually(t, 10*time.Second, "both topics listed with leaders by every broker", func() error {
			for _, name := range names {
				for _, b := range c.nodes {
					if err := listedWithLeaders(ctx, direct, brokerIDOf(t, c, b), name, 2); err != nil {
						return err
					}
				}
			}
			return nil
		})
		for _, name := range names {
			if r := createOne(t, adm, 2, 3, nil, name); !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				t.Fatalf("create %s again: %v, want TOPIC_ALREADY_EXISTS", name, r.Err)
			}
		}
		// librdkafka hides REQUEST_TIMED_OUT from an operation_timeout=0
		// create (the creation is in progress), and the topics appear.
		requireTool(t, "/usr/bin/python3")
		out := runPropagationScript(t, confluentTimeoutZeroScript, strings.Join(c.seeds(), ","), uniqueTopic(t))
		if !strings.Contains(out, "ok both listed") {
			t.Fatalf("confluent-kafka-python operation_timeout=0:\n%s", out)
		}
	})
}

// brokerIDOf is the node id of a cluster process.
func brokerIDOf(t *testing.T, c *cluster, b *brokerProcess) int32 {
	for id, n := range c.nodes {
		if n == b {
			return id
		}
	}
	t.Fatal("unknown node")
	return -1
}

// listedWithLeaders asks broker id for topic's metadata (never creating it)
// and checks it lists all partitions, each with a leader.
func listedWithLeaders(ctx context.Context, cl *kgo.Client, id int32, topic string, partitions int) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
	if err != nil {
		return fmt.Errorf("broker %d: %w", id, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("broker %d: %d topics", id, len(resp.Topics))
	}
	mt := resp.Topics[0]
	if err := kerr.ErrorForCode(mt.ErrorCode); err != nil || len(mt.Partitions) != partitions {
		return fmt.Errorf("broker %d: topic %s: %v, %d partitions (want %d)", id, topic, err, len(mt.Partitions), partitions)
	}
	for _, p := range mt.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil || p.Leader < 0 {
			return fmt.Errorf("broker %d: %s[%d]: %v, leader %d", id, topic, p.Partition, err, p.Leader)
		}
	}
	return nil
}

// requireListedByEveryBroker fails unless the first Metadata answer of
// every broker lists topic with its partitions and leaders.
func requireListedByEveryBroker(t *testing.T, ctx context.Context, c *cluster, cl *kgo.Client, topic string, partitions int) {
	t.Helper()
	for id := range c.nodes {
		if err := listedWithLeaders(ctx, cl, id, topic, partitions); err != nil {
			t.Fatalf("first metadata after the change: %v", err)
		}
	}
}

// deleteEverywhere deletes topic and checks the first Metadata answer of
// every broker no longer lists it.
func deleteEverywhere(t *testing.T, ctx context.Context, c *cluster, cl *kgo.Client, adm *kadm.Client, topic string) {
	t.Helper()
	resp, err := adm.DeleteTopic(ctx, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("delete %s: %v %v %s", topic, err, resp.Err, resp.ErrMessage)
	}
	for id := range c.nodes {
		err := listedWithLeaders(ctx, cl, id, topic, propagationPartitions)
		if err == nil || !strings.Contains(err.Error(), kerr.UnknownTopicOrPartition.Message) {
			t.Fatalf("first metadata of broker %d after deleting %s: %v, want UNKNOWN_TOPIC_OR_PARTITION", id, topic, err)
		}
	}
}

func logLatencies(t *testing.T, what string, took []time.Duration) {
	slices.Sort(took)
	t.Logf("%s: n=%d p50 %v p99 %v max %v", what, len(took), took[len(took)/2], took[len(took)*99/100], took[len(took)-1])
}

func runPropagationScript(t *testing.T, script string, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "propagation.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return string(runCmd(t, nil, 5*time.Minute, "/usr/bin/python3", append([]string{path}, args...)...))
}

// confluentPropagationScript: create (operation_timeout 30 s), then the
// first list_topics of a client bootstrapped on each node alone, then
// produce one record per partition with acks=all, then delete.
const confluentPropagationScript = `
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

seeds, rounds, partitions, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
admin = AdminClient({"bootstrap.servers": seeds})
per_node = [AdminClient({"bootstrap.servers": s}) for s in seeds.split(",")]
producer = Producer({"bootstrap.servers": seeds, "acks": "all", "message.timeout.ms": 15000, "linger.ms": 1})

def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)

for r in range(rounds):
    topic = "confluent-%d-%s" % (r, prefix)
    admin.create_topics([NewTopic(topic, partitions, 3)], operation_timeout=30, request_timeout=40)[topic].result(60)
    for i, a in enumerate(per_node):
        md = a.list_topics(topic=topic, timeout=15)
        t = md.topics.get(topic)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            fail("round %d node %d: first metadata after create: %s" % (r, i, t and (t.error, len(t.partitions))))
        for p in t.partitions.values():
            if p.error is not None or p.leader < 0:
                fail("round %d node %d: partition %d: %s leader %d" % (r, i, p.id, p.error, p.leader))
    errors = []
    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))
    for p in range(partitions):
        producer.produce(topic, value=b"v", partition=p, on_delivery=delivered)
    if producer.flush(30) != 0 or errors:
        fail("round %d: produce: %s" % (r, errors))
    admin.delete_topics([topic], operation_timeout=30, request_timeout=40)[topic].result(60)
print("ok %d rounds" % rounds)
`

// confluentTimeoutZeroScript: operation_timeout=0 returns at once and both
// topics are then listed with leaders (polled, bounded).
const confluentTimeoutZeroScript = `
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic

seeds, prefix = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": seeds})
names = [prefix + "-x", prefix + "-y"]
for name, f in admin.create_topics([NewTopic(n, 2, 3) for n in names], operation_timeout=0).items():
    f.result(30)
deadline = time.time() + 10
while True:
    md = admin.list_topics(timeout=10)
    ok = all(n in md.topics and md.topics[n].error is None and len(md.topics[n].partitions) == 2
             and all(p.leader >= 0 for p in md.topics[n].partitions.values()) for n in names)
    if ok:
        print("ok both listed")
        break
    if time.time() > deadline:
        print("FAIL not listed within 10 s: %s" % {n: md.topics.get(n) and md.topics[n].error for n in names})
        sys.exit(1)
    time.sleep(0.1)
`
