package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// testSegment returns a manifest entry for offsets base..last written in
// leader epoch 0, uploaded at leaderEpoch.
func testSegment(idByte byte, base, last int64, leaderEpoch int32) SegmentManifest {
	return SegmentManifest{
		SegmentID:      [16]byte{0x5e, idByte},
		BaseOffset:     base,
		LastOffset:     last,
		SizeBytes:      (last - base + 1) * 100,
		FirstTimestamp: goldenCreatedAt + base,
		MaxTimestamp:   goldenCreatedAt + last,
		LeaderEpoch:    leaderEpoch,
		EpochRanges:    []EpochRange{{Epoch: 0, StartOffset: base}},
	}
}

func copyStarted(topicID [16]byte, partition int32, segment SegmentManifest) *segmentCopyStartedCommand {
	return &segmentCopyStartedCommand{topicID: topicID, partition: partition, segment: segment}
}

func transition(typ commandType, topicID [16]byte, partition int32, segment SegmentManifest, leaderEpoch int32) *segmentTransitionCommand {
	return &segmentTransitionCommand{typ: typ, ref: SegmentRef{
		TopicID: topicID, Partition: partition, BaseOffset: segment.BaseOffset, SegmentID: segment.SegmentID, LeaderEpoch: leaderEpoch,
	}}
}

// allSegments lists every manifest entry of state with its partition.
type partitionSegment struct {
	TopicID   [16]byte
	Partition int32
	Segment   SegmentManifest
}

func allSegments(state *State) []partitionSegment {
	var all []partitionSegment
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, count int) bool {
		before := len(all)
		state.EachSegment(topicID, partition, 0, func(segment SegmentManifest) bool {
			all = append(all, partitionSegment{topicID, partition, segment})
			return true
		})
		if len(all)-before != count || count != state.PartitionSegmentCount(topicID, partition) {
			panic(fmt.Sprintf("partition count %d, iterated %d", count, len(all)-before))
		}
		return true
	})
	return all
}

func TestFSMSegments(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 2}, []int32{2, 1})
	a := testSegment(1, 0, 99, 0)
	b := testSegment(2, 100, 199, 0)
	c := testSegment(3, 200, 299, 1)
	c.EpochRanges = []EpochRange{{0, 200}, {1, 250}}
	invalid := func(change func(*SegmentManifest)) SegmentManifest {
		segment := testSegment(9, 1000, 1099, 0)
		change(&segment)
		return segment
	}
	steps := []struct {
		command command
		wantErr error
	}{
		{command: &createTopicCommand{topic: orders}},
		{command: copyStarted(orders.ID, 0, a)},
		{command: copyStarted(orders.ID, 0, testSegment(4, 0, 10, 0)), wantErr: ErrSegmentExists},
		{command: copyStarted(orders.ID, 0, testSegment(4, 50, 149, 0)), wantErr: ErrSegmentOverlap},
		{command: copyStarted(orders.ID, 0, testSegment(4, 99, 99, 0)), wantErr: ErrSegmentOverlap},
		{command: copyStarted(orders.ID, 0, testSegment(4, 100, 199, 1)), wantErr: ErrFencedLeaderEpoch},
		{command: copyStarted([16]byte{42}, 0, b), wantErr: ErrUnknownTopic},
		{command: copyStarted(orders.ID, 2, b), wantErr: ErrUnknownPartition},
		{command: copyStarted(orders.ID, -1, b), wantErr: ErrUnknownPartition},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.SegmentID = [16]byte{} })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.BaseOffset = -1 })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.LastOffset = 999 })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.SizeBytes = -1 })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.EpochRanges = nil })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.EpochRanges[0].StartOffset = 1001 })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) { s.EpochRanges[0].Epoch = 1 })), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) {
			s.EpochRanges = append(s.EpochRanges, EpochRange{Epoch: 0, StartOffset: 1050})
		})), wantErr: ErrInvalidSegment},
		{command: copyStarted(orders.ID, 0, invalid(func(s *SegmentManifest) {
			s.EpochRanges = append(s.EpochRanges, EpochRange{Epoch: 0, StartOffset: 1100})
		})), wantErr: ErrInvalidSegment},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, testSegment(7, 0, 99, 0), 0), wantErr: ErrUnknownSegment},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, testSegment(1, 5, 99, 0), 0), wantErr: ErrUnknownSegment},
		{command: transition(commandSegmentCopyFinished, orders.ID, 1, a, 0), wantErr: ErrUnknownSegment},
		{command: transition(commandSegmentDeleted, orders.ID, 0, a, 0), wantErr: ErrInvalidSegmentTransition},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, a, 0)},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, a, 0), wantErr: ErrInvalidSegmentTransition},
		{command: copyStarted(orders.ID, 0, b)},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, b, 0)},
		// A new leader: the old one is fenced.
		{command: changePartition(orders.ID, 0, 0, 2, false, 2)},
		{command: copyStarted(orders.ID, 0, testSegment(4, 200, 299, 0)), wantErr: ErrFencedLeaderEpoch},
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, a, 0), wantErr: ErrFencedLeaderEpoch},
		{command: copyStarted(orders.ID, 0, c)},
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, a, 1)},
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, a, 1), wantErr: ErrInvalidSegmentTransition},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, a, 1), wantErr: ErrInvalidSegmentTransition},
		// The offsets of a segment being deleted may be copied again (a
		// re-upload), but not at the same base offset until it is gone.
		{command: copyStarted(orders.ID, 0, testSegment(5, 1, 99, 1))},
		{command: copyStarted(orders.ID, 0, testSegment(6, 0, 0, 1)), wantErr: ErrSegmentExists},
		{command: transition(commandSegmentDeleted, orders.ID, 0, a, 1)},
		{command: transition(commandSegmentDeleted, orders.ID, 0, a, 1), wantErr: ErrUnknownSegment},
		// An abandoned copy is deleted without being finished.
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, testSegment(5, 1, 99, 1), 1)},
		{command: copyStarted(orders.ID, 1, testSegment(8, 0, 9, 0))},
	}
	f := newFSM(discardLogger())
	for i, step := range steps {
		before := f.state()
		result := applyCommand(f, uint64(i+1), step.command)
		if !errors.Is(result.err, step.wantErr) || (step.wantErr == nil && result.err != nil) {
			t.Fatalf("step %d (%s): error %v, want %v", i, step.command.commandType(), result.err, step.wantErr)
		}
		if result.err != nil {
			requireStatesEqual(t, f.state(), before.withAppliedIndex(uint64(i+1)))
		}
	}

	state := f.state()
	finished := func(segment SegmentManifest) SegmentManifest {
		segment.State = SegmentCopyFinished
		return segment
	}
	started := func(segment SegmentManifest) SegmentManifest {
		segment.State = SegmentCopyStarted
		return segment
	}
	deleting := testSegment(5, 1, 99, 1)
	deleting.State = SegmentDeleteStarted
	want := []partitionSegment{
		{orders.ID, 0, deleting},
		{orders.ID, 0, finished(b)},
		{orders.ID, 0, started(c)},
		{orders.ID, 1, started(testSegment(8, 0, 9, 0))},
	}
	if got := allSegments(state); !reflect.DeepEqual(got, want) {
		t.Fatalf("segments\n%+v\nwant\n%+v", got, want)
	}
	if state.SegmentCount() != 4 {
		t.Errorf("SegmentCount %d, want 4", state.SegmentCount())
	}
	if start, end, ok := state.RemoteLogOffsets(orders.ID, 0); !ok || start != 100 || end != 199 {
		t.Errorf("RemoteLogOffsets = %d, %d, %t; want 100, 199, true", start, end, ok)
	}
	if _, _, ok := state.RemoteLogOffsets(orders.ID, 1); ok {
		t.Error("RemoteLogOffsets of a partition with nothing readable")
	}
	for _, test := range []struct {
		offset int64
		want   int64 // base offset, -1: none
	}{{0, -1}, {50, -1}, {99, -1}, {100, 100}, {150, 100}, {199, 100}, {200, -1}, {1000, -1}, {-5, -1}} {
		segment, ok := state.SegmentContaining(orders.ID, 0, test.offset)
		if (test.want == -1) == ok || (ok && segment.BaseOffset != test.want) {
			t.Errorf("SegmentContaining(%d) = %d, %t; want %d", test.offset, segment.BaseOffset, ok, test.want)
		}
	}
	var from []int64
	state.EachSegment(orders.ID, 0, 150, func(segment SegmentManifest) bool {
		from = append(from, segment.BaseOffset)
		return true
	})
	if !slices.Equal(from, []int64{100, 200}) {
		t.Errorf("EachSegment from 150: %v", from)
	}
	if segment, ok := state.Segment(orders.ID, 0, 200); !ok || !reflect.DeepEqual(segment, started(c)) {
		t.Errorf("Segment(200) = %+v, %t", segment, ok)
	}
	if _, ok := state.Segment(orders.ID, 0, 201); ok {
		t.Error("Segment(201) found")
	}
}

// TestDeleteTopicKeepsSegments checks the choice documented in doc.go: a
// deleted topic's manifest entries stay until deleted one by one, without
// leader fencing, and its id is not reused meanwhile.
func TestDeleteTopicKeepsSegments(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1})
	a, b := testSegment(1, 0, 99, 0), testSegment(2, 100, 199, 0)
	steps := []struct {
		command command
		wantErr error
	}{
		{command: &createTopicCommand{topic: orders}},
		{command: copyStarted(orders.ID, 0, a)},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, a, 0)},
		{command: copyStarted(orders.ID, 0, b)},
		{command: &deleteTopicCommand{name: "orders"}},
		{command: transition(commandSegmentCopyFinished, orders.ID, 0, b, 0), wantErr: ErrUnknownTopic},
		{command: copyStarted(orders.ID, 0, testSegment(3, 200, 299, 0)), wantErr: ErrUnknownTopic},
		{command: &createTopicCommand{topic: orders}, wantErr: ErrTopicIDExists},
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, a, 7)},
		{command: transition(commandSegmentDeleteStarted, orders.ID, 0, b, 3)},
		{command: transition(commandSegmentDeleted, orders.ID, 0, a, 0)},
		{command: &createTopicCommand{topic: orders}, wantErr: ErrTopicIDExists},
		{command: transition(commandSegmentDeleted, orders.ID, 0, b, 0)},
		{command: &createTopicCommand{topic: orders}},
	}
	f := newFSM(discardLogger())
	for i, step := range steps {
		result := applyCommand(f, uint64(i+1), step.command)
		if !errors.Is(result.err, step.wantErr) || (step.wantErr == nil && result.err != nil) {
			t.Fatalf("step %d (%s): error %v, want %v", i, step.command.commandType(), result.err, step.wantErr)
		}
		if i == 4 {
			var partitions int
			f.state().EachSegmentPartition(func(topicID [16]byte, partition int32, count int) bool {
				partitions++
				if _, ok := f.state().TopicByID(topicID); ok || topicID != orders.ID || partition != 0 || count != 2 {
					t.Errorf("after DeleteTopic: partition %x/%d with %d segments", topicID, partition, count)
				}
				return true
			})
			if partitions != 1 {
				t.Errorf("after DeleteTopic: %d partitions with segments, want 1", partitions)
			}
		}
	}
	if f.state().SegmentCount() != 0 {
		t.Errorf("%d segments left", f.state().SegmentCount())
	}
}

// TestPartitionSegmentsModel checks the chunked manifest against a plain
// sorted slice through random inserts, replacements and removals, with the
// old versions unchanged.
func TestPartitionSegmentsModel(t *testing.T) {
	random := rand.New(rand.NewPCG(7, 11))
	var segments *partitionSegments
	var model []int64 // base offsets
	type version struct {
		segments *partitionSegments
		model    []int64
	}
	var versions []version
	check := func(segments *partitionSegments, model []int64) {
		t.Helper()
		var got []int64
		if segments != nil {
			for i, chunk := range segments.chunks {
				if len(chunk) == 0 || len(chunk) > segmentChunkSize {
					t.Fatalf("chunk %d has %d entries", i, len(chunk))
				}
			}
			segments.each(segmentPosition{}, func(entry *SegmentManifest) bool {
				got = append(got, entry.BaseOffset)
				return true
			})
			if segments.count != len(got) {
				t.Fatalf("count %d, %d entries", segments.count, len(got))
			}
		}
		if !slices.Equal(got, model) {
			t.Fatalf("entries %v\nwant %v", got, model)
		}
	}
	for step := range 6000 {
		base := int64(random.IntN(3000))
		if step < 1500 {
			base = int64(step) // appends, as uploads do
		}
		index, found := slices.BinarySearch(model, base)
		switch {
		case !found && random.IntN(3) > 0:
			segments = segments.inserted(SegmentManifest{BaseOffset: base, LastOffset: base})
			model = slices.Insert(slices.Clone(model), index, base)
		case found && random.IntN(2) == 0:
			position, ok := segments.find(base)
			if !ok {
				t.Fatalf("find(%d) failed", base)
			}
			segments = segments.replaced(position, SegmentManifest{BaseOffset: base, LastOffset: base, State: SegmentCopyFinished})
		case found:
			position, _ := segments.find(base)
			segments = segments.removed(position)
			model = slices.Delete(slices.Clone(model), index, index+1)
		}
		if step%7 == 0 {
			check(segments, model)
		}
		if step%500 == 0 {
			versions = append(versions, version{segments, model})
		}
	}
	check(segments, model)
	for _, old := range versions {
		check(old.segments, old.model)
	}
}

// TestSegmentsSurviveSnapshotOfLargeManifest round-trips a manifest with
// many chunks per partition.
func TestSegmentsSurviveSnapshotOfLargeManifest(t *testing.T) {
	f := newFSM(discardLogger())
	index := uint64(1)
	topic := testTopic("tiered", 1, []int32{1}, []int32{1}, []int32{1})
	applyCommand(f, index, &createTopicCommand{topic: topic})
	for partition := range int32(3) {
		for i := range int64(300) {
			segment := testSegment(byte(i), i*10, i*10+9, 0)
			segment.SegmentID[2], segment.SegmentID[3] = byte(i>>8), byte(partition)
			index++
			if result := applyCommand(f, index, copyStarted(topic.ID, partition, segment)); result.err != nil {
				t.Fatal(result.err)
			}
			if i%3 != 0 {
				index++
				applyCommand(f, index, transition(commandSegmentCopyFinished, topic.ID, partition, segment, 0))
			}
		}
	}
	data := persist(t, f)
	restored := restore(t, data)
	requireStatesEqual(t, restored.state(), f.state())
	if !bytes.Equal(persist(t, restored), data) {
		t.Fatal("a restored state persists differently")
	}
}
