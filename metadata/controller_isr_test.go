package metadata

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestControllerTakesUnavailableBrokersOutOfISRs: a broker entering
// controlled shutdown, or fenced when its session ends, leaves the ISR of
// every partition it follows at once, as Kafka's controller does
// (handleBrokerInControlledShutdown, handleBrokerFenced), rather than
// staying there until the leader's lag check drops it
// (replica.lag.time.max.ms), holding acks=all produces meanwhile. The
// leader and its leader epoch stay (the partition epoch increases); a
// partition the broker led moves to a live in-sync replica, or, with none,
// keeps its last ISR member. A broker that comes back is not put back by
// the controller: it rejoins through the leader's expansion, which the
// controller then leaves alone.
func TestControllerTakesUnavailableBrokersOutOfISRs(t *testing.T) {
	ctx := testContext(t)
	store, epochs, stopBeats := threeBeatingBrokers(t, ctx)
	defer func() {
		for _, stop := range stopBeats {
			stop()
		}
	}()
	created, err := store.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2, 3}, {3, 1}, {3}, {1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	partition := func(index int32) Partition {
		tp, _ := store.State().Topic("t")
		return tp.Partitions[index]
	}
	check := func(what string, index int32, leader int32, leaderEpochs, partitionEpochs int32, isr ...int32) {
		t.Helper()
		before, p := created.Partitions[index], partition(index)
		if p.Leader != leader || !slices.Equal(p.ISR, isr) || p.LeaderEpoch != before.LeaderEpoch+leaderEpochs || p.PartitionEpoch != before.PartitionEpoch+partitionEpochs {
			t.Errorf("%s: partition %d: leader %d, ISR %v, leader epoch %d, partition epoch %d; want leader %d, ISR %v, leader epoch %d, partition epoch %d",
				what, index, p.Leader, p.ISR, p.LeaderEpoch, p.PartitionEpoch, leader, isr, before.LeaderEpoch+leaderEpochs, before.PartitionEpoch+partitionEpochs)
		}
	}

	// Broker 3 begins a controlled shutdown: its leaderships move (or, for
	// the partition only it holds, end), it is fenced once it leads
	// nothing, and it leaves partition 0's ISR, where it only follows.
	stopBeats[3]()
	if err := store.Heartbeat(ctx, BrokerHeartbeat{ID: 3, BrokerEpoch: epochs[3], ShuttingDown: true}); err != nil {
		t.Fatal(err)
	}
	waitState(t, store, "broker 3 fenced", func(s *State) bool { b, _ := s.Broker(3); return b.Fenced })
	store.controller.reconcile(make(chan struct{})) // a pass over the fenced state, whatever the loop did
	check("broker 3 shut down", 0, 1, 0, 1, 1, 2)
	check("broker 3 shut down", 1, 1, 1, 1, 1)
	check("broker 3 shut down (the last ISR member is kept)", 2, -1, 1, 1, 3)
	check("broker 3 shut down", 3, 1, 0, 0, 1, 2)

	// Broker 2's session ends (a kill -9): fenced, it leaves every ISR.
	stopBeats[2]()
	store.controller.mu.Lock()
	store.controller.lastSeen[2] = time.Now().Add(-2 * time.Hour)
	store.controller.mu.Unlock()
	store.controller.reconcile(make(chan struct{}))
	if b, _ := store.State().Broker(2); !b.Fenced {
		t.Fatalf("broker 2 not fenced after its session ended: %+v", b)
	}
	check("broker 2 fenced", 0, 1, 0, 2, 1)
	check("broker 2 fenced", 3, 1, 0, 1, 1)

	// Broker 2 comes back: unfenced, but in no ISR until its leader adds
	// it back (as it does once the follower has caught up); the
	// controller keeps it there.
	restarted := testRegistration(2)
	restarted.IncarnationID[0]++
	restarted.DirectoryID = [16]byte{2}
	epoch, err := store.RegisterBroker(ctx, restarted)
	if err != nil {
		t.Fatal(err)
	}
	stopBeats[2] = beat(ctx, store, 2, epoch)
	waitState(t, store, "broker 2 unfenced", func(s *State) bool { b, _ := s.Broker(2); return !b.Fenced })
	store.controller.reconcile(make(chan struct{}))
	check("broker 2 back", 3, 1, 0, 1, 1)
	p := partition(3)
	if _, err := store.ChangePartition(ctx, PartitionChange{TopicID: created.ID, Partition: 3, PartitionEpoch: p.PartitionEpoch,
		Leader: NoLeaderChange, ISR: []int32{1, 2}, ISRBrokerEpochs: []int64{-1, epoch}}); err != nil {
		t.Fatalf("the leader adds broker 2 back: %v", err)
	}
	store.controller.reconcile(make(chan struct{}))
	check("broker 2 caught up", 3, 1, 0, 2, 1, 2)
}

// beat heartbeats broker id as epoch through store until the returned
// function is called, which returns once the last heartbeat is done (a
// heartbeat sent later could undo what the test sends next).
func beat(ctx context.Context, store *Store, id int32, epoch int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); heartbeats(ctx, store, id, epoch) }()
	return func() { cancel(); <-done }
}

// After a failover (or a quorum recovery) the new controller has heard
// from no broker yet: a dead leader looks alive until its session
// expires. A fenced replica must not be taken out of that leader's ISR
// meanwhile: once the leader is fenced too, the replica is what the
// partition can be led by again (TestRecoverQuorum lost its partition
// this way: the survivor, restarting, was removed under a dead leader,
// which was then fenced with nobody left in the ISR).
func TestControllerKeepsISRUnderALeaderNotHeardFrom(t *testing.T) {
	ctx := testContext(t)
	store, _, stopBeats := threeBeatingBrokers(t, ctx)
	defer func() {
		for _, stop := range stopBeats {
			stop()
		}
	}()
	if _, err := store.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{2, 1, 3}}}); err != nil {
		t.Fatal(err)
	}
	stopBeats[1]()
	stopBeats[2]()
	store.controller.mu.Lock()
	store.controller.lastSeen[1] = time.Now().Add(-2 * time.Hour) // session over: fenced
	delete(store.controller.lastSeen, 2)                          // not heard since this controller took over
	store.controller.mu.Unlock()
	store.controller.reconcile(make(chan struct{}))
	if b, _ := store.State().Broker(1); !b.Fenced {
		t.Fatalf("broker 1 not fenced after its session ended: %+v", b)
	}
	tp, _ := store.State().Topic("t")
	if p := tp.Partitions[0]; p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 1, 3}) {
		t.Fatalf("leader %d, ISR %v; want leader 2 and the ISR unchanged while the controller has not heard from 2", p.Leader, p.ISR)
	}
}

// threeBeatingBrokers starts a one-voter cluster whose broker sessions
// end only when a test says so (an hour), registers brokers 1–3 with a
// heartbeat each (stopBeats[id] stops it) and waits until all are
// unfenced.
func threeBeatingBrokers(t *testing.T, ctx context.Context) (store *Store, epochs map[int32]int64, stopBeats map[int32]func()) {
	t.Helper()
	c := newTestClusterWith(t, 1, func(_ int32, config *Config) { config.BrokerSessionTimeout = time.Hour })
	_, store = c.leader()
	epochs, stopBeats = map[int32]int64{}, map[int32]func(){}
	for _, id := range []int32{1, 2, 3} {
		_, epochs[id] = registerOnDirectory(t, ctx, store, id, byte(id))
		stopBeats[id] = beat(ctx, store, id, epochs[id])
	}
	waitState(t, store, "brokers unfenced", func(s *State) bool {
		for _, b := range s.Brokers() {
			if b.Fenced {
				return false
			}
		}
		return s.BrokerCount() == 3
	})
	return store, epochs, stopBeats
}
