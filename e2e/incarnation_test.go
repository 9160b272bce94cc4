//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestIncarnations: every start of a broker is a new incarnation that
// takes nothing over from the one before (docs/architecture.md,
// "Incarnations"), on real processes.
//
//   - A second process with a live node's id (another data dir) does not
//     fence the first: it exits non-zero, saying the node id is in use
//     (DUPLICATE_BROKER_REGISTRATION), and the first keeps serving. Its
//     Raft never gets a leader (the quorum replicates to the address it
//     lists for the id), so it asks the voters whether its registration
//     would be admitted, and gives up once the refusal has outlasted a
//     session timeout, well before its quorum timeout.
//   - A leader, and a follower, killed with SIGKILL and restarted at once
//     replace their earlier incarnation without waiting for its session to
//     end, leave the ISR (no clean-shutdown marker) and rejoin it only once
//     the leader sees them caught up; no acknowledged record is lost.
func TestIncarnations(t *testing.T) {
	c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
		return "", []string{"--log-format", "json"}
	})
	ctx := testContext(t, 3*time.Minute)
	topic := uniqueTopic(t)
	adm := c.admin()
	minISR := "2"
	if resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	producer := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	var acked []string
	produce := func(n int) {
		t.Helper()
		for range n {
			value := fmt.Sprintf("v-%05d", len(acked))
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", value, err)
			}
			acked = append(acked, value)
		}
	}
	produce(200)

	t.Run("a second process with a live node's id exits and the first keeps serving", func(t *testing.T) {
		first := c.nodes[2]
		dir := t.TempDir()
		second := &brokerProcess{
			dataDir: filepath.Join(dir, "data"), addr: freePort(t), admin: freePort(t), ctrl: freePort(t),
			logPath: filepath.Join(dir, "second.log"),
			extra:   append(append(c.memberFlags(2), clusterTimingFlags...), "--controller-quorum-timeout-ms", "30000"),
		}
		t.Cleanup(func() {
			second.kill()
			if t.Failed() {
				logTail(t, second.logPath)
			}
		})
		started := time.Now()
		if err := second.start(); err == nil {
			t.Fatal("a second process with node id 2 became ready")
		}
		t.Logf("the second process exited after %v (quorum timeout 30 s)", time.Since(started))
		if code := second.exitCode(); code == 0 || code == -1 {
			t.Fatalf("second process exit code %d, want non-zero", code)
		}
		log, _ := os.ReadFile(second.logPath)
		if !strings.Contains(string(log), "node id 2 is in use by another live process, on another data directory (DUPLICATE_BROKER_REGISTRATION)") {
			t.Errorf("the second process does not say why it exited (a node id in use):\n%s", log)
		}
		if !first.running() {
			t.Fatal("the first process with node id 2 stopped")
		}
		for _, broker := range c.status(1).Brokers {
			if broker.ID == 2 && broker.Fenced {
				t.Fatal("broker 2 is fenced")
			}
		}
		produce(50)
		got := consumeAll(t, first.addr, topic, len(acked))
		if len(got) != len(acked) {
			t.Fatalf("consumed %d records through node 2, want %d", len(got), len(acked))
		}
	})

	// A replica killed with SIGKILL and restarted at once: its earlier
	// incarnation is replaced without waiting for its session to end, it
	// leaves the ISR (no clean-shutdown marker), and it rejoins only once
	// the leader sees it caught up (an ISR expansion, which the leader
	// proposes only for a follower that fetched up to the high
	// watermark); no acknowledged record is lost. (Fencing takes a
	// follower out of the ISR too, but only once its session ends.)
	for _, role := range []string{"leader", "follower"} {
		t.Run("a "+role+" killed and restarted at once leaves the ISR until it has caught up", func(t *testing.T) {
			before := partitionState(t, ctx, adm, topic)
			victim := before.Leader
			if role == "follower" {
				victim = -1
				for _, r := range before.ISR {
					if r != before.Leader {
						victim = r
						break
					}
				}
				if victim == -1 {
					t.Fatalf("no follower in the ISR %v", before.ISR)
				}
			}
			killedAt := time.Now()
			c.nodes[victim].kill()
			c.nodes[victim].restart(t)
			t.Logf("%s %d killed and ready again in %v", role, victim, time.Since(killedAt))

			// The registration that drops it from the ISR may not have
			// reached the others' metadata yet when this starts: wait for
			// the rejoin a leader logged, not only for a full ISR.
			others := c.admin(victim)
			rejoined := func() bool {
				for id, b := range c.nodes {
					if id == victim {
						continue
					}
					for _, entry := range jsonLog(t, b.logPath) {
						if entry.Time.After(killedAt) && entry.Msg == "ISR changed" && entry.Topic == topic &&
							slices.Contains(entry.ISR, victim) && !slices.Contains(entry.PreviousISR, victim) {
							return true
						}
					}
				}
				return false
			}
			eventually(t, time.Minute, "the restarted node back in the ISR, added by its leader", func() error {
				after := partitionState(t, ctx, others, topic)
				if !slices.Contains(after.ISR, victim) || len(after.ISR) != 3 || (role == "leader" && after.LeaderEpoch <= before.LeaderEpoch) {
					return fmt.Errorf("leader %d epoch %d ISR %v (before: leader %d epoch %d)", after.Leader, after.LeaderEpoch, after.ISR, before.Leader, before.LeaderEpoch)
				}
				if !rejoined() {
					return fmt.Errorf("no leader logged adding node %d back to the ISR after its restart: it kept its ISR place across an unclean restart", victim)
				}
				return nil
			})
			produce(50)
			got := consumeAll(t, c.nodes[victim].addr, topic, len(acked))
			values := make([]string, len(got))
			for i, r := range got {
				values[i] = string(r.Value)
				if r.Offset != int64(i) {
					t.Fatalf("record %d at offset %d", i, r.Offset)
				}
			}
			if !slices.Equal(values, acked) {
				t.Fatalf("consumed %d records, want the %d acknowledged in order", len(values), len(acked))
			}
		})
	}
}

// partitionState is partition 0 of topic as adm's brokers see it.
func partitionState(t *testing.T, ctx interface {
	Deadline() (time.Time, bool)
	Done() <-chan struct{}
	Err() error
	Value(any) any
}, adm *kadm.Client, topic string) kadm.PartitionDetail {
	t.Helper()
	m, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := m.Topics[topic].Partitions[0]
	if !ok {
		t.Fatalf("no partition 0 of %s in %+v", topic, m.Topics[topic])
	}
	return p
}

// logEntry is the part of a JSON log line the tests look at.
type logEntry struct {
	Time        time.Time `json:"time"`
	Msg         string    `json:"msg"`
	Topic       string    `json:"topic"`
	ISR         []int32   `json:"isr"`
	PreviousISR []int32   `json:"previous_isr"`
}

// jsonLog parses a --log-format json log, skipping lines that are not
// JSON.
func jsonLog(t *testing.T, path string) []logEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logEntry
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var entry logEntry
		if json.Unmarshal(scanner.Bytes(), &entry) == nil {
			out = append(out, entry)
		}
	}
	return out
}
