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
// re-encodes batches with Rebuild and Recode.
func Build(opts BuildOptions, records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: build a batch of no records", ErrInvalidRecord)
	}
	numbered := make([]Record, len(records))
	for index, record := range records {
		record.Offset = opts.BaseOffset + int64(index)
		numbered[index] = record
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
		Attributes:           attributes,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       records[0].Timestamp,
		MaxTimestamp:         maxRecordTimestamp(records),
		ProducerID:           noProducerID,
		ProducerEpoch:        noProducerEpoch,
		BaseSequence:         noSequence,
	}
	if opts.Idempotent {
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	return rebuild(h, numbered, opts.XerialSnappy)
}

// Rebuild encodes records as the batch with header h: the base offset,
// lastOffsetDelta, partition leader epoch, attributes (so the codec),
// first timestamp, producer id, epoch and base sequence of h; each record
// keeps its offset (encoded as its delta from h.BaseOffset, so offset gaps
// stay) and its timestamp (encoded against h.FirstTimestamp). The record
// count is len(records) and the CRC is computed; the max timestamp is the
// records' largest, or h's under LogAppendTime. Snappy is written as one
// raw block (librdkafka's and franz-go's shape), which every client reads.
// The log cleaner rewrites the batches it compacts with it.
func Rebuild(h Header, records []Record) ([]byte, error) {
	return rebuild(h, records, false)
}

// Recode returns batch, one whole valid batch, re-encoded with codec, as
// Kafka's compression.type makes the leader store it: the same header but
// for the codec bits (and the CRC), the same records — keys, values,
// headers, timestamps and offset deltas. The records are decoded within
// the limits that Records applies to stored batches; the caller has
// validated batch.
func Recode(batch []byte, codec Codec) ([]byte, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return nil, err
	}
	records, err := Records(batch)
	if err != nil {
		return nil, err
	}
	h.Attributes = h.Attributes&^codecMask | int16(codec)
	return Rebuild(h, records)
}

func rebuild(h Header, records []Record, xerial bool) ([]byte, error) {
	if codec := h.Codec(); !codec.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, codec)
	}
	var raw []byte
	for _, r := range records {
		raw = AppendRecord(raw, r, int32(r.Offset-h.BaseOffset), r.Timestamp-h.FirstTimestamp)
	}
	payload, err := Compress(h.Codec(), raw, xerial)
	if err != nil {
		return nil, err
	}
	if !h.LogAppendTime() {
		h.MaxTimestamp = maxRecordTimestamp(records)
	}
	h.NumRecords = int32(len(records))
	return Assemble(h, payload), nil
}

// maxRecordTimestamp is the largest record timestamp, -1 for no records.
func maxRecordTimestamp(records []Record) int64 {
	if len(records) == 0 {
		return -1
	}
	maxTimestamp := records[0].Timestamp
	for _, r := range records[1:] {
		maxTimestamp = max(maxTimestamp, r.Timestamp)
	}
	return maxTimestamp
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
