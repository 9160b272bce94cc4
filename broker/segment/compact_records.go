package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/strata-log/strata/broker/recordbatch"
)

// maxCleanerDecompressedBytes bounds what the cleaner decompresses from one
// batch (the batches were validated at produce time; this is a safety net).
const maxCleanerDecompressedBytes = 256 << 20

// decodeRecords decodes the records of one whole batch like
// recordbatch.Records but without requiring dense offset deltas or
// recordCount == lastOffsetDelta+1, which compacted batches break: offset
// deltas must only increase and stay within lastOffsetDelta. Keys and
// values are copies.
func decodeRecords(batch []byte) (recordbatch.Header, []recordbatch.Record, error) {
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return h, nil, err
	}
	if h.Size() > int64(len(batch)) {
		return h, nil, fmt.Errorf("batch of %d bytes, %d given", h.Size(), len(batch))
	}
	raw, err := decompressRecords(h.Codec(), batch[recordbatch.HeaderSize:h.Size()])
	if err != nil {
		return h, nil, err
	}
	records := make([]recordbatch.Record, 0, h.NumRecords)
	previousDelta := int64(-1)
	for i := int32(0); i < h.NumRecords; i++ {
		length, n := binary.Varint(raw)
		if n <= 0 || length < 0 || int64(len(raw)-n) < length {
			return h, nil, fmt.Errorf("record %d: bad length", i)
		}
		body := raw[n : n+int(length)]
		raw = raw[n+int(length):]
		if len(body) < 1 {
			return h, nil, fmt.Errorf("record %d: empty", i)
		}
		body = body[1:] // attributes
		var fields [2]int64
		for j := range fields {
			v, n := binary.Varint(body)
			if n <= 0 {
				return h, nil, fmt.Errorf("record %d: bad varint", i)
			}
			fields[j], body = v, body[n:]
		}
		timestampDelta, offsetDelta := fields[0], fields[1]
		if offsetDelta <= previousDelta || offsetDelta > int64(h.LastOffsetDelta) {
			return h, nil, fmt.Errorf("record %d: offset delta %d after %d (last offset delta %d)", i, offsetDelta, previousDelta, h.LastOffsetDelta)
		}
		previousDelta = offsetDelta
		r := recordbatch.Record{Offset: h.BaseOffset + offsetDelta, Timestamp: h.FirstTimestamp + timestampDelta}
		if h.LogAppendTime() {
			r.Timestamp = h.MaxTimestamp
		}
		if r.Key, body, err = readNullableBytes(body); err != nil {
			return h, nil, fmt.Errorf("record %d key: %w", i, err)
		}
		if r.Value, body, err = readNullableBytes(body); err != nil {
			return h, nil, fmt.Errorf("record %d value: %w", i, err)
		}
		count, n := binary.Varint(body)
		if n <= 0 || count < 0 || count > int64(len(body)) {
			return h, nil, fmt.Errorf("record %d: bad header count", i)
		}
		body = body[n:]
		for range count {
			var key, value []byte
			if key, body, err = readNullableBytes(body); err != nil || key == nil {
				return h, nil, fmt.Errorf("record %d: bad header key", i)
			}
			if value, body, err = readNullableBytes(body); err != nil {
				return h, nil, fmt.Errorf("record %d: bad header value", i)
			}
			r.Headers = append(r.Headers, recordbatch.RecordHeader{Key: string(key), Value: value})
		}
		if len(body) != 0 {
			return h, nil, fmt.Errorf("record %d: %d bytes left over", i, len(body))
		}
		records = append(records, r)
	}
	if len(raw) != 0 {
		return h, nil, fmt.Errorf("%d bytes after the last record", len(raw))
	}
	return h, records, nil
}

func readNullableBytes(b []byte) (value, rest []byte, err error) {
	length, n := binary.Varint(b)
	if n <= 0 || length < -1 || int64(len(b)-n) < length {
		return nil, nil, errors.New("bad length")
	}
	if length < 0 {
		return nil, b[n:], nil
	}
	return bytes.Clone(b[n : n+int(length)]), b[n+int(length):], nil
}

var (
	zstdDecoderOnce sync.Once
	zstdDecoder     *zstd.Decoder
	zstdDecoderErr  error
)

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func decompressRecords(codec recordbatch.Codec, payload []byte) ([]byte, error) {
	var reader io.Reader
	switch codec {
	case recordbatch.None:
		return payload, nil
	case recordbatch.Gzip:
		r, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		reader = r
	case recordbatch.Snappy:
		if !bytes.HasPrefix(payload, xerialMagic) {
			return snappy.Decode(nil, payload)
		}
		var out []byte
		for rest := payload[min(len(payload), 16):]; len(rest) > 0; {
			if len(rest) < 4 {
				return nil, errors.New("xerial snappy: truncated chunk length")
			}
			length := binary.BigEndian.Uint32(rest)
			if uint64(len(rest)-4) < uint64(length) {
				return nil, errors.New("xerial snappy: truncated chunk")
			}
			chunk, err := snappy.Decode(nil, rest[4:4+length])
			if err != nil {
				return nil, fmt.Errorf("xerial snappy: %w", err)
			}
			out, rest = append(out, chunk...), rest[4+length:]
		}
		return out, nil
	case recordbatch.LZ4:
		reader = lz4.NewReader(bytes.NewReader(payload))
	case recordbatch.Zstd:
		zstdDecoderOnce.Do(func() {
			zstdDecoder, zstdDecoderErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxCleanerDecompressedBytes))
		})
		if zstdDecoderErr != nil {
			return nil, fmt.Errorf("zstd: %w", zstdDecoderErr)
		}
		// DecodeAll is safe for concurrent use.
		out, err := zstdDecoder.DecodeAll(payload, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported codec %v", codec)
	}
	out, err := io.ReadAll(io.LimitReader(reader, maxCleanerDecompressedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%v: %w", codec, err)
	}
	if len(out) > maxCleanerDecompressedBytes {
		return nil, fmt.Errorf("%v: decompresses past %d bytes", codec, maxCleanerDecompressedBytes)
	}
	return out, nil
}
