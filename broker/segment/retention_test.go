package segment

import (
	"errors"
	"testing"
	"time"
)

func TestRetentionByAge(t *testing.T) {
	tests := []struct {
		name       string
		timestamps bool // batches carry timestamps; else retention uses the last modification time
	}{
		{name: "batch timestamps", timestamps: true},
		{name: "no timestamps, modification time", timestamps: false},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			cfg.SegmentBytes = 400
			cfg.RetentionAge = time.Hour
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			var m model
			appendPhase := func(count int) {
				for i := range count {
					timestamp := int64(-1)
					if test.timestamps {
						timestamp = clock.Millis()
					}
					m.append(t, l, makeBatch(2, timestamp, 39, byte(i)))
				}
			}
			appendPhase(10) // 10 × 100 bytes: segments at 0, 8, 16 (two batches)
			clock.Advance(30 * time.Minute)
			appendPhase(10) // fills segment 16, then 24, 32
			if n, err := l.EnforceRetention(); err != nil || n != 0 {
				t.Fatalf("nothing expired yet: deleted %d, %v", n, err)
			}
			clock.Advance(31 * time.Minute) // the first phase is 61 minutes old
			deleted, err := l.EnforceRetention()
			if err != nil {
				t.Fatal(err)
			}
			if deleted != 2 || l.StartOffset() != 16 {
				t.Fatalf("deleted %d segments, start %d; want 2 and 16 (segment 16 holds newer batches)", deleted, l.StartOffset())
			}
			if _, err := l.Read(15, 1000, l.EndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below start: %v", err)
			}
			m.verifyAll(t, l)

			// Everything expired: the non-empty active segment is rolled and
			// deleted too, leaving an empty log at the end offset.
			clock.Advance(2 * time.Hour)
			end := l.EndOffset()
			if _, err := l.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
			if l.StartOffset() != end || l.EndOffset() != end || l.Size() != 0 || len(l.Segments()) != 1 {
				t.Fatalf("after full expiry: [%d, %d) size %d segments %d; want [%d, %d) empty", l.StartOffset(), l.EndOffset(), l.Size(), len(l.Segments()), end, end)
			}
			if n, err := l.EnforceRetention(); err != nil || n != 0 {
				t.Fatalf("empty active segment deleted: %d, %v", n, err)
			}
			m.verifyAll(t, l)
			appendPhase(1)
			if m.batches[len(m.batches)-1].baseOffset != end {
				t.Fatalf("append after full expiry at %d, want %d", m.batches[len(m.batches)-1].baseOffset, end)
			}
			crash(l)
			l = openTestLog(t, dir, 0, cfg)
			if l.StartOffset() != end {
				t.Fatalf("start %d after restart, want %d", l.StartOffset(), end)
			}
			m.verifyAll(t, l)
		})
	}
}

func TestRetentionByBytes(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 400
	cfg.RetentionBytes = 1000
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	for i := range 30 { // 100 bytes each: 7 full segments of 400 and one of 200
		m.append(t, l, makeBatch(1, clock.Millis(), 39, byte(i)))
	}
	deleted, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	// 3000 bytes, 2000 over: five 400-byte segments go, 1000 bytes remain.
	if deleted != 5 || l.Size() != 1000 || l.StartOffset() != 20 {
		t.Fatalf("deleted %d, size %d, start %d; want 5, 1000, 20", deleted, l.Size(), l.StartOffset())
	}
	if n, err := l.EnforceRetention(); err != nil || n != 0 {
		t.Fatalf("second pass deleted %d, %v", n, err)
	}
	if _, err := l.Read(19, 1000, l.EndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	m.verifyAll(t, l)
}

func TestSetStartOffset(t *testing.T) {
	for _, restart := range []string{"close", "crash"} {
		t.Run(restart, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			cfg.SegmentBytes = 400
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			var m model
			for i := range 20 { // 2 offsets, 100 bytes each: segments at 0, 8, 16, …
				m.append(t, l, makeBatch(2, clock.Millis()+int64(i), 39, byte(i)))
			}
			if err := l.SetStartOffset(19); err != nil {
				t.Fatal(err)
			}
			if l.StartOffset() != 19 || l.Segments()[0].BaseOffset != 16 {
				t.Fatalf("start %d, first segment %d; want 19 and 16", l.StartOffset(), l.Segments()[0].BaseOffset)
			}
			if _, err := l.Read(18, 1000, l.EndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below start: %v", err)
			}
			got, err := l.Read(19, 1000, l.EndOffset(), true)
			if err != nil {
				t.Fatal(err)
			}
			if info, _ := decodeBatchHeader(got); info.baseOffset != 18 {
				t.Fatalf("read at 19 starts with batch %d, want the batch holding 19 (18)", info.baseOffset)
			}
			if err := l.SetStartOffset(5); err != nil || l.StartOffset() != 19 {
				t.Fatalf("moving backwards: start %d, %v", l.StartOffset(), err)
			}
			if err := l.SetStartOffset(l.EndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("above end: %v", err)
			}
			m.verifyAll(t, l)
			if restart == "close" {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(l)
			}
			l = openTestLog(t, dir, 0, cfg)
			if l.StartOffset() != 19 {
				t.Fatalf("start %d after restart, want 19", l.StartOffset())
			}
			m.verifyAll(t, l)
			// Up to the end: everything but the active segment goes.
			if err := l.SetStartOffset(l.EndOffset()); err != nil {
				t.Fatal(err)
			}
			if len(l.Segments()) != 1 {
				t.Fatalf("%d segments after SetStartOffset(end)", len(l.Segments()))
			}
			m.verifyAll(t, l)
		})
	}
}

func TestCorruptStartOffsetCheckpointFailsOpen(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, 0, smallConfig(t, clock))
	var m model
	m.append(t, l, makeBatch(4, 1, 10, 1))
	if err := l.SetStartOffset(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	modifyFile(t, dir+"/"+startOffsetFileName, func(d []byte) []byte { d[len("version: 0\nlog_start_offset: ")] = '9'; return d })
	if _, err := Open(dir, 0, smallConfig(t, clock)); !IsCorrupt(err) {
		t.Fatalf("open with a corrupt checkpoint: %v, want a corruption error", err)
	}
}

// TestRetentionLimit: retention deletes only segments ending at or below
// the retention limit (a tiered partition's uploaded data), whatever their
// age or the log's size, and catches up once the limit moves.
func TestRetentionLimit(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 400
	cfg.RetentionBytes = 0
	cfg.RetentionAge = time.Minute
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	for i := range 30 { // 100 bytes each, 4 per segment: segments at 0, 4, …, 28
		m.append(t, l, makeBatch(1, clock.Millis(), 39, byte(i)))
	}
	clock.Advance(time.Hour)
	l.SetRetentionLimit(0)
	if n, err := l.EnforceRetention(); err != nil || n != 0 || l.StartOffset() != 0 {
		t.Fatalf("limit 0: deleted %d, start %d, %v; want nothing deleted", n, l.StartOffset(), err)
	}
	l.SetRetentionLimit(10) // segments 0..3 and 4..7 end at or below 10; 8..11 does not
	if n, err := l.EnforceRetention(); err != nil || n != 2 || l.StartOffset() != 8 {
		t.Fatalf("limit 10: deleted %d, start %d, %v; want 2 and start 8", n, l.StartOffset(), err)
	}
	l.SetRetentionLimit(28) // up to the active segment, which stays
	if n, err := l.EnforceRetention(); err != nil || n != 5 || l.StartOffset() != 28 {
		t.Fatalf("limit 28: deleted %d, start %d, %v; want 5 and start 28", n, l.StartOffset(), err)
	}
	m.verifyAll(t, l)
}
