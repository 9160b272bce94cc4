//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/internal/childproc"
)

// cluster is n strata processes on loopback forming one metadata quorum
// (every node a voter, combined mode), formatted by serve itself from
// --cluster-id as compose does.
type cluster struct {
	t         *testing.T
	clusterID string
	nodes     map[int32]*brokerProcess
	quorum    string
	// secretFile is the cluster secret every node is started with.
	secretFile string
}

// generateClusterSecret writes a new cluster secret file in dir with
// strata format --generate-cluster-secret, as an operator would.
func generateClusterSecret(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "cluster.secret")
	if out, err := exec.Command(strataBin, "format", "--generate-cluster-secret", path).CombinedOutput(); err != nil {
		tb.Fatalf("strata format --generate-cluster-secret: %v\n%s", err, out)
	}
	return path
}

// memberFlags are the serve flags that make a process a member of c.
func (c *cluster) memberFlags(id int32) []string {
	return []string{"--node-id", fmt.Sprint(id), "--cluster-id", c.clusterID, "--controller-quorum", c.quorum, "--cluster-secret-file", c.secretFile}
}

// Short sessions so failover tests take seconds: heartbeats every 200 ms,
// fenced after 1.5 s of silence.
var clusterTimingFlags = []string{"--broker-heartbeat-interval-ms", "200", "--broker-session-timeout-ms", "1500"}

func startCluster(t *testing.T, n int32) *cluster { return startClusterWith(t, n, nil) }

// nodeSetup adjusts one node before the cluster starts: the address the
// other voters dial for it (its quorum entry; "" = its controller
// listener) and extra serve flags.
type nodeSetup func(id int32, b *brokerProcess) (quorumAddress string, extra []string)

func startClusterWith(t *testing.T, n int32, setup nodeSetup) *cluster {
	t.Helper()
	c := &cluster{t: t, clusterID: "e2e-cluster-" + fmt.Sprint(time.Now().UnixNano()%1_000_000), nodes: map[int32]*brokerProcess{}}
	var voters []string
	extras := map[int32][]string{}
	dir := t.TempDir()
	c.secretFile = generateClusterSecret(t, dir)
	for id := int32(1); id <= n; id++ {
		b := &brokerProcess{
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", id), "data"),
			addr:    freePort(t), admin: freePort(t), ctrl: freePort(t),
			logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", id)),
		}
		address := b.ctrl
		if setup != nil {
			var quorumAddress string
			quorumAddress, extras[id] = setup(id, b)
			if quorumAddress != "" {
				address = quorumAddress
			}
		}
		c.nodes[id] = b
		voters = append(voters, fmt.Sprintf("%d@%s", id, address))
	}
	c.quorum = strings.Join(voters, ",")
	for id, b := range c.nodes {
		b.extra = append(append(c.memberFlags(id), clusterTimingFlags...), extras[id]...)
	}
	t.Cleanup(func() {
		for id, b := range c.nodes {
			b.kill()
			if t.Failed() {
				t.Logf("--- node %d", id)
				logTail(t, b.logPath)
			}
		}
	})
	// Every node waits for a quorum, so they start together.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for id, b := range c.nodes {
		wg.Go(func() {
			if err := b.start(); err != nil {
				errs <- fmt.Errorf("node %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitLiveBrokers(n)
	return c
}

// waitLiveBrokers waits until every running node's metadata lists n
// registered, unfenced brokers: a node that is ready itself may not have
// applied the other brokers' registrations yet, and tests that count
// brokers or create topics with replicas on all of them need every node to.
func (c *cluster) waitLiveBrokers(n int32) {
	c.t.Helper()
	eventually(c.t, time.Minute, fmt.Sprintf("every node seeing %d live brokers", n), func() error {
		for id, b := range c.nodes {
			if !b.running() {
				continue
			}
			live := int32(0)
			for _, broker := range c.status(id).Brokers {
				if !broker.Fenced {
					live++
				}
			}
			if live != n {
				return fmt.Errorf("node %d sees %d live brokers", id, live)
			}
		}
		return nil
	})
}

// seeds are every running node's client address.
func (c *cluster) seeds(except ...int32) []string {
	var out []string
	for id, b := range c.nodes {
		if !containsID(except, id) {
			out = append(out, b.addr)
		}
	}
	return out
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// client is a franz-go client seeded with every running node (later
// options win).
func (c *cluster) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	return newClient(t, c.seeds()[0], append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...)}, opts...)...)
}

func (c *cluster) admin(except ...int32) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds(except...)...))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// status reads GET /v1/cluster from a node, as `strata cluster status
// --output json` prints it.
type clusterStatus struct {
	ClusterID  string `json:"cluster_id"`
	Controller int32  `json:"controller"`
	Voters     []struct {
		NodeID  int32  `json:"node_id"`
		Address string `json:"address"`
		Voting  bool   `json:"voting"`
	} `json:"voters"`
	Brokers []struct {
		ID     int32 `json:"id"`
		Fenced bool  `json:"fenced"`
	} `json:"brokers"`
}

// voting counts the members of the quorum that vote.
func (s clusterStatus) voting() int {
	n := 0
	for _, v := range s.Voters {
		if v.Voting {
			n++
		}
	}
	return n
}

func (c *cluster) status(id int32) clusterStatus {
	c.t.Helper()
	out, err := exec.Command(strataBin, "cluster", "status", "--admin", c.nodes[id].admin, "--output", "json").CombinedOutput()
	if err != nil {
		c.t.Fatalf("strata cluster status on node %d: %v\n%s", id, err, out)
	}
	var s clusterStatus
	if err := json.Unmarshal(out, &s); err != nil {
		c.t.Fatalf("cluster status: %v\n%s", err, out)
	}
	return s
}

// eventually retries f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCluster runs a 3-node cluster through the scenarios, one
// after the other on the same processes.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testContext(t, 5*time.Minute)
	adm := c.admin()

	t.Run("metadata lists every broker and a live controller", func(t *testing.T) {
		eventually(t, 10*time.Second, "3 brokers in metadata", func() error {
			m, err := adm.BrokerMetadata(ctx)
			if err != nil {
				return err
			}
			if len(m.Brokers) != 3 || !containsID([]int32{1, 2, 3}, m.Controller) {
				return fmt.Errorf("brokers %v, controller %d", m.Brokers.NodeIDs(), m.Controller)
			}
			return nil
		})
		s := c.status(2)
		if s.ClusterID != c.clusterID || s.voting() != 3 || len(s.Brokers) != 3 {
			t.Fatalf("cluster status: %+v", s)
		}
		// Exactly one node reports itself as controller, and every node sees
		// three live brokers.
		controllers := 0
		for _, n := range c.nodes {
			controllers += int(metricValue(t, n, "strata_controller_active"))
			if v := metricValue(t, n, "strata_brokers_alive"); v != 3 {
				t.Fatalf("strata_brokers_alive = %v on %s", v, n.admin)
			}
		}
		if controllers != 1 {
			t.Fatalf("%d nodes report strata_controller_active 1", controllers)
		}
	})

	topic := uniqueTopic(t)
	records := map[int32][]string{}
	t.Run("topics created on any node spread over the brokers", func(t *testing.T) {
		for id := range c.nodes {
			one := kadm.NewClient(newClient(t, c.nodes[id].addr))
			name := fmt.Sprintf("%s-via-%d", topic, id)
			resp, err := one.CreateTopic(ctx, 6, 1, nil, name)
			if err != nil || resp.Err != nil {
				t.Fatalf("create through node %d: %v %v", id, err, resp.Err)
			}
		}
		resp, err := adm.CreateTopic(ctx, 6, 1, nil, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create: %v %v", err, resp.Err)
		}
		var leaders map[int32]int
		eventually(t, 10*time.Second, "every partition led", func() error {
			leaders = map[int32]int{}
			m, err := adm.Metadata(ctx, topic)
			if err != nil {
				return err
			}
			if td := m.Topics[topic]; td.Err != nil || len(td.Partitions) != 6 {
				return fmt.Errorf("topic: %v, %d partitions", td.Err, len(td.Partitions))
			}
			for _, p := range m.Topics[topic].Partitions {
				if p.Leader < 0 {
					return fmt.Errorf("partition %d has no leader", p.Partition)
				}
				leaders[p.Leader]++
			}
			return nil
		})
		if len(leaders) != 3 {
			t.Fatalf("leaders %v: want all three brokers to lead", leaders)
		}
		// More replicas than live brokers: refused clearly.
		if resp, _ := adm.CreateTopic(ctx, 1, 4, nil, topic+"-rf4"); !errors.Is(resp.Err, kerr.InvalidReplicationFactor) {
			t.Fatalf("RF=4 on 3 brokers: %v, want INVALID_REPLICATION_FACTOR", resp.Err)
		}
		producer := c.client(t, manualPartitioner())
		for p := range int32(6) {
			for i := range 50 {
				v := fmt.Sprintf("p%d-r%d", p, i)
				if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatalf("produce to partition %d: %v", p, err)
				}
				records[p] = append(records[p], v)
			}
		}
	})

	t.Run("killing the metadata leader elects a new controller", func(t *testing.T) {
		s := c.status(1)
		old := s.Controller
		if old < 1 {
			t.Fatalf("no controller: %+v", s)
		}
		before, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[old].kill()
		start := time.Now()
		others := kadm.NewClient(c.client(t, kgo.SeedBrokers(c.seeds(old)...)))
		eventually(t, 20*time.Second, "creating a topic after the leader died", func() error {
			resp, err := others.CreateTopic(ctx, 1, 1, nil, topic+"-after")
			if err == nil && resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
				err = resp.Err
			}
			return err
		})
		t.Logf("topic creation worked again %v after kill -9 of controller %d", time.Since(start).Round(time.Millisecond), old)
		var other int32
		for id := range c.nodes {
			if id != old {
				other = id
				break
			}
		}
		if s := c.status(other); s.Controller == old || s.Controller < 1 {
			t.Fatalf("controller after the kill: %+v", s)
		}
		// The dead broker's partitions: no leader (RF 1), leader epoch bumped.
		eventually(t, 10*time.Second, "the dead broker's partitions marked offline", func() error {
			m, err := others.Metadata(ctx, topic)
			if err != nil {
				return err
			}
			if len(m.Topics[topic].Partitions) != 6 {
				return fmt.Errorf("%d partitions", len(m.Topics[topic].Partitions))
			}
			for _, p := range m.Topics[topic].Partitions {
				was := before.Topics[topic].Partitions[p.Partition]
				switch {
				case was.Leader == old && (p.Leader != -1 || p.LeaderEpoch <= was.LeaderEpoch):
					return fmt.Errorf("partition %d: leader %d epoch %d (was %d epoch %d)", p.Partition, p.Leader, p.LeaderEpoch, was.Leader, was.LeaderEpoch)
				case was.Leader != old && p.Leader != was.Leader:
					return fmt.Errorf("partition %d moved from live broker %d to %d", p.Partition, was.Leader, p.Leader)
				}
			}
			return nil
		})
		// The restarted broker registers again and leads its partitions,
		// with a newer leader epoch, holding every record.
		c.nodes[old].restart(t)
		eventually(t, 20*time.Second, "the restarted broker leading again", func() error {
			m, err := adm.Metadata(ctx, topic)
			if err != nil {
				return err
			}
			for _, p := range m.Topics[topic].Partitions {
				was := before.Topics[topic].Partitions[p.Partition]
				if was.Leader == old && (p.Leader != old || p.LeaderEpoch < was.LeaderEpoch+2) {
					return fmt.Errorf("partition %d: leader %d epoch %d", p.Partition, p.Leader, p.LeaderEpoch)
				}
			}
			return nil
		})
		got := consumeAll(t, c.nodes[old].addr, topic, 300, kgo.SeedBrokers(c.seeds()...))
		perPartition := map[int32][]string{}
		for _, r := range got {
			perPartition[r.Partition] = append(perPartition[r.Partition], string(r.Value))
		}
		for p, want := range records {
			if strings.Join(perPartition[p], ",") != strings.Join(want, ",") {
				t.Fatalf("partition %d after the restart: %v, want %v", p, perPartition[p], want)
			}
		}
	})

	t.Run("voters are demoted and promoted at runtime", func(t *testing.T) {
		run := func(args ...string) {
			t.Helper()
			out, err := exec.Command(strataBin, append([]string{"cluster"}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("strata cluster %v: %v\n%s", args, err, out)
			}
		}
		// Demote a node that is not the controller (demoting the
		// controller works too, at the cost of an election).
		controller := c.status(1).Controller
		victim := int32(3)
		if controller == 3 {
			victim = 2
		}
		admin := c.nodes[1].admin
		if victim == 1 || controller == 1 {
			admin = c.nodes[2].admin
		}
		run("remove-voter", "--admin", admin, "--node-id", fmt.Sprint(victim))
		eventually(t, 10*time.Second, "two voters, one non-voter", func() error {
			if s := c.status(controller); s.voting() != 2 || len(s.Voters) != 3 {
				return fmt.Errorf("voters %+v", s.Voters)
			}
			return nil
		})
		eventually(t, 20*time.Second, "a topic created with two voters", func() error {
			resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic+"-two-voters")
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return err
			}
			return nil
		})
		run("add-voter", "--admin", admin, "--node-id", fmt.Sprint(victim), "--address", c.nodes[victim].ctrl)
		eventually(t, 10*time.Second, "three voters, the demoted node caught up", func() error {
			if s := c.status(victim); s.voting() != 3 {
				return fmt.Errorf("voters %+v", s.Voters)
			}
			m, err := kadm.NewClient(newClient(t, c.nodes[victim].addr)).ListTopics(ctx)
			if err != nil {
				return err
			}
			if !m.Has(topic + "-two-voters") {
				return errors.New("the demoted node does not know the topic created while it did not vote")
			}
			return nil
		})
		// An unreachable or bogus voter is refused, not half-added.
		out, err := exec.Command(strataBin, "cluster", "add-voter", "--admin", c.nodes[1].admin, "--node-id", "9", "--address", "0.0.0.0:1").CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("refused")) {
			t.Fatalf("bogus voter: %v\n%s", err, out)
		}
	})

	t.Run("a wiped node rejoins as an empty follower", func(t *testing.T) {
		n := c.nodes[3]
		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(n.dataDir); err != nil {
			t.Fatal(err)
		}
		n.restart(t)
		eventually(t, 20*time.Second, "the wiped node knowing every topic", func() error {
			m, err := kadm.NewClient(newClient(t, n.addr)).ListTopics(ctx)
			if err != nil {
				return err
			}
			if !m.Has(topic) || !m.Has(topic+"-two-voters") {
				return fmt.Errorf("topics %v", m.Names())
			}
			return nil
		})
		if s := c.status(3); s.ClusterID != c.clusterID || s.voting() != 3 {
			t.Fatalf("wiped node's view: %+v", s)
		}
	})
	t.Run("group offsets on the replicated offsets topic survive the coordinator's death", func(t *testing.T) {
		name := topic + "-groups"
		resp, err := adm.CreateTopic(ctx, 3, 3, nil, name)
		if err != nil || resp.Err != nil {
			t.Fatalf("create: %v %v", err, resp.Err)
		}
		producer := c.client(t)
		for i := range 90 {
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: name, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		group := "g-" + name
		first := c.client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.SessionTimeout(6*time.Second), kgo.FetchMaxWait(200*time.Millisecond))
		seen := 0
		for seen < 90 {
			fetches := first.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("timed out consuming")
			}
			seen += fetches.NumRecords()
		}
		if err := first.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		first.Close()
		// Kill the broker coordinating the group; the offsets are on
		// every in-sync replica of its __consumer_offsets partition.
		var coordinator int32 = -1
		eventually(t, 10*time.Second, "finding the coordinator", func() error {
			described, err := adm.DescribeGroups(ctx, group)
			if err != nil {
				return err
			}
			coordinator = described[group].Coordinator.NodeID
			if coordinator < 1 {
				return fmt.Errorf("no coordinator: %+v", described[group])
			}
			return nil
		})
		c.nodes[coordinator].kill()
		defer c.nodes[coordinator].restart(t)
		eventually(t, 30*time.Second, "committed offsets from the new coordinator", func() error {
			// A fresh client, as a restarted consumer would be.
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds(coordinator)...))
			if err != nil {
				return err
			}
			defer cl.Close()
			offsets, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
			if err != nil {
				return err
			}
			// Every partition that got records has its commit (the
			// producer's sticky partitioner may leave one empty).
			total := int64(0)
			for p := range int32(3) {
				if o, ok := offsets.Lookup(name, p); ok {
					if o.Err != nil {
						return fmt.Errorf("partition %d: %v", p, o.Err)
					}
					total += o.At
				}
			}
			if total != 90 {
				return fmt.Errorf("committed offsets add up to %d, want 90", total)
			}
			return nil
		})
	})
	t.Run("a broker outside the quorum joins as a non-voter", func(t *testing.T) {
		dir := t.TempDir()
		b := &brokerProcess{
			dataDir: filepath.Join(dir, "data"), addr: freePort(t), admin: freePort(t), ctrl: freePort(t),
			logPath: filepath.Join(dir, "node4.log"),
		}
		b.extra = append(append(c.memberFlags(4), "--process-roles", "broker"), clusterTimingFlags...)
		c.nodes[4] = b
		if err := b.start(); err != nil {
			t.Fatal(err)
		}
		s := c.status(4)
		if len(s.Voters) != 4 || s.voting() != 3 || len(s.Brokers) != 4 {
			t.Fatalf("cluster with a non-voter: %+v", s)
		}
		name := topic + "-four"
		eventually(t, 10*time.Second, "four brokers leading partitions", func() error {
			resp, err := kadm.NewClient(c.client(t)).CreateTopic(ctx, 8, 1, nil, name)
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return err
			}
			m, err := adm.Metadata(ctx, name)
			if err != nil {
				return err
			}
			for _, p := range m.Topics[name].Partitions {
				if p.Leader == 4 {
					return nil
				}
			}
			return errors.New("broker 4 leads none of 8 partitions")
		})
		producer := c.client(t)
		for i := range 80 {
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: name, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		consumeAll(t, b.addr, name, 80, kgo.SeedBrokers(c.seeds()...))
	})
}

// TestClusterStartupErrors: a node of another cluster cannot join, an
// unformatted dir with other voters is refused with a hint, and a quorum
// that cannot be reached gives up with a message saying what it waited for.
func TestClusterStartupErrors(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, strataBin, args...).CombinedOutput()
		return string(out), err
	}
	ctrl1, ctrl2 := freePort(t), freePort(t)
	quorum := "1@" + ctrl1 + ",2@" + ctrl2
	secret := generateClusterSecret(t, dir)
	base := func(id int, data string) []string {
		return []string{"serve", "--node-id", fmt.Sprint(id), "--data-dir", filepath.Join(dir, data), "--listen", freePort(t),
			"--admin-listen", "-", "--controller-quorum", quorum, "--controller-quorum-timeout-ms", "3000", "--cluster-secret-file", secret}
	}

	out, err := run(base(1, "unformatted")...)
	if err == nil || !strings.Contains(out, "strata format") {
		t.Fatalf("unformatted dir with other voters: %v\n%s", err, out)
	}

	// A node of a quorum of two refuses to start without the cluster
	// secret, and says how to make one; its data dir stays unformatted.
	noSecret := slices.DeleteFunc(append([]string{}, base(1, "no-secret")...), func(arg string) bool { return arg == "--cluster-secret-file" || arg == secret })
	out, err = run(append(noSecret, "--cluster-id", "cluster-a")...)
	if err == nil || !strings.Contains(out, "--cluster-secret-file") || !strings.Contains(out, "strata format --generate-cluster-secret") {
		t.Fatalf("a voter of two without the secret: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "no-secret", "meta.properties")); err == nil {
		t.Fatal("the node refused to start but formatted its data dir")
	}

	// Node 2 of cluster "b" cannot join node 1 of cluster "a".
	a := exec.Command(strataBin, append(base(1, "a"), "--cluster-id", "cluster-a", "--controller-listen", ctrl1)...)
	var aOut bytes.Buffer
	a.Stdout, a.Stderr = &aOut, &aOut
	if err := childproc.Start(a); err != nil {
		t.Fatal(err)
	}
	defer a.Process.Kill()
	out, err = run(append(base(2, "b"), "--cluster-id", "cluster-b", "--controller-listen", ctrl2)...)
	if err == nil || !strings.Contains(out, "metadata quorum not ready") || !strings.Contains(out, "same cluster id") {
		t.Fatalf("node of another cluster: %v\n%s", err, out)
	}
	a.Process.Kill()
	a.Wait()
	if !strings.Contains(aOut.String(), "wrong cluster id") {
		t.Fatalf("node 1 did not log the refused handshake:\n%s", aOut.String())
	}

	// A malformed quorum is refused by format too, naming the flag.
	out, err = run("format", "--cluster-id", "c", "--node-id", "1", "--data-dir", filepath.Join(dir, "f"), "--controller-quorum", "2@no-port")
	if err == nil || !strings.Contains(out, "--controller-quorum") {
		t.Fatalf("format with a malformed quorum: %v\n%s", err, out)
	}
}

// TestControllerOnlyNode: --process-roles controller runs the metadata voter
// and the admin listener without a Kafka listener.
func TestControllerOnlyNode(t *testing.T) {
	b := startBroker(t, "--process-roles", "controller")
	if conn, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("a controller-only node listens for Kafka clients on %s", b.addr)
	}
	out, err := exec.Command(strataBin, "cluster", "status", "--admin", b.admin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "controller 1") {
		t.Fatalf("cluster status of a controller-only node: %v\n%s", err, out)
	}
	out, err = exec.Command(strataBin, "serve", "--process-roles", "broker", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--process-roles") {
		t.Fatalf("broker-only without a quorum: %v\n%s", err, out)
	}
}
