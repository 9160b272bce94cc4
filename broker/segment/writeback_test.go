package segment

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestRollFindsTheSealedSegmentWrittenBack appends a producer's stream of
// 100 KiB batches through several rolls and checks, at the fsync that
// seals each segment (in the background after its roll), that Append has
// already handed every byte of the segment's log file but the last
// writebackBytes to the kernel to write, in order and without gaps, so
// the fsync has at most that much left to write. Before writeback there
// was none: each roll's fsync wrote the whole segment.
func TestRollFindsTheSealedSegmentWrittenBack(t *testing.T) {
	cfg := smallConfig(t, newTestClock())
	cfg.SegmentBytes = 3 << 20
	var l *Log
	var mu sync.Mutex                 // the fsync runs on its own goroutine
	writtenBack := map[string]int64{} // by file name: where the writebacks so far end
	var rolls []string
	cfg.SyncFault = func() error {
		// Called before each fsync; only rolls fsync here (no flush
		// settings, no Sync) until the test ends, with the segment being
		// sealed second to last (a roll waits for the previous roll's
		// fsync, so no roll runs meanwhile).
		l.mu.RLock()
		sealed := l.segments[len(l.segments)-2]
		l.mu.RUnlock()
		name := filepath.Base(sealed.logFile.Name())
		mu.Lock()
		defer mu.Unlock()
		if left := sealed.size.Load() - writtenBack[name]; left >= writebackBytes {
			t.Errorf("sealing %s: %d of its %d bytes not written back, want < %d", name, left, sealed.size.Load(), writebackBytes)
		}
		rolls = append(rolls, name)
		return nil
	}
	l = openTestLog(t, t.TempDir(), 0, cfg)
	l.writeback = func(f *os.File, offset, length int64) {
		name := filepath.Base(f.Name())
		mu.Lock()
		defer mu.Unlock()
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
	if err := awaitRollSync(l); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(rolls) < 2 {
		t.Fatalf("%d rolls, want at least 2", len(rolls))
	}
	mu.Unlock()
	m.verifyAll(t, l)
	l.appendMu.Lock()
	l.config.SyncFault = nil // Close's flush is not a roll
	l.appendMu.Unlock()
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
