//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCleanStopLeavesISR: a follower stopped cleanly (SIGTERM: a
// controlled shutdown) leaves the partition's ISR at once, so acks=all
// produces to its leader go on without it. replica.lag.time.max.ms is ten
// minutes here, far beyond the test's own limit: without the controller
// taking the stopping broker out of the ISR, the first produce after the
// stop would wait for the leader's lag check, and never be acknowledged
// within the test. Restarted, the follower catches up and rejoins the
// ISR through the leader's ordinary expansion.
func TestCleanStopLeavesISR(t *testing.T) {
	c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
		return "", []string{"--replica-lag-time-max-ms", "600000"}
	})
	ctx := testContext(t, time.Minute)
	topic := uniqueTopic(t)
	if resp, err := c.admin().CreateTopic(ctx, 1, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	partition := func(adm *kadm.Client) kadm.PartitionDetail {
		t.Helper()
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return m.Topics[topic].Partitions[0]
	}
	p := partition(c.admin())
	if len(p.ISR) != 3 {
		t.Fatalf("ISR %v after create, want all three replicas", p.ISR)
	}
	leader := p.Leader
	follower := p.Replicas[0]
	if follower == leader {
		follower = p.Replicas[1]
	}
	produce := func(cl *kgo.Client, n int, prefix string) {
		t.Helper()
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
				t.Fatalf("%s-%d: %v", prefix, i, err)
			}
		}
	}
	cl := newClient(t, c.nodes[leader].addr, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.SeedBrokers(c.seeds(follower)...))
	produce(cl, 20, "before")

	if err := c.nodes[follower].stop(); err != nil {
		t.Fatal(err)
	}
	// An acks=all produce in flight is not given up by its context (the
	// client retries it until the ISR shrinks): the test stops waiting
	// after 30 s, far below the lag time.
	acked := make(chan error, 1)
	go func() {
		acked <- cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after")}).FirstErr()
	}()
	select {
	case err := <-acked:
		if err != nil {
			t.Fatalf("produce after broker %d stopped: %v", follower, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("acks=all produce not acknowledged within 30 s after broker %d stopped cleanly (replica.lag.time.max.ms is 10 minutes): it is still in the ISR", follower)
	}
	produce(cl, 20, "after")
	adm := c.admin(follower)
	// The broker answering Metadata may apply the ISR change a moment
	// after the leader acted on it (the acknowledgements above).
	eventually(t, 10*time.Second, fmt.Sprintf("broker %d out of the ISR in Metadata", follower), func() error {
		if p := partition(adm); p.Leader != leader || slices.Contains(p.ISR, follower) {
			return fmt.Errorf("after broker %d stopped cleanly: leader %d, ISR %v; want leader %d, without %d", follower, p.Leader, p.ISR, leader, follower)
		}
		return nil
	})

	c.nodes[follower].restart(t)
	eventually(t, 30*time.Second, fmt.Sprintf("broker %d back in the ISR", follower), func() error {
		if p := partition(adm); !slices.Contains(p.ISR, follower) {
			return fmt.Errorf("ISR %v", p.ISR)
		}
		return nil
	})
}
