package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// Control records (transaction markers). A transaction coordinator ends a
// producer's transaction on a partition with a control batch: attributes
// control|transactional, uncompressed, the producer's id and epoch, base
// sequence -1, one record whose key and value are (Kafka's
// EndTransactionMarker, part of the format, do not change):
//
//	key:   version int16 (0) | type int16 (0 ABORT, 1 COMMIT)
//	value: version int16 (0) | coordinator epoch int32
//
// Readers accept key and value versions above 0 with at least these
// fields, as Kafka does.
const (
	controlKeyVersion   = 0
	controlValueVersion = 0
	controlKeySize      = 4
	controlValueSize    = 6
)

// ControlType is a control record's type (the key's second field).
type ControlType int16

// Control record types of transaction markers.
const (
	ControlAbort  ControlType = 0
	ControlCommit ControlType = 1
)

// Marker is a transaction marker: what one control record says.
type Marker struct {
	Type             ControlType
	CoordinatorEpoch int32
}

// MarkerOptions describes the control batch BuildMarker makes.
type MarkerOptions struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	ProducerID           int64
	ProducerEpoch        int16
	Timestamp            int64
	Marker               Marker
}

// BuildMarker encodes a transaction marker as one control batch (see
// above); the broker appends it as it is.
func BuildMarker(opts MarkerOptions) []byte {
	key := binary.BigEndian.AppendUint16(nil, controlKeyVersion)
	key = binary.BigEndian.AppendUint16(key, uint16(opts.Marker.Type))
	value := binary.BigEndian.AppendUint16(nil, controlValueVersion)
	value = binary.BigEndian.AppendUint32(value, uint32(opts.Marker.CoordinatorEpoch))
	payload := AppendRecord(nil, Record{Key: key, Value: value}, 0, 0)
	return Assemble(Header{
		BaseOffset:           opts.BaseOffset,
		PartitionLeaderEpoch: opts.PartitionLeaderEpoch,
		Attributes:           controlAttribute | transactionalAttribute,
		FirstTimestamp:       opts.Timestamp,
		MaxTimestamp:         opts.Timestamp,
		ProducerID:           opts.ProducerID,
		ProducerEpoch:        opts.ProducerEpoch,
		BaseSequence:         noSequence,
		NumRecords:           1,
	}, payload)
}

// ParseMarker reads the transaction marker of a control batch. ok is false
// for a control record of another type (Kafka has others, e.g. KRaft's);
// an error means the batch is not a readable control batch.
func ParseMarker(batch []byte) (marker Marker, ok bool, err error) {
	records, err := Records(batch)
	if err != nil {
		return Marker{}, false, err
	}
	if len(records) != 1 {
		return Marker{}, false, fmt.Errorf("%w: control batch with %d records, want 1", ErrInvalidRecord, len(records))
	}
	key, value := records[0].Key, records[0].Value
	if len(key) < controlKeySize || int16(binary.BigEndian.Uint16(key)) < 0 {
		return Marker{}, false, fmt.Errorf("%w: control record key of %d bytes", ErrInvalidRecord, len(key))
	}
	marker.Type = ControlType(binary.BigEndian.Uint16(key[2:]))
	if marker.Type != ControlAbort && marker.Type != ControlCommit {
		return marker, false, nil
	}
	if len(value) < controlValueSize || int16(binary.BigEndian.Uint16(value)) < 0 {
		return Marker{}, false, fmt.Errorf("%w: transaction marker value of %d bytes", ErrInvalidRecord, len(value))
	}
	marker.CoordinatorEpoch = int32(binary.BigEndian.Uint32(value[2:]))
	return marker, true, nil
}
