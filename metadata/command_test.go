package metadata

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/authz"
)

var (
	goldenTopicID   = [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	goldenTopicID2  = [16]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x47, 0x08, 0x89, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	goldenCreatedAt = int64(1700000000000)
	goldenSegment   = SegmentManifest{
		SegmentID:      [16]byte{0x9a, 0x8b, 0x7c, 0x6d, 0x5e, 0x4f, 0x40, 0x31, 0xa2, 0x13, 0x04, 0xf5, 0xe6, 0xd7, 0xc8, 0xb9},
		BaseOffset:     1000,
		LastOffset:     1999,
		SizeBytes:      1 << 20,
		FirstTimestamp: goldenCreatedAt,
		MaxTimestamp:   goldenCreatedAt + 60000,
		LeaderEpoch:    7,
		State:          SegmentCopyStarted,
		TxnIndex:       TxnIndexNotEmpty,
		EpochRanges:    []EpochRange{{Epoch: 5, StartOffset: 1000}, {Epoch: 7, StartOffset: 1500}},
	}
	goldenIncarnation  = [16]byte{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x46, 0x87, 0x98, 0x89, 0x7a, 0x6b, 0x5c, 0x4d, 0x3e, 0x2f}
	goldenRegistration = BrokerRegistration{
		ID:            1,
		IncarnationID: goldenIncarnation,
		Endpoints: []BrokerEndpoint{
			{Listener: "CLIENT", Host: "broker-1.example", Port: 9092, SecurityProtocol: "PLAINTEXT"},
			{Listener: "INTERNAL", Host: "10.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"},
		},
		Rack:          "rack-a",
		DirectoryID:   goldenDirectory,
		CleanShutdown: true,
	}
	goldenDirectory = [16]byte{0x3c, 0x2b, 0x1a, 0x09, 0xf8, 0xe7, 0x46, 0xd5, 0x84, 0xb3, 0xa2, 0x91, 0x80, 0x7f, 0x6e, 0x5d}
)

// goldenACLs are ACL bindings of every resource type and pattern type.
var goldenACLs = []authz.Binding{
	{Pattern: authz.Pattern{Type: authz.ResourceTopic, Name: "orders", PatternType: authz.PatternLiteral},
		Entry: authz.Entry{Principal: "User:alice", Host: "*", Operation: authz.OpWrite, Permission: authz.PermissionAllow}},
	{Pattern: authz.Pattern{Type: authz.ResourceGroup, Name: "billing-", PatternType: authz.PatternPrefixed},
		Entry: authz.Entry{Principal: "User:*", Host: "10.0.0.1", Operation: authz.OpRead, Permission: authz.PermissionDeny}},
	{Pattern: authz.Pattern{Type: authz.ResourceCluster, Name: authz.ClusterName, PatternType: authz.PatternLiteral},
		Entry: authz.Entry{Principal: "User:bob", Host: "*", Operation: authz.OpIdempotentWrite, Permission: authz.PermissionAllow}},
	{Pattern: authz.Pattern{Type: authz.ResourceTransactionalID, Name: "*", PatternType: authz.PatternLiteral},
		Entry: authz.Entry{Principal: "User:bob", Host: "*", Operation: authz.OpAll, Permission: authz.PermissionAllow}},
}

func ptr[T any](v T) *T { return &v }

// goldenImportedSegments are goldenSegment and the segment after it, as a
// decoded SegmentsImported command holds them.
func goldenImportedSegments() []SegmentManifest {
	first, second := goldenSegment, goldenSegment
	first.State, second.State = SegmentCopyFinished, SegmentCopyFinished
	second.SegmentID[0]++
	second.BaseOffset, second.LastOffset = 2000, 2499
	second.EpochRanges = []EpochRange{{Epoch: 7, StartOffset: 2000}}
	second.TxnIndex = TxnIndexEmpty
	return []SegmentManifest{first, second}
}

// goldenCommands holds one example of every command type; their encodings
// are pinned in testdata/commands/.
func goldenCommands() []struct {
	name    string
	command command
} {
	return []struct {
		name    string
		command command
	}{
		{"init-cluster", &initClusterCommand{clusterID: "MkU3OEVBNTcwNTJENDM2Qk"}},
		{"create-topic-minimal", &createTopicCommand{topic: Topic{
			Name: "t", ID: goldenTopicID, CreatedAtUnixMilli: goldenCreatedAt,
			Partitions: newPartitions(0, [][]int32{{1}}),
		}}},
		{"create-topic-full", &createTopicCommand{topic: Topic{
			Name: "__consumer_offsets", ID: goldenTopicID2, Internal: true, CreatedAtUnixMilli: goldenCreatedAt,
			Configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"},
			Partitions: []Partition{
				{Index: 0, Replicas: []int32{1, 2, 3}, Leader: 2, LeaderEpoch: 7, ISR: []int32{2, 3}, PartitionEpoch: 9},
				{Index: 1, Replicas: []int32{2, 3, 1}, Leader: -1, LeaderEpoch: 1, PartitionEpoch: 2},
			},
		}}},
		{"delete-topic", &deleteTopicCommand{name: "orders"}},
		{"delete-topic-with-id", &deleteTopicCommand{name: "orders", id: goldenTopicID}},
		{"alter-topic-configs", &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "86400000", "min.insync.replicas": "2"}}},
		{"alter-topic-configs-clear", &alterTopicConfigsCommand{name: "orders", id: goldenTopicID}},
		{"alter-topic-configs-checked", &alterTopicConfigsCommand{name: "orders", id: goldenTopicID,
			configs: map[string]string{"retention.ms": "86400000"}, checked: true, from: map[string]string{"retention.ms": "3600000", "segment.bytes": "1048576"}}},
		{"create-partitions", &createPartitionsCommand{name: "orders", total: 3, partitions: newPartitions(1, [][]int32{{2, 1}, {1, 2}})}},
		{"allocate-producer-ids", &allocateProducerIDsCommand{brokerID: 1, count: 1000}},
		{"reserve-producer-ids", &reserveProducerIDsCommand{below: 4097}},
		{"register-broker", &registerBrokerCommand{registration: goldenRegistration}},
		{"unregister-broker", &unregisterBrokerCommand{id: 2, epoch: AnyBrokerEpoch}},
		{"set-broker-fenced", &setBrokerFencedCommand{id: 1, epoch: 17, fenced: false}},
		{"change-partition", &changePartitionCommand{change: PartitionChange{
			TopicID: goldenTopicID, Partition: 3, PartitionEpoch: 9, Leader: 2, ISR: []int32{2, 3}, BumpLeaderEpoch: true,
		}}},
		{"segment-copy-started", &segmentCopyStartedCommand{topicID: goldenTopicID, partition: 2, segment: goldenSegment}},
		{"segment-copy-finished", transition(commandSegmentCopyFinished, goldenTopicID, 2, goldenSegment, 7)},
		{"segment-delete-started", transition(commandSegmentDeleteStarted, goldenTopicID, 2, goldenSegment, 8)},
		{"segment-deleted", transition(commandSegmentDeleted, goldenTopicID, 2, goldenSegment, 8)},
		{"alter-scram-credentials", &alterScramCredentialsCommand{
			upserts:   []ScramCredential{goldenScram("admin", ScramSHA512), goldenScram("alice", ScramSHA256)},
			deletions: []ScramDeletion{{User: "bob", Mechanism: ScramSHA256}},
		}},
		{"segments-imported", &segmentsImportedCommand{topicID: goldenTopicID, partition: 2, segments: goldenImportedSegments()}},
		{"change-partition-isr-only", &changePartitionCommand{change: PartitionChange{
			TopicID: goldenTopicID, Partition: 0, PartitionEpoch: 1, Leader: NoLeaderChange, ISR: []int32{1},
		}}},
		{"change-partition-isr-broker-epochs", &changePartitionCommand{change: PartitionChange{
			TopicID: goldenTopicID, Partition: 0, PartitionEpoch: 2, Leader: NoLeaderChange, ISR: []int32{1, 3}, ISRBrokerEpochs: []int64{-1, 17},
		}}},
		{"set-log-start-offset", &setLogStartOffsetCommand{topicID: goldenTopicID, partition: 2, leaderEpoch: 7, offset: 1234}},
		{"create-acls", &createACLsCommand{bindings: goldenACLs}},
		{"alter-client-quotas", &alterClientQuotasCommand{alterations: goldenQuotaAlterations}},
		{"delete-acls", &deleteACLsCommand{filters: []authz.Filter{
			{ResourceType: authz.ResourceAny, PatternType: authz.PatternAny, Operation: authz.OpAny, Permission: authz.PermissionAny},
			{ResourceType: authz.ResourceTopic, Name: ptr("orders"), PatternType: authz.PatternMatch, Principal: ptr("User:alice"),
				Host: ptr("*"), Operation: authz.OpWrite, Permission: authz.PermissionDeny},
		}}},
		{"reassignment-start", start(goldenTopicID, 2, 2, 3)},
		{"reassignment-cancel", cancelReassign(goldenTopicID, 2)},
		{"reassignment-finish", finish(goldenTopicID, 2, 9, 3)},
		{"alter-broker-configs", &alterBrokerConfigsCommand{broker: 2, configs: map[string]string{"leader.replication.throttled.rate": "1048576"}}},
		{"alter-broker-configs-default-clear", &alterBrokerConfigsCommand{broker: ClusterDefaultBroker}},
		{"alter-broker-configs-checked", &alterBrokerConfigsCommand{broker: 2, configs: map[string]string{"leader.replication.throttled.rate": "2097152"},
			checked: true, from: map[string]string{"leader.replication.throttled.rate": "1048576"}}},
	}
}

// normalizeIndexes sets partition indexes as decoding does (position in
// the list), so that decoded commands compare equal to the originals.
func normalizeIndexes(c command) command {
	switch c := c.(type) {
	case *createPartitionsCommand:
		copy := *c
		copy.partitions = append([]Partition(nil), c.partitions...)
		for i := range copy.partitions {
			copy.partitions[i].Index = int32(i)
		}
		return &copy
	}
	return c
}

func TestCommandGolden(t *testing.T) {
	for _, test := range goldenCommands() {
		t.Run(test.name, func(t *testing.T) {
			encoded := encodeCommand(test.command)
			checkGolden(t, "commands/"+test.name+".bin", encoded)
			// Entries written by earlier builds must keep decoding.
			decoded, err := decodeCommand(readGolden(t, "commands/"+test.name+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			if want := normalizeIndexes(test.command); !reflect.DeepEqual(decoded, want) {
				t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
			}
		})
	}
}

// TestRegisterBrokerV1Golden: RegisterBroker entries written by builds
// before directory ids keep decoding, as legacy commands (which change no
// partition when applied, as they did then).
func TestRegisterBrokerV1Golden(t *testing.T) {
	want := goldenRegistration
	want.DirectoryID, want.CleanShutdown = [16]byte{}, false
	checkGolden(t, "commands/register-broker-v1.bin", encodeRegisterBrokerV1(want))
	decoded, err := decodeCommand(readGolden(t, "commands/register-broker-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&registerBrokerCommand{registration: want, version: 1}); !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestRegisterBrokerV2Golden: RegisterBroker entries written by builds
// that trusted a clean shutdown of any data directory keep decoding, as
// version 2 commands (which apply as they did then).
func TestRegisterBrokerV2Golden(t *testing.T) {
	data := readGolden(t, "commands/register-broker-v2.bin")
	if data[1] != 2 {
		t.Fatalf("register-broker-v2.bin is version %d, want 2", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&registerBrokerCommand{registration: goldenRegistration, version: 2}); !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestChangePartitionV1Golden: ChangePartition entries written before ISR
// broker epochs keep decoding, without them.
func TestChangePartitionV1Golden(t *testing.T) {
	decoded, err := decodeCommand(readGolden(t, "commands/change-partition-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := &changePartitionCommand{change: PartitionChange{
		TopicID: goldenTopicID, Partition: 3, PartitionEpoch: 9, Leader: 2, ISR: []int32{2, 3}, BumpLeaderEpoch: true,
	}, version: 1}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestChangePartitionV2Golden: ChangePartition entries written by builds
// that let fenced brokers join an ISR keep decoding, as version 2
// commands (which apply as they did then).
func TestChangePartitionV2Golden(t *testing.T) {
	data := readGolden(t, "commands/change-partition-v2.bin")
	if data[1] != 2 {
		t.Fatalf("change-partition-v2.bin is version %d, want 2", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &changePartitionCommand{change: PartitionChange{
		TopicID: goldenTopicID, Partition: 0, PartitionEpoch: 2, Leader: NoLeaderChange, ISR: []int32{1, 3}, ISRBrokerEpochs: []int64{-1, 17},
	}, version: 2}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestChangePartitionV3Golden: ChangePartition entries written by builds
// that let fenced brokers lead keep decoding, as version 3 commands (which
// apply as they did then).
func TestChangePartitionV3Golden(t *testing.T) {
	data := readGolden(t, "commands/change-partition-v3.bin")
	if data[1] != 3 {
		t.Fatalf("change-partition-v3.bin is version %d, want 3", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &changePartitionCommand{change: PartitionChange{
		TopicID: goldenTopicID, Partition: 0, PartitionEpoch: 2, Leader: NoLeaderChange, ISR: []int32{1, 3}, ISRBrokerEpochs: []int64{-1, 17},
	}, version: 3}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestAlterPartitionReassignmentV1Golden: AlterPartitionReassignment
// entries written by builds whose start applied against the union replica
// set keep decoding, as version 1 commands (which apply as they did then).
func TestAlterPartitionReassignmentV1Golden(t *testing.T) {
	data := readGolden(t, "commands/reassignment-start-v1.bin")
	if data[1] != 1 {
		t.Fatalf("reassignment-start-v1.bin is version %d, want 1", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := start(goldenTopicID, 2, 2, 3)
	want.version = 1
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestAlterPartitionReassignmentV2Golden: AlterPartitionReassignment
// entries written by builds whose finish did not check the brokers keep
// decoding, as version 2 commands (which apply as they did then).
func TestAlterPartitionReassignmentV2Golden(t *testing.T) {
	data := readGolden(t, "commands/reassignment-finish-v2.bin")
	if data[1] != 2 {
		t.Fatalf("reassignment-finish-v2.bin is version %d, want 2", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := finish(goldenTopicID, 2, 9, 3)
	want.version = 2
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestAlterTopicConfigsV1Golden: AlterTopicConfigs entries written before
// changes carried the set they were computed from keep decoding,
// unchecked.
func TestAlterTopicConfigsV1Golden(t *testing.T) {
	data := readGolden(t, "commands/alter-topic-configs-v1.bin")
	if data[1] != 1 {
		t.Fatalf("alter-topic-configs-v1.bin is version %d, want 1", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "86400000", "min.insync.replicas": "2"}}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestAlterBrokerConfigsV1Golden: AlterBrokerConfigs entries written
// before changes carried the set they were computed from keep decoding,
// unchecked.
func TestAlterBrokerConfigsV1Golden(t *testing.T) {
	data := readGolden(t, "commands/alter-broker-configs-v1.bin")
	if data[1] != 1 {
		t.Fatalf("alter-broker-configs-v1.bin is version %d, want 1", data[1])
	}
	decoded, err := decodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &alterBrokerConfigsCommand{broker: 2, configs: map[string]string{"leader.replication.throttled.rate": "1048576"}}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded %#v\nwant    %#v", decoded, want)
	}
}

// TestSegmentCommandsV1Golden: SegmentCopyStarted and SegmentsImported
// entries written before manifest entries recorded their txn index state
// keep decoding, their segments' state unknown (a reader fetches their
// .txnindex as before).
func TestSegmentCommandsV1Golden(t *testing.T) {
	legacy := goldenSegment
	legacy.TxnIndex = TxnIndexUnknown
	imported := goldenImportedSegments()
	for i := range imported {
		imported[i].TxnIndex = TxnIndexUnknown
	}
	for _, test := range []struct {
		name string
		want command
	}{
		{"segment-copy-started-v1", &segmentCopyStartedCommand{topicID: goldenTopicID, partition: 2, segment: legacy}},
		{"segments-imported-v1", &segmentsImportedCommand{topicID: goldenTopicID, partition: 2, segments: imported}},
	} {
		t.Run(test.name, func(t *testing.T) {
			data := readGolden(t, "commands/"+test.name+".bin")
			if data[1] != 1 {
				t.Fatalf("%s is version %d, want 1", test.name, data[1])
			}
			decoded, err := decodeCommand(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decoded, test.want) {
				t.Fatalf("decoded %#v\nwant    %#v", decoded, test.want)
			}
		})
	}
}

func TestEveryCommandTypeHasAGoldenExample(t *testing.T) {
	covered := map[commandType]bool{}
	for _, test := range goldenCommands() {
		covered[test.command.commandType()] = true
	}
	for typ := range commandTable {
		if !covered[typ] {
			t.Errorf("command %s has no golden example", typ)
		}
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	valid := encodeCommand(&deleteTopicCommand{name: "orders", id: goldenTopicID})
	tests := []struct {
		name        string
		data        []byte
		wantCorrupt bool
		wantUnknown bool
		wantIgnore  bool
	}{
		{name: "empty", data: nil, wantCorrupt: true},
		{name: "header only", data: valid[:2], wantCorrupt: true},
		{name: "truncated", data: valid[:len(valid)-1], wantCorrupt: true},
		{name: "trailing bytes", data: append(append([]byte(nil), valid...), 0), wantCorrupt: true},
		{name: "string longer than data", data: []byte{byte(commandDeleteTopic), 1, 0x7f, 'a'}, wantCorrupt: true},
		{name: "bad varint", data: []byte{byte(commandDeleteTopic), 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, wantCorrupt: true},
		{name: "segment count longer than data", data: func() []byte {
			data := encodeCommand(&segmentsImportedCommand{topicID: goldenTopicID, segments: goldenImportedSegments()})
			data[commandHeaderSize+16+4] = 3 // the count: 3 segments, data for 2
			return data
		}(), wantCorrupt: true},
		{name: "segment with unknown txn index state", data: func() []byte {
			data := encodeCommand(&segmentCopyStartedCommand{topicID: goldenTopicID, segment: goldenSegment})
			data[len(data)-1] = byte(TxnIndexNotEmpty + 1)
			return data
		}(), wantCorrupt: true},
		{name: "unknown type", data: []byte{0x7e, 1}, wantUnknown: true},
		{name: "unknown type ignorable", data: []byte{0x80 | 0x7e, 1, 1, 2, 3}, wantUnknown: true, wantIgnore: true},
		{name: "unknown version", data: []byte{byte(commandDeleteTopic), 2}, wantUnknown: true},
		{name: "version zero", data: []byte{byte(commandDeleteTopic), 0}, wantUnknown: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := decodeCommand(test.data)
			if IsCorrupt(err) != test.wantCorrupt {
				t.Errorf("IsCorrupt(%v) = %t, want %t", err, IsCorrupt(err), test.wantCorrupt)
			}
			var unknown *errUnknownCommand
			if errors.As(err, &unknown) != test.wantUnknown {
				t.Fatalf("unknown command error: got %v, want %t", err, test.wantUnknown)
			}
			if test.wantUnknown && unknown.ignoreUnknown != test.wantIgnore {
				t.Errorf("ignoreUnknown = %t, want %t", unknown.ignoreUnknown, test.wantIgnore)
			}
		})
	}
}

func TestFSMSkipsIgnorableUnknownCommands(t *testing.T) {
	f := newFSM(discardLogger())
	applyCommand(f, 1, &initClusterCommand{clusterID: "c"})
	before := f.state()
	result := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{commandIgnoreUnknown | 0x7e, 3, 0xde, 0xad}}).(applyResult)
	var unknown *errUnknownCommand
	if !errors.As(result.err, &unknown) {
		t.Fatalf("result error %v, want an unknown-command error", result.err)
	}
	after := f.state()
	if after.AppliedIndex() != 2 {
		t.Errorf("applied index %d, want 2", after.AppliedIndex())
	}
	requireStatesEqual(t, after, before.withAppliedIndex(2))
}

// TestFSMHaltsOnUndecodableCommands: a committed entry this build cannot
// decode stops the state machine at the state before it, with an error
// naming the entry; later entries, even valid ones, are not applied, and no
// snapshot claims the entry was (it would vanish from the log).
func TestFSMHaltsOnUndecodableCommands(t *testing.T) {
	tests := []struct {
		name        string
		data        []byte
		wantType    uint8
		wantVersion uint8
	}{
		{"unknown type without the ignore bit", []byte{0x7e, 1}, 0x7e, 1},
		{"known type with a newer version", []byte{byte(commandCreateTopic), 9}, uint8(commandCreateTopic), 9},
		{"corrupt payload", []byte{byte(commandCreateTopic), 1, 5, 'a'}, uint8(commandCreateTopic), 1},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			f := newFSM(discardLogger())
			valid := encodeCommand(&initClusterCommand{clusterID: "c"})
			results := f.ApplyBatch([]*raft.Log{
				{Index: 1, Type: raft.LogCommand, Data: valid},
				{Index: 2, Type: raft.LogCommand, Data: test.data},
				{Index: 3, Type: raft.LogNoop},
			})
			var halt *UnappliableEntryError
			if !errors.As(results[1].(applyResult).err, &halt) || halt.Index != 2 || halt.Type != test.wantType || halt.Version != test.wantVersion {
				t.Fatalf("result of the undecodable entry: %v, want an UnappliableEntryError for index 2, type %d, version %d", results[1].(applyResult).err, test.wantType, test.wantVersion)
			}
			if err := results[2].(applyResult).err; !errors.As(err, &halt) {
				t.Fatalf("result of the entry after it: %v, want the halt", err)
			}
			select {
			case <-f.haltedSignal:
			default:
				t.Fatal("halted signal not closed")
			}
			if got := f.state().AppliedIndex(); got != 1 {
				t.Fatalf("applied index %d, want 1 (the state before the entry)", got)
			}
			if f.state().ClusterID() != "c" {
				t.Fatal("the entry before the undecodable one was not applied")
			}
			if _, err := f.Snapshot(); !errors.As(err, &halt) {
				t.Fatalf("Snapshot of a halted fsm: %v, want the halt", err)
			}
			// Nothing is applied any more.
			f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: valid})
			if got := f.state().AppliedIndex(); got != 1 {
				t.Fatalf("applied index %d after another entry, want 1", got)
			}
		})
	}
}

// FuzzDecodeCommand: no Raft entry makes decoding panic; a command that
// decodes encodes to an entry that decodes to the same command; and
// applying it to a state with brokers, topics, partitions and tiered segments
// rejects it or changes the state, without panicking. The seeds are the
// golden examples of every command type.
func FuzzDecodeCommand(f *testing.F) {
	for _, test := range goldenCommands() {
		f.Add(encodeCommand(test.command))
	}
	state := newFSM(discardLogger())
	index := uint64(0)
	for _, step := range registerBrokers(1, 2, 3) {
		index++
		if result := applyCommand(state, index, step.command); result.err != nil {
			f.Fatal(result.err)
		}
	}
	for _, test := range goldenCommands() {
		switch test.command.(type) {
		case *initClusterCommand, *createTopicCommand:
			index++
			if result := applyCommand(state, index, test.command); result.err != nil {
				f.Fatalf("%s: %v", test.name, result.err)
			}
		}
	}
	for _, c := range []command{
		importSegments(goldenTopicID, 0, testSegment(1, 0, 99, 0), testSegment(2, 100, 199, 0)),
		copyStarted(goldenTopicID, 0, testSegment(3, 200, 299, 1)),
		importSegments(goldenTopicID2, 1, goldenImportedSegments()...),
	} {
		index++
		if result := applyCommand(state, index, c); result.err != nil {
			f.Fatalf("%s: %v", c.commandType(), result.err)
		}
	}
	base := state.state()
	f.Fuzz(func(t *testing.T, data []byte) {
		decoded, err := decodeCommand(data)
		if err != nil {
			var unknown *errUnknownCommand
			if !IsCorrupt(err) && !errors.As(err, &unknown) {
				t.Fatalf("error %v is neither corrupt nor an unknown command", err)
			}
			return
		}
		again, err := decodeCommand(encodeCommand(decoded))
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", decoded.commandType(), err)
		}
		if !reflect.DeepEqual(again, decoded) {
			t.Fatalf("re-encoded %s decodes to %#v\nwant %#v", decoded.commandType(), again, decoded)
		}
		_, _ = decoded.apply(newStateBuilder(base, base.AppliedIndex()+1))
	})
}
