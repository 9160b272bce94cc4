package metadata

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/hashicorp/raft"
)

// goldenState builds a small state with every kind of record of the first
// version 1 snapshot (no brokers): its topics are on brokers 1, 2 and 3,
// whose registrations are gone.
func goldenState(t *testing.T) *State {
	t.Helper()
	f := newFSM(discardLogger())
	index := uint64(0)
	for _, test := range goldenCommands() {
		switch test.command.(type) {
		case *initClusterCommand, *allocateProducerIDsCommand:
			index++
			if result := applyCommand(f, index, test.command); result.err != nil {
				t.Fatalf("%s: %v", test.name, result.err)
			}
		case *createTopicCommand:
			index++
			applyOnFormerBrokers(t, f, index, test.command, 1, 2, 3)
		}
	}
	index++
	applyCommand(f, index, &alterTopicConfigsCommand{name: "t", configs: map[string]string{"retention.ms": "60000"}})
	return f.state()
}

// applyOnFormerBrokers applies c at index as if brokers ids had registered
// just before it and unregistered just after it, without the log entries
// that would take: snapshot-v1.bin pins the applied index of a state written
// before CreateTopic required registered replicas, and it must keep
// restoring as written.
func applyOnFormerBrokers(t *testing.T, f *fsm, index uint64, c command, ids ...int32) {
	t.Helper()
	builder := newStateBuilder(f.state(), index)
	for _, id := range ids {
		builder.brokers.Insert(brokerKey(id), &Broker{ID: id})
	}
	if _, err := c.apply(builder); err != nil {
		t.Fatalf("%s: %v", c.commandType(), err)
	}
	for _, id := range ids {
		builder.brokers.Delete(brokerKey(id))
	}
	f.publish(builder.build(index))
}

// goldenFullState extends goldenState with every record type added after
// the first snapshot format: brokers, tiered segments.
func goldenFullState(t *testing.T) *State {
	t.Helper()
	return goldenFullStateOf(t, false)
}

// goldenFullStateOf is goldenFullState; with legacyTxnIndex its tiered
// segments have no txn index state (TxnIndexUnknown), as the state
// snapshot-v1-full-segment-record-4.bin was written from, before entries
// recorded it.
func goldenFullStateOf(t *testing.T, legacyTxnIndex bool) *State {
	t.Helper()
	finished, started, other := testSegment(1, 0, 99, 1), testSegment(2, 100, 199, 1), goldenSegment
	finished.TxnIndex = TxnIndexEmpty // started stays TxnIndexUnknown, other is TxnIndexNotEmpty
	if legacyTxnIndex {
		finished.TxnIndex, other.TxnIndex = TxnIndexUnknown, TxnIndexUnknown
	}
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(snapshotOf(t, goldenState(t)))}); err != nil {
		t.Fatal(err)
	}
	index := f.state().AppliedIndex()
	// Partition 1 of the second topic: leader 2 at leader epoch 7, where
	// goldenSegment was uploaded.
	index++
	if result := applyCommand(f, index, changePartition(goldenTopicID2, 1, 2, 2, false, 2)); result.err != nil {
		t.Fatal(result.err)
	}
	for i := range int32(5) {
		index++
		if result := applyCommand(f, index, changePartition(goldenTopicID2, 1, 3+i, NoLeaderChange, true, 2)); result.err != nil {
			t.Fatal(result.err)
		}
	}
	second := goldenRegistration
	second.ID = 2
	second.IncarnationID[0] = 0x01
	second.Rack = ""
	second.Endpoints = second.Endpoints[:1]
	// The registrations come last: a new incarnation takes the
	// leaderships of its earlier one (leader epochs move on). They apply
	// as the version 2 entries the golden files were made from (a clean
	// shutdown of any directory keeps ISRs).
	steps := []command{
		changePartition(goldenTopicID, 0, 0, NoLeaderChange, true, 1),
		copyStarted(goldenTopicID, 0, finished),
		transition(commandSegmentCopyFinished, goldenTopicID, 0, finished, 1),
		copyStarted(goldenTopicID, 0, started),
		copyStarted(goldenTopicID2, 1, other),
		&registerBrokerCommand{registration: goldenRegistration},
		&registerBrokerCommand{registration: second},
		&setBrokerFencedCommand{id: 1, epoch: int64(index + 6), fenced: false},
	}
	for _, c := range steps {
		index++
		data := encodeCommand(c)
		if c.commandType() == commandRegisterBroker {
			data[1] = 2
		}
		if result := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult); result.err != nil {
			t.Fatalf("%s: %v", c.commandType(), result.err)
		}
	}
	return f.state()
}

func TestSnapshotGolden(t *testing.T) {
	state := goldenState(t)
	checkGolden(t, "snapshot-v1.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
}

// TestSnapshotGoldenFull pins the records added to format version 1 since
// its first golden file (which must keep restoring: TestSnapshotGolden).
func TestSnapshotGoldenFull(t *testing.T) {
	state := goldenFullState(t)
	checkGolden(t, "snapshot-v1-full.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-full.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
}

// TestSnapshotGoldenSegmentRecordWithoutTxnIndex: a snapshot written
// before manifest entries recorded their txn index state (segment records
// of type recordSegments) keeps restoring, its entries' state unknown, so
// readers fetch their .txnindex as before.
func TestSnapshotGoldenSegmentRecordWithoutTxnIndex(t *testing.T) {
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-full-segment-record-4.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, goldenFullStateOf(t, true))
}

// TestSnapshotGoldenBrokerRecordWithoutDirectory: a snapshot written before
// directory ids (broker records of type recordBroker) keeps restoring, its
// brokers without a directory id.
func TestSnapshotGoldenBrokerRecordWithoutDirectory(t *testing.T) {
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-full-broker-record-3.bin")))
	if err != nil {
		t.Fatal(err)
	}
	brokers := restored.Brokers()
	if len(brokers) != 2 {
		t.Fatalf("restored brokers %+v, want 2", brokers)
	}
	for _, broker := range brokers {
		if broker.DirectoryID != ([16]byte{}) || broker.Epoch == 0 {
			t.Errorf("restored broker %+v: want an epoch and no directory id", broker)
		}
	}
	if restored.TopicCount() != 2 {
		t.Errorf("restored %d topics, want 2", restored.TopicCount())
	}
}

func TestSnapshotEmptyState(t *testing.T) {
	restored, err := readSnapshot(bytes.NewReader(snapshotOf(t, emptyState())))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, emptyState())
}

// appendRecord frames a record the way writeSnapshot does.
func appendRecord(data []byte, recordType uint8, payload []byte) []byte {
	start := len(data)
	data = append(data, recordType)
	data = binary.BigEndian.AppendUint32(data, uint32(len(payload)))
	data = append(data, payload...)
	return binary.BigEndian.AppendUint32(data, crc32.Checksum(data[start:], crcTable))
}

// withEndRecord replaces the end record of a snapshot with records followed
// by a new end record counting them.
func rewriteTail(t *testing.T, snapshot []byte, extra func(data []byte) ([]byte, uint64)) []byte {
	t.Helper()
	endRecordSize := recordHeaderSize + 8 + recordTrailerSize
	body := snapshot[:len(snapshot)-endRecordSize]
	oldCount := binary.BigEndian.Uint64(snapshot[len(snapshot)-endRecordSize+recordHeaderSize:])
	data, added := extra(append([]byte(nil), body...))
	return appendRecord(data, recordEnd, binary.BigEndian.AppendUint64(nil, oldCount+added))
}

func TestSnapshotRejectsCorruption(t *testing.T) {
	valid := snapshotOf(t, goldenFullState(t))

	t.Run("every truncation", func(t *testing.T) {
		for length := range len(valid) {
			if _, err := readSnapshot(bytes.NewReader(valid[:length])); !IsCorrupt(err) {
				t.Fatalf("truncated to %d of %d bytes: error %v, want ErrCorrupt", length, len(valid), err)
			}
		}
	})
	t.Run("every bit flip", func(t *testing.T) {
		for offset := range len(valid) {
			for bit := range 8 {
				corrupted := bytes.Clone(valid)
				corrupted[offset] ^= 1 << bit
				if _, err := readSnapshot(bytes.NewReader(corrupted)); !IsCorrupt(err) {
					t.Fatalf("bit %d of byte %d flipped: error %v, want ErrCorrupt", bit, offset, err)
				}
			}
		}
	})

	topicPayload := func(name string, id byte) []byte {
		var e encoder
		topic := testTopic(name, id, []int32{1})
		encodeTopic(&e, &topic)
		return e.buffer
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"trailing bytes", append(bytes.Clone(valid), 0)},
		{"wrong version", func() []byte {
			data := bytes.Clone(valid)
			data[len(snapshotMagic)+1] = 2
			return data
		}()},
		{"duplicate topic name", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordTopic, topicPayload("t", 77)), 1
		})},
		{"duplicate topic id", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			var e encoder
			topic := testTopic("zzz", 0, []int32{1})
			topic.ID = goldenTopicID
			encodeTopic(&e, &topic)
			return appendRecord(data, recordTopic, e.buffer), 1
		})},
		{"brokers out of order", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			var e encoder
			broker := Broker{ID: 1, IncarnationID: goldenIncarnation, Endpoints: goldenRegistration.Endpoints}
			encodeBroker(&e, &broker)
			return appendRecord(data, recordBroker, e.buffer), 1
		})},
		{"segment partitions out of order", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordSegmentsWithTxnIndex, segmentsPayload(goldenTopicID2, 0, SegmentCopyStarted, testSegment(9, 500, 599, 1))), 1
		})},
		{"segments out of order", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordSegmentsWithTxnIndex, segmentsPayload(goldenTopicID, 0, SegmentCopyStarted, testSegment(9, 100, 109, 1))), 1
		})},
		{"segment with unknown state", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordSegmentsWithTxnIndex, segmentsPayload(goldenTopicID, 0, 4, testSegment(9, 5000, 5099, 1))), 1
		})},
		{"segment record with negative partition", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordSegmentsWithTxnIndex, segmentsPayload([16]byte{0xff}, -1, SegmentCopyStarted, testSegment(9, 5000, 5099, 1))), 1
		})},
		{"segment with unknown txn index state", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			segment := testSegment(9, 5000, 5099, 1)
			segment.TxnIndex = TxnIndexNotEmpty + 1
			return appendRecord(data, recordSegmentsWithTxnIndex, segmentsPayload(goldenTopicID, 0, SegmentCopyStarted, segment)), 1
		})},
		{"legacy segment record with a txn index state", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordSegments, segmentsPayload(goldenTopicID, 0, SegmentCopyStarted, testSegment(9, 5000, 5099, 1))), 1
		})},
		{"empty segment record", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			payload := segmentsPayload([16]byte{0xff}, 1, SegmentCopyStarted)
			return appendRecord(data, recordSegmentsWithTxnIndex, payload), 1
		})},
		{"wrong record count", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) { return data, 1 })},
		{"unknown mandatory record", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, 0x33, []byte{1}), 1
		})},
		{"second cluster record", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			var e encoder
			e.uint64(1)
			e.string("x")
			e.int64(0)
			return appendRecord(data, recordCluster, e.buffer), 1
		})},
		{"topic record with trailing payload", rewriteTail(t, valid, func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordTopic, append(topicPayload("zzz", 78), 0)), 1
		})},
		{"oversized record length", func() []byte {
			data := []byte(snapshotMagic)
			data = binary.BigEndian.AppendUint16(data, snapshotVersion)
			data = append(data, recordCluster)
			return binary.BigEndian.AppendUint32(data, maxRecordPayload+1)
		}()},
		{"no cluster record first", func() []byte {
			data := []byte(snapshotMagic)
			data = binary.BigEndian.AppendUint16(data, snapshotVersion)
			data = appendRecord(data, recordTopic, topicPayload("a", 1))
			return appendRecord(data, recordEnd, binary.BigEndian.AppendUint64(nil, 1))
		}()},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if _, err := readSnapshot(bytes.NewReader(test.data)); !IsCorrupt(err) {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
		})
	}
}

// segmentsPayload encodes a segment record (recordSegmentsWithTxnIndex).
func segmentsPayload(topicID [16]byte, partition int32, state SegmentState, segments ...SegmentManifest) []byte {
	var e encoder
	e.uuid(topicID)
	e.int32(partition)
	e.uvarint(uint64(len(segments)))
	for i := range segments {
		e.uint8(uint8(state))
		encodeSegment(&e, &segments[i])
	}
	return e.buffer
}

func TestSnapshotSkipsIgnorableUnknownRecords(t *testing.T) {
	state := goldenState(t)
	data := rewriteTail(t, snapshotOf(t, state), func(data []byte) ([]byte, uint64) {
		return appendRecord(data, recordIgnoreUnknown|0x33, []byte("from a newer build")), 1
	})
	restored, err := readSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
}

// TestSnapshotManyTopics round-trips a state larger than the I/O buffers.
func TestSnapshotManyTopics(t *testing.T) {
	f := applySteps(t, registerBrokers(1, 2, 3))
	index := f.state().AppliedIndex()
	const topics = 5000
	for i := range topics {
		topic := testTopic(fmt.Sprintf("topic-%05d", i), 0, []int32{1, 2, 3}, []int32{2, 3, 1})
		topic.ID = [16]byte{0xcc, byte(i >> 8), byte(i)}
		topic.Configs = map[string]string{"retention.ms": fmt.Sprint(i)}
		index++
		if result := applyCommand(f, index, &createTopicCommand{topic: topic}); result.err != nil {
			t.Fatal(result.err)
		}
	}
	restored := restore(t, persist(t, f))
	requireStatesEqual(t, restored.state(), f.state())
	if restored.state().TopicCount() != topics {
		t.Fatalf("%d topics restored, want %d", restored.state().TopicCount(), topics)
	}
}
