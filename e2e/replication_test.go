//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sendSignal delivers sig without waiting for the process to exit (SIGSTOP,
// SIGCONT).
func (b *brokerProcess) sendSignal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(sig)
	}
}

// partitionLog concatenates a partition's .log files in offset order: the
// replica's log as bytes, whatever its segment boundaries.
func partitionLog(t *testing.T, dataDir, topic string, partition int32) []byte {
	t.Helper()
	dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var out []byte
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data...)
	}
	return out
}

// TestMinInsyncReplicasReplicaDown: on an RF=3 topic with min.insync.replicas raised
// to 3 and a replica down (the metadata quorum keeps its majority), acks=all
// writes are refused with NOT_ENOUGH_REPLICAS and nothing refused is
// readable; writes resume when the replica returns. (Faults under load are
// TestNemesis's.)
func TestMinInsyncReplicasReplicaDown(t *testing.T) {
	c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
		return "", []string{"--replica-lag-time-max-ms", "2000"}
	})
	ctx := testContext(t, 3*time.Minute)
	adm := c.admin()
	topic := uniqueTopic(t)
	resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	before := c.client(t, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()))
	const total = 50
	for i := range total {
		if err := before.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("before-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// min.insync.replicas=3 with a replica down (the metadata quorum keeps
	// its majority): refused, nothing acknowledged; writes resume when the
	// replica returns.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "min.insync.replicas", Value: kadm.StringPtr("3")}}, topic); err != nil {
		t.Fatal(err)
	}
	m, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := m.Topics[topic].Partitions[0].Leader
	var down int32
	for _, r := range m.Topics[topic].Partitions[0].Replicas {
		if r != leader {
			down = r
			break
		}
	}
	c.nodes[down].kill()
	one := newClient(t, c.nodes[leader].addr, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(0), kgo.RequestRetries(0))
	// Until the ISR shrinks a write may be appended and then time out
	// (never acknowledged); once it has, NOT_ENOUGH_REPLICAS refuses the
	// write before appending it.
	attempt, refused := 0, ""
	eventually(t, 30*time.Second, "NOT_ENOUGH_REPLICAS with a replica down", func() error {
		attempt++
		v := fmt.Sprintf("attempt-%d", attempt)
		err := one.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr()
		if errors.Is(err, kerr.NotEnoughReplicas) {
			refused = v
			return nil
		}
		if err == nil {
			t.Fatalf("%s acknowledged with a replica down and min.insync.replicas=3", v)
		}
		return fmt.Errorf("produce with a replica down: %T %v", err, err)
	})
	c.nodes[down].restart(t)
	eventually(t, 60*time.Second, "writes resuming with three replicas", func() error {
		return one.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("resumed")}).FirstErr()
	})
	got := consumeAll(t, c.nodes[leader].addr, topic, total+1, kgo.SeedBrokers(c.seeds()...))
	for _, r := range got {
		if string(r.Value) == refused {
			t.Fatalf("the write refused with NOT_ENOUGH_REPLICAS is readable at offset %d", r.Offset)
		}
	}
}
