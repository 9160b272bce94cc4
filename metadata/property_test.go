package metadata

import (
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// propertySeed reproduces a TestSnapshotRestoreProperty run:
// go test ./metadata -run SnapshotRestoreProperty -property-seed N
var propertySeed = flag.Uint64("property-seed", 0, "extra seed for TestSnapshotRestoreProperty (0: one from the clock)")

func (g *commandGenerator) current() *State {
	if g.state == nil {
		return emptyState()
	}
	return g.state()
}

// chance reports true with probability percent/100.
func (g *commandGenerator) chance(percent int) bool { return g.random.IntN(100) < percent }

// pickPartition returns a topic and partition of the state (or, sometimes
// or when there is none, made-up ones).
func (g *commandGenerator) pickPartition() (Topic, int32) {
	topics := g.current().Topics()
	if len(topics) == 0 || g.chance(5) {
		return Topic{ID: [16]byte{byte(g.random.IntN(256)), 1}}, g.random.Int32N(3)
	}
	topic := topics[g.random.IntN(len(topics))]
	partition := g.random.Int32N(int32(len(topic.Partitions)))
	if g.chance(5) {
		partition = int32(len(topic.Partitions))
	}
	return topic, partition
}

// leaderEpoch returns the partition's leader epoch, or sometimes another.
func (g *commandGenerator) leaderEpoch(topic Topic, partition int32) int32 {
	epoch := g.random.Int32N(5)
	if topic.HasPartition(partition) && g.chance(85) {
		epoch = topic.Partitions[partition].LeaderEpoch
		if g.chance(5) {
			epoch += int32(g.random.IntN(3)) - 1
		}
	}
	return epoch
}

func (g *commandGenerator) segmentID() [16]byte {
	var id [16]byte
	for i := range id {
		id[i] = byte(g.random.IntN(256))
	}
	return id
}

// brokerEpoch returns broker id's epoch, or sometimes another.
func (g *commandGenerator) brokerEpoch(id int32) int64 {
	if broker, ok := g.current().Broker(id); ok && g.chance(80) {
		return broker.Epoch
	}
	return g.random.Int64N(50) - 1
}

// nextClusterCommand returns a broker, partition or tiered-segment command;
// choice is 0..9.
func (g *commandGenerator) nextClusterCommand(choice int) command {
	switch choice {
	case 0:
		registration := BrokerRegistration{
			ID:            g.random.Int32N(5),
			IncarnationID: [16]byte{byte(1 + g.random.IntN(3))},
			Endpoints:     []BrokerEndpoint{{Listener: "CLIENT", Host: "h", Port: 9092, SecurityProtocol: "PLAINTEXT"}},
			Rack:          []string{"", "r1"}[g.random.IntN(2)],
		}
		if g.chance(30) {
			registration.Endpoints = append(registration.Endpoints, BrokerEndpoint{Listener: "INTERNAL", Host: "i", Port: 9094, SecurityProtocol: "SSL"})
		}
		if g.chance(10) {
			registration.Endpoints[0].Port = 0
		}
		// Directory ids and clean shutdowns (RegisterBroker v2+; v3 keeps
		// ISRs only on the same directory).
		registration.DirectoryID = [][16]byte{{}, {0xd1}, {0xd2}}[g.random.IntN(3)]
		registration.CleanShutdown = g.chance(50)
		return &registerBrokerCommand{registration: registration}
	case 1:
		id := g.random.Int32N(6)
		epoch := g.brokerEpoch(id)
		if g.chance(20) {
			epoch = AnyBrokerEpoch
		}
		return &unregisterBrokerCommand{id: id, epoch: epoch}
	case 2:
		id := g.random.Int32N(6)
		return &setBrokerFencedCommand{id: id, epoch: g.brokerEpoch(id), fenced: g.chance(50)}
	case 3, 4:
		if g.chance(25) {
			return g.nextReassignCommand()
		}
		topic, partition := g.pickPartition()
		change := PartitionChange{TopicID: topic.ID, Partition: partition, PartitionEpoch: g.random.Int32N(4), Leader: NoLeaderChange}
		replicas := []int32{1, 2, 3}
		if topic.HasPartition(partition) {
			current := topic.Partitions[partition]
			replicas = current.Replicas
			if g.chance(85) {
				change.PartitionEpoch = current.PartitionEpoch
			}
		}
		for _, replica := range replicas {
			if g.chance(60) {
				change.ISR = append(change.ISR, replica)
			}
		}
		switch {
		case g.chance(10):
			change.Leader = -1
		case g.chance(50) && len(change.ISR) > 0:
			change.Leader = change.ISR[g.random.IntN(len(change.ISR))]
		case g.chance(10):
			change.Leader = replicas[g.random.IntN(len(replicas))]
		}
		if g.chance(10) {
			change.ISR = append(change.ISR, 7) // not a replica
		}
		change.BumpLeaderEpoch = g.chance(20)
		if g.chance(30) {
			// KIP-903 broker epochs: mostly the current registrations'.
			change.ISRBrokerEpochs = make([]int64, len(change.ISR))
			for i, r := range change.ISR {
				change.ISRBrokerEpochs[i] = -1
				if g.chance(50) {
					change.ISRBrokerEpochs[i] = g.brokerEpoch(r)
				}
			}
		}
		return &changePartitionCommand{change: change}
	case 5, 6:
		topic, partition := g.pickPartition()
		leaderEpoch := g.leaderEpoch(topic, partition)
		base := g.segmentBase(topic, partition)
		last := base + g.random.Int64N(20)
		segment := SegmentManifest{
			SegmentID: g.segmentID(), BaseOffset: base, LastOffset: last, SizeBytes: (last - base) * 10,
			FirstTimestamp: base, MaxTimestamp: last, LeaderEpoch: leaderEpoch, TxnIndex: TxnIndexState(g.random.IntN(3)),
			EpochRanges: []EpochRange{{Epoch: max(0, leaderEpoch-1), StartOffset: base}},
		}
		if last > base && leaderEpoch > 0 && g.chance(30) {
			segment.EpochRanges = append(segment.EpochRanges, EpochRange{Epoch: leaderEpoch, StartOffset: last})
		}
		if g.chance(5) {
			segment.EpochRanges = nil
		}
		return &segmentCopyStartedCommand{topicID: topic.ID, partition: partition, segment: segment}
	case 9:
		if g.chance(40) {
			topic, partition := g.pickPartition()
			return &setLogStartOffsetCommand{topicID: topic.ID, partition: partition, leaderEpoch: g.leaderEpoch(topic, partition), offset: g.random.Int64N(400) - 5}
		}
		return g.segmentsImported()
	default:
		return g.segmentTransition()
	}
}

// segmentBase returns a base offset for a new segment of the partition:
// mostly after its last entry, as uploads go, else anywhere.
func (g *commandGenerator) segmentBase(topic Topic, partition int32) int64 {
	base := g.random.Int64N(400)
	if g.chance(60) {
		g.current().EachSegment(topic.ID, partition, 1<<62, func(segment SegmentManifest) bool {
			base = segment.LastOffset + 1 + g.random.Int64N(2)
			return false
		})
	}
	return base
}

// segmentsImported returns an import of a few segments written at epochs
// that are often above the partition's leader epoch; sometimes the batch
// is out of order or overlaps itself.
func (g *commandGenerator) segmentsImported() command {
	topic, partition := g.pickPartition()
	base := g.segmentBase(topic, partition)
	segments := make([]SegmentManifest, 1+g.random.IntN(4))
	for i := range segments {
		last := base + g.random.Int64N(20)
		leaderEpoch := g.random.Int32N(8)
		segments[i] = SegmentManifest{
			SegmentID: g.segmentID(), BaseOffset: base, LastOffset: last, SizeBytes: (last - base) * 10,
			FirstTimestamp: base, MaxTimestamp: last, LeaderEpoch: leaderEpoch, TxnIndex: TxnIndexState(g.random.IntN(3)),
			EpochRanges: []EpochRange{{Epoch: g.random.Int32N(leaderEpoch + 1), StartOffset: base}},
		}
		base = last + 1 + g.random.Int64N(3)
	}
	if len(segments) > 1 && g.chance(10) {
		segments[0], segments[1] = segments[1], segments[0]
	}
	if g.chance(5) {
		segments[len(segments)-1].BaseOffset = segments[0].BaseOffset
		segments[len(segments)-1].EpochRanges[0].StartOffset = segments[0].BaseOffset
	}
	return &segmentsImportedCommand{topicID: topic.ID, partition: partition, segments: segments}
}

// segmentTransition moves a random manifest entry, mostly forward.
func (g *commandGenerator) segmentTransition() command {
	state := g.current()
	type partitionKey struct {
		topicID   [16]byte
		partition int32
	}
	var partitions []partitionKey
	state.EachSegmentPartition(func(topicID [16]byte, partition int32, _ int) bool {
		partitions = append(partitions, partitionKey{topicID, partition})
		return true
	})
	types := []commandType{commandSegmentCopyFinished, commandSegmentDeleteStarted, commandSegmentDeleted}
	if len(partitions) == 0 {
		return &segmentTransitionCommand{typ: types[g.random.IntN(3)], ref: SegmentRef{SegmentID: g.segmentID()}}
	}
	key := partitions[g.random.IntN(len(partitions))]
	var entries []SegmentManifest
	state.EachSegment(key.topicID, key.partition, 0, func(segment SegmentManifest) bool {
		entries = append(entries, segment)
		return true
	})
	entry := entries[g.random.IntN(len(entries))]
	topic, _ := state.TopicByID(key.topicID)
	ref := SegmentRef{
		TopicID: key.topicID, Partition: key.partition, BaseOffset: entry.BaseOffset,
		SegmentID: entry.SegmentID, LeaderEpoch: g.leaderEpoch(topic, key.partition),
	}
	if g.chance(5) {
		ref.SegmentID = g.segmentID()
	}
	typ := types[g.random.IntN(3)]
	if g.chance(80) {
		switch entry.State {
		case SegmentCopyStarted:
			typ = commandSegmentCopyFinished
			if g.chance(20) {
				typ = commandSegmentDeleteStarted
			}
		case SegmentCopyFinished:
			typ = commandSegmentDeleteStarted
		case SegmentDeleteStarted:
			typ = commandSegmentDeleted
		}
	}
	return &segmentTransitionCommand{typ: typ, ref: ref}
}

// checkInvariants fails if state breaks an invariant the commands keep.
func checkInvariants(t *testing.T, state *State) {
	t.Helper()
	total := 0
	state.segments.Root().Walk(func(key []byte, segments *partitionSegments) bool {
		total += segments.count
		var live []SegmentManifest
		for _, chunk := range segments.chunks {
			if len(chunk) == 0 || len(chunk) > segmentChunkSize {
				t.Fatalf("partition %x: chunk of %d entries", key, len(chunk))
			}
			for _, entry := range chunk {
				if entry.State == SegmentDeleteStarted {
					continue
				}
				if len(live) > 0 && live[len(live)-1].LastOffset >= entry.BaseOffset {
					t.Fatalf("partition %x: segments %d..%d and %d..%d overlap", key,
						live[len(live)-1].BaseOffset, live[len(live)-1].LastOffset, entry.BaseOffset, entry.LastOffset)
				}
				live = append(live, entry)
			}
		}
		return false
	})
	if total != state.SegmentCount() {
		t.Fatalf("SegmentCount %d, entries %d", state.SegmentCount(), total)
	}
	state.EachTopic(func(topic Topic) bool {
		for _, partition := range topic.Partitions {
			if err := validatePartition(partition); err != nil {
				t.Fatalf("topic %q: %v", topic.Name, err)
			}
		}
		return true
	})
}

// TestSnapshotRestoreProperty applies random sequences of every command,
// valid and invalid, snapshots at random points, restores into fresh FSMs,
// and checks that the states are equal and stay equal while both apply the
// rest of the sequence. The fixed seeds run every time; one more seed comes
// from the clock (or -property-seed) and is logged.
func TestSnapshotRestoreProperty(t *testing.T) {
	seeds := make([]uint64, 0, 21)
	for seed := range uint64(20) {
		seeds = append(seeds, seed)
	}
	extra := *propertySeed
	if extra == 0 {
		extra = uint64(time.Now().UnixNano())
	}
	t.Logf("extra seed %d (reproduce with -property-seed %d)", extra, extra)
	seeds = append(seeds, extra)

	accepted := map[commandType]int{}
	rejected := map[commandType]int{}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			generator := newCommandGenerator(seed)
			original := newFSM(discardLogger())
			generator.state = original.state
			var restored []*fsm
			var rejections int
			const steps = 400
			for i := range steps {
				index := uint64(i + 1)
				c := generator.next()
				data := generator.olderEncoding(c)
				result := applyData(original, index, data)
				var halted *UnappliableEntryError
				if errors.As(result.err, &halted) {
					t.Fatalf("entry %d (%s v%d) does not apply: %v", index, c.commandType(), data[1], halted)
				}
				if result.err != nil {
					rejections++
					rejected[c.commandType()]++
				} else {
					accepted[c.commandType()]++
				}
				checkInvariants(t, original.state())
				for _, replica := range restored {
					applyData(replica, index, data)
				}
				if generator.random.IntN(60) == 0 {
					replica := restore(t, persist(t, original))
					requireStatesEqual(t, replica.state(), original.state())
					restored = append(restored, replica)
				}
			}
			for _, replica := range restored {
				requireStatesEqual(t, replica.state(), original.state())
			}
			if rejections == 0 || rejections == steps {
				t.Fatalf("%d of %d commands rejected: the generator does not exercise both paths", rejections, steps)
			}
		})
	}
	for typ := range commandTable {
		if accepted[typ] == 0 || rejected[typ] == 0 {
			t.Errorf("%s: %d accepted, %d rejected; the generator should produce both", typ, accepted[typ], rejected[typ])
		}
	}
	t.Logf("accepted %v\nrejected %v", accepted, rejected)
}

// olderEncoding returns c's Raft log data, sometimes at the version an
// earlier build wrote (where c's fields fit it), so that entries of every
// version this build applies are replayed and snapshotted: they must
// apply as they did then, on the original and on a restored state alike.
func (g *commandGenerator) olderEncoding(c command) []byte {
	data := encodeCommand(c)
	if !g.chance(30) {
		return data
	}
	switch c := c.(type) {
	case *changePartitionCommand:
		if len(c.change.ISRBrokerEpochs) == 0 && g.chance(30) {
			// v1 ends after the ISR: drop the empty epochs list.
			return append([]byte{data[0], 1}, data[commandHeaderSize:len(data)-1]...)
		}
		// The same fields: at v3 fenced brokers could lead; at v2 they
		// could also join the ISR.
		data[1] = uint8(2 + g.random.IntN(2))
	case *registerBrokerCommand:
		if g.chance(30) {
			// v1 ends after the rack: drop the directory id and the flag.
			return append([]byte{data[0], 1}, data[commandHeaderSize:len(data)-17]...)
		}
		data[1] = 2 // the same fields; a clean shutdown of any directory
	case *alterPartitionReassignmentCommand:
		// The same fields: at v2 a finish did not check the brokers; at v1
		// a start also started from the union replicas.
		data[1] = uint8(1 + g.random.IntN(2))
	case *alterTopicConfigsCommand:
		if !c.checked && len(c.from) == 0 {
			return append([]byte{data[0], 1}, data[commandHeaderSize:len(data)-2]...)
		}
	case *alterBrokerConfigsCommand:
		if !c.checked && len(c.from) == 0 {
			return append([]byte{data[0], 1}, data[commandHeaderSize:len(data)-2]...)
		}
	}
	return data
}

// applyData applies one Raft log entry's data to f.
func applyData(f *fsm, index uint64, data []byte) applyResult {
	return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
}
