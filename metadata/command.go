package metadata

import (
	"fmt"
)

// commandType identifies a command in the Raft log. Bit 7 of the type byte is
// the ignore-unknown flag (commandIgnoreUnknown); bits 0-6 are the type.
// The numbers are part of the format: do not change or reuse them.
type commandType uint8

const (
	commandInitCluster         commandType = 1
	commandCreateTopic         commandType = 2
	commandDeleteTopic         commandType = 3
	commandAlterTopicConfigs   commandType = 4
	commandCreatePartitions    commandType = 5
	commandAllocateProducerIDs commandType = 6
	commandReserveProducerIDs  commandType = 7
	// 16-31: brokers and partition leadership.
	commandRegisterBroker   commandType = 16
	commandUnregisterBroker commandType = 17
	commandSetBrokerFenced  commandType = 18
	commandChangePartition  commandType = 19
	// Partition reassignment (commands_reassign.go) and dynamic broker
	// configs (broker_configs.go).
	commandAlterPartitionReassignment commandType = 20
	commandAlterBrokerConfigs         commandType = 21
	// 32-47: tiered-segment manifests.
	commandSegmentCopyStarted   commandType = 32
	commandSegmentCopyFinished  commandType = 33
	commandSegmentDeleteStarted commandType = 34
	commandSegmentDeleted       commandType = 35
	commandSegmentsImported     commandType = 36
	commandSetLogStartOffset    commandType = 37
	// 48-63: security.
	commandAlterScramCredentials commandType = 48
	commandCreateACLs            commandType = 49
	commandDeleteACLs            commandType = 50
	commandAlterClientQuotas     commandType = 51

	// commandIgnoreUnknown, set in a type byte, lets a node that does not
	// know the type (or its version) skip the entry instead of stopping.
	// Part of the format: do not change.
	commandIgnoreUnknown = 0x80
	// commandTypeMask extracts the type from a type byte.
	commandTypeMask = 0x7f
	// commandHeaderSize is the type byte plus the version byte.
	commandHeaderSize = 2
)

// command is one state change. Implementations are plain values; apply must
// be deterministic (no clocks, randomness or I/O) and must not modify any
// value reachable from the builder's base state.
type command interface {
	// commandType returns the registered type of the command.
	commandType() commandType
	// encode appends the payload in the current version's encoding.
	encode(e *encoder)
	// apply changes the state through b and returns the result handed to
	// the proposer (nil, a Topic, a first producer id). A rejection returns
	// an error wrapping a sentinel, and b is then discarded.
	apply(b *stateBuilder) (any, error)
}

// commandSpec registers one command type.
type commandSpec struct {
	name string
	// version is the payload version this build writes.
	version uint8
	// ignoreUnknown is set in the type byte of every entry written, so that
	// nodes which do not know the type (or this version) skip it. Set it
	// only for commands whose loss cannot make states diverge in a way that
	// matters (e.g. advisory data).
	ignoreUnknown bool
	// decode reads a payload of the given version (1..version). It returns
	// false for versions it does not know.
	decode func(version uint8, d *decoder) (command, bool)
}

// commandTable is the one registration table of command types.
var commandTable = map[commandType]commandSpec{
	commandInitCluster:           {name: "InitCluster", version: 1, decode: decodeInitCluster},
	commandCreateTopic:           {name: "CreateTopic", version: 1, decode: decodeCreateTopic},
	commandDeleteTopic:           {name: "DeleteTopic", version: 1, decode: decodeDeleteTopic},
	commandAlterTopicConfigs:     {name: "AlterTopicConfigs", version: 2, decode: decodeAlterTopicConfigs},
	commandCreatePartitions:      {name: "CreatePartitions", version: 1, decode: decodeCreatePartitions},
	commandAllocateProducerIDs:   {name: "AllocateProducerIDs", version: 1, decode: decodeAllocateProducerIDs},
	commandReserveProducerIDs:    {name: "ReserveProducerIDs", version: 1, decode: decodeReserveProducerIDs},
	commandRegisterBroker:        {name: "RegisterBroker", version: 3, decode: decodeRegisterBroker},
	commandAlterScramCredentials: {name: "AlterScramCredentials", version: 1, decode: decodeAlterScramCredentials},
	commandUnregisterBroker:      {name: "UnregisterBroker", version: 1, decode: decodeUnregisterBroker},
	commandSetBrokerFenced:       {name: "SetBrokerFenced", version: 1, decode: decodeSetBrokerFenced},
	commandChangePartition:       {name: "ChangePartition", version: 4, decode: decodeChangePartition},
	commandSegmentCopyStarted:    {name: "SegmentCopyStarted", version: 2, decode: decodeSegmentCopyStarted},
	commandSegmentCopyFinished:   {name: "SegmentCopyFinished", version: 1, decode: decodeSegmentTransition(commandSegmentCopyFinished)},
	commandSegmentDeleteStarted:  {name: "SegmentDeleteStarted", version: 1, decode: decodeSegmentTransition(commandSegmentDeleteStarted)},
	commandSegmentDeleted:        {name: "SegmentDeleted", version: 1, decode: decodeSegmentTransition(commandSegmentDeleted)},
	commandSegmentsImported:      {name: "SegmentsImported", version: 2, decode: decodeSegmentsImported},
	commandSetLogStartOffset:     {name: "SetLogStartOffset", version: 1, decode: decodeSetLogStartOffset},
	commandCreateACLs:            {name: "CreateAcls", version: 1, decode: decodeCreateACLs},
	commandDeleteACLs:            {name: "DeleteAcls", version: 1, decode: decodeDeleteACLs},
	commandAlterClientQuotas:     {name: "AlterClientQuotas", version: 1, decode: decodeAlterClientQuotas},

	commandAlterPartitionReassignment: {name: "AlterPartitionReassignment", version: 3, decode: decodeAlterPartitionReassignment},
	commandAlterBrokerConfigs:         {name: "AlterBrokerConfigs", version: 2, decode: decodeAlterBrokerConfigs},
}

func (t commandType) String() string {
	if spec, ok := commandTable[t]; ok {
		return spec.name
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// encodeCommand returns the Raft log data for c: type byte, version byte,
// payload.
func encodeCommand(c command) []byte {
	spec, ok := commandTable[c.commandType()]
	if !ok {
		panic(fmt.Sprintf("metadata: command type %d is not registered", c.commandType()))
	}
	typeByte := uint8(c.commandType())
	if spec.ignoreUnknown {
		typeByte |= commandIgnoreUnknown
	}
	e := encoder{buffer: []byte{typeByte, spec.version}}
	c.encode(&e)
	return e.buffer
}

// errUnknownCommand is returned by decodeCommand for an entry whose type or
// version this build does not know.
type errUnknownCommand struct {
	typ           commandType
	version       uint8
	ignoreUnknown bool
}

func (e *errUnknownCommand) Error() string {
	return fmt.Sprintf("metadata: unknown command %s version %d (ignore-unknown %t)", e.typ, e.version, e.ignoreUnknown)
}

// decodeCommand parses Raft log data. It returns *errUnknownCommand for a
// type or version this build does not know, and an error wrapping ErrCorrupt
// for data that does not decode.
func decodeCommand(data []byte) (command, error) {
	if len(data) < commandHeaderSize {
		return nil, fmt.Errorf("%w: command of %d bytes is shorter than its header", ErrCorrupt, len(data))
	}
	typ := commandType(data[0] & commandTypeMask)
	version := data[1]
	unknown := &errUnknownCommand{typ: typ, version: version, ignoreUnknown: data[0]&commandIgnoreUnknown != 0}
	spec, ok := commandTable[typ]
	if !ok || version == 0 || version > spec.version {
		return nil, unknown
	}
	d := decoder{data: data[commandHeaderSize:]}
	c, ok := spec.decode(version, &d)
	if !ok {
		return nil, unknown
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
	}
	return c, nil
}
