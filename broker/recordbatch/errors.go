package recordbatch

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Sentinel errors. Callers classify failures with errors.Is or the helpers
// below; the messages are for people and may change.
var (
	// ErrCorrupt marks a batch whose bytes cannot be read: a CRC mismatch,
	// truncation, a length out of bounds, a bad varint, a compressed stream
	// that does not decode. Kafka's CORRUPT_MESSAGE.
	ErrCorrupt = errors.New("recordbatch: corrupt batch")
	// ErrInvalidRecord marks a batch that reads but breaks the format's
	// rules: a record count that does not match, offset deltas out of
	// order, leftover bytes, a control batch from a client. Kafka's
	// INVALID_RECORD.
	ErrInvalidRecord = errors.New("recordbatch: invalid record")
	// ErrTooLarge marks a batch over the size limit, or one that
	// decompresses past the decompression limit. Kafka's MESSAGE_TOO_LARGE.
	ErrTooLarge = errors.New("recordbatch: batch too large")
	// ErrUnsupportedMagic marks a batch in another message format than v2.
	ErrUnsupportedMagic = errors.New("recordbatch: unsupported magic")
	// ErrUnsupportedCodec marks a batch with a compression codec id this
	// broker does not know (5-7). Kafka's UNSUPPORTED_COMPRESSION_TYPE.
	ErrUnsupportedCodec = errors.New("recordbatch: unsupported compression codec")
	// ErrInvalidTimestamp marks a record whose timestamp lies outside the
	// topic's window (Limits.CheckTimestamps). Kafka's INVALID_TIMESTAMP.
	ErrInvalidTimestamp = errors.New("recordbatch: invalid timestamp")
)

// IsCorrupt reports whether err stems from bytes that cannot be read.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// IsInvalid reports whether err stems from a readable batch that breaks the
// format's rules.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalidRecord) }

// IsTooLarge reports whether err stems from a size limit.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// ErrorCode maps an error from this package to the Kafka error code a
// produce response carries: 0 for nil, CORRUPT_MESSAGE (2), MESSAGE_TOO_LARGE
// (10), INVALID_TIMESTAMP (32), UNSUPPORTED_COMPRESSION_TYPE (76),
// INVALID_RECORD (87), and
// UNKNOWN_SERVER_ERROR (-1) for anything it does not know.
func ErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	// Corrupt first: an unknown magic is both unsupported and corrupt.
	case errors.Is(err, ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, ErrUnsupportedCodec):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, ErrInvalidRecord), errors.Is(err, ErrUnsupportedMagic):
		// Kafka answers a Produce v3+ carrying magic 0 or 1 with
		// INVALID_RECORD.
		return kerr.InvalidRecord.Code
	default:
		return kerr.UnknownServerError.Code
	}
}
