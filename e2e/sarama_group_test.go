//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
)

// saramaGroupHandler records every message it is given and marks it.
type saramaGroupHandler struct {
	mu       sync.Mutex
	seen     map[string]int
	assigned map[int32]bool
	total    int
	want     int
	done     chan struct{}
	once     sync.Once
}

func (h *saramaGroupHandler) Setup(s sarama.ConsumerGroupSession) error { return nil }
func (h *saramaGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaGroupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		h.seen[string(msg.Value)]++
		h.total++
		if h.total >= h.want {
			h.once.Do(func() { close(h.done) })
		}
		h.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

// TestSaramaConsumerGroup: two sarama group members (modern and old
// protocol versions) share a topic's partitions, consume every record once,
// and commit offsets that the group's offsets then show.
func TestSaramaConsumerGroup(t *testing.T) {
	b := startBroker(t, "--group-initial-rebalance-delay-ms", "0")
	for _, ver := range []struct {
		name string
		v    sarama.KafkaVersion
	}{{"kafka-3.6", sarama.V3_6_0_0}, {"kafka-1.0", sarama.V1_0_0_0}} {
		t.Run(ver.name, func(t *testing.T) {
			useSaramaLog(t)
			topic := uniqueTopic(t)
			createTopic(t, b.addr, topic, 4, nil)
			const n = 400
			cl := newClient(t, b.addr, manualPartitioner())
			for p := int32(0); p < 4; p++ {
				var values []string
				for i := 0; i < n/4; i++ {
					values = append(values, fmt.Sprintf("%s-%d-%d", ver.name, p, i))
				}
				produceSync(t, cl, topic, p, values...)
			}
			group := "sarama-" + topic
			cfg := saramaConfig(ver.v)
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.Group.Session.Timeout = 6 * time.Second
			cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
			cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
			handler := &saramaGroupHandler{seen: map[string]int{}, want: n, done: make(chan struct{})}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var groups []sarama.ConsumerGroup
			for m := 0; m < 2; m++ {
				g, err := sarama.NewConsumerGroup([]string{b.addr}, group, cfg)
				if err != nil {
					t.Fatal(err)
				}
				groups = append(groups, g)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if err := g.Consume(ctx, []string{topic}, handler); err != nil && ctx.Err() == nil {
							t.Logf("member %d: %v", m, err)
							time.Sleep(200 * time.Millisecond)
						}
					}
				}()
			}
			select {
			case <-handler.done:
			case <-ctx.Done():
				t.Fatalf("consumed %d of %d records before the deadline", handler.total, n)
			}
			// Let the auto-commit flush, then stop both members.
			time.Sleep(500 * time.Millisecond)
			cancel()
			for _, g := range groups {
				g.Close()
			}
			wg.Wait()
			handler.mu.Lock()
			defer handler.mu.Unlock()
			// Group consumption is at-least-once (a rebalance may hand a
			// record out again before its offset is committed): every record
			// must arrive, and the committed offsets must cover all of them.
			if len(handler.seen) != n {
				t.Fatalf("%d distinct records consumed, want %d", len(handler.seen), n)
			}
			if handler.total > n {
				t.Logf("%d records redelivered after a rebalance", handler.total-n)
			}
			offsets, err := kadm.NewClient(newClient(t, b.addr)).FetchOffsets(testContext(t, 10*time.Second), group)
			if err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < 4; p++ {
				o, ok := offsets.Lookup(topic, p)
				if !ok || o.At != n/4 {
					t.Fatalf("committed offset of partition %d: %+v, want %d", p, o, n/4)
				}
			}
		})
	}
}
