package metadata

import (
	"bytes"
	"errors"
	"testing"
)

// allLogStarts lists every log start offset in the state by partition key.
func allLogStarts(state *State) map[string]int64 {
	all := map[string]int64{}
	iterator := state.logStarts.Root().Iterator()
	for key, offset, ok := iterator.Next(); ok; key, offset, ok = iterator.Next() {
		all[string(key)] = offset
	}
	return all
}

// goldenLogStartState is goldenFullState with a log start offset set on
// partition 0 of goldenTopicID (leader epoch 2 there).
func goldenLogStartState(t *testing.T) (*fsm, uint64) {
	t.Helper()
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(snapshotOf(t, goldenFullState(t)))}); err != nil {
		t.Fatal(err)
	}
	index := f.state().AppliedIndex() + 1
	if result := applyCommand(f, index, &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 0, leaderEpoch: 2, offset: 150}); result.err != nil {
		t.Fatal(result.err)
	}
	return f, index
}

// TestSetLogStartOffset: the log start moves forward only, the proposer is
// fenced by its leader epoch, and the topic's deletion drops it.
func TestSetLogStartOffset(t *testing.T) {
	f, index := goldenLogStartState(t)
	if offset, ok := f.state().LogStartOffset(goldenTopicID, 0); !ok || offset != 150 {
		t.Fatalf("log start %d, %t; want 150", offset, ok)
	}
	for _, c := range []struct {
		name    string
		command *setLogStartOffsetCommand
		want    int64
		err     error
	}{
		{"backwards is a no-op", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 0, leaderEpoch: 2, offset: 100}, 150, nil},
		{"forward", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 0, leaderEpoch: 2, offset: 180}, 180, nil},
		{"stale leader epoch", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 0, leaderEpoch: 1, offset: 190}, 0, ErrFencedLeaderEpoch},
		{"negative", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 0, leaderEpoch: 2, offset: -1}, 0, ErrInvalidLogStartOffset},
		{"unknown partition", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 9, leaderEpoch: 1, offset: 1}, 0, ErrUnknownPartition},
		{"unknown topic", &setLogStartOffsetCommand{topicID: [16]byte{9}, partition: 0, leaderEpoch: 1, offset: 1}, 0, ErrUnknownTopic},
	} {
		t.Run(c.name, func(t *testing.T) {
			index++
			result := applyCommand(f, index, c.command)
			if !errors.Is(result.err, c.err) || (c.err == nil && result.value != c.want) {
				t.Fatalf("result %v, %v; want %d, %v", result.value, result.err, c.want, c.err)
			}
		})
	}
	if offset, _ := f.state().LogStartOffset(goldenTopicID, 0); offset != 180 {
		t.Fatalf("log start %d after the rejected commands, want 180", offset)
	}
	index++
	if result := applyCommand(f, index, &deleteTopicCommand{name: "t"}); result.err != nil {
		t.Fatal(result.err)
	}
	if offset, ok := f.state().LogStartOffset(goldenTopicID, 0); ok {
		t.Fatalf("log start %d survived the topic's deletion", offset)
	}
}

// TestSnapshotGoldenLogStart pins snapshot record 0x09 (log start).
func TestSnapshotGoldenLogStart(t *testing.T) {
	f, _ := goldenLogStartState(t)
	state := f.state()
	checkGolden(t, "snapshot-v1-log-start.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-log-start.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
	if offset, ok := restored.LogStartOffset(goldenTopicID, 0); !ok || offset != 150 {
		t.Fatalf("restored log start %d, %t; want 150", offset, ok)
	}
}
