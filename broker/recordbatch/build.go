package recordbatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// xerialChunkSize is the uncompressed size of the chunks Build writes in
// the xerial framing, as the Java client's snappy stream does.
const xerialChunkSize = 32 << 10

// BuildOptions describes the batch Build makes. The zero value is an
// uncompressed, CreateTime batch at offset 0 from a producer without
// idempotence.
type BuildOptions struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	Codec                Codec
	// XerialSnappy frames snappy the Java client's way; otherwise a
	// snappy batch is one raw block, as librdkafka and franz-go write it.
	XerialSnappy  bool
	LogAppendTime bool
	Transactional bool
	Control       bool
	// Idempotent writes ProducerID, ProducerEpoch and BaseSequence; without
	// it the three are -1, as a producer without idempotence sends them.
	Idempotent    bool
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
}

// Build encodes records as one valid v2 batch: offsets BaseOffset+i in
// order (Record.Offset is ignored), firstTimestamp from the first record,
// maxTimestamp the largest, compressed with opts.Codec using the same
// libraries the broker decodes with. It is for tests and tools; the broker
// itself never re-encodes a batch.
func Build(opts BuildOptions, records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: build a batch of no records", ErrInvalidRecord)
	}
	if !opts.Codec.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, opts.Codec)
	}
	firstTimestamp := records[0].Timestamp
	maxTimestamp := firstTimestamp
	var raw []byte
	for index, record := range records {
		maxTimestamp = max(maxTimestamp, record.Timestamp)
		raw = AppendRecord(raw, record, int32(index), record.Timestamp-firstTimestamp)
	}
	payload, err := Compress(opts.Codec, raw, opts.XerialSnappy)
	if err != nil {
		return nil, err
	}
	attributes := int16(opts.Codec)
	if opts.LogAppendTime {
		attributes |= timestampTypeAttribute
	}
	if opts.Transactional {
		attributes |= transactionalAttribute
	}
	if opts.Control {
		attributes |= controlAttribute
	}
	h := Header{
		BaseOffset:           opts.BaseOffset,
		PartitionLeaderEpoch: opts.PartitionLeaderEpoch,
		Magic:                Magic,
		Attributes:           attributes,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       firstTimestamp,
		MaxTimestamp:         maxTimestamp,
		ProducerID:           noProducerID,
		ProducerEpoch:        noProducerEpoch,
		BaseSequence:         noSequence,
		NumRecords:           int32(len(records)),
	}
	if opts.Idempotent {
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	return Assemble(h, payload), nil
}

// Assemble writes a header and an already encoded (and compressed)
// records section into one batch, filling in batchLength, the magic and the
// CRC from the rest of h. Tests use it to make batches whose header lies
// about their records.
func Assemble(h Header, payload []byte) []byte {
	batch := make([]byte, HeaderSize+len(payload))
	binary.BigEndian.PutUint64(batch[baseOffsetPosition:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(batch[lengthPosition:], uint32(len(batch)-LengthFieldEnd))
	binary.BigEndian.PutUint32(batch[partitionLeaderEpochPosition:], uint32(h.PartitionLeaderEpoch))
	batch[magicPosition] = Magic
	binary.BigEndian.PutUint16(batch[attributesPosition:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(batch[lastOffsetDeltaPosition:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(batch[firstTimestampPosition:], uint64(h.FirstTimestamp))
	binary.BigEndian.PutUint64(batch[maxTimestampPosition:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(batch[producerIDPosition:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(batch[producerEpochPosition:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(batch[baseSequencePosition:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(batch[recordCountPosition:], uint32(h.NumRecords))
	copy(batch[HeaderSize:], payload)
	binary.BigEndian.PutUint32(batch[crcPosition:], checksum(batch))
	return batch
}

// AppendRecord encodes one record with the given deltas (the layout in the
// package doc). The log cleaner uses it to rewrite batches with gaps.
func AppendRecord(dst []byte, record Record, offsetDelta int32, timestampDelta int64) []byte {
	var body []byte
	body = append(body, 0) // attributes
	body = binary.AppendVarint(body, timestampDelta)
	body = binary.AppendVarint(body, int64(offsetDelta))
	body = appendNullableBytes(body, record.Key)
	body = appendNullableBytes(body, record.Value)
	body = binary.AppendVarint(body, int64(len(record.Headers)))
	for _, header := range record.Headers {
		body = binary.AppendVarint(body, int64(len(header.Key)))
		body = append(body, header.Key...)
		body = appendNullableBytes(body, header.Value)
	}
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}

// appendNullableBytes writes a length varint (-1 for nil) and the bytes.
func appendNullableBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

var (
	zstdEncoderOnce sync.Once
	zstdEncoder     *zstd.Encoder
	zstdEncoderErr  error
)

// Compress compresses a records section with codec; xerial selects the
// Java client's framed snappy instead of a raw block.
func Compress(codec Codec, raw []byte, xerial bool) ([]byte, error) {
	switch codec {
	case None:
		return raw, nil
	case Gzip:
		var out bytes.Buffer
		w := gzip.NewWriter(&out)
		if _, err := w.Write(raw); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return out.Bytes(), nil
	case Snappy:
		if !xerial {
			return snappy.Encode(nil, raw), nil
		}
		out := append([]byte(nil), xerialMagic...)
		out = binary.BigEndian.AppendUint32(out, 1) // version
		out = binary.BigEndian.AppendUint32(out, 1) // compatible version
		for len(raw) > 0 {
			chunk := raw[:min(len(raw), xerialChunkSize)]
			raw = raw[len(chunk):]
			block := snappy.Encode(nil, chunk)
			out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
			out = append(out, block...)
		}
		return out, nil
	case LZ4:
		var out bytes.Buffer
		w := lz4.NewWriter(&out)
		// 64 KiB blocks, as Kafka's Java client writes them (the default
		// 4 MiB block buffer is wasted on one batch).
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if _, err := w.Write(raw); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return out.Bytes(), nil
	case Zstd:
		zstdEncoderOnce.Do(func() {
			zstdEncoder, zstdEncoderErr = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		})
		if zstdEncoderErr != nil {
			return nil, fmt.Errorf("zstd: %w", zstdEncoderErr)
		}
		// EncodeAll is safe for concurrent use.
		return zstdEncoder.EncodeAll(raw, nil), nil
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, codec)
	}
}
