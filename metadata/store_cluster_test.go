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
	epoch, err := store.RegisterBroker(ctx, goldenRegistration)
	if err != nil {
		t.Fatal(err)
	}
	registerTestBrokers(t, ctx, store, 2)
	orders := mustCreateTopic(t, store, TopicSpec{Name: "orders", Assignments: [][]int32{{1, 2}}})

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
		func() error { return store.UnregisterBroker(ctx, 2, AnyBrokerEpoch) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if state := store.State(); state.SegmentCount() != 0 || state.BrokerCount() != 0 {
		t.Fatalf("%d segments, %d brokers left", state.SegmentCount(), state.BrokerCount())
	}
}

// TestStoreImportSegments rebuilds a re-created topic's manifest as
// disaster recovery does: the topic again under its old id, then the
// segments found in the bucket, in batches.
func TestStoreImportSegments(t *testing.T) {
	config := formatTestDir(t)
	config.withoutController = true
	store := openReady(t, config)
	ctx := testContext(t)
	oldID := [16]byte{0x0d, 0x15, 0xa5, 0x7e}
	registerTestBrokers(t, ctx, store, 1, 2)
	orders := mustCreateTopic(t, store, TopicSpec{Name: "orders", ID: oldID, Assignments: [][]int32{{1, 2}}})

	later := []SegmentManifest{epochSegment(3, 200, 299, 12, 11, 12), epochSegment(4, 300, 399, 12, 12)}
	earlier := []SegmentManifest{epochSegment(1, 0, 99, 7, 7), epochSegment(2, 100, 199, 11, 7, 11)}
	for _, batch := range [][]SegmentManifest{later, earlier} {
		if err := store.ImportSegments(ctx, orders.ID, 0, batch); err != nil {
			t.Fatal(err)
		}
	}
	state := store.State()
	if start, end, ok := state.RemoteLogOffsets(orders.ID, 0); !ok || start != 0 || end != 399 {
		t.Fatalf("RemoteLogOffsets = %d, %d, %t; want 0, 399, true", start, end, ok)
	}
	topic, _ := state.TopicByID(oldID)
	want := Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 13, ISR: []int32{1, 2}, PartitionEpoch: 1}
	if !reflect.DeepEqual(topic.Partitions[0], want) {
		t.Fatalf("partition %+v, want %+v", topic.Partitions[0], want)
	}
	// The new leader epoch fences uploads as usual.
	if err := store.StartSegmentCopy(ctx, orders.ID, 0, testSegment(5, 400, 499, 12)); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("copy at the imported epoch: %v", err)
	}
	if err := store.StartSegmentCopy(ctx, orders.ID, 0, epochSegment(5, 400, 499, 13, 13)); err != nil {
		t.Fatal(err)
	}

	// Malformed batches are refused before they are proposed.
	applied := store.State().AppliedIndex()
	for _, test := range []struct {
		segments []SegmentManifest
		wantErr  error
	}{
		{nil, ErrInvalidSegment},
		{[]SegmentManifest{testSegment(7, 1000, 1099, 0), testSegment(6, 500, 599, 0)}, ErrInvalidSegment},
		{[]SegmentManifest{testSegment(6, 500, 599, 0), testSegment(7, 550, 649, 0)}, ErrSegmentOverlap},
		{make([]SegmentManifest, MaxImportedSegments+1), ErrInvalidSegment},
	} {
		if err := store.ImportSegments(ctx, orders.ID, 0, test.segments); !errors.Is(err, test.wantErr) {
			t.Fatalf("import of %d segments: %v, want %v", len(test.segments), err, test.wantErr)
		}
	}
	if store.State().AppliedIndex() != applied {
		t.Fatal("a malformed import was proposed")
	}
	// What only the state can tell is rejected by the command.
	for _, test := range []struct {
		topicID   [16]byte
		partition int32
		segment   SegmentManifest
		wantErr   error
	}{
		{[16]byte{0x42}, 0, testSegment(6, 500, 599, 0), ErrUnknownTopic},
		{orders.ID, 1, testSegment(6, 500, 599, 0), ErrUnknownPartition},
		{orders.ID, 0, testSegment(6, 450, 549, 0), ErrSegmentOverlap},
		{orders.ID, 0, testSegment(6, 300, 300, 0), ErrSegmentExists},
	} {
		if err := store.ImportSegments(ctx, test.topicID, test.partition, []SegmentManifest{test.segment}); !errors.Is(err, test.wantErr) {
			t.Fatalf("import into %x/%d: %v, want %v", test.topicID, test.partition, err, test.wantErr)
		}
	}
	if count := store.State().PartitionSegmentCount(orders.ID, 0); count != 5 {
		t.Fatalf("%d segments, want 5", count)
	}
}
