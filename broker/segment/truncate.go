package segment

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/strata-log/strata/internal/atomicfile"
)

// Truncate removes every batch whose last offset is at least offset
// (replicas truncating to a leader epoch end). Batches are kept or dropped
// whole, so when offset falls inside a batch the new end offset is that
// batch's base offset. Offsets at or above the end offset are a no-op; an
// offset below the first segment empties the log and restarts it there. The
// log start offset follows the end down if needed. Waits for in-flight
// reads.
func (l *Log) Truncate(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("segment: truncate: %w: negative offset %d", ErrOffsetOutOfRange, offset)
	}
	if offset >= l.endOffset.Load() {
		return nil
	}
	// The segment sealed by the last roll may be cut or removed: its
	// background fsync finishes first (a failure fails the log, and is not
	// hidden by the fsyncs of the cut that follow).
	l.awaitRollSyncLocked()
	l.rewriteMu.Lock()
	defer l.rewriteMu.Unlock()
	l.truncations++
	if offset < l.segments[0].baseOffset {
		return l.truncateFullyLocked(offset)
	}
	keep := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].baseOffset > offset })
	last := l.segments[keep-1]
	position, newEnd, found, err := last.findCut(offset)
	if err != nil {
		return fmt.Errorf("segment: truncate to %d: %w", offset, err)
	}
	if !found {
		// Only possible across an offset gap between segments: nothing of
		// the kept segment reaches offset.
		newEnd = offset
	}
	if newEnd < l.startOffset.Load() {
		// Persist the lower start first: a higher checkpoint than the end
		// would empty the log at the next open.
		if err := writeOffsetCheckpoint(l.dir, startOffsetFileName, logStartOffsetKey, newEnd); err != nil {
			return fmt.Errorf("segment: truncate to %d: %w", offset, err)
		}
		l.startOffset.Store(newEnd)
	}
	if err := l.removeSegmentsLocked(l.segments[keep:], "truncate"); err != nil {
		return fmt.Errorf("segment: truncate to %d: %w", offset, err)
	}
	if found {
		if err := last.cut(position, newEnd); err != nil {
			l.fail(err)
			return fmt.Errorf("segment: truncate to %d: %w", offset, err)
		}
	}
	last.nextOffset = newEnd
	last.initRollTime(l.config.Now())
	if err := last.truncateTxnIndexLocked(newEnd); err != nil {
		return fmt.Errorf("segment: truncate to %d: %w", offset, err)
	}
	l.endOffset.Store(newEnd)
	l.lowerCleanerOffsetLocked(newEnd)
	// cut fsynced the kept bytes, but what was not durable below newEnd
	// (an offset gap, an unsynced tail) is not made so: only lower.
	l.syncedEnd.Store(min(l.syncedEnd.Load(), newEnd))
	l.logger.Info("truncated log", "requested_offset", offset, "log_end_offset", newEnd)
	return nil
}

// truncateFullyLocked deletes every segment and restarts the log empty at
// offset, which must not be the base offset of a current segment.
// TruncateFullyAndStartAt empties the log and restarts it at offset, which
// may lie above the end: a follower that fell behind its leader's log start
// continues from there. Waits for in-flight reads.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("segment: truncate fully: %w: negative offset %d", ErrOffsetOutOfRange, offset)
	}
	l.awaitRollSyncLocked() // as Truncate
	l.rewriteMu.Lock()
	defer l.rewriteMu.Unlock()
	return l.truncateFullyLocked(offset)
}

func (l *Log) truncateFullyLocked(offset int64) error {
	l.truncations++
	// The checkpoint goes first: left behind, a higher value would hide the
	// new segment's offsets.
	if err := removeFileDurably(l.dir, startOffsetFileName); err != nil {
		return err
	}
	next, err := createSegment(l.dir, offset, l.logger, l.config.Now())
	if err != nil {
		return err
	}
	old := l.segments
	l.mu.Lock()
	l.segments = []*segment{next}
	l.mu.Unlock()
	l.startOffset.Store(offset)
	l.endOffset.Store(offset)
	l.syncedEnd.Store(offset) // empty: nothing below offset to lose
	l.lowerCleanerOffsetLocked(offset)
	l.unflushedRecords, l.firstUnflushedAt = 0, time.Time{}
	l.logger.Info("emptied log", "log_start_offset", offset)
	return l.releaseRemovedSegments(old, "truncate fully")
}

// removeSegmentsLocked takes segments (a run of l.segments that leaves at
// least one segment) out of the list and deletes their files.
func (l *Log) removeSegmentsLocked(removed []*segment, reason string) error {
	if len(removed) == 0 {
		return nil
	}
	gone := make(map[*segment]bool, len(removed))
	for _, s := range removed {
		gone[s] = true
	}
	remaining := make([]*segment, 0, len(l.segments)-len(removed))
	for _, s := range l.segments {
		if !gone[s] {
			remaining = append(remaining, s)
		}
	}
	l.mu.Lock()
	l.segments = remaining
	l.mu.Unlock()
	return l.releaseRemovedSegments(removed, reason)
}

// releaseRemovedSegments deletes the files of segments already out of the
// list and drops the list's references; readers still holding one keep
// their open descriptors.
func (l *Log) releaseRemovedSegments(removed []*segment, reason string) error {
	var errs []error
	for _, s := range removed {
		if err := removeSegmentFiles(l.dir, s.baseOffset); err != nil {
			errs = append(errs, err)
		}
		l.logger.Info("deleted segment", "reason", reason, "file", s.logPath, "bytes", s.size.Load())
		s.release()
	}
	if err := atomicfile.SyncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// lowerCleanerOffsetLocked brings the cleaner offset down to a truncated
// log's end, as Kafka's LogCleanerManager.maybeTruncateCheckpoint does:
// what is appended there again was never cleaned, and must count as
// dirty. A failed checkpoint write only costs the dirty ratio of the next
// pass after a restart, so it is logged. Called with appendMu held.
func (l *Log) lowerCleanerOffsetLocked(end int64) {
	if l.cleanerOffset.Load() <= end {
		return
	}
	l.cleanerOffset.Store(end)
	if err := writeOffsetCheckpoint(l.dir, cleanerOffsetFileName, cleanerOffsetKey, end); err != nil {
		l.logger.Warn("lowering the cleaner offset checkpoint after a truncation failed", "offset", end, "err", err)
	}
}
