package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// Span locates one batch inside a records blob.
type Span struct {
	Position int32 // offset of the batch's first byte in the blob
	Length   int32 // total size of the batch, header included
}

// Split walks a produce request's records blob — one or more whole batches
// back to back — and returns where each batch is, without copying or
// checking more than the length fields. It is strict, as a produce path
// needs: an empty blob is ErrInvalidRecord (Kafka: at least one batch per
// partition); a batch length shorter than a header, a batch running past the
// end, and trailing bytes too few for a batch are ErrCorrupt. (Kafka's
// Produce v3+ also allows only one batch per partition; the caller enforces
// that, since replication may carry several.)
func Split(records []byte) ([]Span, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrInvalidRecord)
	}
	if len(records) > maxBlobSize {
		return nil, fmt.Errorf("%w: records blob of %d bytes is larger than %d", ErrTooLarge, len(records), maxBlobSize)
	}
	// One batch is by far the common case: no growth for it.
	spans := make([]Span, 0, 1)
	for position := 0; position < len(records); {
		remaining := len(records) - position
		if remaining < LengthFieldEnd {
			return nil, fmt.Errorf("%w: %d trailing bytes at position %d are too few for a batch", ErrCorrupt, remaining, position)
		}
		length := int32(binary.BigEndian.Uint32(records[position+lengthPosition:]))
		if length < minimumBatchLength {
			return nil, fmt.Errorf("%w: batch at position %d has length %d, shorter than a header (%d)", ErrCorrupt, position, length, minimumBatchLength)
		}
		size := int64(length) + LengthFieldEnd
		if size > int64(remaining) {
			return nil, fmt.Errorf("%w: batch at position %d needs %d bytes, %d remain", ErrCorrupt, position, size, remaining)
		}
		spans = append(spans, Span{Position: int32(position), Length: int32(size)})
		position += int(size)
	}
	return spans, nil
}

// maxBlobSize keeps every Span field representable.
const maxBlobSize = 1<<31 - 1
