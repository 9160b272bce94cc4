//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// nemesisTopic is one topic of a scenario's workload: RF=3,
// min.insync.replicas=2, plain or tiered (small segments, a small local
// window, against the S3 server).
type nemesisTopic struct {
	name       string
	partitions int32
	tiered     bool
	valueSize  int // bytes per record value
}

func (tp nemesisTopic) configs(extra map[string]string) map[string]*string {
	configs := map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}
	if tp.tiered {
		configs = tieredTopicConfigs(128<<10, 256<<10)
		configs["min.insync.replicas"] = kadm.StringPtr("2")
	}
	for k, v := range extra {
		configs[k] = kadm.StringPtr(v)
	}
	return configs
}

// recordValue is the value a producer writes as record id: the id, then
// filler up to size, so a read-back record is checked byte for byte.
func recordValue(id string, size int) []byte {
	v := id + "|"
	if len(v) < size {
		v += strings.Repeat(string(rune('a'+len(id)%26)), size-len(v))
	}
	return []byte(v)
}

// recordID is the id of a value recordValue made ("" when it is not one).
func recordID(value []byte) string {
	id, _, ok := strings.Cut(string(value), "|")
	if !ok {
		return ""
	}
	return id
}

// ackedAt is where the produce response said a record landed.
type ackedAt struct {
	topic     string
	partition int32
	offset    int64
}

// ackLedger is what the producers sent and what was acknowledged.
type ackLedger struct {
	mu     sync.Mutex
	acked  map[string]ackedAt // record id → its acknowledged offset
	sent   map[string]int     // record id → topic index, every record sent
	failed int
}

func newAckLedger() *ackLedger {
	return &ackLedger{acked: map[string]ackedAt{}, sent: map[string]int{}}
}

// nemesisProducer writes unique values round robin over the topics'
// partitions with acks=all: idempotent (franz-go retries until delivered),
// or not idempotent with retries=0 (each value sent once: a duplicate is a
// broker bug, never a client retry).
type nemesisProducer struct {
	name       string
	idempotent bool
}

func (p nemesisProducer) run(ctx context.Context, t *testing.T, c *cluster, topics []nemesisTopic, ledger *ackLedger, every time.Duration) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5 * time.Millisecond), kgo.MaxBufferedRecords(500),
		kgo.ProduceRequestTimeout(10 * time.Second)}
	if p.idempotent {
		opts = append(opts, kgo.RecordDeliveryTimeout(2*time.Minute))
	} else {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.RecordRetries(0), kgo.RequestRetries(0))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cl.Flush(flushCtx) // what is still buffered gets its answer, or fails
			cancel()
			return
		case <-tick.C:
		}
		ti := seq % len(topics)
		topic := topics[ti]
		id := fmt.Sprintf("%s-%07d", p.name, seq)
		rec := &kgo.Record{Topic: topic.name, Partition: int32((seq / len(topics)) % int(topic.partitions)), Value: recordValue(id, topic.valueSize)}
		ledger.mu.Lock()
		ledger.sent[id] = ti
		ledger.mu.Unlock()
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			ledger.mu.Lock()
			defer ledger.mu.Unlock()
			if err != nil {
				ledger.failed++
				return
			}
			ledger.acked[id] = ackedAt{r.Topic, r.Partition, r.Offset}
		})
	}
}

// groupConsumer reads the topics in a consumer group, committing offsets
// as it goes (franz-go autocommit), until ctx ends.
func groupConsumer(ctx context.Context, t *testing.T, c *cluster, group string, topics []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(300*time.Millisecond),
		kgo.FetchMaxWait(300*time.Millisecond), kgo.SessionTimeout(10*time.Second))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		cl.PollFetches(ctx)
	}
}
