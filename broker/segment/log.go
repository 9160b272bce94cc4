package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// Log is the local log of one partition: a directory of segments.
//
// Concurrency: all methods are safe for concurrent use. Mutations (Append,
// Truncate, SetStartOffset, EnforceRetention, Flush, FlushIfDue, SetConfig,
// Close, Delete) are serialized. Compact builds cleaned segments without
// the append lock and takes it only to swap each one in. Reads (Read, FindTimestamp,
// MaxTimestampBatch, Scan) do not take the append lock: they read up to the
// end offset published when they start, and hold references on the segments
// they read so that retention can delete files under them. Only Truncate
// waits for in-flight reads, because it rewrites bytes in place.
type Log struct {
	dir    string
	logger *slog.Logger // immutable

	// appendMu serializes mutations and guards config, unflushedRecords,
	// firstUnflushedAt, failure and the writer state of every segment.
	appendMu         sync.Mutex
	config           Config
	unflushedRecords int64     // records appended since the last fsync
	firstUnflushedAt time.Time // time of the oldest unflushed append; zero when none
	failure          error     // set (fail) when the files are in an unknown state
	truncations      int64     // Truncate calls so far; Compact checks it did not miss one
	// rollSync is the background fsync of the segment the last roll
	// sealed, nil once its outcome is published (settleRollSyncLocked).
	// At most one sealed segment waits for its fsync: a roll first waits
	// for the previous one, so after a power loss only the last two
	// segments can be torn (Open verifies both).
	rollSync *rollSync
	// failed is failure != nil, read without appendMu (Failed).
	failed atomic.Bool

	// cleanMu serializes Compact; cleanerOffset is the offset below which
	// the log was last compacted (cleaner-offset-checkpoint).
	cleanMu       sync.Mutex
	cleanerOffset atomic.Int64

	// rewriteMu is held shared by readers while they read file bytes and
	// exclusively by Truncate while it cuts bytes that later appends will
	// overwrite, so a reader never returns a mix of old and new bytes.
	rewriteMu sync.RWMutex

	// mu guards segments and closed. They change only while appendMu is held
	// too, so the holder of appendMu may read them without mu.
	mu       sync.RWMutex
	segments []*segment // sorted by base offset; the last is the active segment; replaced, never modified in place
	closed   bool

	// retentionLimit is the offset retention may delete up to
	// (SetRetentionLimit): only segments ending at or below it go.
	retentionLimit atomic.Int64

	startOffset atomic.Int64 // first readable offset
	endOffset   atomic.Int64 // offset of the next appended record; published after the bytes below it are readable
	rolls       atomic.Int64 // segments rolled since open (Rolls)
	// syncedEnd is the offset below which every record is known to be on
	// disk (fsynced); at most endOffset. It only moves with appendMu held
	// (Sync takes it again to publish), and only down on Truncate.
	syncedEnd atomic.Int64

	// syncMu serializes Sync calls. syncFile fsyncs the active segment's
	// log file for Sync, outside appendMu; tests replace it to block or
	// count. (The background fsync of a sealed segment does not use it; it
	// asks Config.SyncFault, as every fsync of the log's records does.)
	syncMu   sync.Mutex
	syncFile func(*os.File) error
	// writeback starts writing an append's bytes of the active segment's
	// log file to disk once writebackBytes have gathered (startWriteback),
	// without waiting; tests replace it to count. Called with appendMu
	// held.
	writeback func(f *os.File, offset, length int64)
}

// rollSync is the fsync of a segment sealed by a roll, run on its own
// goroutine so that the append that rolled (and every append after it)
// does not wait for it: the fsync waits for the segment's writeback in
// flight and the disk's queue (6-13 ms on an idle disk, up to 400 ms on a
// busy one). err is set before done is closed.
type rollSync struct {
	segment *segment
	end     int64         // the sealed segment's end offset: the next segment's base
	done    chan struct{} // closed when the fsync finished
	err     error
}

// AppendBatch describes one record batch inside the bytes given to Append.
type AppendBatch struct {
	Position        int32 // where the batch starts in the appended bytes
	Length          int32 // whole batch, header included
	LastOffsetDelta int32 // the batch covers offsets base..base+LastOffsetDelta
	MaxTimestamp    int64 // the header's maxTimestamp (after any LogAppendTime rewrite)
	Records         int32 // record count, for the flush.messages policy
}

// Open opens the log in dir, creating the directory and a first segment at
// startOffset when it holds no segment (startOffset is ignored otherwise).
//
// Recovery: without the clean-shutdown marker left by Close, the last two
// segments are verified batch by batch (framing, CRC-32C, contiguous
// offsets) and truncated at the first bad or torn batch: the active one,
// and the one sealed by the last roll, whose fsync runs in the background
// (rollLocked) and may not have finished; earlier segments were fsynced
// before the roll after theirs could start. The verified sealed segment is
// fsynced before Open returns. Any segment whose index files are missing
// or fail their checks is verified and re-indexed the same way. When a
// verified segment other than the last loses bytes, the segments after it
// are deleted so offsets stay dense. Every truncation is logged with the
// file, position and reason.
func Open(dir string, startOffset int64, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	if startOffset < 0 {
		return nil, fmt.Errorf("segment: open %s: %w: negative start offset %d", dir, ErrInvalidConfig, startOffset)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	l := &Log{dir: dir, config: cfg, logger: cfg.Logger.With(slog.String("log_dir", dir)), syncFile: (*os.File).Sync, writeback: startWriteback}
	l.retentionLimit.Store(math.MaxInt64)
	if err := l.load(startOffset); err != nil {
		for _, s := range l.segments {
			s.release()
		}
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	return l, nil
}

// load runs recovery; the Log is not shared yet.
func (l *Log) load(startOffset int64) error {
	clean, markerEndOffset := l.takeCleanShutdownMarker()
	baseOffsets, err := l.scanDirectory()
	if err != nil {
		return err
	}
	checkpoint, hasCheckpoint, err := readOffsetCheckpoint(l.dir, startOffsetFileName, logStartOffsetKey)
	if err != nil {
		return err
	}
	now := l.config.Now()
	if len(baseOffsets) == 0 {
		if err := removeFileDurably(l.dir, startOffsetFileName); err != nil {
			return err
		}
		s, err := createSegment(l.dir, startOffset, l.logger, now)
		if err != nil {
			return err
		}
		l.segments = []*segment{s}
		l.startOffset.Store(startOffset)
		l.endOffset.Store(startOffset)
		l.syncedEnd.Store(startOffset)
		if err := atomicfile.SyncDir(l.dir); err != nil {
			return err
		}
		// A new log's directory was just created (here or by the caller):
		// its name in the parent is durable only once the parent is fsynced,
		// or a power loss takes the whole log, flushed records included.
		return atomicfile.SyncDir(filepath.Dir(l.dir))
	}
	if err := l.loadSegments(baseOffsets, clean, markerEndOffset); err != nil {
		return err
	}
	active := l.segments[len(l.segments)-1]
	if n := len(l.segments); !clean && n >= 2 {
		// The segment sealed by the last roll was verified, not known to
		// be durable: after a process crash its unsynced tail may still be
		// only in the page cache. Made durable now, it is a sealed segment
		// like the ones before it, which the next unclean open, once
		// another roll made it third to last, no longer verifies.
		if err := l.segments[n-2].sync(); err != nil {
			return err
		}
	}
	active.initRollTime(now)
	l.endOffset.Store(active.nextOffset)
	// After a clean shutdown everything was fsynced by Close; after a
	// crash only the sealed segments are known to be (the page cache may
	// still hold the active one's tail): Sync covers the rest when asked.
	if clean {
		l.syncedEnd.Store(active.nextOffset)
	} else {
		l.syncedEnd.Store(active.baseOffset)
	}
	start := l.segments[0].baseOffset
	if hasCheckpoint && checkpoint > start {
		start = checkpoint
	}
	l.startOffset.Store(start)
	if err := l.loadCleanerOffset(); err != nil {
		return err
	}
	if start > active.nextOffset {
		l.logger.Warn("log start offset is above the recovered end; starting empty at the log start offset",
			"log_start_offset", start, "log_end_offset", active.nextOffset)
		return l.truncateFullyLocked(start)
	}
	return nil
}

// takeCleanShutdownMarker reads and removes the marker Close writes. A
// marker that cannot be read counts as an unclean shutdown.
func (l *Log) takeCleanShutdownMarker() (clean bool, endOffset int64) {
	endOffset, clean, err := readOffsetCheckpoint(l.dir, cleanShutdownFileName, logEndOffsetKey)
	if err != nil {
		l.logger.Warn("unreadable clean shutdown marker; recovering as after a crash", "err", err)
	}
	if err := removeFileDurably(l.dir, cleanShutdownFileName); err != nil {
		// Keeping a marker would let the next open skip recovery after a
		// crash; fall back to recovering now and every time.
		l.logger.Warn("cannot remove clean shutdown marker; recovering as after a crash", "err", err)
		return false, 0
	}
	return clean, endOffset
}

// scanDirectory lists the segment base offsets in dir, removing index files
// without a .log and temporary files this package left behind. Files it
// does not know are left alone (other packages keep theirs here).
func (l *Log) scanDirectory() ([]int64, error) {
	if err := l.recoverCompactionSwaps(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	logs := map[int64]bool{}
	var indexFiles []string
	for _, entry := range entries {
		name := entry.Name()
		if entry.IsDir() {
			continue
		}
		if base, ok := parseSegmentFileName(name, logFileSuffix); ok {
			logs[base] = true
			continue
		}
		if strings.HasSuffix(name, offsetIndexFileSuffix) || strings.HasSuffix(name, timeIndexFileSuffix) || strings.HasSuffix(name, txnIndexFileSuffix) {
			indexFiles = append(indexFiles, name)
			continue
		}
		switch name {
		case startOffsetFileName + temporaryFileSuffix, cleanShutdownFileName + temporaryFileSuffix, partitionMetadataFileName + temporaryFileSuffix,
			cleanerOffsetFileName + temporaryFileSuffix:
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("remove leftover %s: %w", name, err)
			}
		}
	}
	for _, name := range indexFiles {
		base, ok := parseSegmentFileName(name, offsetIndexFileSuffix)
		if !ok {
			base, ok = parseSegmentFileName(name, timeIndexFileSuffix)
		}
		if !ok {
			base, ok = parseSegmentFileName(name, txnIndexFileSuffix)
		}
		if ok && !logs[base] {
			l.logger.Info("removing index file without a log file", "file", name)
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("remove orphan %s: %w", name, err)
			}
		}
	}
	baseOffsets := make([]int64, 0, len(logs))
	for base := range logs {
		baseOffsets = append(baseOffsets, base)
	}
	slices.Sort(baseOffsets)
	return baseOffsets, nil
}

// loadSegments opens every segment, trusting checked indexes after a clean
// shutdown and recovering the rest (see Open).
func (l *Log) loadSegments(baseOffsets []int64, clean bool, markerEndOffset int64) error {
	intervalBytes := int64(l.config.IndexIntervalBytes)
	for i, base := range baseOffsets {
		s, indexesMissing, err := openSegment(l.dir, base, l.logger)
		if err != nil {
			return err
		}
		l.segments = append(l.segments, s)
		last := i == len(baseOffsets)-1
		nextBaseOffset := int64(-1)
		if !last {
			nextBaseOffset = baseOffsets[i+1]
		}
		reason := ""
		switch {
		case indexesMissing:
			reason = "index files missing"
		case !clean && last:
			reason = "no clean shutdown marker"
		case !clean && i == len(baseOffsets)-2:
			reason = "no clean shutdown marker; sealed by the last roll, whose fsync may not have finished"
		default:
			problem, err := s.loadIndexes(nextBaseOffset, intervalBytes)
			if err != nil {
				return err
			}
			if problem != "" {
				reason = "index check failed: " + problem
			} else if last && s.nextOffset != markerEndOffset {
				reason = fmt.Sprintf("clean shutdown marker says end offset %d, the segment ends at %d", markerEndOffset, s.nextOffset)
			}
		}
		if reason == "" {
			continue
		}
		l.logger.Warn("recovering segment", "file", s.logPath, "reason", reason)
		truncated, err := s.recover(intervalBytes)
		if err != nil {
			return err
		}
		if last {
			continue
		}
		// The segment sealed by the last roll ends where the next one
		// starts unless a power loss took its unsynced tail (the file is
		// then shorter, not torn): the later segments go too.
		sealedByLastRoll := !clean && i == len(baseOffsets)-2
		if truncated || s.nextOffset > nextBaseOffset || (sealedByLastRoll && s.nextOffset < nextBaseOffset) {
			l.logger.Warn("deleting the segments after a damaged segment so offsets stay dense",
				"file", s.logPath, "segment_end_offset", s.nextOffset, "deleted_segments", len(baseOffsets)-i-1)
			for _, later := range baseOffsets[i+1:] {
				if err := removeSegmentFiles(l.dir, later); err != nil {
					return err
				}
			}
			return atomicfile.SyncDir(l.dir)
		}
		if s.nextOffset < nextBaseOffset {
			l.logger.Warn("offset gap between segments", "file", s.logPath, "segment_end_offset", s.nextOffset, "next_base_offset", nextBaseOffset)
		}
	}
	return nil
}

// Dir returns the partition directory.
func (l *Log) Dir() string { return l.dir }

// StartOffset returns the log start offset, the first readable offset.
func (l *Log) StartOffset() int64 { return l.startOffset.Load() }

// EndOffset returns the log end offset, the offset the next appended record
// gets.
func (l *Log) EndOffset() int64 { return l.endOffset.Load() }

// Rolls counts the segments rolled since the log was opened: a caller
// that compares it before and after an Append knows whether the append
// started a new segment.
func (l *Log) Rolls() int64 { return l.rolls.Load() }

// Size returns the total size of the .log files in bytes.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return sizeOf(l.segments)
}

func sizeOf(segments []*segment) int64 {
	total := int64(0)
	for _, s := range segments {
		total += s.size.Load()
	}
	return total
}

// SegmentInfo describes one segment, for tiering and status pages.
type SegmentInfo struct {
	BaseOffset   int64
	EndOffset    int64 // offset after the segment's last batch (the next segment's base offset)
	Size         int64
	MaxTimestamp int64 // -1 when no batch has a timestamp
	// LargestTimestamp is what retention.ms compares with (Unix ms): the
	// MaxTimestamp, or the last modification when no batch has a timestamp
	// (Kafka's LogSegment.largestTimestamp).
	LargestTimestamp int64
	Active           bool // the segment appends go to; the others are sealed (the newest of them fsynced in the background: SyncedEnd reaches its end once done)
	LogPath          string
	OffsetIndexPath  string
	TimeIndexPath    string
}

// Segments describes the current segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	infos := make([]SegmentInfo, len(l.segments))
	for i, s := range l.segments {
		maxTimestamp, _ := s.timestampSummary()
		largest := s.largestTime().UnixMilli()
		end := l.endOffset.Load()
		if i+1 < len(l.segments) {
			end = l.segments[i+1].baseOffset
		}
		infos[i] = SegmentInfo{
			BaseOffset: s.baseOffset, EndOffset: end, Size: s.size.Load(), MaxTimestamp: maxTimestamp, LargestTimestamp: largest,
			Active: i == len(l.segments)-1, LogPath: s.logPath, OffsetIndexPath: s.offsetIndexPath, TimeIndexPath: s.timeIndexPath,
		}
	}
	return infos
}

// Append assigns offsets to the batches in records, which must be whole
// record batches v2 back to back as described by batches, stamping each
// batch's baseOffset field in place. It writes records to the active segment
// with one write, rolling first when the segment is full (size, age or
// index), updates the indexes, applies the flush policy and returns the
// first batch's base offset and the log end offset after the append.
//
// The bytes are in the file (page cache) when Append returns. When the flush
// policy's fsync fails, Append returns the error, the records may or may
// not be durable, and every later append fails with ErrLogFailed: an fsync
// failure cannot be retried safely; reopening the log recovers it. A roll
// does not wait for the fsync of the segment it seals (it runs in the
// background); it waits only for the previous roll's, and fails when that
// one failed, as do the appends after it (the failure fails the log).
//
// A write that fails (a full disk: ENOSPC, a failing one: EIO), even after
// writing part of the batch, leaves nothing behind: the file is truncated
// back to where the append started and the log end does not move, so the
// next append (once there is space) continues at the same offset. Only if
// that truncate fails too is the log failed.
func (l *Log) Append(records []byte, batches []AppendBatch) (baseOffset, endOffset int64, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return 0, 0, ErrClosed
	}
	if l.failure != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrLogFailed, l.failure)
	}
	offsets, err := checkAppend(records, batches)
	if err != nil {
		return 0, 0, err
	}
	if int64(len(records)) > l.config.SegmentBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, segment size %d", ErrAppendTooLarge, len(records), l.config.SegmentBytes)
	}
	now := l.config.Now()
	if reason := l.rollReasonLocked(int64(len(records)), offsets, now); reason != "" {
		if err := l.rollLocked(now, reason); err != nil {
			return 0, 0, err
		}
	}
	active := l.segments[len(l.segments)-1]
	baseOffset = l.endOffset.Load()
	next := baseOffset
	for _, batch := range batches {
		binary.BigEndian.PutUint64(records[batch.Position+batchBaseOffsetPosition:], uint64(next))
		next += int64(batch.LastOffsetDelta) + 1
	}
	position := active.size.Load()
	if _, err := l.writeLocked(active, records, position); err != nil {
		err = fmt.Errorf("segment %s: write %d bytes at %d: %w", active.name(), len(records), position, err)
		if truncateErr := active.logFile.Truncate(position); truncateErr != nil {
			l.fail(errors.Join(err, truncateErr))
		}
		return 0, 0, err
	}
	intervalBytes := int64(l.config.IndexIntervalBytes)
	// Publish under the segment lock so readers see the timestamp summary,
	// size and end offset of the same append.
	active.mu.Lock()
	next = baseOffset
	for _, batch := range batches {
		info := batchInfo{
			baseOffset:   next,
			lastOffset:   next + int64(batch.LastOffsetDelta),
			size:         int64(batch.Length),
			maxTimestamp: batch.MaxTimestamp,
			records:      batch.Records,
		}
		active.observeLocked(position+int64(batch.Position), info, intervalBytes)
		next = info.lastOffset + 1
	}
	active.size.Store(position + int64(len(records)))
	l.endOffset.Store(next)
	active.lastModified = now
	active.mu.Unlock()
	if active.rollTime.IsZero() {
		active.rollTime = now
	}
	l.writebackLocked(active)
	if err := active.persistIndexes(); err != nil {
		// The in-memory index is right and the entries stay pending; an
		// unclean open rebuilds the files.
		l.logger.Warn("index write failed; will retry", "err", err)
	}

	for _, batch := range batches {
		l.unflushedRecords += int64(batch.Records)
	}
	if l.firstUnflushedAt.IsZero() {
		l.firstUnflushedAt = now
	}
	if (l.config.FlushMessages > 0 && l.unflushedRecords >= l.config.FlushMessages) ||
		(l.config.FlushInterval > 0 && now.Sub(l.firstUnflushedAt) >= l.config.FlushInterval) {
		if err := l.flushLocked(); err != nil {
			// The batch is in the log but its append fails: nothing may
			// follow it (a retry would be appended twice).
			l.fail(err)
			return 0, 0, err
		}
	}
	return baseOffset, next, nil
}

// writebackBytes is how many bytes of the active segment's log file gather
// before Append starts writing them to disk (writebackLocked).
const writebackBytes = 1 << 20

// writebackLocked starts the kernel writing the active segment's appended
// bytes to disk once writebackBytes of them have gathered since the last
// time, without waiting for the writes. The fsync that seals the segment
// after a roll (rollLocked) then finds at most writebackBytes still to
// write instead of a whole segment. (When that fsync still ran on the
// append's path, with 8 MiB segments it took 6-13 ms on an idle disk and
// up to 400 ms while the disk was busy, a producer's whole request
// waiting on it: docs/performance.md, "iso2". It runs in the background
// now, but a roll still waits for the previous roll's fsync, and the
// writeback keeps dirty memory bounded.) The same idea as RocksDB's
// bytes_per_sync and PostgreSQL's backend_flush_after. It changes no
// guarantee: what is durable is still what an fsync covered, and a write
// error it meets is reported by the next fsync of the file. Called with
// appendMu held.
func (l *Log) writebackLocked(active *segment) {
	from, size := min(active.writtenBack, active.size.Load()), active.size.Load() // a truncation may have cut below the mark
	if size-from < writebackBytes {
		active.writtenBack = from
		return
	}
	l.writeback(active.logFile, from, size-from)
	active.writtenBack = size
}

// writeLocked writes an append's bytes at position of the active segment's
// log file, through Config.WriteFault in tests. Called with appendMu held.
func (l *Log) writeLocked(active *segment, records []byte, position int64) (int, error) {
	if fault := l.config.WriteFault; fault != nil {
		if written, err := fault(len(records)); err != nil {
			n, _ := active.logFile.WriteAt(records[:min(max(written, 0), len(records))], position)
			return n, err
		}
	}
	return active.logFile.WriteAt(records, position)
}

// checkAppend checks that batches describe records exactly and returns how
// many offsets the append takes.
func checkAppend(records []byte, batches []AppendBatch) (offsets int64, err error) {
	if len(batches) == 0 {
		return 0, fmt.Errorf("%w: no batches", ErrInvalidAppend)
	}
	position := int32(0)
	for i, batch := range batches {
		switch {
		case batch.Position != position:
			return 0, fmt.Errorf("%w: batch %d at %d, want %d", ErrInvalidAppend, i, batch.Position, position)
		case batch.Length < BatchHeaderSize || int64(batch.Position)+int64(batch.Length) > int64(len(records)):
			return 0, fmt.Errorf("%w: batch %d: length %d at %d does not fit in %d bytes", ErrInvalidAppend, i, batch.Length, batch.Position, len(records))
		}
		header := records[batch.Position:]
		if length := int32(binary.BigEndian.Uint32(header[batchLengthPosition:])); int64(length)+batchLogOverhead != int64(batch.Length) {
			return 0, fmt.Errorf("%w: batch %d: header length %d, descriptor length %d", ErrInvalidAppend, i, length, batch.Length)
		}
		if header[batchMagicPosition] != batchMagic {
			return 0, fmt.Errorf("%w: batch %d: magic %d", ErrInvalidAppend, i, header[batchMagicPosition])
		}
		if delta := int32(binary.BigEndian.Uint32(header[batchLastOffsetDeltaPosition:])); batch.LastOffsetDelta < 0 || delta != batch.LastOffsetDelta {
			return 0, fmt.Errorf("%w: batch %d: header last offset delta %d, descriptor %d", ErrInvalidAppend, i, delta, batch.LastOffsetDelta)
		}
		offsets += int64(batch.LastOffsetDelta) + 1
		position += batch.Length
	}
	if int(position) != len(records) {
		return 0, fmt.Errorf("%w: batches cover %d of %d bytes", ErrInvalidAppend, position, len(records))
	}
	if offsets > index.MaxRelativeOffset {
		return 0, fmt.Errorf("%w: %d offsets in one append", ErrInvalidAppend, offsets)
	}
	return offsets, nil
}

// rollReasonLocked says why the active segment must be rolled before an
// append of size bytes taking offsets offsets, or "" when it need not.
func (l *Log) rollReasonLocked(size, offsets int64, now time.Time) string {
	active := l.segments[len(l.segments)-1]
	activeSize := active.size.Load()
	if activeSize == 0 {
		return ""
	}
	active.mu.RLock()
	offsetEntries, timeEntries := len(active.offsetEntries), len(active.timeEntries)
	active.mu.RUnlock()
	switch {
	case activeSize+size > l.config.SegmentBytes:
		return "segment size"
	case !active.rollTime.IsZero() && now.Sub(active.rollTime) > l.config.SegmentAge:
		return "segment age"
	case offsetEntries >= int(l.config.MaxIndexBytes)/index.OffsetEntrySize || timeEntries >= int(l.config.MaxIndexBytes)/index.TimeEntrySize:
		return "index full"
	case l.endOffset.Load()+offsets-1-active.baseOffset > index.MaxRelativeOffset:
		return "relative offset overflow"
	}
	return ""
}

// rollLocked seals the active segment (final time index entry, index
// entries written) and starts a new one at the log end offset. The sealed
// segment is fsynced in the background (startRollSyncLocked): the
// writeback (writebackLocked) leaves at most writebackBytes unwritten, but
// the fsync still waits for the writes in flight and the disk's queue,
// and appendMu is held here. A roll first waits for the previous roll's fsync (normally long
// done), so at most one sealed segment is not yet durable and recovery
// verifies only the last two segments (Open). SyncedEnd reaches the
// sealed segment's end once its fsync is done.
func (l *Log) rollLocked(now time.Time, reason string) error {
	if err := l.awaitRollSyncLocked(); err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	active := l.segments[len(l.segments)-1]
	active.finalizeTimeIndex()
	if err := active.persistIndexes(); err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	end := l.endOffset.Load()
	next, err := createSegment(l.dir, end, l.logger, now)
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	if err := atomicfile.SyncDir(l.dir); err != nil {
		next.release()
		return fmt.Errorf("roll: %w", err)
	}
	l.mu.Lock()
	l.segments = append(slices.Clip(l.segments), next)
	l.mu.Unlock()
	l.rolls.Add(1)
	if active.dirty {
		l.startRollSyncLocked(active, end)
	} else if l.failure == nil {
		// Fsynced by the last flush, which set SyncedEnd to end.
		l.syncedEnd.Store(max(l.syncedEnd.Load(), end))
	}
	l.logger.Debug("rolled segment", "reason", reason, "sealed", active.logPath, "sealed_bytes", active.size.Load(), "new_base_offset", end)
	return nil
}

// startRollSyncLocked starts the background fsync of s, just sealed at
// end. The flush policy's counters stay: the sealed records are not
// durable before the fsync is done, and a flush (by count, time, Flush or
// Close) waits for it. Called with appendMu held, no roll sync pending.
func (l *Log) startRollSyncLocked(s *segment, end int64) {
	r := &rollSync{segment: s, end: end, done: make(chan struct{})}
	l.rollSync = r
	s.acquire() // retention, compaction or Close may drop the list's reference meanwhile
	fault := l.config.SyncFault
	go func() {
		var err error
		if fault != nil {
			if faultErr := fault(); faultErr != nil {
				err = fmt.Errorf("segment %s: %w %s: %w", s.name(), errFsync, filepath.Base(s.logPath), faultErr)
			}
		}
		if err == nil {
			err = s.syncFiles()
		}
		s.release()
		r.err = err
		close(r.done)
		l.appendMu.Lock()
		defer l.appendMu.Unlock()
		if !l.closed {
			l.settleRollSyncLocked(r) // a failure is kept in the log (fail)
		}
	}()
}

// awaitRollSyncLocked waits for the pending roll sync, if any, and
// publishes its outcome: an error when it failed (the log is failed then).
// Called with appendMu held; the background goroutine takes appendMu only
// after it closed done, so this does not deadlock.
func (l *Log) awaitRollSyncLocked() error {
	r := l.rollSync
	if r == nil {
		return nil
	}
	<-r.done
	return l.settleRollSyncLocked(r)
}

// settleRollSyncLocked publishes the outcome of the finished roll sync r
// once (later calls, or calls for a roll sync already settled, return
// nil): a failed fsync fails the log, as every failed fsync does; a
// successful one moves SyncedEnd up to the sealed segment's end (a
// Truncate waits for the roll sync first, so nothing below that end
// changed since the roll). Called with appendMu held.
func (l *Log) settleRollSyncLocked(r *rollSync) error {
	if l.rollSync != r {
		return nil
	}
	l.rollSync = nil
	if r.err != nil {
		l.fail(r.err)
		return r.err
	}
	// Sealed: nothing was written to it since the roll wrote its index
	// entries (Truncate waits for this fsync before cutting into it).
	r.segment.dirty = false
	if l.failure == nil { // a failed log's SyncedEnd no longer moves (retention may still roll it)
		l.syncedEnd.Store(max(l.syncedEnd.Load(), r.end))
	}
	return nil
}

// Flush fsyncs everything written.
func (l *Log) Flush() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.flushLocked()
}

// FlushIfDue flushes when FlushInterval is set and the oldest unflushed
// append is at least that old.
func (l *Log) FlushIfDue() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.config.FlushInterval <= 0 || l.firstUnflushedAt.IsZero() || l.config.Now().Sub(l.firstUnflushedAt) < l.config.FlushInterval {
		return nil
	}
	return l.flushLocked()
}

func (l *Log) flushLocked() error {
	if l.failure != nil {
		// Another fsync may well succeed now (the kernel reports a write
		// error once), but what the failed one lost is not made durable by
		// it: SyncedEnd stays.
		return fmt.Errorf("segment: flush: %w: %w", ErrLogFailed, l.failure)
	}
	if err := l.awaitRollSyncLocked(); err != nil {
		return fmt.Errorf("segment: flush: %w", err)
	}
	for _, s := range l.segments {
		if err := l.syncSegmentLocked(s); err != nil {
			return fmt.Errorf("segment: flush: %w", err)
		}
	}
	l.unflushedRecords, l.firstUnflushedAt = 0, time.Time{}
	l.syncedEnd.Store(max(l.syncedEnd.Load(), l.endOffset.Load()))
	return nil
}

// syncSegmentLocked fsyncs s (segment.sync), failing first as
// Config.SyncFault says. A failed fsync fails the log: the kernel may have
// dropped the dirty pages it could not write, and report the next fsync of
// the file as a success (PostgreSQL's "fsyncgate"), so nothing written
// before it can be known durable again until Open recovers the log. Called
// with appendMu held.
func (l *Log) syncSegmentLocked(s *segment) error {
	var err error
	if fault := l.config.SyncFault; fault != nil && s.dirty {
		if faultErr := fault(); faultErr != nil {
			err = fmt.Errorf("segment %s: %w %s: %w", s.name(), errFsync, filepath.Base(s.logPath), faultErr)
		}
	}
	if err == nil {
		err = s.sync()
	}
	if errors.Is(err, errFsync) {
		l.fail(err)
	}
	return err
}

// fail marks the log failed (the first failure is kept): appends, flushes
// and syncs return ErrLogFailed from then on. Called with appendMu held.
func (l *Log) fail(err error) {
	if l.failure == nil {
		l.failure = err
		l.failed.Store(true)
	}
}

// Failed returns why the log failed (an fsync that failed, a failed write
// that could not be undone), or nil: a failed log refuses appends, flushes
// and syncs with ErrLogFailed until it is reopened, which recovers it.
func (l *Log) Failed() error {
	if !l.failed.Load() {
		return nil
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.failure
}

// SyncedEnd returns the offset below which every record is known to be on
// disk: fsynced by Sync, Flush, the background fsync of a segment sealed
// by a roll or Close, or there at Open after a clean shutdown. It never
// exceeds EndOffset.
func (l *Log) SyncedEnd() int64 { return l.syncedEnd.Load() }

// Sync fsyncs what was appended so far without holding the append lock
// while the fsync runs: appends, reads and rolls go on meanwhile, and the
// next Sync covers them (group commit: one fsync for every append before
// it). It returns SyncedEnd after the fsync. Only the active segment's
// .log file is fsynced: segments before it were fsynced after their roll
// (Sync waits, outside the append lock, for the background fsync of the
// one sealed last when it is still running), and Open rebuilds the active
// segment's indexes after a crash.
//
// A failed fsync fails the log as Append's does (ErrLogFailed from then
// on). A Truncate while the fsync runs wins: the fsync then publishes
// nothing (Truncate set SyncedEnd itself).
func (l *Log) Sync() (int64, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	if l.closed {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	if l.failure != nil {
		l.appendMu.Unlock()
		return l.syncedEnd.Load(), fmt.Errorf("%w: %w", ErrLogFailed, l.failure)
	}
	end := l.endOffset.Load()
	if l.syncedEnd.Load() >= end {
		l.appendMu.Unlock()
		return end, nil
	}
	// Bytes below end are written (Append publishes the end after its
	// write), and earlier segments are synced: fsyncing the active file
	// makes everything below end durable. The reference keeps the file
	// open if a roll, truncation or retention replaces the segment.
	active := l.segments[len(l.segments)-1]
	active.acquire()
	truncations, fault, sealed := l.truncations, l.config.SyncFault, l.rollSync
	l.appendMu.Unlock()

	var err error
	if fault != nil {
		err = fault()
	}
	if err == nil {
		err = l.syncFile(active.logFile)
	}
	active.release()
	if sealed != nil {
		<-sealed.done
	}

	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err != nil {
		err = fmt.Errorf("segment %s: fsync: %w", active.name(), err)
		l.fail(err)
		return l.syncedEnd.Load(), err
	}
	if sealed != nil {
		// Settled here or, first, by its own goroutine: either way its
		// failure failed the log (unless the log was closed meanwhile).
		l.settleRollSyncLocked(sealed)
		if sealed.err != nil {
			return l.syncedEnd.Load(), fmt.Errorf("%w: %w", ErrLogFailed, sealed.err)
		}
	}
	if l.failure != nil {
		// The background fsync of the sealed segment failed (settled by
		// its goroutine), or an append failed meanwhile.
		return l.syncedEnd.Load(), fmt.Errorf("%w: %w", ErrLogFailed, l.failure)
	}
	if l.truncations == truncations && end > l.syncedEnd.Load() {
		l.syncedEnd.Store(end)
	}
	return l.syncedEnd.Load(), nil
}

// SetConfig applies a changed topic configuration (retention, segment size,
// flush policy); it takes effect with the next append or retention pass.
// The Logger given to Open stays in use.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("segment: set config: %w", err)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.config = cfg.withDefaults()
	return nil
}

// Close fsyncs everything (waiting for the background fsync of a segment
// sealed by a roll), writes the clean-shutdown marker once all of it is
// durable and closes the files (readers in flight finish first). Later
// calls return nil.
func (l *Log) Close() error {
	return l.close(true)
}

// close closes the files; keep (Close, not Delete) fsyncs everything
// first and writes the clean-shutdown marker. A log about to be deleted
// is not fsynced: its dirty segments may hold a whole active segment's
// data (flush.ms is off by default), which would be written out only to
// be deleted, while the broker's metadata reconcile that removes the
// partition waits; nor does it wait for the background fsync of a sealed
// segment (which holds its own reference on the files and publishes
// nothing once the log is closed).
func (l *Log) close(keep bool) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return nil
	}
	if !keep {
		l.rollSync = nil
	}
	var err error
	if keep {
		l.segments[len(l.segments)-1].finalizeTimeIndex()
		err = l.flushLocked()
		if err == nil && l.failure != nil {
			err = l.failure
		}
		if err == nil {
			err = writeOffsetCheckpoint(l.dir, cleanShutdownFileName, logEndOffsetKey, l.endOffset.Load())
		}
	}
	l.mu.Lock()
	segments := l.segments
	l.segments, l.closed = nil, true
	l.mu.Unlock()
	for _, s := range segments {
		s.release()
	}
	if err != nil {
		return fmt.Errorf("segment: close %s: %w", l.dir, err)
	}
	return nil
}

// Delete closes the log and removes its directory (topic deleted), so
// that a power loss at any point leaves the directory whole with its
// partition.metadata (which the broker removes at start once the topic is
// gone), or empty, or gone: never log files without the id that says whose
// they are (a directory the broker would refuse to reuse, or delete, for a
// topic re-created under the same name). Everything but partition.metadata
// goes first and is made durable, then partition.metadata and the
// directory, then the parent is fsynced so that the deletion holds.
func (l *Log) Delete() error {
	closeErr := l.close(false)
	if err := RemoveLogDirectory(l.dir); err != nil {
		return fmt.Errorf("segment: delete %s: %w", l.dir, errors.Join(closeErr, err))
	}
	return nil
}

// RemoveLogDirectory removes a partition directory as Delete does (see
// there), for a log that is not open: a power loss at any point leaves it
// whole with its partition.metadata, empty, or gone.
func RemoveLogDirectory(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if entry.Name() == partitionMetadataFileName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, entry.Name())); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}
