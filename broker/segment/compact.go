package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// Compaction file names. Part of the format, do not change.
const (
	cleanerOffsetFileName = "cleaner-offset-checkpoint"
	cleanerOffsetKey      = "cleaner_offset"
	cleanedFileSuffix     = ".cleaned"
	swapFileSuffix        = ".swap"
)

// CompactOptions are the cleanup.policy=compact settings of one pass.
type CompactOptions struct {
	// MinCompactionLag is min.compaction.lag.ms: a sealed segment is
	// cleanable only when its largest batch timestamp (or, without
	// timestamps, its last modification) is at least this old.
	MinCompactionLag time.Duration
	// DeleteRetention is delete.retention.ms: a tombstone (null value) that
	// is the latest record of its key is dropped this long after the first
	// pass that cleaned its batch, and a transaction marker this long after
	// a pass first found no batch of its transaction left: that pass
	// stamps the batch's delete horizon (now + DeleteRetention), as
	// Kafka's cleaner does (KIP-534).
	DeleteRetention time.Duration
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: the pass does
	// nothing unless the bytes of cleanable segments not yet compacted are
	// at least this share of all cleanable bytes.
	MinCleanableDirtyRatio float64
	// Force ignores MinCleanableDirtyRatio.
	Force bool
	// StableEnd, when above 0, bounds the pass: only segments ending at or
	// below it are cleaned, and records at or above it neither count as a
	// key's latest nor are removed. The partition passes its last stable
	// offset, so an open transaction's records (which may yet be aborted)
	// never supersede anything, and nothing above the high watermark is
	// cleaned, as in Kafka.
	StableEnd int64
	// Producers maps each producer the partition's producer state knows
	// to its last entry in the log. That entry is kept, as Kafka's
	// cleaner keeps it (isBatchLastRecordOfProducer), so that producer
	// state rebuilt from the log (after a truncation, a restart, on a
	// follower) still knows the producer, its epoch, and its last
	// sequence (a retry of its last batch is answered as a duplicate
	// instead of appended again).
	Producers map[int64]ProducerLast
}

// ProducerLast is a producer's last entry in the log: its last data batch,
// ending at LastOffset, kept emptied when it loses every record (an
// aborted one too: Kafka's RETAIN_EMPTY), its producer id, epoch and
// sequences kept; or, with LastOffset -1 (no data batch at its epoch: a
// Transactions V2 marker bumped it), its marker at Epoch, kept whole.
type ProducerLast struct {
	LastOffset int64
	Epoch      int16
}

// CompactStats reports what a Compact pass did.
type CompactStats struct {
	Skipped            bool    // nothing cleanable, or the dirty ratio was below the minimum
	DirtyRatio         float64 // dirty bytes / cleanable bytes, before the pass
	CleanableEnd       int64   // the pass considered offsets below this
	SegmentsRewritten  int     // old segments replaced by cleaned ones
	SegmentsMerged     int     // of those, segments merged into an earlier one
	BytesBefore        int64   // of the rewritten segments
	BytesAfter         int64
	RecordsRemoved     int64 // superseded records, expired tombstones and aborted records
	TombstonesRemoved  int64 // expired tombstones among RecordsRemoved
	AbortedRemoved     int64 // records of aborted transactions among RecordsRemoved
	MarkersRemoved     int64 // transaction markers (control batches) removed
	MarkersStamped     int64 // markers given their delete horizon (removable from then on plus DeleteRetention)
	BatchesStamped     int64 // data batches holding tombstones given their delete horizon (likewise)
	BatchesRemoved     int64 // batches left without a record
	BatchesRecompacted int64 // batches rewritten with fewer records
}

// compactHook, when set (tests), is called after each step of a segment
// swap with the step's name; it simulates a crash by copying the directory.
var compactHook atomic.Pointer[func(step string)]

func runCompactHook(step string) {
	if hook := compactHook.Load(); hook != nil {
		(*hook)(step)
	}
}

// Compact runs one log-cleaner pass over the sealed segments (see the
// Compaction section of the package documentation). Appends and reads go on
// while it reads and writes the cleaned copies; only the final renames hold
// the append lock.
func (l *Log) Compact(opts CompactOptions) (CompactStats, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	var stats CompactStats

	// Snapshot.
	l.appendMu.Lock()
	if l.closed {
		l.appendMu.Unlock()
		return stats, ErrClosed
	}
	now := l.config.Now()
	intervalBytes := int64(l.config.IndexIntervalBytes)
	segmentBytes, maxIndexBytes := l.config.SegmentBytes, int64(l.config.MaxIndexBytes)
	truncations := l.truncations
	end := l.endOffset.Load()
	if opts.StableEnd > 0 {
		end = min(end, opts.StableEnd)
	}
	snapshot := slices.Clone(l.segments)
	var abortedTxns []AbortedTxn
	for _, s := range snapshot {
		s.acquire()
		s.mu.RLock()
		abortedTxns = append(abortedTxns, s.aborted...)
		s.mu.RUnlock()
	}
	l.appendMu.Unlock()
	defer func() {
		for _, s := range snapshot {
			s.release()
		}
	}()

	// Cleanable: the longest run of oldest sealed segments old enough.
	cleanable := 0
	for cleanable < len(snapshot)-1 && snapshot[cleanable+1].baseOffset <= end && now.Sub(snapshot[cleanable].largestTime()) >= opts.MinCompactionLag {
		cleanable++
	}
	if cleanable == 0 {
		stats.Skipped = true
		return stats, nil
	}
	stats.CleanableEnd = snapshot[cleanable].baseOffset
	cleanerOffset := l.cleanerOffset.Load()
	total, dirty := int64(0), int64(0)
	for i, s := range snapshot[:cleanable] {
		size := s.size.Load()
		total += size
		if snapshot[i+1].baseOffset > cleanerOffset {
			dirty += size
		}
	}
	if total > 0 {
		stats.DirtyRatio = float64(dirty) / float64(total)
	}
	if total == 0 || (!opts.Force && stats.DirtyRatio < opts.MinCleanableDirtyRatio) {
		stats.Skipped = true
		return stats, nil
	}

	// Offset map: the latest offset of every key in the whole log, aborted
	// transactions' records left out (they never supersede anything).
	latest := map[string]int64{}
	txns := newTxnCleaner(abortedTxns)
	for _, s := range snapshot {
		err := l.forEachBatch(s, end, func(_ int64, batch []byte, h recordbatch.Header) error {
			if h.IsControl() {
				txns.controlBatch(h, batch)
				return nil
			}
			if txns.dataBatch(h) {
				return nil
			}
			_, records, err := decodeRecords(batch)
			if err != nil {
				return corruptf(s.logPath, -1, "batch at offset %d: %v", h.BaseOffset, err)
			}
			for _, r := range records {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
			return nil
		})
		if err != nil {
			return stats, fmt.Errorf("segment: compact: %w", err)
		}
	}

	// Clean each group of cleanable segments aside into one, then swap it
	// in, oldest first: a crash between two groups leaves a log where every
	// record that was removed has its successor still present.
	pass := passTime{now: now.UnixMilli(), horizon: now.Add(opts.DeleteRetention).UnixMilli()}
	txns = newTxnCleaner(abortedTxns)
	for _, group := range groupForCleaning(snapshot, cleanable, segmentBytes, maxIndexBytes) {
		groupEnd := snapshot[slices.Index(snapshot, group[len(group)-1])+1].baseOffset
		cleaned, removedMarkers, changed, err := l.cleanSegments(group, groupEnd, latest, txns, pass, intervalBytes, opts.Producers, &stats)
		if err != nil {
			return stats, fmt.Errorf("segment: compact: %w", err)
		}
		if !changed {
			continue
		}
		swapped, err := l.swapSegments(group, cleaned, removedMarkers, truncations)
		if err != nil {
			return stats, fmt.Errorf("segment: compact: %w", err)
		}
		if !swapped {
			// The group changed under the pass (retention, DeleteRecords,
			// a truncation). A later group drops a tombstone or a marker
			// only because this group loses what it deleted: the pass
			// stops here, the cleaner offset unchanged.
			return stats, nil
		}
		stats.SegmentsRewritten += len(group)
		stats.SegmentsMerged += len(group) - 1
		stats.BytesBefore += sizeOf(group)
		stats.BytesAfter += cleaned.size.Load()
	}

	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed || l.truncations != truncations {
		return stats, nil
	}
	if err := writeOffsetCheckpoint(l.dir, cleanerOffsetFileName, cleanerOffsetKey, stats.CleanableEnd); err != nil {
		return stats, fmt.Errorf("segment: compact: %w", err)
	}
	l.cleanerOffset.Store(stats.CleanableEnd)
	l.logger.Info("compacted log", "cleanable_end", stats.CleanableEnd, "segments", stats.SegmentsRewritten, "merged", stats.SegmentsMerged,
		"bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter, "records_removed", stats.RecordsRemoved)
	return stats, nil
}

// forEachBatch calls fn with every whole batch of s below end, holding the
// reader side of rewriteMu per segment. batch is valid during the call.
func (l *Log) forEachBatch(s *segment, end int64, fn func(position int64, batch []byte, h recordbatch.Header) error) error {
	l.rewriteMu.RLock()
	defer l.rewriteMu.RUnlock()
	size := s.size.Load()
	window := s.window(size, scanWindowSize)
	for position := int64(0); position < size; {
		info, _, err := window.batchAt(position)
		if err != nil {
			return err
		}
		if info.lastOffset >= end {
			return nil
		}
		batch, err := window.bytes(position, info.size)
		if err != nil {
			return err
		}
		h, err := recordbatch.ParseHeader(batch)
		if err != nil {
			return corruptf(s.logPath, position, "%v", err)
		}
		if err := fn(position, batch, h); err != nil {
			return err
		}
		position += info.size
	}
	return nil
}

// groupForCleaning splits the cleanable segments (segments[:cleanable]) into
// runs that are cleaned into one segment each, as Kafka's cleaner groups
// them: consecutive segments whose sizes add up to at most segmentBytes,
// whose index entries fit maxIndexBytes, and whose offsets fit relative
// offsets. Segments already cleaned are small, so repeated passes merge
// them and the number of files stays bounded.
func groupForCleaning(segments []*segment, cleanable int, segmentBytes, maxIndexBytes int64) [][]*segment {
	entries := func(s *segment) (offsets, times int64) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return int64(len(s.offsetEntries)), int64(len(s.timeEntries))
	}
	var groups [][]*segment
	for i := 0; i < cleanable; {
		size := segments[i].size.Load()
		offsets, times := entries(segments[i])
		j := i + 1
		for ; j < cleanable; j++ {
			o, t := entries(segments[j])
			if size+segments[j].size.Load() > segmentBytes ||
				(offsets+o)*index.OffsetEntrySize > maxIndexBytes || (times+t)*index.TimeEntrySize > maxIndexBytes ||
				segments[j+1].baseOffset-1-segments[i].baseOffset > index.MaxRelativeOffset {
				break
			}
			size += segments[j].size.Load()
			offsets, times = offsets+o, times+t
		}
		groups = append(groups, segments[i:j])
		i = j
	}
	return groups
}

// passTime is what a pass needs to remove tombstones and transaction
// markers: the pass's time and the delete horizon it stamps (now +
// delete.retention.ms), Unix milliseconds.
type passTime struct {
	now, horizon int64
}

// cleanSegments writes the cleaned copy of a group of consecutive segments,
// ending at offset groupEnd, to <first base>.{log,index,timeindex}.cleaned,
// fsynced, and returns it as a segment whose paths are the final names (its
// descriptors follow the renames). changed is false, and nothing is
// written, when the group is one segment that loses no record. txns is
// the cleaning walk's transaction state (groups are cleaned in offset
// order); removedMarkers holds the offsets of the control batches removed.
func (l *Log) cleanSegments(group []*segment, groupEnd int64, latest map[string]int64, txns *txnCleaner, pass passTime, intervalBytes int64, producers map[int64]ProducerLast, stats *CompactStats) (cleaned *segment, removedMarkers map[int64]bool, changed bool, err error) {
	first := group[0]
	var out []byte
	var infos []batchInfo
	var positions []int64
	var batchStats CompactStats
	// A run of batches that lose every record becomes one empty filler
	// batch covering the run's offsets, so offsets stay dense within the
	// segment (recovery checks that) at 61 bytes per run.
	runStart, runEnd, runEpoch := int64(-1), int64(-1), int32(-1)
	emit := func(batch []byte) error {
		info, reason := decodeBatchHeader(batch)
		if reason != "" {
			return corruptf(first.logPath, -1, "%s", reason)
		}
		positions = append(positions, int64(len(out)))
		infos = append(infos, info)
		out = append(out, batch...)
		return nil
	}
	flushRun := func() error {
		if runStart < 0 {
			return nil
		}
		filler := recordbatch.Assemble(recordbatch.Header{
			BaseOffset: runStart, PartitionLeaderEpoch: runEpoch, LastOffsetDelta: int32(runEnd - runStart),
			FirstTimestamp: -1, MaxTimestamp: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		}, nil)
		runStart = -1
		return emit(filler)
	}
	removedMarkers = map[int64]bool{}
	// drop adds the batch with header h to the run of removed batches.
	drop := func(h recordbatch.Header) {
		if runStart < 0 {
			runStart = h.BaseOffset
		}
		runEnd, runEpoch = h.LastOffset(), h.PartitionLeaderEpoch
	}
	cleanBatch := func(s *segment, batch []byte, h recordbatch.Header) error {
		keep := batch
		if runStart >= 0 && h.PartitionLeaderEpoch != runEpoch {
			// A filler carries one leader epoch: runs end where it changes.
			if err := flushRun(); err != nil {
				return err
			}
		}
		switch {
		case h.IsControl():
			// A marker goes once its transaction's data is gone (seen in
			// an earlier pass) and delete.retention.ms passed since a
			// pass first found it so (Kafka's delete horizon, stamped
			// into the batch then).
			if !txns.controlBatch(h, batch) || isLastOfProducer(producers, h) {
				break
			}
			horizon, stamped := h.DeleteHorizon()
			switch {
			case stamped && horizon <= pass.now:
				batchStats.MarkersRemoved++
				removedMarkers[h.BaseOffset] = true
				drop(h)
				return nil
			case !stamped:
				_, records, err := decodeRecords(batch)
				if err != nil {
					return corruptf(s.logPath, -1, "batch at offset %d: %v", h.BaseOffset, err)
				}
				if keep, err = rebuildBatch(h.WithDeleteHorizon(pass.horizon), records); err != nil {
					return fmt.Errorf("stamp the delete horizon of the marker at offset %d: %w", h.BaseOffset, err)
				}
				batchStats.MarkersStamped++
			}
		case txns.dataBatch(h):
			// An aborted transaction's batch goes whole, unless it is its
			// producer's last: then it is emptied (and its marker stays
			// while it does).
			batchStats.RecordsRemoved += int64(h.NumRecords)
			batchStats.AbortedRemoved += int64(h.NumRecords)
			if h.NumRecords > 0 {
				batchStats.BatchesRemoved++
			}
			if !isLastOfProducer(producers, h) {
				drop(h)
				return nil
			}
			if h.NumRecords > 0 {
				keep = emptiedBatch(h)
			}
		default:
			_, records, err := decodeRecords(batch)
			if err != nil {
				return corruptf(s.logPath, -1, "batch at offset %d: %v", h.BaseOffset, err)
			}
			// A tombstone goes once its batch's delete horizon passed;
			// the first pass that keeps one stamps the horizon into its
			// batch (Kafka's KIP-534), so a consumer reading the log
			// within delete.retention.ms of that pass sees every delete.
			horizon, stamped := h.DeleteHorizon()
			tombstones := false
			kept := records[:0:0]
			for _, r := range records {
				if r.Key != nil {
					if latest[string(r.Key)] != r.Offset {
						batchStats.RecordsRemoved++
						continue
					}
					if r.Value == nil && stamped && horizon <= pass.now {
						batchStats.RecordsRemoved++
						batchStats.TombstonesRemoved++
						continue
					}
					tombstones = tombstones || r.Value == nil
				}
				kept = append(kept, r)
			}
			stamp := tombstones && !stamped
			switch {
			case len(kept) == 0 && isLastOfProducer(producers, h):
				// The producer's last batch: kept, emptied (Kafka's
				// RETAIN_EMPTY), so its producer state survives a
				// rebuild from the log — on later passes too, once it
				// is empty already. A committed transaction's marker
				// stays while it does (the batch is walked).
				if len(records) > 0 {
					batchStats.BatchesRemoved++
					keep = emptiedBatch(h)
				}
			case len(kept) == 0:
				if len(records) > 0 {
					batchStats.BatchesRemoved++
				}
				drop(h)
				return nil
			case len(kept) < len(records) || stamp:
				rebuilt := h
				if len(kept) < len(records) {
					batchStats.BatchesRecompacted++
				}
				if stamp {
					batchStats.BatchesStamped++
					rebuilt = h.WithDeleteHorizon(pass.horizon)
				}
				if keep, err = rebuildBatch(rebuilt, kept); err != nil {
					return fmt.Errorf("rebuild batch at offset %d: %w", h.BaseOffset, err)
				}
			}
		}
		if err := flushRun(); err != nil {
			return err
		}
		return emit(keep)
	}
	for k, s := range group {
		end := groupEnd
		if k+1 < len(group) {
			end = group[k+1].baseOffset
		}
		err = l.forEachBatch(s, end, func(_ int64, batch []byte, h recordbatch.Header) error {
			return cleanBatch(s, batch, h)
		})
		if err != nil {
			return nil, nil, false, err
		}
	}
	if err = flushRun(); err != nil {
		return nil, nil, false, err
	}
	if batchStats.RecordsRemoved == 0 && batchStats.MarkersRemoved == 0 && batchStats.MarkersStamped == 0 && batchStats.BatchesStamped == 0 && len(group) == 1 {
		return nil, nil, false, nil
	}
	stats.RecordsRemoved += batchStats.RecordsRemoved
	stats.TombstonesRemoved += batchStats.TombstonesRemoved
	stats.AbortedRemoved += batchStats.AbortedRemoved
	stats.MarkersRemoved += batchStats.MarkersRemoved
	stats.MarkersStamped += batchStats.MarkersStamped
	stats.BatchesStamped += batchStats.BatchesStamped
	stats.BatchesRemoved += batchStats.BatchesRemoved
	stats.BatchesRecompacted += batchStats.BatchesRecompacted

	last := group[len(group)-1]
	cleaned = newSegment(l.dir, first.baseOffset, l.logger)
	cleaned.lastModified = last.lastModified
	files := []**os.File{&cleaned.logFile, &cleaned.offsetIndexFile, &cleaned.timeIndexFile}
	for i, path := range []string{cleaned.logPath, cleaned.offsetIndexPath, cleaned.timeIndexPath} {
		if *files[i], err = os.OpenFile(path+cleanedFileSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fsperm.File); err != nil {
			cleaned.release()
			return nil, nil, false, fmt.Errorf("create cleaned segment: %w", err)
		}
	}
	fail := func(err error) (*segment, map[int64]bool, bool, error) {
		cleaned.release()
		for _, path := range []string{cleaned.logPath, cleaned.offsetIndexPath, cleaned.timeIndexPath} {
			os.Remove(path + cleanedFileSuffix)
		}
		return nil, nil, false, err
	}
	if _, err := cleaned.logFile.WriteAt(out, 0); err != nil {
		return fail(fmt.Errorf("write cleaned segment %s: %w", cleaned.name(), err))
	}
	cleaned.mu.Lock()
	for i, info := range infos {
		cleaned.observeLocked(positions[i], info, intervalBytes)
	}
	cleaned.mu.Unlock()
	cleaned.size.Store(int64(len(out)))
	cleaned.nextOffset = groupEnd
	cleaned.finalizeTimeIndex()
	cleaned.dirty = true
	if err := cleaned.sync(); err != nil {
		return fail(err)
	}
	// Retention falls back to the modification time when no batch has a
	// timestamp: keep the newest of the group's.
	if err := os.Chtimes(cleaned.logPath+cleanedFileSuffix, time.Time{}, last.lastModified); err != nil {
		return fail(err)
	}
	runCompactHook("cleaned")
	return cleaned, removedMarkers, true, nil
}

// swapSegments replaces a group of consecutive segments by the cleaned
// one in the directory and the segment list, under the append lock. It
// gives up (removing the cleaned files) when the group is no longer a run of
// sealed segments of the log or a Truncate ran since the pass started.
// The aborted-transaction entries whose ABORT marker the pass removed
// (removedMarkers) leave the index once the swap is committed.
func (l *Log) swapSegments(olds []*segment, cleaned *segment, removedMarkers map[int64]bool, truncations int64) (swapped bool, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	i := slices.Index(l.segments, olds[0])
	if l.closed || l.failure != nil || l.truncations != truncations || i < 0 || i+len(olds) >= len(l.segments) ||
		!slices.Equal(l.segments[i:i+len(olds)], olds) {
		cleaned.release()
		for _, path := range []string{cleaned.logPath, cleaned.offsetIndexPath, cleaned.timeIndexPath} {
			os.Remove(path + cleanedFileSuffix)
		}
		return false, nil
	}
	// The cleaned segment's aborted-transaction index is the group's,
	// written under the first segment's name before the swap (a crash
	// before the commit point leaves duplicates, which AbortedTxns drops).
	var aborted []AbortedTxn
	for _, old := range olds {
		old.mu.RLock()
		aborted = append(aborted, old.aborted...)
		old.mu.RUnlock()
	}
	olds[0].mu.RLock()
	merged := len(aborted) > len(olds[0].aborted)
	olds[0].mu.RUnlock()
	if merged {
		var data []byte
		for _, t := range aborted {
			data = appendTxnIndexEntry(data, t)
		}
		if err := atomicfile.WriteFile(olds[0].txnIndexPath(), data, fsperm.File); err != nil {
			cleaned.release()
			for _, path := range []string{cleaned.logPath, cleaned.offsetIndexPath, cleaned.timeIndexPath} {
				os.Remove(path + cleanedFileSuffix)
			}
			return false, fmt.Errorf("swap: merge aborted transaction indexes: %w", err)
		}
	}
	// .cleaned -> .swap, the .log last: <base>.log.swap is the commit point.
	for _, path := range []string{cleaned.offsetIndexPath, cleaned.timeIndexPath, cleaned.logPath} {
		if err := os.Rename(path+cleanedFileSuffix, path+swapFileSuffix); err != nil {
			// Before the commit point: Open removes the leftovers.
			cleaned.release()
			return false, fmt.Errorf("swap %s: %w", filepath.Base(path), err)
		}
		runCompactHook("swap " + filepath.Base(path))
	}
	if err := atomicfile.SyncDir(l.dir); err != nil {
		cleaned.release()
		return false, err
	}
	// An entry must not outlive its marker: a read_committed consumer
	// skips the producer's transactional batches from the entry's first
	// offset until it meets the marker, so later committed ones would be
	// hidden. The entries of the markers the pass removed are dropped after
	// the commit point (before it the old segments, markers included, may
	// come back) and before <base>.log.swap is renamed (Open, finishing a
	// swap, prunes the index again).
	var kept []AbortedTxn
	for _, t := range aborted {
		if !removedMarkers[t.LastOffset] {
			kept = append(kept, t)
		}
	}
	// Committed: from here on a failure leaves the files for Open to finish.
	// The merged segments go first (their offsets are in the swap), then
	// the swap files take the first segment's names.
	finish := func() error {
		for _, old := range olds[1:] {
			if err := removeSegmentFiles(l.dir, old.baseOffset); err != nil {
				return fmt.Errorf("swap: remove merged segment %s: %w", old.name(), err)
			}
			runCompactHook("remove " + old.name())
		}
		if len(kept) < len(aborted) {
			if err := writeTxnIndex(cleaned.txnIndexPath(), kept); err != nil {
				return fmt.Errorf("swap: prune aborted transaction index: %w", err)
			}
			runCompactHook("prune txnindex")
		}
		for _, path := range []string{cleaned.offsetIndexPath, cleaned.timeIndexPath, cleaned.logPath} {
			if err := os.Rename(path+swapFileSuffix, path); err != nil {
				return fmt.Errorf("swap %s: %w", filepath.Base(path), err)
			}
			runCompactHook("rename " + filepath.Base(path))
		}
		return atomicfile.SyncDir(l.dir)
	}
	if err := finish(); err != nil {
		cleaned.release()
		l.fail(err)
		return false, err
	}
	cleaned.mu.Lock()
	cleaned.aborted = kept
	cleaned.mu.Unlock()
	segments := slices.Concat(l.segments[:i], []*segment{cleaned}, l.segments[i+len(olds):])
	l.mu.Lock()
	l.segments = segments
	l.mu.Unlock()
	for _, old := range olds {
		old.release() // the list's reference; readers keep theirs
	}
	return true, nil
}

// recoverCompactionSwaps finishes or rolls back a segment swap interrupted
// by a crash (see the Compaction section of the package documentation).
func (l *Log) recoverCompactionSwaps() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("list directory: %w", err)
	}
	var committed []int64
	var leftovers []string
	for _, entry := range entries {
		name := entry.Name()
		switch {
		case strings.HasSuffix(name, cleanedFileSuffix):
			leftovers = append(leftovers, name)
		case strings.HasSuffix(name, logFileSuffix+swapFileSuffix):
			if base, ok := parseSegmentFileName(strings.TrimSuffix(name, swapFileSuffix), logFileSuffix); ok {
				committed = append(committed, base)
			}
		}
	}
	changed := false
	for _, name := range leftovers {
		l.logger.Info("removing the files of an unfinished compaction", "file", name)
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		changed = true
	}
	for _, base := range committed {
		l.logger.Warn("finishing an interrupted compaction swap", "segment", segmentFileName(base, ""))
		// Segments merged into the swapped one and not removed yet.
		last, err := lastOffsetOf(filepath.Join(l.dir, segmentFileName(base, logFileSuffix+swapFileSuffix)))
		if err != nil {
			return fmt.Errorf("finish swap: %w", err)
		}
		for _, entry := range entries {
			merged, ok := parseSegmentFileName(entry.Name(), logFileSuffix)
			if ok && merged > base && merged <= last {
				l.logger.Warn("removing a segment merged by an interrupted compaction swap", "segment", segmentFileName(merged, ""))
				if err := removeSegmentFiles(l.dir, merged); err != nil {
					return fmt.Errorf("finish swap: %w", err)
				}
			}
		}
		for _, suffix := range []string{offsetIndexFileSuffix, timeIndexFileSuffix, logFileSuffix} {
			path := filepath.Join(l.dir, segmentFileName(base, suffix))
			err := os.Rename(path+swapFileSuffix, path)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("finish swap: %w", err)
			}
		}
		if err := pruneTxnIndex(l.dir, base); err != nil {
			return fmt.Errorf("finish swap: %w", err)
		}
		changed = true
	}
	// Index .swap files without their .log.swap: the swap never committed.
	entries, err = os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("list directory: %w", err)
	}
	for _, entry := range entries {
		if name := entry.Name(); strings.HasSuffix(name, swapFileSuffix) {
			l.logger.Info("removing the files of an uncommitted compaction swap", "file", name)
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			changed = true
		}
	}
	if changed {
		return atomicfile.SyncDir(l.dir)
	}
	return nil
}

// lastOffsetOf returns the last offset of the batches in a log file that
// was fsynced whole (a committed swap), reading only batch headers.
func lastOffsetOf(path string) (int64, error) {
	last := int64(-1)
	err := forEachHeader(path, func(h recordbatch.Header) { last = h.LastOffset() })
	return last, err
}

// forEachHeader calls fn with the header of every batch of a log file
// that was fsynced whole (a committed swap).
func forEachHeader(path string, fn func(recordbatch.Header)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	header := make([]byte, recordbatch.HeaderSize)
	for position := int64(0); ; {
		if _, err := f.ReadAt(header, position); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		h, err := recordbatch.ParseHeader(header)
		if err != nil {
			return corruptf(path, position, "%v", err)
		}
		fn(h)
		position += h.Size()
	}
}

// pruneTxnIndex drops the entries of segment base's aborted-transaction
// index whose ABORT marker is no longer in its log (a swap interrupted
// after its commit point, before the index was pruned).
func pruneTxnIndex(dir string, base int64) error {
	path := filepath.Join(dir, segmentFileName(base, txnIndexFileSuffix))
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, _ := decodeTxnIndex(data)
	if len(entries) == 0 {
		return nil
	}
	markers := map[int64]bool{}
	err = forEachHeader(filepath.Join(dir, segmentFileName(base, logFileSuffix)), func(h recordbatch.Header) {
		if h.IsControl() {
			markers[h.BaseOffset] = true
		}
	})
	if err != nil {
		return err
	}
	var kept []AbortedTxn
	for _, t := range entries {
		if markers[t.LastOffset] {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(entries) {
		return nil
	}
	return writeTxnIndex(path, kept)
}

// loadCleanerOffset reads cleaner-offset-checkpoint (absent: nothing was
// compacted yet). An unreadable one only costs a full pass, so it is
// ignored with a warning.
func (l *Log) loadCleanerOffset() error {
	offset, exists, err := readOffsetCheckpoint(l.dir, cleanerOffsetFileName, cleanerOffsetKey)
	if err != nil {
		l.logger.Warn("unreadable cleaner offset checkpoint; the next compaction treats the whole log as dirty", "err", err)
		return nil
	}
	if exists {
		l.cleanerOffset.Store(offset)
	}
	return nil
}

// isLastOfProducer reports whether the batch with header h is its
// producer's last entry (CompactOptions.Producers).
func isLastOfProducer(producers map[int64]ProducerLast, h recordbatch.Header) bool {
	last, ok := producers[h.ProducerID]
	switch {
	case !ok || h.ProducerID < 0:
		return false
	case last.LastOffset >= 0:
		return !h.IsControl() && h.LastOffset() == last.LastOffset
	default:
		return h.IsControl() && h.ProducerEpoch == last.Epoch
	}
}

// emptiedBatch is the batch with header h without its records: its
// offsets, timestamps, producer id, epoch, sequences and transactional
// flag kept, no codec (nothing is compressed).
func emptiedBatch(h recordbatch.Header) []byte {
	return recordbatch.Assemble(recordbatch.Header{
		BaseOffset: h.BaseOffset, PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Attributes: h.Attributes &^ int16(h.Codec()), LastOffsetDelta: h.LastOffsetDelta,
		FirstTimestamp: h.FirstTimestamp, MaxTimestamp: h.MaxTimestamp,
		ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, BaseSequence: h.BaseSequence,
	}, nil)
}

// rebuildBatch encodes the kept records of the batch with header h
// (recordbatch.Rebuild): same base offset, lastOffsetDelta, producer
// id/epoch, base sequence, attributes (so the same codec), partition
// leader epoch and first timestamp (the delete horizon once stamped: the
// records' timestamp deltas are encoded against it); each record keeps its
// offset delta and timestamp. The max timestamp is recomputed from the
// kept records (CreateTime) or kept (LogAppendTime).
func rebuildBatch(h recordbatch.Header, kept []recordbatch.Record) ([]byte, error) {
	return recordbatch.Rebuild(h, kept)
}

// decodeRecords parses a stored batch's header and decodes its records,
// accepting the offset gaps an earlier pass left.
func decodeRecords(batch []byte) (recordbatch.Header, []recordbatch.Record, error) {
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return h, nil, err
	}
	records, err := recordbatch.Records(batch)
	return h, records, err
}
