package segment

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRollFindsTheSealedSegmentWrittenBack appends a producer's stream of
// 100 KiB batches through several rolls and checks, at the fsync that
// seals each segment (on the append's path, with appendMu held), that
// Append has already handed every byte of the segment's log file but the
// last writebackBytes to the kernel to write, in order and without gaps,
// so the fsync has at most that much left to write. Before writeback there
// was none: each roll's fsync wrote the whole segment.
func TestRollFindsTheSealedSegmentWrittenBack(t *testing.T) {
	cfg := smallConfig(t, newTestClock())
	cfg.SegmentBytes = 3 << 20
	var l *Log
	writtenBack := map[string]int64{} // by file name: where the writebacks so far end
	var rolls []string
	cfg.SyncFault = func() error {
		// Called before each fsync; only rolls fsync here (no flush
		// settings, no Sync), with the segment being sealed still last.
		active := l.segments[len(l.segments)-1]
		name := filepath.Base(active.logFile.Name())
		if left := active.size.Load() - writtenBack[name]; left >= writebackBytes {
			t.Errorf("sealing %s: %d of its %d bytes not written back, want < %d", name, left, active.size.Load(), writebackBytes)
		}
		rolls = append(rolls, name)
		return nil
	}
	l = openTestLog(t, t.TempDir(), 0, cfg)
	l.writeback = func(f *os.File, offset, length int64) {
		name := filepath.Base(f.Name())
		if offset != writtenBack[name] || length <= 0 {
			t.Errorf("writeback of %s at %d+%d, want one from %d on (in order, no gap, no overlap)", name, offset, length, writtenBack[name])
		}
		writtenBack[name] = offset + length
		startWriteback(f, offset, length)
	}
	var m model
	for i := range 100 {
		m.append(t, l, makeBatch(1, int64(i), 100<<10, byte(i)))
	}
	if len(rolls) < 2 {
		t.Fatalf("%d rolls, want at least 2", len(rolls))
	}
	m.verifyAll(t, l)
}

// TestStartWriteback runs the real writeback on a file: advice that
// changes neither the file nor what reads return.
func TestStartWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	startWriteback(f, 0, int64(len(data)))
	startWriteback(f, 1<<20, 10<<20) // past the end: ignored
	got, err := os.ReadFile(f.Name())
	if err != nil || string(got) != string(data) {
		t.Fatalf("file changed by writeback (%d bytes, %v)", len(got), err)
	}
}
