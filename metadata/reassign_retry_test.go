package metadata

import (
	"reflect"
	"testing"
)

// TestReassignmentStartRepeatedKeepsTheAddingReplicas: a start of the
// reassignment already in progress (a client retrying an
// AlterPartitionReassignments that timed out, or resubmitting the same
// plan) must leave the reassignment as it is. It recomputes the adding
// replicas against the replica set that already holds them, so they
// become ordinary replicas: ListPartitionReassignments no longer reports
// them, and a cancel then keeps the replica that never caught up (the
// partition stays on {2,3,1} instead of reverting to {2,1}). As KRaft
// reverts the reassignment in progress before it starts a new one, a
// start (from AlterPartitionReassignment v2 on) computes the adding
// replicas against the replicas the partition had before.
func TestReassignmentStartRepeatedKeepsTheAddingReplicas(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 2})
	id := orders.ID
	partition := func(f *fsm) Partition {
		topic, _ := f.state().TopicByID(id)
		return topic.Partitions[0]
	}
	steps := append(registerBrokers(1, 2, 3),
		fsmStep{command: &createTopicCommand{topic: orders}},
		fsmStep{command: start(id, 0, 2, 3)},
	)
	first := partition(applySteps(t, steps))
	// The same target again, while 3 has not caught up yet.
	steps = append(steps, fsmStep{command: start(id, 0, 2, 3)})
	retried := partition(applySteps(t, steps))
	if !reflect.DeepEqual(retried.Replicas, first.Replicas) || !reflect.DeepEqual(retried.AddingReplicas, first.AddingReplicas) ||
		!reflect.DeepEqual(retried.RemovingReplicas, first.RemovingReplicas) {
		t.Errorf("the same start again turned the reassignment %+v\ninto                                %+v", first, retried)
	}
	cancelled := partition(applySteps(t, append(steps, fsmStep{command: cancelReassign(id, 0)})))
	if !reflect.DeepEqual(cancelled.Replicas, []int32{2, 1}) || cancelled.Reassigning() {
		t.Fatalf("cancel after the repeated start left %+v, want replicas [2 1] and no reassignment", cancelled)
	}
}
