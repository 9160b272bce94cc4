package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/internal/fsperm"
)

// segment is one .log file with its .index and .timeindex.
//
// Concurrency: baseOffset, the paths and the files are immutable. size is
// published with atomic stores after the bytes below it are written. The
// fields under mu are read by readers and written by the holder of
// Log.appendMu. The writer fields at the end are touched only by the holder
// of Log.appendMu (or by Open before the Log is shared).
type segment struct {
	baseOffset      int64
	logPath         string
	offsetIndexPath string
	timeIndexPath   string
	logFile         *os.File
	offsetIndexFile *os.File
	timeIndexFile   *os.File
	logger          *slog.Logger

	size atomic.Int64 // readable bytes of the .log file
	// references counts the Log's segment list (one) plus in-flight readers;
	// the files are closed when it drops to zero.
	references atomic.Int64
	// indexSuspect is set when an index entry did not point at the batch it
	// names; lookups then scan from the start of the segment.
	indexSuspect atomic.Bool

	mu                   sync.RWMutex // guards offsetEntries, timeEntries, maxTimestamp, offsetOfMaxTimestamp, lastModified, aborted
	offsetEntries        []index.OffsetEntry
	aborted              []AbortedTxn // the .txnindex entries (txnindex.go), in marker order
	timeEntries          []index.TimeEntry
	maxTimestamp         int64     // largest batch max timestamp, -1 when none
	offsetOfMaxTimestamp int64     // last offset of the first batch with maxTimestamp, -1 when none
	lastModified         time.Time // of the last append; retention falls back to it when no batch has a timestamp

	// Writer state (Log.appendMu).
	nextOffset             int64     // offset after the last batch
	bytesSinceIndexEntry   int64     // log bytes since the last offset index entry
	persistedOffsetEntries int       // entries already in the .index file
	persistedTimeEntries   int       // entries already in the .timeindex file
	rollTime               time.Time // when the first batch was appended; zero when empty
	dirty                  bool      // written since the last fsync
	// writtenBack is where the .log file's last writeback (Log.writeback)
	// ended: the bytes below it were handed to the kernel to write.
	writtenBack int64
}

// maxCheckedIndexInterval bounds the bytes Open reads to check where the
// first offset index entry of a segment must be.
const maxCheckedIndexInterval = 64 << 10

// File names. Part of the format, do not change.
const (
	logFileSuffix         = ".log"
	offsetIndexFileSuffix = ".index"
	timeIndexFileSuffix   = ".timeindex"
	baseOffsetDigits      = 20
)

func segmentFileName(baseOffset int64, suffix string) string {
	return fmt.Sprintf("%0*d%s", baseOffsetDigits, baseOffset, suffix)
}

// parseSegmentFileName returns the base offset of a segment file name with
// the given suffix.
func parseSegmentFileName(name, suffix string) (int64, bool) {
	if len(name) != baseOffsetDigits+len(suffix) || name[baseOffsetDigits:] != suffix {
		return 0, false
	}
	for _, c := range name[:baseOffsetDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseInt(name[:baseOffsetDigits], 10, 64)
	return base, err == nil
}

func newSegment(dir string, baseOffset int64, logger *slog.Logger) *segment {
	s := &segment{
		baseOffset:           baseOffset,
		logPath:              filepath.Join(dir, segmentFileName(baseOffset, logFileSuffix)),
		offsetIndexPath:      filepath.Join(dir, segmentFileName(baseOffset, offsetIndexFileSuffix)),
		timeIndexPath:        filepath.Join(dir, segmentFileName(baseOffset, timeIndexFileSuffix)),
		logger:               logger,
		maxTimestamp:         -1,
		offsetOfMaxTimestamp: -1,
		nextOffset:           baseOffset,
	}
	s.references.Store(1)
	return s
}

// createSegment creates empty files for a new segment, replacing any stale
// files of that name (they could only hold bytes above the log end).
func createSegment(dir string, baseOffset int64, logger *slog.Logger, now time.Time) (*segment, error) {
	s := newSegment(dir, baseOffset, logger)
	s.lastModified = now
	var err error
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if s.logFile, err = os.OpenFile(s.logPath, flags, fsperm.File); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if s.offsetIndexFile, err = os.OpenFile(s.offsetIndexPath, flags, fsperm.File); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if s.timeIndexFile, err = os.OpenFile(s.timeIndexPath, flags, fsperm.File); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := os.Remove(s.txnIndexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.closeFiles()
		return nil, fmt.Errorf("create segment: remove a stale aborted transaction index: %w", err)
	}
	return s, nil
}

// openSegment opens the files of an existing segment, creating missing index
// files, and reports whether any index file was missing.
func openSegment(dir string, baseOffset int64, logger *slog.Logger) (*segment, bool, error) {
	s := newSegment(dir, baseOffset, logger)
	var err error
	if s.logFile, err = os.OpenFile(s.logPath, os.O_RDWR, 0); err != nil {
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	stat, err := s.logFile.Stat()
	if err != nil {
		s.closeFiles()
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	s.size.Store(stat.Size())
	s.lastModified = stat.ModTime()
	missing := false
	open := func(path string) (*os.File, error) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			missing = true
		}
		return os.OpenFile(path, os.O_RDWR|os.O_CREATE, fsperm.File)
	}
	if s.offsetIndexFile, err = open(s.offsetIndexPath); err != nil {
		s.closeFiles()
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	if s.timeIndexFile, err = open(s.timeIndexPath); err != nil {
		s.closeFiles()
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	if err := s.loadTxnIndex(); err != nil {
		s.closeFiles()
		return nil, false, fmt.Errorf("open segment: %w", err)
	}
	return s, missing, nil
}

func (s *segment) closeFiles() error {
	var errs []error
	for _, file := range []*os.File{s.logFile, s.offsetIndexFile, s.timeIndexFile} {
		if file != nil {
			if err := file.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeSegmentFiles deletes the files of the segment with this base offset;
// open descriptors keep working until closed.
func removeSegmentFiles(dir string, baseOffset int64) error {
	var errs []error
	// The .log goes first: without it the index files are orphans that Open
	// removes.
	for _, suffix := range []string{logFileSuffix, offsetIndexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
		if err := os.Remove(filepath.Join(dir, segmentFileName(baseOffset, suffix))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// acquire adds a reference; only valid while the caller knows the count is
// above zero (the segment is in the Log's list and Log.mu is held).
func (s *segment) acquire() { s.references.Add(1) }

// release drops a reference and closes the files with the last one.
func (s *segment) release() {
	if s.references.Add(-1) == 0 {
		if err := s.closeFiles(); err != nil {
			s.logger.Warn("closing segment files", "file", s.logPath, "err", err)
		}
	}
}

func (s *segment) name() string { return segmentFileName(s.baseOffset, "") }

// relative converts an offset of this segment to an index relative offset.
func (s *segment) relative(offset int64) int32 { return int32(offset - s.baseOffset) }

// lastTimeIndexTimestampLocked is the timestamp of the last time index entry,
// -1 when there is none (Kafka's empty time index). Caller holds mu.
func (s *segment) lastTimeIndexTimestampLocked() int64 {
	if n := len(s.timeEntries); n > 0 {
		return s.timeEntries[n-1].Timestamp
	}
	return -1
}

// observeLocked accounts for the batch at position: the timestamp summary
// and, every intervalBytes, an offset index entry and (when the largest
// timestamp grew) a time index entry, as Kafka's LogSegment.append does.
// Caller holds mu and owns the writer state.
func (s *segment) observeLocked(position int64, info batchInfo, intervalBytes int64) {
	if info.maxTimestamp > s.maxTimestamp {
		s.maxTimestamp = info.maxTimestamp
		s.offsetOfMaxTimestamp = info.lastOffset
	}
	if s.bytesSinceIndexEntry > intervalBytes {
		s.offsetEntries = append(s.offsetEntries, index.OffsetEntry{RelativeOffset: s.relative(info.lastOffset), Position: int32(position)})
		if s.maxTimestamp > s.lastTimeIndexTimestampLocked() {
			s.timeEntries = append(s.timeEntries, index.TimeEntry{Timestamp: s.maxTimestamp, RelativeOffset: s.relative(s.offsetOfMaxTimestamp)})
		}
		s.bytesSinceIndexEntry = 0
	}
	s.bytesSinceIndexEntry += info.size
	s.nextOffset = info.lastOffset + 1
	s.dirty = true
}

// finalizeTimeIndex appends the segment's largest timestamp to the time
// index when the last entry does not hold it yet, so that the last entry of
// a sealed segment is its largest timestamp (Kafka does this on roll and
// close).
func (s *segment) finalizeTimeIndex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxTimestamp > s.lastTimeIndexTimestampLocked() {
		s.timeEntries = append(s.timeEntries, index.TimeEntry{Timestamp: s.maxTimestamp, RelativeOffset: s.relative(s.offsetOfMaxTimestamp)})
		s.dirty = true
	}
}

// persistIndexes writes the index entries not yet in the files, with one
// write per file.
func (s *segment) persistIndexes() error {
	s.mu.RLock()
	offsetEntries := s.offsetEntries[s.persistedOffsetEntries:]
	timeEntries := s.timeEntries[s.persistedTimeEntries:]
	s.mu.RUnlock()
	if len(offsetEntries) > 0 {
		position := int64(s.persistedOffsetEntries) * index.OffsetEntrySize
		if _, err := s.offsetIndexFile.WriteAt(index.EncodeOffsetEntries(offsetEntries), position); err != nil {
			return fmt.Errorf("segment %s: write offset index: %w", s.name(), err)
		}
		s.persistedOffsetEntries += len(offsetEntries)
	}
	if len(timeEntries) > 0 {
		position := int64(s.persistedTimeEntries) * index.TimeEntrySize
		if _, err := s.timeIndexFile.WriteAt(index.EncodeTimeEntries(timeEntries), position); err != nil {
			return fmt.Errorf("segment %s: write time index: %w", s.name(), err)
		}
		s.persistedTimeEntries += len(timeEntries)
	}
	return nil
}

// rewriteIndexes replaces the index files with the in-memory entries.
func (s *segment) rewriteIndexes() error {
	if err := s.offsetIndexFile.Truncate(0); err != nil {
		return fmt.Errorf("segment %s: truncate offset index: %w", s.name(), err)
	}
	if err := s.timeIndexFile.Truncate(0); err != nil {
		return fmt.Errorf("segment %s: truncate time index: %w", s.name(), err)
	}
	s.persistedOffsetEntries, s.persistedTimeEntries = 0, 0
	s.dirty = true
	return s.persistIndexes()
}

// errFsync marks an fsync that failed (as opposed to the index writes sync
// does first): it fails the log (Log.syncSegmentLocked).
var errFsync = errors.New("fsync")

// sync writes pending index entries and fsyncs the three files when the
// segment changed since its last sync.
func (s *segment) sync() error {
	if err := s.persistIndexes(); err != nil {
		return err
	}
	if !s.dirty {
		return nil
	}
	if err := s.syncFiles(); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// syncFiles fsyncs the .log and both index files, touching no writer state:
// the background fsync of a sealed segment (Log.rollLocked) runs it
// without Log.appendMu.
func (s *segment) syncFiles() error {
	for _, file := range []*os.File{s.logFile, s.offsetIndexFile, s.timeIndexFile} {
		if err := file.Sync(); err != nil {
			return fmt.Errorf("segment %s: %w %s: %w", s.name(), errFsync, filepath.Base(file.Name()), err)
		}
	}
	return nil
}

// timestampSummary returns the largest timestamp and the last offset of the
// first batch holding it.
func (s *segment) timestampSummary() (maxTimestamp, offsetOfMaxTimestamp int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxTimestamp, s.offsetOfMaxTimestamp
}

// largestTime is the time retention.ms compares with: the largest batch
// timestamp, or the last modification when no batch has one.
func (s *segment) largestTime() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.maxTimestamp >= 0 {
		return time.UnixMilli(s.maxTimestamp)
	}
	return s.lastModified
}

// initRollTime sets the time segment.ms counts from for a segment that was
// not filled by this process: the first batch's timestamp when it is
// plausible, else now.
func (s *segment) initRollTime(now time.Time) {
	s.rollTime = time.Time{}
	size := s.size.Load()
	if size == 0 {
		return
	}
	s.rollTime = now
	window := newFileWindow(s.logFile, s.logPath, size, BatchHeaderSize)
	if info, _, err := window.batchAt(0); err == nil && info.maxTimestamp >= 0 && info.maxTimestamp <= now.UnixMilli() {
		s.rollTime = time.UnixMilli(info.maxTimestamp)
	}
}

func (s *segment) window(limit int64, size int) *fileWindow {
	return newFileWindow(s.logFile, s.logPath, limit, size)
}

// seek finds the first batch below the window's limit whose last offset is
// at least target, starting from the offset index. found is false when the
// segment has no such batch.
func (s *segment) seek(window *fileWindow, target int64) (position int64, info batchInfo, found bool, err error) {
	if !s.indexSuspect.Load() {
		s.mu.RLock()
		entry, indexed := index.SearchOffsetEntries(s.offsetEntries, target-s.baseOffset)
		s.mu.RUnlock()
		if indexed && int64(entry.Position) < window.limit {
			position = int64(entry.Position)
			info, _, err = window.batchAt(position)
			if err != nil && !IsCorrupt(err) {
				return 0, batchInfo{}, false, err
			}
			if err != nil || info.lastOffset != s.baseOffset+int64(entry.RelativeOffset) {
				if s.indexSuspect.CompareAndSwap(false, true) {
					s.logger.Warn("offset index entry does not point at its batch; scanning the segment from its start until the index is rebuilt at the next open",
						"file", s.offsetIndexPath, "relative_offset", entry.RelativeOffset, "position", entry.Position)
				}
				position = 0
			}
		}
	}
	for position < window.limit {
		info, _, err = window.batchAt(position)
		if err != nil {
			return 0, batchInfo{}, false, err
		}
		if info.lastOffset >= target {
			return position, info, true, nil
		}
		position += info.size
	}
	return position, batchInfo{}, false, nil
}

// seekReleased is seek in a window of seekWindowSize below limit, its
// buffer given back once it has found the batch.
func (s *segment) seekReleased(limit, target int64) (position int64, info batchInfo, found bool, err error) {
	window := s.window(limit, seekWindowSize)
	defer window.release()
	return s.seek(window, target)
}

// positionBound returns a position at or before which every batch whose
// last offset is at least limit starts (size when the index knows none), so
// a read up to limit need not fetch bytes past it.
func (s *segment) positionBound(limit, size int64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.offsetEntries), func(i int) bool {
		return s.baseOffset+int64(s.offsetEntries[i].RelativeOffset) >= limit
	})
	if i == len(s.offsetEntries) || s.indexSuspect.Load() {
		return size
	}
	return min(size, int64(s.offsetEntries[i].Position))
}

// readAt returns a copy of length bytes at position.
func (s *segment) readAt(position, length int64) ([]byte, error) {
	return s.readInto(nil, position, length)
}

// readInto is readAt into a buffer from bufs (a new one when bufs is nil);
// on an error the buffer is already back.
func (s *segment) readInto(bufs Buffers, position, length int64) ([]byte, error) {
	out := getBuffer(bufs, int(length))
	if err := readFullAt(s.logFile, out, position); err != nil {
		putBuffer(bufs, out)
		return nil, fmt.Errorf("segment %s: read %d bytes at %d: %w", s.name(), length, position, err)
	}
	return out, nil
}

// read returns whole batches starting with the first one whose last offset
// is at least offset, none whose last offset is at least limit, and at most
// budget bytes unless minOneBatch (then the first batch comes whole
// whatever its size). next is the offset after the last returned batch
// (offset when none). exhausted reports that the segment holds nothing more
// below limit, so a read may go on with the next segment.
// The bytes are read into a buffer from bufs (nil: a new one).
func (s *segment) read(bufs Buffers, offset, limit, budget int64, minOneBatch bool) (data []byte, next int64, exhausted bool, err error) {
	size := s.size.Load()
	start, first, found, err := s.seekReleased(size, offset)
	switch {
	case err != nil:
		return nil, offset, false, err
	case !found:
		return nil, offset, true, nil
	case first.lastOffset >= limit:
		return nil, offset, false, nil
	case first.size > budget:
		if !minOneBatch {
			return nil, offset, false, nil
		}
		data, err := s.readInto(bufs, start, first.size)
		return data, first.lastOffset + 1, false, err
	}
	data, err = s.readInto(bufs, start, min(budget, max(s.positionBound(limit, size)-start, first.size)))
	if err != nil {
		return nil, offset, false, err
	}
	end, next, reachedLimit := int64(0), offset, false
	for int64(len(data))-end >= BatchHeaderSize {
		info, reason := decodeBatchHeader(data[end:])
		if reason != "" {
			putBuffer(bufs, data)
			return nil, offset, false, corruptf(s.logPath, start+end, "%s", reason)
		}
		if end+info.size > int64(len(data)) {
			break
		}
		if info.lastOffset >= limit {
			reachedLimit = true
			break
		}
		end, next = end+info.size, info.lastOffset+1
	}
	if bufs != nil && end > 0 && 2*end < int64(len(data)) {
		// Most of the read goes (the next batch is over the budget or
		// the limit): the batches kept move to a buffer of their size,
		// as the caller holds it until its response is written.
		kept := getBuffer(bufs, int(end))
		copy(kept, data)
		putBuffer(bufs, data)
		data = kept
	}
	return data[:end], next, !reachedLimit && start+end == size, nil
}

// walk calls fn with the position, decoded header and raw header of each
// batch from the first one whose last offset is at least from up to limit
// bytes, reading ahead windowSize bytes; fn returns false to stop. The header slice is valid during the call.
func (s *segment) walk(from, limit int64, windowSize int, fn func(position int64, info batchInfo, header []byte) (bool, error)) error {
	window := s.window(limit, windowSize)
	defer window.release()
	position, _, found, err := s.seek(window, from)
	if err != nil || !found {
		return err
	}
	for position < limit {
		info, header, err := window.batchAt(position)
		if err != nil {
			return err
		}
		more, err := fn(position, info, header)
		if err != nil || !more {
			return err
		}
		position += info.size
	}
	return nil
}

// recover verifies every batch (framing, CRC-32C, contiguous offsets
// starting at the base offset), truncates the .log at the first batch that
// fails, and rebuilds both indexes from what it read. It reports whether it
// dropped bytes.
func (s *segment) recover(intervalBytes int64) (truncated bool, err error) {
	fileSize := s.size.Load()
	window := s.window(fileSize, scanWindowSize)
	s.mu.Lock()
	s.offsetEntries, s.timeEntries = nil, nil
	s.maxTimestamp, s.offsetOfMaxTimestamp = -1, -1
	s.bytesSinceIndexEntry, s.nextOffset = 0, s.baseOffset
	position, problem := int64(0), ""
	for position < fileSize {
		var info batchInfo
		info, problem, err = verifyBatchAt(window, position, s.nextOffset)
		if err != nil || problem != "" {
			break
		}
		s.observeLocked(position, info, intervalBytes)
		position += info.size
	}
	s.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("segment %s: recover: %w", s.name(), err)
	}
	if position < fileSize {
		s.logger.Warn("truncating log at a bad batch",
			"file", s.logPath, "position", position, "dropped_bytes", fileSize-position, "reason", problem)
		if err := s.logFile.Truncate(position); err != nil {
			return false, fmt.Errorf("segment %s: truncate log at %d: %w", s.name(), position, err)
		}
		truncated = true
	}
	s.size.Store(position)
	s.dirty = true
	s.finalizeTimeIndex()
	s.indexSuspect.Store(false)
	return truncated, s.rewriteIndexes()
}

// verifyBatchAt checks the batch at position completely: framing, that it
// fits below the limit, its base offset and its CRC-32C. A non-empty problem
// says why the batch is bad; err is an I/O error.
func verifyBatchAt(window *fileWindow, position, expectedBaseOffset int64) (info batchInfo, problem string, err error) {
	remaining := window.limit - position
	if remaining < BatchHeaderSize {
		return batchInfo{}, fmt.Sprintf("torn batch header: %d bytes left, a header needs %d", remaining, BatchHeaderSize), nil
	}
	header, err := window.bytes(position, BatchHeaderSize)
	if err != nil {
		return batchInfo{}, "", err
	}
	info, problem = decodeBatchHeader(header)
	switch {
	case problem != "":
		return batchInfo{}, problem, nil
	case info.size > remaining:
		return batchInfo{}, fmt.Sprintf("torn batch: %d bytes long, %d bytes left", info.size, remaining), nil
	case info.baseOffset != expectedBaseOffset:
		return batchInfo{}, fmt.Sprintf("base offset %d, want %d", info.baseOffset, expectedBaseOffset), nil
	case info.lastOffset-expectedBaseOffset > index.MaxRelativeOffset:
		return batchInfo{}, fmt.Sprintf("last offset %d too far from segment offsets", info.lastOffset), nil
	}
	batch, err := window.bytes(position, info.size)
	if err != nil {
		return batchInfo{}, "", err
	}
	if problem := checkBatchCRC(batch); problem != "" {
		return batchInfo{}, problem, nil
	}
	return info, "", nil
}

// loadIndexes reads and checks the index files of a segment from a clean
// shutdown. nextBaseOffset is the base offset of the following segment, or
// -1 for the last segment, whose end it finds by walking the batches after
// its last index entry. A non-empty reason says the segment needs recovery.
func (s *segment) loadIndexes(nextBaseOffset, intervalBytes int64) (reason string, err error) {
	size := s.size.Load()
	last := nextBaseOffset < 0
	maxRelative := int64(index.MaxRelativeOffset)
	if !last {
		maxRelative = nextBaseOffset - 1 - s.baseOffset
	}
	offsetData, err := os.ReadFile(s.offsetIndexPath)
	if err != nil {
		return "", fmt.Errorf("segment %s: read offset index: %w", s.name(), err)
	}
	offsetEntries, err := index.DecodeOffsetEntries(offsetData, size, maxRelative)
	if err != nil {
		return "offset index: " + err.Error(), nil
	}
	window := s.window(size, seekWindowSize)
	defer window.release()
	// Timestamps the time index must reach: those of the batches read here.
	knownTimestamp := int64(-1)
	if size > 0 {
		first, _, err := window.batchAt(0)
		if err != nil {
			if IsCorrupt(err) {
				return "first batch: " + err.Error(), nil
			}
			return "", err
		}
		if first.baseOffset != s.baseOffset {
			return fmt.Sprintf("first batch has base offset %d", first.baseOffset), nil
		}
		knownTimestamp = first.maxTimestamp
		// The first entry is for the first batch that starts more than
		// intervalBytes into the segment (bounded walk: skipped for huge
		// intervals).
		if intervalBytes <= maxCheckedIndexInterval {
			position := int64(0)
			for position < size && position <= intervalBytes {
				info, _, err := window.batchAt(position)
				if err != nil {
					if IsCorrupt(err) {
						return "batch before the first index entry: " + err.Error(), nil
					}
					return "", err
				}
				position += info.size
			}
			switch {
			case len(offsetEntries) == 0 && position < size:
				return fmt.Sprintf("offset index: empty, want an entry for position %d", position), nil
			case len(offsetEntries) > 0 && int64(offsetEntries[0].Position) != position:
				return fmt.Sprintf("offset index: first entry at position %d, want %d", offsetEntries[0].Position, position), nil
			}
		}
	}
	lastEntryPosition := int64(0)
	if n := len(offsetEntries); n > 0 {
		entry := offsetEntries[n-1]
		lastEntryPosition = int64(entry.Position)
		info, _, err := window.batchAt(lastEntryPosition)
		if err != nil {
			if IsCorrupt(err) {
				return "offset index: last entry: " + err.Error(), nil
			}
			return "", err
		}
		if info.lastOffset != s.baseOffset+int64(entry.RelativeOffset) {
			return fmt.Sprintf("offset index: last entry names offset %d, its batch ends at %d", s.baseOffset+int64(entry.RelativeOffset), info.lastOffset), nil
		}
		knownTimestamp = max(knownTimestamp, info.maxTimestamp)
	}
	timeData, err := os.ReadFile(s.timeIndexPath)
	if err != nil {
		return "", fmt.Errorf("segment %s: read time index: %w", s.name(), err)
	}
	timeEntries, err := index.DecodeTimeEntries(timeData, maxRelative)
	if err != nil {
		return "time index: " + err.Error(), nil
	}

	maxTimestamp, offsetOfMaxTimestamp := int64(-1), int64(-1)
	if n := len(timeEntries); n > 0 {
		maxTimestamp, offsetOfMaxTimestamp = timeEntries[n-1].Timestamp, s.baseOffset+int64(timeEntries[n-1].RelativeOffset)
	}
	// The time index covers every batch up to the last offset index entry's.
	if maxTimestamp < knownTimestamp {
		return fmt.Sprintf("time index: largest timestamp %d is below batch timestamp %d", maxTimestamp, knownTimestamp), nil
	}
	nextOffset, bytesSinceIndexEntry := nextBaseOffset, int64(0)
	if last {
		// Walk the tail after the last index entry to find the end; the
		// time index's last entry covers everything before it.
		nextOffset, bytesSinceIndexEntry = s.baseOffset, size-lastEntryPosition
		for position := lastEntryPosition; position < size; {
			info, _, err := window.batchAt(position)
			if err != nil {
				if IsCorrupt(err) {
					return "tail: " + err.Error(), nil
				}
				return "", err
			}
			if (position > lastEntryPosition || position == 0) && info.baseOffset != nextOffset {
				return fmt.Sprintf("tail: batch at %d has base offset %d, want %d", position, info.baseOffset, nextOffset), nil
			}
			if info.maxTimestamp > maxTimestamp {
				maxTimestamp, offsetOfMaxTimestamp = info.maxTimestamp, info.lastOffset
			}
			nextOffset = info.lastOffset + 1
			position += info.size
		}
		if n := len(timeEntries); n > 0 && s.baseOffset+int64(timeEntries[n-1].RelativeOffset) >= nextOffset {
			return fmt.Sprintf("time index: last entry names offset %d beyond the end %d", s.baseOffset+int64(timeEntries[n-1].RelativeOffset), nextOffset), nil
		}
	}
	s.mu.Lock()
	s.offsetEntries, s.timeEntries = offsetEntries, timeEntries
	s.maxTimestamp, s.offsetOfMaxTimestamp = maxTimestamp, offsetOfMaxTimestamp
	s.mu.Unlock()
	s.persistedOffsetEntries, s.persistedTimeEntries = len(offsetEntries), len(timeEntries)
	s.nextOffset, s.bytesSinceIndexEntry = nextOffset, bytesSinceIndexEntry

	// The last time index entry is the segment's largest timestamp: check
	// that its batch has it, since retention and MaxTimestampBatch rely on it.
	if n := len(timeEntries); n > 0 {
		entry := timeEntries[n-1]
		_, info, found, err := s.seek(window, s.baseOffset+int64(entry.RelativeOffset))
		if err != nil {
			if IsCorrupt(err) {
				return "time index: last entry: " + err.Error(), nil
			}
			return "", err
		}
		if !found || info.maxTimestamp != entry.Timestamp {
			return fmt.Sprintf("time index: last entry says timestamp %d at offset %d, the batch has %d",
				entry.Timestamp, s.baseOffset+int64(entry.RelativeOffset), info.maxTimestamp), nil
		}
	}
	return "", nil
}

// findCut returns where truncating the segment at offset cuts it: the
// position and base offset of the first batch whose last offset is at least
// offset. found is false when nothing needs cutting.
func (s *segment) findCut(offset int64) (position, newNextOffset int64, found bool, err error) {
	position, info, found, err := s.seekReleased(s.size.Load(), offset)
	return position, info.baseOffset, found, err
}

// cut truncates the segment at position, where the batch with base offset
// newNextOffset starts, trims the indexes, recomputes the timestamp summary
// and fsyncs. Readers must be excluded (Log.rewriteMu).
func (s *segment) cut(position, newNextOffset int64) error {
	if err := s.logFile.Truncate(position); err != nil {
		return fmt.Errorf("segment %s: truncate log at %d: %w", s.name(), position, err)
	}
	s.mu.Lock()
	keptOffsetEntries := len(s.offsetEntries)
	for keptOffsetEntries > 0 && int64(s.offsetEntries[keptOffsetEntries-1].Position) >= position {
		keptOffsetEntries--
	}
	keptTimeEntries := len(s.timeEntries)
	for keptTimeEntries > 0 && s.baseOffset+int64(s.timeEntries[keptTimeEntries-1].RelativeOffset) >= newNextOffset {
		keptTimeEntries--
	}
	s.offsetEntries = s.offsetEntries[:keptOffsetEntries:keptOffsetEntries]
	s.timeEntries = s.timeEntries[:keptTimeEntries:keptTimeEntries]
	// Every batch up to the last kept offset index entry is covered by a kept
	// time index entry; the batches after it are read again.
	s.maxTimestamp, s.offsetOfMaxTimestamp = -1, -1
	if keptTimeEntries > 0 {
		entry := s.timeEntries[keptTimeEntries-1]
		s.maxTimestamp, s.offsetOfMaxTimestamp = entry.Timestamp, s.baseOffset+int64(entry.RelativeOffset)
	}
	lastEntryPosition := int64(0)
	if keptOffsetEntries > 0 {
		lastEntryPosition = int64(s.offsetEntries[keptOffsetEntries-1].Position)
	}
	s.mu.Unlock()

	window := s.window(position, scanWindowSize)
	maxTimestamp, offsetOfMaxTimestamp := s.timestampSummary()
	for at := lastEntryPosition; at < position; {
		info, _, err := window.batchAt(at)
		if err != nil {
			return fmt.Errorf("segment %s: truncate: %w", s.name(), err)
		}
		if info.maxTimestamp > maxTimestamp {
			maxTimestamp, offsetOfMaxTimestamp = info.maxTimestamp, info.lastOffset
		}
		at += info.size
	}
	s.mu.Lock()
	s.maxTimestamp, s.offsetOfMaxTimestamp = maxTimestamp, offsetOfMaxTimestamp
	s.mu.Unlock()

	s.persistedOffsetEntries = min(s.persistedOffsetEntries, keptOffsetEntries)
	s.persistedTimeEntries = min(s.persistedTimeEntries, keptTimeEntries)
	if err := s.offsetIndexFile.Truncate(int64(s.persistedOffsetEntries) * index.OffsetEntrySize); err != nil {
		return fmt.Errorf("segment %s: truncate offset index: %w", s.name(), err)
	}
	if err := s.timeIndexFile.Truncate(int64(s.persistedTimeEntries) * index.TimeEntrySize); err != nil {
		return fmt.Errorf("segment %s: truncate time index: %w", s.name(), err)
	}
	s.size.Store(position)
	s.nextOffset = newNextOffset
	s.bytesSinceIndexEntry = position - lastEntryPosition
	s.dirty = true
	return s.sync()
}
