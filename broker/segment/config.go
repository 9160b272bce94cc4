package segment

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/strata-log/strata/broker/segment/index"
)

// Defaults, the same as Kafka's topic defaults.
const (
	DefaultSegmentBytes       = 1 << 30            // segment.bytes
	DefaultSegmentAge         = 7 * 24 * time.Hour // segment.ms
	DefaultIndexIntervalBytes = 4096               // index.interval.bytes
	DefaultMaxIndexBytes      = 10 << 20           // segment.index.bytes
	DefaultRetentionAge       = 7 * 24 * time.Hour // retention.ms
)

// NoRetainedBytes as Config.RetentionBytes is retention.bytes=0: the zero
// value means the default (no limit), as for every field.
const NoRetainedBytes int64 = math.MinInt64

// Config configures a Log. The zero value of every field means its default,
// so Config{} is a valid configuration.
type Config struct {
	// SegmentBytes rolls the active segment when an append would make it
	// larger than this (segment.bytes). At most math.MaxInt32, because index
	// entries hold 4-byte positions. Default DefaultSegmentBytes.
	SegmentBytes int64
	// SegmentAge rolls the active segment when its first batch was appended
	// longer ago than this (segment.ms). For an active segment found at Open
	// the age counts from its first batch's timestamp (or from Open when
	// that is missing or in the future). Default DefaultSegmentAge.
	SegmentAge time.Duration
	// IndexIntervalBytes is the number of log bytes between two entries of
	// the offset and time indexes (index.interval.bytes). Default
	// DefaultIndexIntervalBytes.
	IndexIntervalBytes int32
	// MaxIndexBytes rolls the active segment when its offset or time index
	// holds this many bytes (segment.index.bytes). It is a soft bound: one
	// append may add an entry per batch beyond it. At least 12 (one time
	// index entry). Default DefaultMaxIndexBytes.
	MaxIndexBytes int32
	// RetentionAge deletes segments whose largest timestamp is older than
	// this (retention.ms). Negative means unlimited. Default
	// DefaultRetentionAge.
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest segments while the log is larger
	// than this by at least a segment (retention.bytes). Negative (and the
	// zero value) means unlimited; NoRetainedBytes is retention.bytes=0
	// (every segment retention may delete goes).
	RetentionBytes int64
	// FlushMessages fsyncs after this many records were appended since the
	// last fsync (flush.messages). Zero means never by count.
	FlushMessages int64
	// FlushInterval fsyncs when the oldest unflushed append is older than
	// this, checked on Append and by FlushIfDue (flush.ms). Zero means never
	// by time.
	FlushInterval time.Duration
	// Logger receives recovery, roll and retention events. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock used for segment age, retention and the flush
	// interval. Default time.Now; tests inject their own.
	Now func() time.Time
	// WriteFault, when set (tests only), is asked before each append's
	// write to the active segment's log file, with the size of the write.
	// An error it returns fails that write after written bytes of it
	// reached the file: a full disk (syscall.ENOSPC) or a failing one
	// (syscall.EIO), as a short write leaves them.
	WriteFault func(size int) (written int, err error)
	// SyncFault, when set (tests only), is asked before each fsync of the
	// log's records: Sync, a flush (flush.messages, flush.ms, Flush,
	// Close) and the fsync of a segment sealed by a roll, which runs on
	// its own goroutine (so SyncFault must be safe for concurrent use). An
	// error it returns fails that fsync as a failing disk does
	// (syscall.EIO): the log is failed from then on (ErrLogFailed).
	SyncFault func() error
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < 0 || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("%w: SegmentBytes %d is outside [0, %d]", ErrInvalidConfig, c.SegmentBytes, math.MaxInt32)
	case c.SegmentAge < 0:
		return fmt.Errorf("%w: SegmentAge %v is negative", ErrInvalidConfig, c.SegmentAge)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("%w: IndexIntervalBytes %d is negative", ErrInvalidConfig, c.IndexIntervalBytes)
	case c.MaxIndexBytes != 0 && c.MaxIndexBytes < index.TimeEntrySize:
		return fmt.Errorf("%w: MaxIndexBytes %d is below %d", ErrInvalidConfig, c.MaxIndexBytes, index.TimeEntrySize)
	case c.FlushMessages < 0:
		return fmt.Errorf("%w: FlushMessages %d is negative", ErrInvalidConfig, c.FlushMessages)
	case c.FlushInterval < 0:
		return fmt.Errorf("%w: FlushInterval %v is negative", ErrInvalidConfig, c.FlushInterval)
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxIndexBytes == 0 {
		c.MaxIndexBytes = DefaultMaxIndexBytes
	}
	if c.RetentionAge == 0 {
		c.RetentionAge = DefaultRetentionAge
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
