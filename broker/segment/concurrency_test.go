package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestConcurrentReadersWhileAppending runs readers against a log that is
// appended to, rolled, truncated and trimmed by retention at the same time;
// run with -race. Readers must only ever see whole batches with valid CRCs
// and dense offsets, starting with the batch holding the offset asked for.
func TestConcurrentReadersWhileAppending(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 6000
	cfg.IndexIntervalBytes = 100
	cfg.RetentionBytes = 20000
	l := openTestLog(t, t.TempDir(), 0, cfg)

	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	wg.Add(1)
	go func() { // the appender
		defer wg.Done()
		defer done.Store(true)
		random := rand.New(rand.NewPCG(1, 2))
		for i := range 600 {
			var batches [][]byte
			for range 1 + random.IntN(3) {
				batches = append(batches, makeBatch(int32(1+random.IntN(5)), clock.Millis()+int64(i), 10+random.IntN(300), byte(i)))
			}
			records, descriptors := appendRequest(batches...)
			if _, _, err := l.Append(records, descriptors); err != nil {
				report(fmt.Errorf("append %d: %w", i, err))
				return
			}
			switch {
			case i%50 == 49:
				if _, err := l.EnforceRetention(); err != nil {
					report(fmt.Errorf("retention: %w", err))
					return
				}
			case i%97 == 96:
				if err := l.Truncate(max(l.EndOffset()-7, l.StartOffset())); err != nil {
					report(fmt.Errorf("truncate: %w", err))
					return
				}
			}
		}
	}()

	for reader := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			random := rand.New(rand.NewPCG(uint64(reader), 7))
			for reads := 0; !done.Load() || reads < 50; reads++ {
				start, end := l.StartOffset(), l.EndOffset()
				offset := start + random.Int64N(end-start+1)
				upTo := end
				if random.IntN(3) == 0 {
					upTo = start + random.Int64N(end-start+1)
				}
				data, err := l.Read(offset, int32(random.IntN(3000)), upTo, random.IntN(2) == 0)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention or truncation moved the range
				}
				if err != nil {
					report(fmt.Errorf("read %d: %w", offset, err))
					return
				}
				if err := checkBatches(data); err != nil {
					report(fmt.Errorf("read %d: %w", offset, err))
					return
				}
				if len(data) > 0 {
					first, _ := decodeBatchHeader(data)
					if first.lastOffset < offset || first.baseOffset > offset {
						report(fmt.Errorf("read %d returned first batch %d-%d", offset, first.baseOffset, first.lastOffset))
						return
					}
					for rest := data; len(rest) > 0; {
						info, _ := decodeBatchHeader(rest)
						if info.lastOffset >= upTo {
							report(fmt.Errorf("read %d up to %d returned batch %d-%d", offset, upTo, info.baseOffset, info.lastOffset))
							return
						}
						rest = rest[info.size:]
					}
				}
				switch reads % 10 {
				case 3:
					timestamp := clock.Millis() + random.Int64N(600)
					batch, found, err := l.FindTimestamp(timestamp, 0)
					if err == nil && found {
						err = checkBatches(batch)
						if info, _ := decodeBatchHeader(batch); err == nil && info.maxTimestamp < timestamp {
							err = fmt.Errorf("batch with timestamp %d for %d", info.maxTimestamp, timestamp)
						}
					}
					if err != nil {
						report(fmt.Errorf("find timestamp: %w", err))
						return
					}
				case 6:
					batch, found, err := l.MaxTimestampBatch()
					if err == nil && found {
						err = checkBatches(batch)
					}
					if err != nil {
						report(fmt.Errorf("max timestamp batch: %w", err))
						return
					}
				case 9:
					next := int64(-1)
					if err := l.Scan(l.StartOffset(), func(h recordbatch.Header) error {
						if next >= 0 && h.BaseOffset != next {
							return fmt.Errorf("batch %d after %d", h.BaseOffset, next)
						}
						next = h.LastOffset() + 1
						return nil
					}); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
						report(fmt.Errorf("scan: %w", err))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(l.Segments()) < 2 || l.StartOffset() == 0 {
		t.Fatalf("the test should roll and delete segments: %d segments, start %d", len(l.Segments()), l.StartOffset())
	}
}

// TestReadOfSegmentDeletedInFlight holds a reader's reference on a segment
// while retention deletes it: the read still returns the right bytes and
// the files are closed when the reader lets go.
func TestReadOfSegmentDeletedInFlight(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 400
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	for i := range 12 {
		m.append(t, l, makeBatch(1, clock.Millis(), 39, byte(i)))
	}
	s, err := l.acquireSegment(0) // as Read does before its file I/O
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetStartOffset(4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.logPath); !os.IsNotExist(err) {
		t.Fatalf("segment file still there: %v", err)
	}
	data, _, _, err := s.read(nil, 0, l.EndOffset(), 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, batch := range m.batches[:4] {
		want = append(want, batch.bytes...)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("read from the deleted segment: %s", describeBatches(data))
	}
	s.release()
	if _, err := s.logFile.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("files not closed after the last reference: %v", err)
	}
	if _, err := l.Read(0, 100, l.EndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
}
