package segment

import (
	"fmt"
	"math"
	"strconv"
)

// EnforceRetention deletes segments with Kafka's rules, oldest first, and
// returns how many it deleted:
//   - retention.ms: segments whose largest timestamp (or, without
//     timestamps, last modification) is older than RetentionAge;
//   - retention.bytes: the oldest segments while the log is larger than
//     RetentionBytes by at least the segment's size;
//   - segments entirely below the log start offset (after SetStartOffset).
//
// Retention deletes only segments that end at or below the retention limit
// (SetRetentionLimit): a tiered partition's segments not yet in the object
// store stay, however old. Deletion stops at the first segment that is kept. An expired non-empty
// active segment is rolled first and then deleted, as Kafka does; an empty
// active segment is never deleted. The log start offset advances to the
// first remaining segment.
func (l *Log) EnforceRetention() (deletedSegments int, err error) {
	return l.EnforceRetentionBelow(math.MaxInt64)
}

// EnforceRetentionBelow is EnforceRetention deleting by retention.ms and
// retention.bytes only segments that end at or below upTo as well: a
// partition's high watermark, as Kafka's deletableSegments, so that
// retention never deletes records its followers do not have yet.
func (l *Log) EnforceRetentionBelow(upTo int64) (deletedSegments int, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	now := l.config.Now()
	if retention := l.config.RetentionAge; retention >= 0 {
		deleted, err := l.deleteOldestLocked("retention.ms", func(s, next *segment) bool {
			return l.withinLimit(next, upTo) && now.Sub(s.largestTime()) > retention
		})
		deletedSegments += deleted
		if err != nil {
			return deletedSegments, err
		}
	}
	if retention := l.config.RetentionBytes; retention >= 0 || retention == NoRetainedBytes {
		excess := sizeOf(l.segments) - max(retention, 0)
		deleted, err := l.deleteOldestLocked("retention.bytes", func(s, next *segment) bool {
			if size := s.size.Load(); excess-size >= 0 && l.withinLimit(next, upTo) {
				excess -= size
				return true
			}
			return false
		})
		deletedSegments += deleted
		if err != nil {
			return deletedSegments, err
		}
	}
	deleted, err := l.deleteBelowStartLocked()
	return deletedSegments + deleted, err
}

// SetRetentionLimit bounds what EnforceRetention may delete: segments
// whose offsets reach offset or beyond stay (math.MaxInt64: no bound, the
// default). Tiering sets it to the offset after the last uploaded one.
func (l *Log) SetRetentionLimit(offset int64) { l.retentionLimit.Store(offset) }

// RetentionLimit returns the limit SetRetentionLimit set.
func (l *Log) RetentionLimit() int64 { return l.retentionLimit.Load() }

// withinLimit reports whether the segment before next (nil: the active
// segment) ends at or below the retention limit and upTo.
func (l *Log) withinLimit(next *segment, upTo int64) bool {
	end := l.endOffset.Load()
	if next != nil {
		end = next.baseOffset
	}
	return end <= min(l.retentionLimit.Load(), upTo)
}

// SetStartOffset advances the log start offset (DeleteRecords) and deletes
// the segments entirely below it. It never moves the start backwards; an
// offset above the end offset is ErrOffsetOutOfRange. The new start is
// persisted before it takes effect.
func (l *Log) SetStartOffset(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	start, end := l.startOffset.Load(), l.endOffset.Load()
	if offset <= start {
		return nil
	}
	if offset > end {
		return fmt.Errorf("segment: set start offset: %w", outOfRange(offset, start, end))
	}
	if err := writeOffsetCheckpoint(l.dir, startOffsetFileName, logStartOffsetKey, offset); err != nil {
		return fmt.Errorf("segment: set start offset %d: %w", offset, err)
	}
	l.startOffset.Store(offset)
	l.logger.Info("advanced log start offset", "log_start_offset", offset)
	_, err := l.deleteBelowStartLocked()
	return err
}

func (l *Log) deleteBelowStartLocked() (int, error) {
	start := l.startOffset.Load()
	return l.deleteOldestLocked("below log start offset "+strconv.FormatInt(start, 10), func(_, next *segment) bool {
		return next != nil && next.baseOffset <= start
	})
}

// deleteOldestLocked deletes the longest run of oldest segments for which
// deletable holds (next is the following segment, nil for the active one),
// never an empty active segment, rolling first when the run includes the
// active segment.
func (l *Log) deleteOldestLocked(reason string, deletable func(s, next *segment) bool) (int, error) {
	segments := l.segments
	count := 0
	for i, s := range segments {
		var next *segment
		if i+1 < len(segments) {
			next = segments[i+1]
		}
		if (next == nil && s.size.Load() == 0) || !deletable(s, next) {
			break
		}
		count++
	}
	if count == 0 {
		return 0, nil
	}
	if count == len(segments) {
		if err := l.rollLocked(l.config.Now(), reason); err != nil {
			return 0, fmt.Errorf("segment: retention: %w", err)
		}
	}
	// Readers check the start offset after taking a segment, so it moves
	// before the segments go.
	if first := l.segments[count].baseOffset; first > l.startOffset.Load() {
		l.startOffset.Store(first)
	}
	if err := l.removeSegmentsLocked(segments[:count], reason); err != nil {
		return count, fmt.Errorf("segment: retention: %w", err)
	}
	return count, nil
}
