package segment

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers compare with errors.Is; the returned errors wrap
// them with context (file, offsets).
var (
	// ErrOffsetOutOfRange is returned for reads below the log start offset or
	// above the log end offset, and for SetStartOffset above the end.
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrClosed is returned by every method of a Log after Close or Delete.
	ErrClosed = errors.New("segment: log closed")
	// ErrNoPartitionMetadata is returned by ReadPartitionMetadata when the
	// directory has no partition.metadata file.
	ErrNoPartitionMetadata = errors.New("segment: no partition metadata")
	// ErrInvalidAppend is returned when the batch descriptors given to Append
	// do not describe the appended bytes.
	ErrInvalidAppend = errors.New("segment: invalid append")
	// ErrAppendTooLarge is returned when one append is larger than the
	// segment size (Kafka's RecordBatchTooLargeException).
	ErrAppendTooLarge = errors.New("segment: append larger than the segment size")
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("segment: invalid config")
	// ErrLogFailed is returned by Append, Flush and Sync after a write or
	// fsync failed in a way that leaves the files in an unknown state
	// (Log.Failed); the log must be reopened (which recovers it).
	ErrLogFailed = errors.New("segment: log failed")
)

// CorruptError reports bytes on disk that do not have the format this
// package writes. Classify it with IsCorrupt.
type CorruptError struct {
	Path     string // file holding the bad bytes
	Position int64  // byte position in that file, -1 when not meaningful
	Reason   string // what is wrong, for operators
}

func (e *CorruptError) Error() string {
	if e.Position < 0 {
		return fmt.Sprintf("segment: corrupt %s: %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("segment: corrupt %s at position %d: %s", e.Path, e.Position, e.Reason)
}

// IsCorrupt reports whether err (or an error it wraps) is a *CorruptError.
func IsCorrupt(err error) bool {
	var corrupt *CorruptError
	return errors.As(err, &corrupt)
}

func corruptf(path string, position int64, format string, args ...any) *CorruptError {
	return &CorruptError{Path: path, Position: position, Reason: fmt.Sprintf(format, args...)}
}
