package metadata

import (
	"bytes"
	"encoding/binary"
	"io"
	"runtime"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// Manifest sizes of BenchmarkTieredManifest: 1000 partitions × 1000
// segments = 1M entries.
const (
	benchPartitions           = 1000
	benchSegmentsPerPartition = 1000
)

var benchTopicID = [16]byte{0xbe, 0x4c}

// benchSegment is segment number i of a partition: 1000 offsets, one epoch.
func benchSegment(partition int32, i int64) SegmentManifest {
	var id [16]byte
	binary.BigEndian.PutUint32(id[:], uint32(partition))
	binary.BigEndian.PutUint64(id[4:], uint64(i)+1)
	base := i * 1000
	return SegmentManifest{
		SegmentID: id, BaseOffset: base, LastOffset: base + 999, SizeBytes: 1 << 20,
		FirstTimestamp: goldenCreatedAt + base, MaxTimestamp: goldenCreatedAt + base + 999,
		EpochRanges: []EpochRange{{Epoch: 0, StartOffset: base}},
	}
}

// benchApplier applies pre-encoded commands at increasing indexes, as Raft
// hands them to the FSM: decoding and publishing included, encoding not.
type benchApplier struct {
	fsm   *fsm
	index uint64
	log   raft.Log
	// appended counts the segments benchApplySegments added, so that a
	// benchmark run again on the same FSM continues after them.
	appended int
}

func (a *benchApplier) apply(b *testing.B, data []byte) {
	a.index++
	a.log = raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: data}
	if result := a.fsm.Apply(&a.log).(applyResult); result.err != nil {
		b.Fatalf("index %d: %v", a.index, result.err)
	}
}

// benchTieredFSM returns an FSM holding brokers 1 and 2 and a topic of
// benchPartitions partitions on them with segmentsPerPartition finished
// segments each, built through Apply.
func benchTieredFSM(b *testing.B, segmentsPerPartition int64) *benchApplier {
	applier := &benchApplier{fsm: newFSM(discardLogger())}
	for _, step := range registerBrokers(1, 2) {
		applier.apply(b, encodeCommand(step.command))
	}
	assignments := make([][]int32, benchPartitions)
	for i := range assignments {
		assignments[i] = []int32{1, 2}
	}
	topic := Topic{Name: "tiered", ID: benchTopicID, CreatedAtUnixMilli: goldenCreatedAt, Partitions: newPartitions(0, assignments)}
	applier.apply(b, encodeCommand(&createTopicCommand{topic: topic}))
	for i := range segmentsPerPartition {
		for partition := range int32(benchPartitions) {
			segment := benchSegment(partition, i)
			applier.apply(b, encodeCommand(copyStarted(benchTopicID, partition, segment)))
			applier.apply(b, encodeCommand(transition(commandSegmentCopyFinished, benchTopicID, partition, segment, 0)))
		}
	}
	return applier
}

func heapInUse() (inUse, alloc uint64) {
	runtime.GC()
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapInuse, stats.HeapAlloc
}

// BenchmarkTieredManifest measures the FSM at 1M tiered-segment manifest
// entries (1000 partitions × 1000 segments): heap per entry, Snapshot,
// Persist, Restore, and Apply on top of it. Building the state takes
// a few seconds; -short skips it.
//
//	go test -run '^$' -bench TieredManifest -benchmem ./metadata/
func BenchmarkTieredManifest(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1M manifest entries")
	}
	inUseBefore, allocBefore := heapInUse()
	applier := benchTieredFSM(b, benchSegmentsPerPartition)
	state := applier.fsm.state()
	inUseAfter, allocAfter := heapInUse()
	entries := float64(state.SegmentCount())
	if entries != benchPartitions*benchSegmentsPerPartition {
		b.Fatalf("%v entries", entries)
	}
	var snapshot bytes.Buffer
	if err := writeSnapshot(&snapshot, state); err != nil {
		b.Fatal(err)
	}

	b.Run("Memory", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(inUseAfter-inUseBefore)/entries, "heap-inuse-B/entry")
		b.ReportMetric(float64(allocAfter-allocBefore)/entries, "heap-alloc-B/entry")
		b.ReportMetric(float64(inUseAfter-inUseBefore)/(1<<20), "heap-inuse-MiB")
		b.ReportMetric(float64(snapshot.Len())/entries, "snapshot-B/entry")
	})
	b.Run("Snapshot", func(b *testing.B) {
		for b.Loop() {
			if _, err := applier.fsm.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Persist", func(b *testing.B) {
		b.SetBytes(int64(snapshot.Len()))
		for b.Loop() {
			if err := writeSnapshot(io.Discard, state); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Restore", func(b *testing.B) {
		b.SetBytes(int64(snapshot.Len()))
		for b.Loop() {
			restored, err := readSnapshot(bytes.NewReader(snapshot.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			if restored.SegmentCount() != state.SegmentCount() {
				b.Fatal("restored a different count")
			}
		}
	})
	b.Run("ApplySegmentCopyStartedFinished", func(b *testing.B) {
		benchApplySegments(b, applier, benchSegmentsPerPartition)
	})
	b.Run("ApplyChangePartition", func(b *testing.B) {
		benchApplyChangePartition(b, applier)
	})
}

// BenchmarkApply measures Apply of metadata commands on a small state
// (a topic of 1000 partitions with no tiered segments).
//
//	go test -run '^$' -bench 'Apply$' ./metadata/
func BenchmarkApply(b *testing.B) {
	b.Run("SegmentCopyStartedFinished", func(b *testing.B) {
		benchApplySegments(b, benchTieredFSM(b, 0), 0)
	})
	b.Run("ChangePartition", func(b *testing.B) {
		benchApplyChangePartition(b, benchTieredFSM(b, 0))
	})
	b.Run("RegisterBroker", func(b *testing.B) {
		applier := benchTieredFSM(b, 0)
		commands := make([][]byte, 0, b.N)
		for i := range b.N {
			registration := goldenRegistration
			registration.ID = int32(i % 100)
			binary.BigEndian.PutUint64(registration.IncarnationID[8:], uint64(i))
			commands = append(commands, encodeCommand(&registerBrokerCommand{registration: registration}))
		}
		b.ResetTimer()
		for i := range b.N {
			applier.apply(b, commands[i])
		}
	})
}

// benchApplySegments appends one finished segment per op (two commands,
// SegmentCopyStarted and SegmentCopyFinished) to the partitions in turn,
// after the first segments already there.
func benchApplySegments(b *testing.B, applier *benchApplier, first int64) {
	commands := make([][]byte, 0, 2*b.N)
	for i := applier.appended; i < applier.appended+b.N; i++ {
		partition := int32(i % benchPartitions)
		segment := benchSegment(partition, first+int64(i/benchPartitions))
		commands = append(commands,
			encodeCommand(copyStarted(benchTopicID, partition, segment)),
			encodeCommand(transition(commandSegmentCopyFinished, benchTopicID, partition, segment, 0)))
	}
	applier.appended += b.N
	b.ResetTimer()
	for _, data := range commands {
		applier.apply(b, data)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(commands)), "ns/command")
}

// benchApplyChangePartition shrinks and expands the ISR of the partitions
// in turn, each change based on the partition epoch of the one before.
func benchApplyChangePartition(b *testing.B, applier *benchApplier) {
	topic, _ := applier.fsm.state().TopicByID(benchTopicID)
	partitions := slices.Clone(topic.Partitions)
	commands := make([][]byte, 0, b.N)
	for i := range b.N {
		partition := &partitions[i%len(partitions)]
		// Shrink and expand the ISR in turn.
		isr := []int32{1, 2}
		if len(partition.ISR) == 2 {
			isr = []int32{1}
		}
		commands = append(commands, encodeCommand(changePartition(benchTopicID, partition.Index, partition.PartitionEpoch, NoLeaderChange, false, isr...)))
		partition.ISR = isr
		partition.PartitionEpoch++
	}
	b.ResetTimer()
	for _, data := range commands {
		applier.apply(b, data)
	}
}
