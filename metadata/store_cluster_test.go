package metadata

import (
	"errors"
	"reflect"
	"testing"
)

// TestStoreClusterCommands proposes the broker, partition and segment
// commands through Raft and checks what the Store methods answer.
func TestStoreClusterCommands(t *testing.T) {
	config := formatTestDir(t)
	config.withoutController = true
	store := openReady(t, config)
	ctx := testContext(t)
	orders := mustCreateTopic(t, store, TopicSpec{Name: "orders", Assignments: [][]int32{{1, 2}}})

	epoch, err := store.RegisterBroker(ctx, goldenRegistration)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := store.RegisterBroker(ctx, goldenRegistration); err != nil || again != epoch {
		t.Fatalf("retried registration: epoch %d, %v; want %d", again, err, epoch)
	}
	if err := store.SetBrokerFenced(ctx, 1, epoch, false); err != nil {
		t.Fatal(err)
	}
	if err := store.SetBrokerFenced(ctx, 1, epoch+1, true); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale fence: %v", err)
	}
	if broker, ok := store.State().Broker(1); !ok || broker.Fenced || broker.Epoch != epoch {
		t.Fatalf("Broker(1) = %+v, %t", broker, ok)
	}
	if _, err := store.RegisterBroker(ctx, BrokerRegistration{ID: 2}); !errors.Is(err, ErrInvalidBroker) {
		t.Fatalf("invalid registration: %v", err)
	}

	partition, err := store.ChangePartition(ctx, PartitionChange{TopicID: orders.ID, Partition: 0, PartitionEpoch: 0, Leader: 2, ISR: []int32{2}})
	if err != nil {
		t.Fatal(err)
	}
	want := Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2}, PartitionEpoch: 1}
	if !reflect.DeepEqual(partition, want) {
		t.Fatalf("ChangePartition = %+v, want %+v", partition, want)
	}

	segment := testSegment(1, 0, 99, 1)
	ref := SegmentRef{TopicID: orders.ID, Partition: 0, BaseOffset: 0, SegmentID: segment.SegmentID, LeaderEpoch: 1}
	if err := store.StartSegmentCopy(ctx, orders.ID, 0, testSegment(1, 0, 99, 0)); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("fenced copy: %v", err)
	}
	for _, step := range []func() error{
		func() error { return store.StartSegmentCopy(ctx, orders.ID, 0, segment) },
		func() error { return store.FinishSegmentCopy(ctx, ref) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if start, end, ok := store.State().RemoteLogOffsets(orders.ID, 0); !ok || start != 0 || end != 99 {
		t.Fatalf("RemoteLogOffsets = %d, %d, %t", start, end, ok)
	}
	for _, step := range []func() error{
		func() error { return store.StartSegmentDelete(ctx, ref) },
		func() error { return store.DeleteSegment(ctx, ref) },
		func() error { return store.UnregisterBroker(ctx, 1, AnyBrokerEpoch) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if state := store.State(); state.SegmentCount() != 0 || state.BrokerCount() != 0 {
		t.Fatalf("%d segments, %d brokers left", state.SegmentCount(), state.BrokerCount())
	}
}
