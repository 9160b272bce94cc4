package recordbatch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Header layout (see doc.go). Part of the Kafka format: do not change.
const (
	// HeaderSize is the size of a v2 batch header; the records follow it.
	HeaderSize = 61
	// LengthFieldEnd is the number of bytes up to and including batchLength:
	// a batch's total size is batchLength + LengthFieldEnd.
	LengthFieldEnd = 12
	// Magic is the only message format version this package accepts.
	Magic = 2

	baseOffsetPosition           = 0
	lengthPosition               = 8
	partitionLeaderEpochPosition = 12
	magicPosition                = 16
	crcPosition                  = 17
	attributesPosition           = 21
	lastOffsetDeltaPosition      = 23
	firstTimestampPosition       = 27
	maxTimestampPosition         = 35
	producerIDPosition           = 43
	producerEpochPosition        = 51
	baseSequencePosition         = 53
	recordCountPosition          = 57

	codecMask              = 0x07
	timestampTypeAttribute = 1 << 3
	transactionalAttribute = 1 << 4
	controlAttribute       = 1 << 5
	deleteHorizonAttribute = 1 << 6
	minimumBatchLength     = HeaderSize - LengthFieldEnd
	noProducerID           = -1
	noProducerEpoch        = -1
	noSequence             = -1
)

// crcTable is CRC-32C (Castagnoli); crc32 uses the CPU's instruction for it
// where there is one.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Codec is a batch's compression codec, attributes bits 0-2.
type Codec int8

// The codecs of Kafka's record batches. Part of the format: do not change.
const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

// String returns the codec's name as Kafka's compression.type spells it.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	default:
		return fmt.Sprintf("codec(%d)", int8(c))
	}
}

// Valid reports whether c is a codec this package can decode.
func (c Codec) Valid() bool { return c >= None && c <= Zstd }

// Header is a parsed v2 batch header. Field names follow Kafka's.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after this field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader parses the header at the start of b, which needs at least
// HeaderSize bytes (the records may or may not follow). It checks the magic
// and that batchLength covers a header; it does not look at the CRC or the
// records.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes are fewer than a %d-byte batch header", ErrCorrupt, len(b), HeaderSize)
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[baseOffsetPosition:])),
		Length:               int32(binary.BigEndian.Uint32(b[lengthPosition:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[partitionLeaderEpochPosition:])),
		Magic:                int8(b[magicPosition]),
		CRC:                  binary.BigEndian.Uint32(b[crcPosition:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[attributesPosition:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[lastOffsetDeltaPosition:])),
		FirstTimestamp:       int64(binary.BigEndian.Uint64(b[firstTimestampPosition:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[maxTimestampPosition:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[producerIDPosition:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[producerEpochPosition:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[baseSequencePosition:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[recordCountPosition:])),
	}
	if err := checkMagic(h.Magic); err != nil {
		return h, err
	}
	if h.Length < minimumBatchLength {
		return h, fmt.Errorf("%w: batch length %d is shorter than a header (%d)", ErrCorrupt, h.Length, minimumBatchLength)
	}
	return h, nil
}

// checkMagic refuses every format but v2: magic 0 and 1 are old formats a
// Produce v3+ may not carry; anything else is not Kafka at all.
func checkMagic(magic int8) error {
	switch {
	case magic == Magic:
		return nil
	case magic == 0 || magic == 1:
		return fmt.Errorf("%w: magic %d (only record batches v2 are accepted)", ErrUnsupportedMagic, magic)
	default:
		return fmt.Errorf("%w: %w: unknown magic %d", ErrCorrupt, ErrUnsupportedMagic, magic)
	}
}

// Size is the batch's total size in bytes, header included.
func (h Header) Size() int64 { return int64(h.Length) + LengthFieldEnd }

// Codec is the batch's compression codec.
func (h Header) Codec() Codec { return Codec(h.Attributes & codecMask) }

// LogAppendTime reports whether the batch's timestamps are the broker's
// append time (every record then has MaxTimestamp) rather than create times.
func (h Header) LogAppendTime() bool { return h.Attributes&timestampTypeAttribute != 0 }

// IsTransactional reports whether the batch belongs to a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&transactionalAttribute != 0 }

// IsControl reports whether the batch holds control records (transaction
// markers).
func (h Header) IsControl() bool { return h.Attributes&controlAttribute != 0 }

// DeleteHorizon returns the delete horizon (Unix milliseconds) the log
// cleaner stamped into the batch, as Kafka's (KIP-534: attribute bit 6
// set, the first timestamp field then holds the horizon and the records'
// timestamp deltas are relative to it); ok is false when none is.
func (h Header) DeleteHorizon() (horizon int64, ok bool) {
	if h.Attributes&deleteHorizonAttribute == 0 {
		return -1, false
	}
	return h.FirstTimestamp, true
}

// WithDeleteHorizon returns h with the delete horizon stamped (see
// DeleteHorizon); the records must be re-encoded against it.
func (h Header) WithDeleteHorizon(horizon int64) Header {
	h.Attributes |= deleteHorizonAttribute
	h.FirstTimestamp = horizon
	return h
}

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// HasProducerID reports whether an idempotent or transactional producer
// wrote the batch.
func (h Header) HasProducerID() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence number of the batch's last record:
// BaseSequence + LastOffsetDelta, wrapping from MaxInt32 to 0 as Kafka's
// sequences do.
func (h Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return h.BaseSequence
	}
	last := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if last > math.MaxInt32 {
		last -= math.MaxInt32 + 1
	}
	return int32(last)
}

// CRCMatches reports whether the CRC-32C of the batch h heads matches
// h.CRC, its bytes given as parts in order (split anywhere, the header
// included, at least h.Size() bytes in all; bytes past it are ignored).
func (h Header) CRCMatches(parts ...[]byte) bool {
	crc, skip, left := uint32(0), int64(attributesPosition), h.Size()-attributesPosition
	for _, part := range parts {
		if skip >= int64(len(part)) {
			skip -= int64(len(part))
			continue
		}
		part = part[skip:]
		skip = 0
		n := min(int64(len(part)), left)
		crc = crc32.Update(crc, crcTable, part[:n])
		if left -= n; left == 0 {
			return crc == h.CRC
		}
	}
	return false
}

// checksum computes the CRC-32C of a batch's covered bytes.
func checksum(batch []byte) uint32 {
	return crc32.Checksum(batch[attributesPosition:], crcTable)
}

// VerifyChecksum checks only the CRC of one whole batch (and enough framing
// to find it): what log recovery needs to find a torn tail, without walking
// the records. Validate does this and much more.
func VerifyChecksum(batch []byte) error {
	h, err := ParseHeader(batch)
	if err != nil {
		return err
	}
	if h.Size() != int64(len(batch)) {
		return fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorrupt, h.Size(), len(batch))
	}
	if actual := checksum(batch); actual != h.CRC {
		return fmt.Errorf("%w: CRC mismatch: header %#08x, computed %#08x", ErrCorrupt, h.CRC, actual)
	}
	return nil
}

// SetBaseOffset writes the base offset into a batch header. The CRC does not
// cover it. batch must hold at least a header.
func SetBaseOffset(batch []byte, offset int64) {
	binary.BigEndian.PutUint64(batch[baseOffsetPosition:], uint64(offset))
}

// SetPartitionLeaderEpoch writes the partition leader epoch into a batch
// header. The CRC does not cover it. batch must hold at least a header.
func SetPartitionLeaderEpoch(batch []byte, epoch int32) {
	binary.BigEndian.PutUint32(batch[partitionLeaderEpochPosition:], uint32(epoch))
}

// SetLogAppendTime marks a whole batch as LogAppendTime with timestamp ts and
// recomputes the CRC. Like Kafka, it sets maxTimestamp and the timestamp-type
// bit and leaves firstTimestamp alone: readers take every record's timestamp
// from maxTimestamp, and the create times stay recoverable from
// firstTimestamp and the deltas. batch must be a whole, validated batch.
func SetLogAppendTime(batch []byte, ts int64) {
	attributes := binary.BigEndian.Uint16(batch[attributesPosition:]) | timestampTypeAttribute
	binary.BigEndian.PutUint16(batch[attributesPosition:], attributes)
	binary.BigEndian.PutUint64(batch[maxTimestampPosition:], uint64(ts))
	binary.BigEndian.PutUint32(batch[crcPosition:], checksum(batch))
}
