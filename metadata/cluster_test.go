package metadata

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// testCluster is n Stores on loopback, all voters.
type testCluster struct {
	t       *testing.T
	configs map[int32]Config
	stores  map[int32]*Store
}

func newTestCluster(t *testing.T, n int32) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, func(int32, *Config) {})
}

// newTestClusterWith is newTestCluster with each node's Config changed by
// configure before it opens.
func newTestClusterWith(t *testing.T, n int32, configure func(id int32, config *Config)) *testCluster {
	t.Helper()
	voters := map[int32]string{}
	for id := int32(1); id <= n; id++ {
		voters[id] = freeAddress(t)
	}
	c := &testCluster{t: t, configs: map[int32]Config{}, stores: map[int32]*Store{}}
	for id, address := range voters {
		dir := t.TempDir()
		if err := Format(dir, "test-cluster", id, voters); err != nil {
			t.Fatal(err)
		}
		config := testConfig(dir, address)
		config.NodeID = id
		config.HeartbeatTimeout, config.ElectionTimeout, config.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		config.BrokerSessionTimeout = time.Second
		config.preferredLeaderInterval = -1
		configure(id, &config)
		c.configs[id] = config
	}
	for id := range voters {
		c.start(id)
	}
	for id := range voters {
		if err := c.stores[id].WaitReady(testContext(t)); err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
	}
	return c
}

func (c *testCluster) start(id int32) {
	store, err := Open(c.configs[id])
	if err != nil {
		c.t.Fatalf("open node %d: %v", id, err)
	}
	c.stores[id] = store
	c.t.Cleanup(func() { store.Close() })
}

func (c *testCluster) stop(id int32) {
	c.stores[id].Close()
	delete(c.stores, id)
}

// leader waits for a leader among the running nodes.
func (c *testCluster) leader() (int32, *Store) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for id, s := range c.stores {
			if s.IsLeader() {
				return id, s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader elected")
	return 0, nil
}

// follower returns a running node that is not the leader.
func (c *testCluster) follower() (int32, *Store) {
	leader, _ := c.leader()
	for id, s := range c.stores {
		if id != leader {
			return id, s
		}
	}
	c.t.Fatal("no follower")
	return 0, nil
}

// heartbeats keeps brokers alive through store until ctx ends.
func heartbeats(ctx context.Context, store *Store, id int32, epoch int64) {
	for ctx.Err() == nil {
		store.Heartbeat(ctx, BrokerHeartbeat{ID: id, BrokerEpoch: epoch})
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitState(t *testing.T, store *Store, what string, cond func(*State) bool) *State {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		state, changed := store.Watch()
		if cond(state) {
			return state
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestClusterForwardingAndFailover: proposals made on a follower are
// forwarded to the leader and return the same results the leader would
// (including rejections); after the leader dies a new one is elected and
// proposals work again from any node.
func TestClusterForwardingAndFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	_, follower := c.follower()
	ctx := testContext(t)
	registerTestBrokers(t, ctx, follower, 1, 2)
	topic, err := follower.CreateTopic(ctx, TopicSpec{Name: "orders", Assignments: [][]int32{{1}, {2}}})
	if err != nil {
		t.Fatalf("create on a follower: %v", err)
	}
	if got, ok := follower.State().Topic("orders"); !ok || got.ID != topic.ID {
		t.Fatalf("follower state after its own proposal: %+v %v", got, ok)
	}
	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "orders", Assignments: [][]int32{{1}}}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create on a follower: %v, want ErrTopicExists", err)
	}
	first, err := follower.AllocateProducerIDs(ctx, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	_, leader := c.leader()
	if second, err := leader.AllocateProducerIDs(ctx, 1, 1000); err != nil || second != first+1000 {
		t.Fatalf("blocks %d then %d (%v)", first, second, err)
	}

	leaderID, _ := c.leader()
	c.stop(leaderID)
	newLeader, _ := c.leader()
	if newLeader == leaderID {
		t.Fatal("the stopped node still leads")
	}
	for id, s := range c.stores {
		if _, err := s.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("after-failover-%d", id), Assignments: [][]int32{{1}}}); err != nil {
			t.Fatalf("create on node %d after failover: %v", id, err)
		}
	}
	c.start(leaderID)
	waitState(t, c.stores[leaderID], "the restarted node to catch up", func(s *State) bool {
		_, ok := s.Topic(fmt.Sprintf("after-failover-%d", newLeader))
		return ok
	})
}

// TestClusterControllerFencesAndElects: brokers register and heartbeat
// through any node; the controller unfences them, fences one whose
// heartbeats stop and moves its leaderships to a live in-sync replica
// (bumping the leader epoch), takes an RF=1 partition offline and back, and
// a controlled shutdown moves leaders before the broker is fenced.
func TestClusterControllerFencesAndElects(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	epochs := map[int32]int64{}
	stopBeats := map[int32]context.CancelFunc{}
	for id, s := range c.stores {
		epoch, err := s.RegisterBroker(ctx, BrokerRegistration{ID: id, IncarnationID: uuid.New(),
			Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}})
		if err != nil {
			t.Fatalf("register %d: %v", id, err)
		}
		epochs[id] = epoch
		beatCtx, cancel := context.WithCancel(ctx)
		stopBeats[id] = cancel
		go heartbeats(beatCtx, s, id, epoch)
	}
	defer func() {
		for _, cancel := range stopBeats {
			cancel()
		}
	}()
	_, any := c.follower()
	waitState(t, any, "all brokers unfenced", func(s *State) bool {
		for _, b := range s.Brokers() {
			if b.Fenced {
				return false
			}
		}
		return s.BrokerCount() == 3
	})
	topic, err := any.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2, 3}, {2}}})
	if err != nil {
		t.Fatal(err)
	}

	// Broker 1's heartbeats stop: fenced, partition 0 moves to 2.
	stopBeats[1]()
	state := waitState(t, any, "partition 0 led by broker 2", func(s *State) bool {
		tp, _ := s.Topic("t")
		return tp.Partitions[0].Leader == 2
	})
	if b, _ := state.Broker(1); !b.Fenced {
		t.Fatalf("broker 1 not fenced: %+v", b)
	}
	p0, _ := state.Topic("t")
	if got := p0.Partitions[0]; got.LeaderEpoch != topic.Partitions[0].LeaderEpoch+1 || len(got.ISR) != 2 {
		t.Fatalf("partition 0 after failover: %+v", got)
	}

	// Broker 2 (sole replica of partition 1) stops too: partition 1 goes
	// offline; partition 0 moves to 3. When 2 heartbeats again, partition 1
	// comes back under it.
	stopBeats[2]()
	waitState(t, any, "partition 1 offline and partition 0 on 3", func(s *State) bool {
		tp, _ := s.Topic("t")
		return tp.Partitions[1].Leader == -1 && tp.Partitions[0].Leader == 3
	})
	beatCtx, cancel := context.WithCancel(ctx)
	stopBeats[2] = cancel
	go heartbeats(beatCtx, any, 2, epochs[2])
	state = waitState(t, any, "partition 1 back on broker 2", func(s *State) bool {
		tp, _ := s.Topic("t")
		return tp.Partitions[1].Leader == 2
	})
	if tp, _ := state.Topic("t"); tp.Partitions[1].LeaderEpoch != topic.Partitions[1].LeaderEpoch+2 {
		t.Fatalf("partition 1 leader epoch %d, want %d (offline, then back)", tp.Partitions[1].LeaderEpoch, topic.Partitions[1].LeaderEpoch+2)
	}

	// Controlled shutdown of broker 3: partition 0 leaves it for broker 2
	// (back in the ISR? no: the ISR is {2,3} after 1 left), then 3 is fenced.
	stopBeats[3]()
	if err := any.Heartbeat(ctx, BrokerHeartbeat{ID: 3, BrokerEpoch: epochs[3], ShuttingDown: true}); err != nil {
		t.Fatal(err)
	}
	waitState(t, any, "broker 3 fenced after moving its leadership", func(s *State) bool {
		tp, _ := s.Topic("t")
		b, _ := s.Broker(3)
		return b.Fenced && tp.Partitions[0].Leader != 3
	})

	// Broker 1 comes back and is in the ISR of partition 0 again (as a
	// follower would be once caught up): leadership returns to it, its
	// preferred replica.
	epoch1, err := any.RegisterBroker(ctx, BrokerRegistration{ID: 1, IncarnationID: uuid.New(),
		Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9001, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	beatCtx1, cancel1 := context.WithCancel(ctx)
	stopBeats[1] = cancel1
	go heartbeats(beatCtx1, any, 1, epoch1)
	state = waitState(t, any, "broker 1 unfenced", func(s *State) bool {
		b, _ := s.Broker(1)
		return !b.Fenced
	})
	tp, _ := state.Topic("t")
	p := tp.Partitions[0]
	if _, err := any.ChangePartition(ctx, PartitionChange{TopicID: tp.ID, Partition: 0, PartitionEpoch: p.PartitionEpoch, Leader: NoLeaderChange, ISR: append(slices.Clone(p.ISR), 1)}); err != nil {
		t.Fatalf("ISR expansion: %v", err)
	}
	waitState(t, any, "broker 1 leading partition 0 again", func(s *State) bool {
		tp, _ := s.Topic("t")
		return tp.Partitions[0].Leader == 1
	})

	// A second process registering as live broker 2 is refused, through a
	// follower too.
	if _, err := any.RegisterBroker(ctx, BrokerRegistration{ID: 2, IncarnationID: uuid.New(),
		Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9999, SecurityProtocol: "PLAINTEXT"}}}); !errors.Is(err, ErrDuplicateBroker) {
		t.Fatalf("duplicate registration of broker 2: %v, want ErrDuplicateBroker", err)
	}

	// A stale epoch or an unknown broker is refused, through a follower too.
	if err := any.Heartbeat(ctx, BrokerHeartbeat{ID: 2, BrokerEpoch: epochs[2] - 1}); err == nil {
		t.Fatal("heartbeat with a stale epoch accepted")
	}
	if err := any.Heartbeat(ctx, BrokerHeartbeat{ID: 9, BrokerEpoch: 1}); err == nil {
		t.Fatal("heartbeat of an unknown broker accepted")
	}
}

// TestClusterVoterChanges: a voter is removed and added back at runtime
// through a follower, and the quorum keeps committing.
func TestClusterVoterChanges(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, follower := c.follower()
	victim := int32(0)
	for id := range c.stores {
		if c.stores[id] != follower && !c.stores[id].IsLeader() {
			victim = id
		}
	}
	if victim == 0 {
		_, leader := c.leader()
		for id, s := range c.stores {
			if s != follower && s != leader {
				victim = id
			}
		}
	}
	if err := follower.RemoveVoter(ctx, victim); err != nil {
		t.Fatalf("remove voter %d: %v", victim, err)
	}
	voters, err := follower.Voters()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range voters {
		if v.NodeID == victim && v.Voting {
			t.Fatalf("voter %d still votes: %+v", victim, voters)
		}
	}
	registerTestBrokers(t, ctx, follower, 1)
	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "two-voters", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	// The demoted node keeps following the log.
	waitState(t, c.stores[victim], "the non-voter to follow the log", func(s *State) bool {
		_, ok := s.Topic("two-voters")
		return ok
	})
	if err := follower.AddVoter(ctx, victim, c.configs[victim].ControllerListen); err != nil {
		t.Fatalf("add voter %d back: %v", victim, err)
	}
	voters, _ = follower.Voters()
	for _, v := range voters {
		if v.NodeID == victim && !v.Voting {
			// Promotion happens once it has caught up.
			waitState(t, follower, "the node to vote again", func(*State) bool {
				vs, _ := follower.Voters()
				for _, v := range vs {
					if v.NodeID == victim {
						return v.Voting
					}
				}
				return false
			})
		}
	}
	if err := follower.AddVoter(ctx, 7, "0.0.0.0:1"); err == nil {
		t.Fatal("voter with an unspecified address accepted")
	}
}

// TestVoterChangeSurvivesALeadershipChange: the leader loses its
// leadership just as it hands a voter change (forwarded by a follower) to
// Raft; the operator's one request still takes effect, on the next leader.
func TestVoterChangeSurvivesALeadershipChange(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	leaderID, leader := c.leader()
	followerID, follower := c.follower()
	victim := int32(0)
	for id := range c.stores {
		if id != leaderID && id != followerID {
			victim = id
		}
	}
	var once sync.Once
	var transferred atomic.Bool
	transfer := func() {
		once.Do(func() {
			transferred.Store(true)
			if err := leader.raft.LeadershipTransfer().Error(); err != nil {
				t.Errorf("leadership transfer: %v", err)
			}
		})
	}
	leader.beforeVoterChange.Store(&transfer)
	if err := follower.RemoveVoter(ctx, victim); err != nil {
		t.Fatalf("remove voter %d across a leadership change: %v", victim, err)
	}
	leader.beforeVoterChange.Store(nil)
	voters, err := follower.Voters()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range voters {
		if v.NodeID == victim && v.Voting {
			t.Fatalf("voter %d still votes: %+v", victim, voters)
		}
	}
	if !transferred.Load() {
		t.Fatal("the leader never reached the voter change: the test did not test anything")
	}
}

// TestClusterNonvoterJoins: a node formatted outside the voters joins the
// quorum's log as a non-voter through any voter, follows the state,
// proposes through the leader, and does not count for the quorum.
func TestClusterNonvoterJoins(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	voters := map[int32]string{}
	for id, config := range c.configs {
		voters[id] = config.ControllerListen
	}
	dir := t.TempDir()
	if err := Format(dir, "test-cluster", 4, voters); err != nil {
		t.Fatal(err)
	}
	config := c.configs[1]
	config.NodeID, config.DataDir, config.ControllerListen, config.Voters = 4, dir, freeAddress(t), voters
	c.configs[4] = config
	c.start(4)
	observer := c.stores[4]
	if err := observer.WaitReady(ctx); err != nil {
		t.Fatalf("non-voter ready: %v", err)
	}
	registerTestBrokers(t, ctx, observer, 1, 4)
	if _, err := observer.CreateTopic(ctx, TopicSpec{Name: "from-observer", Assignments: [][]int32{{4}}}); err != nil {
		t.Fatalf("proposal from the non-voter: %v", err)
	}
	_, leader := c.leader()
	waitState(t, leader, "the non-voter's topic on the leader", func(s *State) bool {
		_, ok := s.Topic("from-observer")
		return ok
	})
	all, err := leader.Voters()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range all {
		if v.NodeID == 4 {
			found = !v.Voting
		}
	}
	if !found {
		t.Fatalf("node 4 is not a non-voter member: %+v", all)
	}
	// Restarted, it keeps its membership and catches up.
	c.stop(4)
	if _, err := leader.CreateTopic(ctx, TopicSpec{Name: "while-away", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	c.start(4)
	waitState(t, c.stores[4], "the restarted non-voter to catch up", func(s *State) bool {
		_, ok := s.Topic("while-away")
		return ok
	})
}

// TestClusterUncleanElection: with no live in-sync replica a partition
// stays offline, unless its topic opted into unclean.leader.election.enable;
// then the first live replica outside the ISR leads.
func TestClusterUncleanElection(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, any := c.follower()
	epochs := map[int32]int64{}
	stops := map[int32]context.CancelFunc{}
	for id := int32(1); id <= 2; id++ {
		epoch, err := any.RegisterBroker(ctx, BrokerRegistration{ID: id, IncarnationID: uuid.New(),
			Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}})
		if err != nil {
			t.Fatal(err)
		}
		epochs[id] = epoch
		beatCtx, cancel := context.WithCancel(ctx)
		stops[id] = cancel
		go heartbeats(beatCtx, any, id, epoch)
	}
	defer func() {
		for _, cancel := range stops {
			cancel()
		}
	}()
	waitState(t, any, "brokers unfenced", func(s *State) bool {
		a, _ := s.Broker(1)
		b, _ := s.Broker(2)
		return !a.Fenced && !b.Fenced
	})
	clean, err := any.CreateTopic(ctx, TopicSpec{Name: "clean", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	unclean, err := any.CreateTopic(ctx, TopicSpec{Name: "unclean", Assignments: [][]int32{{1, 2}}, Configs: map[string]string{"unclean.leader.election.enable": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	// A tiered topic never gets an unclean leader, whatever it asks for
	// (the broker refuses this combination; the FSM may still hold it from
	// an older version). Named to come before "unclean" in the
	// controller's name-ordered pass: once "unclean" has its leader, the
	// pass has decided about "a-tiered" too.
	tiered, err := any.CreateTopic(ctx, TopicSpec{Name: "a-tiered", Assignments: [][]int32{{1, 2}},
		Configs: map[string]string{"unclean.leader.election.enable": "true", "remote.storage.enable": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	// Broker 2 drops out of every ISR (a lagging follower), then broker 1,
	// the only in-sync replica, dies.
	for _, topic := range []Topic{clean, unclean, tiered} {
		p := topic.Partitions[0]
		if _, err := any.ChangePartition(ctx, PartitionChange{TopicID: topic.ID, Partition: 0, PartitionEpoch: p.PartitionEpoch, Leader: NoLeaderChange, ISR: []int32{1}}); err != nil {
			t.Fatal(err)
		}
	}
	stops[1]()
	state := waitState(t, any, "the unclean topic led by broker 2", func(s *State) bool {
		u, _ := s.Topic("unclean")
		return u.Partitions[0].Leader == 2
	})
	for _, name := range []string{"clean", "a-tiered"} {
		if cl, _ := state.Topic(name); cl.Partitions[0].Leader != -1 || !slices.Equal(cl.Partitions[0].ISR, []int32{1}) {
			t.Fatalf("%s topic: %+v, want offline with ISR [1]", name, cl.Partitions[0])
		}
	}
}

// TestForwardedRequestsDoNotQueue: a follower's forwarded requests each
// have a connection of their own. While the leader holds one of them
// unanswered (as a paused leader would), a heartbeat forwarded by the same
// follower is answered; with one connection for all it waited until the
// held request ended, and a new controller fenced brokers whose
// heartbeats waited so.
func TestForwardedRequestsDoNotQueue(t *testing.T) {
	leader, follower, epoch := forwardingPair(t)
	ctx := testContext(t)
	held, release := holdFirstProposal(t, leader)
	var heldDone atomic.Bool
	proposed := make(chan error, 1)
	go func() {
		_, err := follower.AllocateProducerIDs(ctx, 7, 10)
		heldDone.Store(true)
		proposed <- err
	}()
	<-held
	err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 7, BrokerEpoch: epoch})
	if heldDone.Load() {
		t.Fatalf("the heartbeat was answered (%v) only once the request the leader held had ended", err)
	}
	if err != nil {
		t.Fatalf("heartbeat while the leader holds another request of this follower: %v", err)
	}
	release()
	if err := <-proposed; err != nil {
		t.Fatalf("the held request, once released: %v", err)
	}
	// Both connections are kept for the next requests.
	follower.rpc.mu.Lock()
	idle := len(follower.rpc.idle)
	follower.rpc.mu.Unlock()
	if idle != 2 {
		t.Errorf("%d idle connections after both requests, want 2", idle)
	}
}
