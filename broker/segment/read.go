package segment

import (
	"fmt"
	"sort"

	"github.com/strata-log/strata/broker/recordbatch"

	"github.com/strata-log/strata/broker/segment/index"
)

// acquireSegment returns the segment holding offset (the last whose base
// offset is at most offset, or the first), with a reference to release.
func (l *Log) acquireSegment(offset int64) (*segment, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	i := max(sort.Search(len(l.segments), func(i int) bool { return l.segments[i].baseOffset > offset })-1, 0)
	s := l.segments[i]
	s.acquire()
	return s, nil
}

// acquireNextSegment returns the segment after the one with baseOffset, with
// a reference to release, or nil.
func (l *Log) acquireNextSegment(baseOffset int64) *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].baseOffset > baseOffset })
	if l.closed || i == len(l.segments) {
		return nil
	}
	s := l.segments[i]
	s.acquire()
	return s
}

func outOfRange(offset, start, end int64) error {
	return fmt.Errorf("%w: offset %d, log has [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
}

// Read returns whole batches starting with the batch that contains offset,
// stopping before any batch whose last offset is at least upTo (exclusive,
// e.g. the high watermark) and before the batch that would make the result
// larger than maxBytes, except that with minOneBatch the first batch is
// returned whole even when it is larger (KIP-74). It returns no bytes and no
// error for offset == EndOffset() or offset >= upTo, and ErrOffsetOutOfRange
// below StartOffset() or above EndOffset(). The result may start below
// offset (the batch holding it) and is the caller's to keep.
func (l *Log) Read(offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error) {
	return l.ReadBuffered(nil, offset, maxBytes, upTo, minOneBatch)
}

// Buffers lends the buffers ReadBuffered reads into, so that a reader that
// reads often (a Fetch) reuses memory instead of allocating and zeroing a
// new buffer per read.
type Buffers interface {
	// Get returns an empty buffer with room for n bytes.
	Get(n int) []byte
	// Put takes back a buffer from Get once nothing refers to its bytes.
	Put(b []byte)
}

func getBuffer(bufs Buffers, n int) []byte {
	if bufs == nil {
		return make([]byte, n)
	}
	return bufs.Get(n)[:n]
}

func putBuffer(bufs Buffers, b []byte) {
	if bufs != nil && b != nil {
		bufs.Put(b)
	}
}

// ReadBuffered is Read into a buffer from bufs (nil: a new one, as Read):
// a non-empty result is such a buffer (its bytes from its start), which
// the caller gives back to bufs once nothing refers to its bytes; buffers
// it does not return are already back. The buffer was asked of bufs for
// at most twice the result's bytes: a read that keeps less of what it read
// (the next batch over maxBytes or past upTo) moves it to one of its size.
func (l *Log) ReadBuffered(bufs Buffers, offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error) {
	l.rewriteMu.RLock()
	defer l.rewriteMu.RUnlock()
	end, start := l.endOffset.Load(), l.startOffset.Load()
	if offset < start || offset > end {
		return nil, outOfRange(offset, start, end)
	}
	limit := min(upTo, end)
	if offset >= limit {
		return nil, nil
	}
	s, err := l.acquireSegment(offset)
	if err != nil {
		return nil, err
	}
	// Retention advances the start offset before it drops segments: a
	// segment gone before the acquisition shows up here.
	if start := l.startOffset.Load(); offset < start {
		s.release()
		return nil, outOfRange(offset, start, end)
	}
	var out []byte
	budget := int64(max(maxBytes, 0))
	for s != nil {
		data, next, exhausted, err := s.read(bufs, max(offset, s.baseOffset), limit, budget, minOneBatch && len(out) == 0)
		if err != nil {
			s.release()
			putBuffer(bufs, out)
			return nil, err
		}
		switch {
		case len(data) == 0:
			putBuffer(bufs, data)
		case out == nil:
			out = data
		default:
			// A read across segments (rare: only at a segment's end).
			joined := getBuffer(bufs, len(out)+len(data))
			copy(joined[copy(joined, out):], data)
			putBuffer(bufs, out)
			putBuffer(bufs, data)
			out = joined
		}
		budget -= int64(len(data))
		offset = next
		if !exhausted || budget < BatchHeaderSize {
			s.release()
			break
		}
		following := l.acquireNextSegment(s.baseOffset)
		s.release()
		s = following
		// Retention may have deleted the segments in between; what was read
		// so far is still a valid answer.
		if s != nil && l.startOffset.Load() > offset {
			s.release()
			break
		}
	}
	return out, nil
}

// FindTimestamp returns the first batch ending at or after offset from (or
// the log start, the higher) whose max timestamp is at least timestamp
// (Kafka's ListOffsets by time), using the time and offset indexes of the
// first segment whose largest timestamp reaches it and scanning forward
// from the indexed position. found is false when no batch does. A caller
// whose batch holds only records below its log start goes on from the
// batch's end.
func (l *Log) FindTimestamp(timestamp, from int64) (batch []byte, found bool, err error) {
	l.rewriteMu.RLock()
	defer l.rewriteMu.RUnlock()
	end, start := l.endOffset.Load(), max(l.startOffset.Load(), from)
	if start >= end {
		return nil, false, nil
	}
	s, err := l.acquireSegment(start)
	if err != nil {
		return nil, false, err
	}
	for s != nil {
		if maxTimestamp, _ := s.timestampSummary(); maxTimestamp >= timestamp {
			batch, found, done, err := s.findTimestamp(timestamp, start, end)
			if err != nil || found || done {
				s.release()
				return batch, found, err
			}
		}
		next := l.acquireNextSegment(s.baseOffset)
		s.release()
		s = next
	}
	return nil, false, nil
}

// findTimestamp searches one segment; done reports that the search reached
// the end offset.
func (s *segment) findTimestamp(timestamp, start, end int64) (batch []byte, found, done bool, err error) {
	s.mu.RLock()
	entry, indexed := index.SearchTimeEntries(s.timeEntries, timestamp)
	s.mu.RUnlock()
	from := s.baseOffset
	if indexed {
		from += int64(entry.RelativeOffset)
	}
	size := s.size.Load()
	position, length := int64(-1), int64(0)
	err = s.walk(max(from, start), size, seekWindowSize, func(at int64, info batchInfo, _ []byte) (bool, error) {
		if info.lastOffset >= end {
			done = true
			return false, nil
		}
		if info.maxTimestamp >= timestamp {
			position, length = at, info.size
			return false, nil
		}
		return true, nil
	})
	if err != nil || position < 0 {
		return nil, false, done, err
	}
	batch, err = s.readAt(position, length)
	return batch, err == nil, true, err
}

// MaxTimestampBatch returns the first batch holding the largest timestamp in
// the log (Kafka's ListOffsets MAX_TIMESTAMP). found is false when the log
// is empty or no batch has a timestamp.
func (l *Log) MaxTimestampBatch() (batch []byte, found bool, err error) {
	l.rewriteMu.RLock()
	defer l.rewriteMu.RUnlock()
	start := l.startOffset.Load()
	s, err := l.acquireSegment(start)
	if err != nil {
		return nil, false, err
	}
	var best *segment
	bestTimestamp, bestOffset := int64(-1), int64(-1)
	for s != nil {
		maxTimestamp, offset := s.timestampSummary()
		if maxTimestamp > bestTimestamp && offset >= start {
			if best != nil {
				best.release()
			}
			best, bestTimestamp, bestOffset = s, maxTimestamp, offset
			s.acquire() // best keeps its own reference
		}
		next := l.acquireNextSegment(s.baseOffset)
		s.release()
		s = next
	}
	if best == nil {
		return nil, false, nil
	}
	defer best.release()
	position, info, found, err := best.seekReleased(best.size.Load(), bestOffset)
	if err != nil || !found {
		return nil, false, err
	}
	batch, err = best.readAt(position, info.size)
	return batch, err == nil, err
}

// Scan calls fn with the parsed header of each batch whose last offset is
// at least from, in offset order, up to the end offset at the call (used to
// rebuild producer state and the leader-epoch cache). fn must not call
// methods of the Log. An error from fn stops the scan and is returned; a
// header that does not parse fails the scan.
func (l *Log) Scan(from int64, fn func(h recordbatch.Header) error) error {
	return l.ScanWithControl(from, func(h recordbatch.Header, _ []byte) error { return fn(h) })
}

// ScanWithControl is Scan that also hands fn the whole bytes of each
// control batch (transaction markers; nil for other batches), valid during
// the call: replaying transactions needs the marker's type.
func (l *Log) ScanWithControl(from int64, fn func(h recordbatch.Header, control []byte) error) error {
	l.rewriteMu.RLock()
	defer l.rewriteMu.RUnlock()
	end := l.endOffset.Load()
	from = max(from, l.startOffset.Load())
	if from >= end {
		return nil
	}
	s, err := l.acquireSegment(from)
	if err != nil {
		return err
	}
	for s != nil {
		done := false
		err := s.walk(max(from, s.baseOffset), s.size.Load(), scanWindowSize, func(position int64, info batchInfo, header []byte) (bool, error) {
			if info.lastOffset >= end {
				done = true
				return false, nil
			}
			from = info.lastOffset + 1
			h, err := recordbatch.ParseHeader(header)
			if err != nil {
				return false, fmt.Errorf("segment: scan at offset %d: %w", info.baseOffset, err)
			}
			var control []byte
			if h.IsControl() {
				if control, err = s.readAt(position, info.size); err != nil {
					return false, fmt.Errorf("segment: scan at offset %d: %w", info.baseOffset, err)
				}
			}
			return true, fn(h, control)
		})
		if err != nil || done {
			s.release()
			return err
		}
		next := l.acquireNextSegment(s.baseOffset)
		s.release()
		s = next
		// Retention may have deleted segments the scan has not seen yet.
		if start := l.startOffset.Load(); s != nil && start > from {
			s.release()
			return fmt.Errorf("segment: scan: %w: the log start moved to %d past the scan at %d", ErrOffsetOutOfRange, start, from)
		}
	}
	return nil
}
