//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReassignUnderLoad: every partition of a topic on brokers {1,2} moves
// to {2,3} (kadm AlterPartitionReassignments) while an acks=all producer
// writes to it; the catch-up traffic is held by a leader replication
// throttle set as a dynamic broker config, so ListPartitionReassignments
// sees the move in progress. Afterwards every acknowledged record reads
// back, the partitions are on {2,3}, and broker 1 deleted its copies.
// Then leadership: broker 2 (the preferred leader) is killed and comes
// back, and kadm ElectLeaders PREFERRED gives its partitions back; sarama's
// ElectLeaders and kafka-go's AlterPartitionReassignments get Kafka's
// answers for what needs nothing or is invalid.
func TestReassignUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testContext(t, 3*time.Minute)
	adm := c.admin()
	topic := uniqueTopic(t)
	const partitions = 3
	createAssigned(t, ctx, c, topic, "2", [][]int32{{1, 2}, {2, 1}, {1, 2}})
	// Load: an acks=all producer writes until stopped, 900 KiB before the
	// move, so that the throttled catch-up takes a while.
	load := startLoad(t, ctx, c, topic, 900)
	// 100 KiB/s out of each leader for the replicas being added.
	rate := "102400"
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "leader.replication.throttled.rate", Value: &rate}}); err != nil {
		t.Fatalf("set the throttle: %v", err)
	}
	eventually(t, 10*time.Second, "the throttle described as the cluster default", func() error {
		described, err := adm.DescribeBrokerConfigs(ctx, 3)
		if err != nil {
			return err
		}
		for _, rc := range described {
			for _, cfg := range rc.Configs {
				if cfg.Key == "leader.replication.throttled.rate" && cfg.MaybeValue() == rate && cfg.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig {
					return nil
				}
			}
		}
		return fmt.Errorf("broker 3 describes %+v", described)
	})

	var move kadm.AlterPartitionAssignmentsReq
	for p := range int32(partitions) {
		move.Assign(topic, p, []int32{2, 3})
	}
	results, err := adm.AlterPartitionAssignments(ctx, move)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results.Sorted() {
		if r.Err != nil {
			t.Fatalf("reassign %s[%d]: %v", r.Topic, r.Partition, r.Err)
		}
	}
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatal(err)
	}
	inProgress := 0
	for _, r := range listed.Sorted() {
		if !slices.Equal(r.AddingReplicas, []int32{3}) || len(r.RemovingReplicas) != 1 || r.RemovingReplicas[0] == 2 || r.RemovingReplicas[0] == 3 {
			t.Fatalf("listed reassignment %+v", r)
		}
		inProgress++
	}
	if inProgress == 0 {
		t.Fatal("no reassignment listed right after starting three held by a throttle")
	}
	// Lift the throttle once seen in progress, so the test stays short.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "leader.replication.throttled.rate"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every partition on {2,3} with no reassignment listed", func() error {
		listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
		if err != nil {
			return err
		}
		if len(listed.Sorted()) > 0 {
			return fmt.Errorf("still in progress: %+v", listed.Sorted())
		}
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range m.Topics[topic].Partitions.Sorted() {
			replicas := slices.Sorted(slices.Values(p.Replicas))
			if !slices.Equal(replicas, []int32{2, 3}) || p.Leader == 1 {
				return fmt.Errorf("partition %d: replicas %v leader %d", p.Partition, p.Replicas, p.Leader)
			}
		}
		return nil
	})
	// Writes continue on the new replicas, then stop.
	time.Sleep(300 * time.Millisecond) // some load after the move (not a synchronisation)
	load.checkAllRead(t, c)
	// Broker 1 is no longer a replica: its copies are gone.
	eventually(t, 20*time.Second, "broker 1 deleting its copies", func() error {
		for p := range partitions {
			dir := filepath.Join(c.nodes[1].dataDir, fmt.Sprintf("%s-%d", topic, p))
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s still there (%v)", dir, err)
			}
		}
		return nil
	})

	// kafka-go: an assignment to an unknown broker is refused; kadm: a
	// cancel with nothing in progress gets NO_REASSIGNMENT_IN_PROGRESS.
	kg := &kafka.Client{Addr: kafka.TCP(c.nodes[3].addr), Timeout: 15 * time.Second, Transport: kafkaGoTransport(t)}
	kgResp, err := kg.AlterPartitionReassignments(ctx, &kafka.AlterPartitionReassignmentsRequest{Topic: topic, Assignments: []kafka.AlterPartitionReassignmentsRequestAssignment{
		{PartitionID: 1, BrokerIDs: []int{2, 9}},
	}})
	if err != nil || kgResp.Error != nil || len(kgResp.PartitionResults) != 1 || !errors.Is(kgResp.PartitionResults[0].Error, kafka.InvalidReplicaAssignment) {
		t.Fatalf("kafka-go AlterPartitionReassignments to an unknown broker: %v %+v", err, kgResp)
	}
	var cancelNone kadm.AlterPartitionAssignmentsReq
	cancelNone.CancelAssign(topic, 0)
	cancelled, err := adm.AlterPartitionAssignments(ctx, cancelNone)
	if err != nil || !errors.Is(cancelled[topic][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel with nothing in progress: %v %+v", err, cancelled)
	}

	// Leadership: broker 2, every partition's preferred replica, dies and
	// returns; PREFERRED elections give the partitions back to it.
	c.nodes[2].kill()
	eventually(t, 30*time.Second, "broker 3 leading every partition", func() error {
		m, err := c.admin(2).Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range m.Topics[topic].Partitions.Sorted() {
			if p.Leader != 3 {
				return fmt.Errorf("partition %d led by %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
	c.nodes[2].restart(t)
	eventually(t, 60*time.Second, "broker 2 back in every ISR", func() error {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range m.Topics[topic].Partitions.Sorted() {
			if !slices.Contains(p.ISR, 2) {
				return fmt.Errorf("partition %d ISR %v", p.Partition, p.ISR)
			}
		}
		return nil
	})
	// Every broker's view of broker 2 (unfenced, in sync) may trail the
	// metadata the client saw: PREFERRED_LEADER_NOT_AVAILABLE is retried,
	// as an operator would.
	eventually(t, 30*time.Second, "preferred elections giving every partition to broker 2", func() error {
		elected, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
		if err != nil {
			return err
		}
		for _, byPartition := range elected {
			for p, r := range byPartition {
				switch {
				case r.Err == nil, errors.Is(r.Err, kerr.ElectionNotNeeded): // the controller's own rebalancing may be first
				case errors.Is(r.Err, kerr.PreferredLeaderNotAvailable):
					return fmt.Errorf("partition %d: %w", p, r.Err)
				default:
					t.Fatalf("preferred election of partition %d: %v", p, r.Err)
				}
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "every broker's metadata naming broker 2 leader", func() error {
		for id := range c.nodes {
			m, err := c.admin(others(c, id)...).Metadata(ctx, topic)
			if err != nil {
				return err
			}
			for _, p := range m.Topics[topic].Partitions.Sorted() {
				if p.Leader != 2 {
					return fmt.Errorf("broker %d: partition %d led by %d after the preferred election", id, p.Partition, p.Leader)
				}
			}
		}
		return nil
	})
	// An unclean election where the leader is alive is not needed.
	unclean, err := adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || !errors.Is(unclean[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("unclean election with a live leader: %v %+v", err, unclean)
	}
	// sarama: the preferred leaders lead, so nothing is needed.
	sa, err := sarama.NewClusterAdmin([]string{c.nodes[1].addr}, saramaConfig(sarama.V3_6_0_0))
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	saResults, err := sa.ElectLeaders(sarama.PreferredElection, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatalf("sarama ElectLeaders: %v", err)
	}
	for p, r := range saResults[topic] {
		if r.ErrorCode != sarama.ErrElectionNotNeeded {
			t.Fatalf("sarama preferred election of partition %d: %v", p, r.ErrorCode)
		}
	}

	// The CLI, as an operator runs it: partition 0 moves back onto broker
	// 1 with a throttle, --verify reports it done and lifts the throttle,
	// and a preferred election then needs nothing.
	plan := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(plan, []byte(fmt.Sprintf(`{"version":1,"partitions":[{"topic":%q,"partition":0,"replicas":[1,3],"log_dirs":["any","any"]}]}`, topic)), 0o600); err != nil {
		t.Fatal(err)
	}
	bootstrap := "--bootstrap-server=" + strings.Join(c.seeds(), ",")
	strata := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, strataBin, append(args, bootstrap)...).CombinedOutput()
		return string(out), err
	}
	if out, err := strata("partitions", "reassign", "--reassignment-json-file", plan, "--execute", "--throttle", "10485760"); err != nil || !strings.Contains(out, `"replicas":[2,3]`) {
		t.Fatalf("reassign --execute (prints the assignment to roll back to): %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "reassign --verify reporting the move complete", func() error {
		out, err := strata("partitions", "reassign", "--reassignment-json-file", plan, "--verify", "--output", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var statuses []struct{ Status string }
		if err := json.Unmarshal([]byte(out), &statuses); err != nil || len(statuses) != 1 || statuses[0].Status != "complete" {
			return fmt.Errorf("verify: %s", out)
		}
		return nil
	})
	described, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range described {
		for _, cfg := range rc.Configs {
			if strings.HasSuffix(cfg.Key, ".replication.throttled.rate") && cfg.Source != kmsg.ConfigSourceDefaultConfig {
				t.Fatalf("--verify left the throttle on broker 1: %s=%s (%v)", cfg.Key, cfg.MaybeValue(), cfg.Source)
			}
		}
	}
	eventually(t, 30*time.Second, "a preferred election by the CLI", func() error {
		out, err := strata("partitions", "elect", "--type", "preferred", "--topic", topic, "--partition", "0", "--output", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var results []struct{ Status string }
		if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 || (results[0].Status != "elected" && results[0].Status != "not needed") {
			return fmt.Errorf("elect: %s", out)
		}
		return nil
	})
	if out, err := strata("partitions", "elect", "--type", "sideways"); err == nil {
		t.Fatalf("an unknown election type accepted: %s", out)
	}
}

// others are the node ids of c other than id.
func others(c *cluster, id int32) []int32 {
	var out []int32
	for other := range c.nodes {
		if other != id {
			out = append(out, other)
		}
	}
	return out
}

// createAssigned creates topic with a replica assignment (one list per
// partition) and min.insync.replicas.
func createAssigned(t *testing.T, ctx context.Context, c *cluster, topic, minISR string, assignments [][]int32) {
	t.Helper()
	create := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, replicas := range assignments {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "min.insync.replicas", Value: &minISR}}
	create.Topics = append(create.Topics, rt)
	if resp, err := create.RequestWith(ctx, c.client(t)); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v %+v", err, resp)
	}
}

// load is an acks=all producer writing 1 KiB records to a topic until
// stopped, remembering what was acknowledged.
type load struct {
	topic    string
	producer *kgo.Client
	ctx      context.Context
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	acked    map[string]bool
}

// startLoad writes initial records (and waits for them), then keeps
// writing in the background.
func startLoad(t *testing.T, ctx context.Context, c *cluster, topic string, initial int) *load {
	t.Helper()
	l := &load{topic: topic, ctx: ctx, stop: make(chan struct{}), acked: map[string]bool{},
		producer: c.client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))}
	for i := range initial {
		l.produce(i)
	}
	if err := l.producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.done.Go(func() {
		for i := initial; ; i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			l.produce(i)
		}
	})
	return l
}

func (l *load) produce(i int) {
	value := fmt.Sprintf("%08d-%01024d", i, 0)
	l.producer.Produce(l.ctx, &kgo.Record{Topic: l.topic, Value: []byte(value)}, func(r *kgo.Record, err error) {
		if err == nil {
			l.mu.Lock()
			l.acked[string(r.Value)] = true
			l.mu.Unlock()
		}
	})
}

// checkAllRead stops the load and reads the topic back: every
// acknowledged record must be there.
func (l *load) checkAllRead(t *testing.T, c *cluster) {
	t.Helper()
	close(l.stop)
	l.done.Wait()
	if err := l.producer.Flush(l.ctx); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want := len(l.acked)
	seeds := c.seeds()
	got := consumeAll(t, seeds[0], l.topic, want, kgo.SeedBrokers(seeds...))
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	for value := range l.acked {
		if !seen[value] {
			t.Fatalf("acknowledged record %.8s not read back (%d acknowledged, %d read)", value, want, len(got))
		}
	}
	t.Logf("%d acknowledged records all read back", want)
}

// TestReassignSurvivesRestarts: a move of a partition from {1,2} to {2,3},
// held by a throttle, goes through a kill -9 of the controller and of the
// replica being added (both restarted): the reassignment is still listed
// afterwards (its state is in the quorum, not in any process). It finishes
// once the throttle is lifted while broker 1, the replica being removed,
// is down; broker 1 deletes its copy when it returns; and every record an
// acks=all producer got acknowledged throughout reads back.
func TestReassignSurvivesRestarts(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testContext(t, 3*time.Minute)
	adm := c.admin()
	topic := uniqueTopic(t)
	createAssigned(t, ctx, c, topic, "2", [][]int32{{1, 2}})
	load := startLoad(t, ctx, c, topic, 600)
	rate := "10240" // 10 KiB/s: the 600 KiB take a minute, held until lifted
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "leader.replication.throttled.rate", Value: &rate}}); err != nil {
		t.Fatal(err)
	}
	var move kadm.AlterPartitionAssignmentsReq
	move.Assign(topic, 0, []int32{2, 3})
	if results, err := adm.AlterPartitionAssignments(ctx, move); err != nil || results[topic][0].Err != nil {
		t.Fatalf("reassign: %v %+v", err, results)
	}
	inProgress := func(admin *kadm.Client) error {
		listed, err := admin.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			return err
		}
		if r, ok := listed[topic][0]; !ok || !slices.Equal(r.AddingReplicas, []int32{3}) || !slices.Equal(r.RemovingReplicas, []int32{1}) {
			return fmt.Errorf("listed %+v", listed)
		}
		return nil
	}
	if err := inProgress(adm); err != nil {
		t.Fatal(err)
	}

	// The controller dies and comes back.
	controller := c.status(3).Controller
	if controller < 1 || controller > 3 {
		t.Fatalf("controller %d", controller)
	}
	c.nodes[controller].kill()
	c.nodes[controller].restart(t)
	// So does the replica being added (if it was not the controller).
	if controller != 3 {
		c.nodes[3].kill()
		c.nodes[3].restart(t)
	}
	c.waitLiveBrokers(3)
	eventually(t, 30*time.Second, "the reassignment listed after the restarts", func() error { return inProgress(c.admin()) })
	// Broker 2 left the ISR if it was the controller killed above; with
	// broker 1 then the only in-sync replica, killing it would leave the
	// partition offline until it returns (no unclean election, as in
	// Kafka), so wait for 2 to be back in sync first.
	eventually(t, 30*time.Second, "broker 2 back in the ISR", func() error {
		m, err := c.admin().Metadata(ctx, topic)
		if err != nil {
			return err
		}
		if isr := m.Topics[topic].Partitions[0].ISR; !slices.Contains(isr, 2) {
			return fmt.Errorf("ISR %v", isr)
		}
		return nil
	})

	// Broker 1, the replica being removed, is down when the move
	// finishes: it deletes its copy when it comes back.
	c.nodes[1].kill()
	if _, err := c.admin(1).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "leader.replication.throttled.rate"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the partition on {2,3}", func() error {
		admin := c.admin(1)
		listed, err := admin.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			return err
		}
		if len(listed.Sorted()) > 0 {
			return fmt.Errorf("still in progress: %+v", listed.Sorted())
		}
		m, err := admin.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		p := m.Topics[topic].Partitions[0]
		if !slices.Equal(slices.Sorted(slices.Values(p.Replicas)), []int32{2, 3}) || p.Leader == 1 {
			return fmt.Errorf("replicas %v leader %d", p.Replicas, p.Leader)
		}
		return nil
	})
	c.nodes[1].restart(t)
	c.waitLiveBrokers(3)
	eventually(t, 30*time.Second, "broker 1 deleting its copy", func() error {
		dir := filepath.Join(c.nodes[1].dataDir, topic+"-0")
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s still there (%v)", dir, err)
		}
		return nil
	})
	load.checkAllRead(t, c)
}
