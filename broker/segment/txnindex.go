package segment

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// The aborted-transaction index: Kafka's <base offset>.txnindex, one per
// segment, listing the transactions aborted by an ABORT marker stored in
// that segment, in marker order. A read_committed Fetch returns the ones
// overlapping what it returns (AbortedTxns) so the consumer can drop their
// records. Part of the format (Kafka's, so tiered segments carry a file
// Kafka tools read), do not change:
//
//	+---------+-------------+--------------+-------------+--------------------+
//	| version | producer id | first offset | last offset | last stable offset |
//	| int16 0 | int64       | int64        | int64       | int64              |
//	+---------+-------------+--------------+-------------+--------------------+
//	  34 bytes per entry, big endian, entries back to back, no header
//
// first offset is the transaction's first batch's offset on this partition,
// last offset the ABORT marker's, last stable offset the partition's LSO
// once the marker was appended. As in Kafka there is no checksum: a torn
// last entry (a file length not a multiple of 34) is dropped at open, and
// the partition rebuilds every entry above its producer snapshot from the
// log at recovery (TruncateAbortedTxns, then AppendAbortedTxn while
// replaying), so what a crash loses is written again. An entry of another
// version ends the file's readable entries (logged).
const (
	txnIndexFileSuffix = ".txnindex"
	txnIndexVersion    = 0
	txnIndexEntrySize  = 2 + 8 + 8 + 8 + 8
)

// AbortedTxn is one entry of the aborted-transaction index.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64 // the ABORT marker's offset
	LastStableOffset int64
}

func appendTxnIndexEntry(dst []byte, t AbortedTxn) []byte {
	dst = binary.BigEndian.AppendUint16(dst, txnIndexVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.ProducerID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.FirstOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.LastOffset))
	return binary.BigEndian.AppendUint64(dst, uint64(t.LastStableOffset))
}

// decodeTxnIndex decodes a .txnindex file's bytes; problem describes what
// was dropped (a torn entry, an unknown version), empty when nothing was.
func decodeTxnIndex(data []byte) (entries []AbortedTxn, problem string) {
	for len(data) >= txnIndexEntrySize {
		if version := binary.BigEndian.Uint16(data); version != txnIndexVersion {
			return entries, fmt.Sprintf("entry of unknown version %d", version)
		}
		entries = append(entries, AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(data[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(data[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(data[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(data[26:])),
		})
		data = data[txnIndexEntrySize:]
	}
	if len(data) > 0 {
		return entries, fmt.Sprintf("torn last entry of %d bytes", len(data))
	}
	return entries, ""
}

// loadTxnIndex reads the segment's .txnindex, if any.
func (s *segment) loadTxnIndex() error {
	data, err := os.ReadFile(s.txnIndexPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("segment %s: read aborted transaction index: %w", s.name(), err)
	}
	entries, problem := decodeTxnIndex(data)
	if problem != "" {
		s.logger.Warn("aborted transaction index: ignoring its tail", "file", s.txnIndexPath(), "reason", problem, "entries_kept", len(entries))
	}
	s.mu.Lock()
	s.aborted = entries
	s.mu.Unlock()
	return nil
}

func (s *segment) txnIndexPath() string {
	return filepath.Join(filepath.Dir(s.logPath), segmentFileName(s.baseOffset, txnIndexFileSuffix))
}

// AppendAbortedTxn adds t to the index of the segment holding its marker
// (t.LastOffset, below the log end) and fsyncs the file before returning.
func (l *Log) AppendAbortedTxn(t AbortedTxn) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if t.LastOffset >= l.endOffset.Load() || t.LastOffset < l.segments[0].baseOffset {
		return fmt.Errorf("segment: aborted transaction marker at offset %d is outside the log [%d, %d)", t.LastOffset, l.segments[0].baseOffset, l.endOffset.Load())
	}
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].baseOffset > t.LastOffset }) - 1
	s := l.segments[i]
	f, err := os.OpenFile(s.txnIndexPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, fsperm.File)
	if err != nil {
		return fmt.Errorf("segment %s: aborted transaction index: %w", s.name(), err)
	}
	_, err = f.Write(appendTxnIndexEntry(nil, t))
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("segment %s: aborted transaction index: %w", s.name(), err)
	}
	s.mu.Lock()
	s.aborted = append(s.aborted, t)
	s.mu.Unlock()
	return nil
}

// AbortedTxns returns the aborted transactions overlapping [from, upTo):
// every entry whose marker is at or after from and whose first offset is
// below upTo, ordered by first offset (what a read_committed consumer
// needs: it drops a producer's records from a first offset on until that
// producer's marker). As Kafka, it stops after a segment holding an entry
// whose last stable offset reaches upTo: no transaction open later can
// have started below upTo.
func (l *Log) AbortedTxns(from, upTo int64) []AbortedTxn {
	l.mu.RLock()
	segments := l.segments
	l.mu.RUnlock()
	i := sort.Search(len(segments), func(i int) bool { return segments[i].baseOffset > from }) - 1
	var out []AbortedTxn
	for _, s := range segments[max(i, 0):] {
		complete := false
		s.mu.RLock()
		for _, t := range s.aborted {
			if t.LastOffset >= from && t.FirstOffset < upTo {
				out = append(out, t)
			}
			complete = complete || t.LastStableOffset >= upTo
		}
		s.mu.RUnlock()
		if complete {
			break
		}
	}
	return sortAbortedTxns(out)
}

// sortAbortedTxns sorts entries by first offset (stably) and drops
// repeated entries (an interrupted compaction swap can leave an entry in
// two files), in place.
func sortAbortedTxns(entries []AbortedTxn) []AbortedTxn {
	slices.SortStableFunc(entries, func(a, b AbortedTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return slices.Compact(entries)
}

// TruncateAbortedTxns drops the entries whose marker is at or above offset
// (the partition rebuilds them from the log above its producer snapshot).
func (l *Log) TruncateAbortedTxns(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for _, s := range l.segments {
		if err := s.truncateTxnIndexLocked(offset); err != nil {
			return err
		}
	}
	return nil
}

// truncateTxnIndexLocked drops the segment's entries whose marker is at or
// above offset, rewriting the file atomically (removing it when empty).
// Called with Log.appendMu held.
func (s *segment) truncateTxnIndexLocked(offset int64) error {
	s.mu.RLock()
	keep := len(s.aborted)
	for keep > 0 && s.aborted[keep-1].LastOffset >= offset {
		keep--
	}
	unchanged := keep == len(s.aborted)
	kept := slices.Clone(s.aborted[:keep])
	s.mu.RUnlock()
	if unchanged {
		return nil
	}
	if err := writeTxnIndex(s.txnIndexPath(), kept); err != nil {
		return fmt.Errorf("segment %s: truncate aborted transaction index to %d: %w", s.name(), offset, err)
	}
	s.mu.Lock()
	s.aborted = kept
	s.mu.Unlock()
	return nil
}

// writeTxnIndex replaces the index file at path by entries, atomically
// (removing it when there are none).
func writeTxnIndex(path string, entries []AbortedTxn) error {
	if len(entries) == 0 {
		if err := os.Remove(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(path))
	}
	return atomicfile.WriteFile(path, EncodeTxnIndex(entries), fsperm.File)
}

// EncodeTxnIndex returns entries in the .txnindex format (above): what a
// tiered segment's .txnindex object holds.
func EncodeTxnIndex(entries []AbortedTxn) []byte {
	var data []byte
	for _, t := range entries {
		data = appendTxnIndexEntry(data, t)
	}
	return data
}

// DecodeTxnIndex decodes bytes in the .txnindex format; an error names
// what does not decode (a torn entry, an unknown version).
func DecodeTxnIndex(data []byte) ([]AbortedTxn, error) {
	entries, problem := decodeTxnIndex(data)
	if problem != "" {
		return nil, errors.New(problem)
	}
	return entries, nil
}
