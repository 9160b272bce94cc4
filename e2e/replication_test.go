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
	"sort"
	"sync"
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

// TestReplicationFaults: idempotent acks=all producers write to an RF=3,
// min.insync.replicas=2 topic of 6 partitions while a fault loop kills
// partition leaders with -9 and restarts them, and freezes a follower past
// replica.lag.time.max.ms. Afterwards every acknowledged record is read
// exactly once, in order, without gaps, and the replicas hold the same
// bytes. Then min.insync.replicas is tested: raised to 3 with a replica
// down, writes are refused (NOT_ENOUGH_REPLICAS), and resume when the
// replica returns.
func TestReplicationFaults(t *testing.T) {
	c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
		return "", []string{"--replica-lag-time-max-ms", "2000"}
	})
	ctx := testContext(t, 5*time.Minute)
	adm := c.admin()
	topic := uniqueTopic(t)
	const partitions = 6
	resp, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2"), "segment.bytes": kadm.StringPtr("262144")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}

	// Producers: one idempotent producer per partition, acks=all, writing
	// sequence numbers; acked[p] is what was acknowledged, in order.
	var mu sync.Mutex
	acked := make([][]string, partitions)
	failedWrites := 0
	produceCtx, stopProducing := context.WithCancel(ctx)
	var producers sync.WaitGroup
	for p := range int32(partitions) {
		cl := c.client(t, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000),
			kgo.RetryTimeout(2*time.Minute), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
		producers.Go(func() {
			for i := 0; produceCtx.Err() == nil; i++ {
				v := fmt.Sprintf("p%d-%06d", p, i)
				err := cl.ProduceSync(produceCtx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr()
				mu.Lock()
				if err == nil {
					acked[p] = append(acked[p], v)
				} else if produceCtx.Err() == nil {
					failedWrites++
				}
				mu.Unlock()
				if err != nil && produceCtx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}

	// Fault loop, at least 60 s.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	loopEnd := time.Now().Add(60 * time.Second)
	kills, freezes := 0, 0
	for round := 0; time.Now().Before(loopEnd); round++ {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if round%3 == 2 {
			// Freeze a follower of some partition past the lag time.
			p := m.Topics[topic].Partitions[int32(rng.IntN(partitions))]
			var follower int32 = -1
			for _, r := range p.Replicas {
				if r != p.Leader {
					follower = r
					break
				}
			}
			if follower > 0 {
				c.nodes[follower].sendSignal(syscall.SIGSTOP)
				time.Sleep(4 * time.Second)
				c.nodes[follower].sendSignal(syscall.SIGCONT)
				freezes++
			}
		} else {
			leader := m.Topics[topic].Partitions[int32(rng.IntN(partitions))].Leader
			if leader > 0 {
				c.nodes[leader].kill()
				time.Sleep(2 * time.Second)
				c.nodes[leader].restart(t)
				kills++
			}
		}
		time.Sleep(2 * time.Second)
	}
	stopProducing()
	producers.Wait()
	t.Logf("fault loop: %d leader kills, %d follower freezes; %d writes failed and were retried by the test", kills, freezes, failedWrites)

	// Every acknowledged record exactly once, in order per partition, and
	// offsets dense (no gap) in what a consumer reads.
	total := 0
	for _, a := range acked {
		total += len(a)
	}
	eventually(t, 60*time.Second, "every partition's ISR back to 3 replicas", func() error {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range m.Topics[topic].Partitions {
			if len(p.ISR) != 3 || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	})
	consumer := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	read := make([][]string, partitions)
	offsets := make([][]int64, partitions)
	readCtx, cancelRead := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelRead()
	readTotal := 0
	for readTotal < total {
		fetches := consumer.PollFetches(readCtx)
		if readCtx.Err() != nil {
			break
		}
		fetches.EachRecord(func(r *kgo.Record) {
			read[r.Partition] = append(read[r.Partition], string(r.Value))
			offsets[r.Partition] = append(offsets[r.Partition], r.Offset)
			readTotal++
		})
	}
	lost, duplicated := 0, 0
	for p := range partitions {
		seen := map[string]int{}
		for _, v := range read[p] {
			seen[v]++
		}
		for _, v := range acked[p] {
			if seen[v] == 0 {
				lost++
			}
		}
		for _, n := range seen {
			if n > 1 {
				duplicated += n - 1
			}
		}
		// Order: what was acknowledged appears in the same order.
		pos := map[string]int{}
		for i, v := range read[p] {
			pos[v] = i
		}
		for i := 1; i < len(acked[p]); i++ {
			if pos[acked[p][i]] < pos[acked[p][i-1]] {
				t.Errorf("partition %d: %s read before %s", p, acked[p][i], acked[p][i-1])
				break
			}
		}
		for i := 1; i < len(offsets[p]); i++ {
			if offsets[p][i] != offsets[p][i-1]+1 {
				t.Errorf("partition %d: offset %d after %d", p, offsets[p][i], offsets[p][i-1])
				break
			}
		}
	}
	t.Logf("acknowledged %d, read %d, lost %d, duplicated %d", total, readTotal, lost, duplicated)
	if lost != 0 || duplicated != 0 {
		t.Fatalf("lost %d, duplicated %d acknowledged records", lost, duplicated)
	}

	// Replicas hold the same bytes (all caught up: ISR is full and nothing
	// is being written).
	eventually(t, 30*time.Second, "replicas byte-identical", func() error {
		for p := range int32(partitions) {
			var first []byte
			for id, b := range c.nodes {
				data := partitionLog(t, b.dataDir, topic, p)
				if first == nil {
					first = data
					continue
				}
				if !bytes.Equal(first, data) {
					return fmt.Errorf("partition %d: node %d holds %d bytes, another replica %d", p, id, len(data), len(first))
				}
			}
		}
		return nil
	})

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
