package segment

import (
	"os"
	"testing"
)

// TestReadBufferedGivesBuffersBackOnErrorAcrossSegments: a read that has
// its first segment's batches in hand when the next segment turns out
// corrupt returns the error and has given back every buffer it was lent,
// each once (lender panics on a second Put and counts what is missing).
func TestReadBufferedGivesBuffersBackOnErrorAcrossSegments(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 250
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	// Segment 0: offsets 0 and 1 (100 bytes each, rolled past 250 bytes
	// after the third); segment 1 from 3: two batches.
	for i := range 5 {
		m.append(t, l, makeBatch(1, int64(i), 39, byte(i)))
	}
	l.mu.RLock()
	segments := l.segments
	l.mu.RUnlock()
	if len(segments) < 2 || segments[1].size.Load() < 200 {
		t.Fatalf("want two segments, the second with two batches: %+v", l.Segments())
	}
	// The second batch of the second segment loses its magic byte.
	second := segments[1]
	f, err := os.OpenFile(second.logPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x7f}, 100+batchMagicPosition); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var bufs lender
	data, err := l.ReadBuffered(&bufs, 0, 1<<20, l.EndOffset(), true)
	if !IsCorrupt(err) || data != nil {
		t.Fatalf("read across into a corrupt segment returned %d bytes, err %v; want none and a corruption error", len(data), err)
	}
	if lent := bufs.lent(); len(lent) != 0 {
		t.Fatalf("%d buffers lent and not given back after the failed read", len(lent))
	}
	// Up to the corrupt segment the log still reads, into one buffer.
	data, err = l.ReadBuffered(&bufs, 0, 1<<20, second.baseOffset, true)
	if err != nil || len(data) == 0 || len(bufs.lent()) != 1 {
		t.Fatalf("read before the corrupt segment: %d bytes, err %v, %d buffers kept", len(data), err, len(bufs.lent()))
	}
	bufs.Put(data)
}

// TestReadBufferedKeepsNoMoreThanTwiceItsBytes: a read that keeps a small
// batch out of a larger read (the next batch does not fit in maxBytes)
// returns it in a buffer of its size, not in the buffer of the whole
// read: a Fetch holds its buffers until its response is written, and its
// room in the response memory counts at most twice the records it
// returns, whatever the number of partitions that read this way.
func TestReadBufferedKeepsNoMoreThanTwiceItsBytes(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 1 << 20
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	m.append(t, l, makeBatch(1, 1, 39, 1))   // 100 bytes
	m.append(t, l, makeBatch(1, 2, 8000, 2)) // 8061 bytes
	var bufs lender
	data, err := l.ReadBuffered(&bufs, 0, 4096, l.EndOffset(), true)
	if err != nil || len(data) != 100 {
		t.Fatalf("read %d bytes, err %v; want the first batch's 100", len(data), err)
	}
	if lent := bufs.lent(); len(lent) != 1 || cap(lent[0]) > 2*len(data) {
		t.Fatalf("the %d bytes returned hold %d buffers, the first of %d bytes; want one of at most twice the bytes", len(data), len(lent), cap(lent[0]))
	}
	bufs.Put(data)
}
