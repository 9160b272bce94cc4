package metadata

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestControllerDoesNotFinishReassignmentOnAFencedTarget: a target replica
// that is fenced (its session ended) does not count as in sync for the
// finish, although it is still in the ISR. The controller takes a fenced
// broker out of the ISR only under a leader it has heard from (leaveISR),
// so after a failover the ISR may still name a dead target replica while
// the leader — here a replica being removed — has not heartbeated to the
// new controller yet. Finishing then (Kafka's controller never sees a
// fenced broker in an ISR: it leaves every ISR as it is fenced) dropped
// the live replica being removed, with everything it held, and left the
// partition on one live replica of an ISR of two: below
// min.insync.replicas, and one failure from losing acknowledged records.
// The reassignment waits until the target replica is back and in sync.
func TestControllerDoesNotFinishReassignmentOnAFencedTarget(t *testing.T) {
	ctx := testContext(t)
	store, _, stopBeats := threeBeatingBrokers(t, ctx)
	defer func() {
		for _, stop := range stopBeats {
			stop()
		}
	}()
	// No preferred leader election moves the leadership to 2 meanwhile.
	store.controller.mu.Lock()
	store.controller.lastBalance, store.controller.preferredInterval = time.Now(), time.Hour
	store.controller.mu.Unlock()
	topic, err := store.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.StartReassignment(ctx, topic.ID, 0, []int32{2, 3}); err != nil {
		t.Fatal(err)
	}
	// The controller has heard from nobody yet (as after a failover): it
	// can elect no target replica, so the finish waits while 3 joins.
	for _, id := range []int32{1, 2, 3} {
		stopBeats[id]()
	}
	store.controller.mu.Lock()
	clear(store.controller.lastSeen)
	clear(store.controller.seenEpoch)
	store.controller.mu.Unlock()
	tp, _ := store.State().Topic("t")
	p := tp.Partitions[0]
	if _, err := store.ChangePartition(ctx, PartitionChange{TopicID: topic.ID, Partition: 0, PartitionEpoch: p.PartitionEpoch,
		Leader: NoLeaderChange, ISR: []int32{1, 2, 3}}); err != nil {
		t.Fatalf("the leader adds 3 to the ISR: %v", err)
	}
	// Broker 3's session ends: fenced, but left in the ISR (its leader 1
	// has not been heard from).
	store.controller.mu.Lock()
	store.controller.lastSeen[3] = time.Now().Add(-2 * time.Hour)
	store.controller.mu.Unlock()
	store.controller.reconcile(make(chan struct{}))
	if b, _ := store.State().Broker(3); !b.Fenced {
		t.Fatalf("broker 3 not fenced after its session ended: %+v", b)
	}
	// Broker 2 heartbeats: it could lead the target.
	store.controller.mu.Lock()
	store.controller.lastSeen[2] = time.Now()
	store.controller.mu.Unlock()
	store.controller.reconcile(make(chan struct{}))

	tp, _ = store.State().Topic("t")
	if p := tp.Partitions[0]; !p.Reassigning() || !slices.Contains(p.Replicas, 1) {
		t.Fatalf("the reassignment finished with target replica 3 fenced: %+v", p)
	}
}

// TestControllerFinishRefusedForABrokerFencedMeanwhile: the controller
// decides a reassignment's finish on a state read before its pass, and
// fencing a broker touches no partition, so the finish's partition epoch
// check passes over a fence applied in between. The finish then made the
// fenced broker the leader (a target replica it elected, or the leader it
// kept), or finished with a fenced target replica in the ISR, dropping the
// live replica being removed for it (what the controller waits for, see
// TestControllerDoesNotFinishReassignmentOnAFencedTarget). It is refused
// (AlterPartitionReassignment v3), and the next pass decides again on the
// new state: it waits while the broker is fenced and finishes once it is
// back.
func TestControllerFinishRefusedForABrokerFencedMeanwhile(t *testing.T) {
	for _, test := range []struct {
		name           string
		target         []int32
		fenced, leader int32 // fenced meanwhile; the leader the controller chooses
	}{
		{name: "the target replica it elects", target: []int32{3, 2}, fenced: 3, leader: 3},
		{name: "the leader it keeps", target: []int32{1, 3}, fenced: 1, leader: 1},
		{name: "another target replica", target: []int32{2, 3}, fenced: 3, leader: 2},
	} {
		t.Run(test.name, func(t *testing.T) {
			config := formatTestDir(t)
			config.withoutController = true
			store := openReady(t, config)
			ctx := testContext(t)
			registerTestBrokers(t, ctx, store, 1, 2, 3)
			topic := mustCreateTopic(t, store, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}})
			started, err := store.StartReassignment(ctx, topic.ID, 0, test.target)
			if err != nil {
				t.Fatal(err)
			}
			// The leader, 1, adds 3 to the ISR: the reassignment is in sync.
			if _, err := store.ChangePartition(ctx, PartitionChange{TopicID: topic.ID, Partition: 0, PartitionEpoch: started.PartitionEpoch,
				Leader: NoLeaderChange, ISR: []int32{1, 2, 3}}); err != nil {
				t.Fatal(err)
			}
			partition := func() Partition { tp, _ := store.State().Topic("t"); return tp.Partitions[0] }
			before := partition()
			// What the controller's pass read: every broker live, heard from.
			read := store.State()
			pass := func(state *State) {
				unavailable := func(id int32) bool { b, ok := state.Broker(id); return ok && b.Fenced }
				eligible := func(id int32) bool { b, ok := state.Broker(id); return ok && !b.Fenced }
				store.controller.finishReassignments(ctx, state, eligible, unavailable)
			}

			// Meanwhile the broker's session ends.
			broker, _ := store.State().Broker(test.fenced)
			if err := store.SetBrokerFenced(ctx, test.fenced, broker.Epoch, true); err != nil {
				t.Fatal(err)
			}
			pass(read)
			if p := partition(); !reflect.DeepEqual(p, before) {
				t.Fatalf("finished with broker %d fenced: %+v\nwant unchanged %+v", test.fenced, p, before)
			}
			// The next pass reads the fence: it waits.
			pass(store.State())
			if p := partition(); !reflect.DeepEqual(p, before) {
				t.Fatalf("finished on the next pass with broker %d fenced: %+v", test.fenced, p)
			}
			// The broker is back: the reassignment finishes.
			if err := store.SetBrokerFenced(ctx, test.fenced, broker.Epoch, false); err != nil {
				t.Fatal(err)
			}
			pass(store.State())
			if p := partition(); p.Reassigning() || !slices.Equal(p.Replicas, test.target) || p.Leader != test.leader {
				t.Fatalf("after broker %d is back: %+v, want replicas %v led by %d", test.fenced, p, test.target, test.leader)
			}
		})
	}
}
