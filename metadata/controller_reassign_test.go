package metadata

import (
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
