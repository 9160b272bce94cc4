package segment

import (
	"errors"
	"os"
	"testing"
)

// blockingSync replaces l's fsync of Sync: each call signals started and
// waits for release. It returns how many fsyncs ran.
func blockingSync(l *Log) (started chan struct{}, release chan error, calls *int) {
	started, release, calls = make(chan struct{}), make(chan error), new(int)
	l.syncFile = func(f *os.File) error {
		*calls++
		started <- struct{}{}
		if err := <-release; err != nil {
			return err
		}
		return f.Sync()
	}
	return started, release, calls
}

// TestSyncRunsOutsideTheAppendLock blocks a Sync inside its fsync and
// appends, reads and flushes by count meanwhile: none waits for the fsync.
// The fsync covers what was appended before it started, and the next Sync
// the rest with one more fsync.
func TestSyncRunsOutsideTheAppendLock(t *testing.T) {
	l := openTestLog(t, t.TempDir(), 0, smallConfig(t, newTestClock()))
	var m model
	m.append(t, l, makeBatch(2, 1, 50, 1))
	if got := l.SyncedEnd(); got != 0 {
		t.Fatalf("SyncedEnd after an append without fsync = %d, want 0", got)
	}
	started, release, calls := blockingSync(l)
	type result struct {
		end int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		end, err := l.Sync()
		done <- result{end, err}
	}()
	<-started
	// The fsync is blocked: appends and reads complete anyway.
	m.append(t, l, makeBatch(3, 2, 50, 2))
	m.append(t, l, makeBatch(1, 3, 50, 3))
	m.verifyAll(t, l)
	if got := l.SyncedEnd(); got != 0 {
		t.Fatalf("SyncedEnd while the fsync runs = %d, want 0", got)
	}
	release <- nil
	r := <-done
	if r.err != nil || r.end != 2 || l.SyncedEnd() != 2 {
		t.Fatalf("Sync = %d, %v (SyncedEnd %d); want 2: the end when the fsync started", r.end, r.err, l.SyncedEnd())
	}
	go func() { <-started; release <- nil }()
	if end, err := l.Sync(); err != nil || end != 6 {
		t.Fatalf("second Sync = %d, %v; want 6", end, err)
	}
	// Nothing new: no fsync.
	if end, err := l.Sync(); err != nil || end != 6 || *calls != 2 {
		t.Fatalf("third Sync = %d, %v after %d fsyncs; want 6 after 2", end, err, *calls)
	}
}

// TestSyncRacingTruncateDoesNotPublish: a Truncate while a Sync's fsync
// runs wins; the Sync must not report as durable offsets the truncation
// removed and later appends reused.
func TestSyncRacingTruncateDoesNotPublish(t *testing.T) {
	l := openTestLog(t, t.TempDir(), 0, smallConfig(t, newTestClock()))
	var m model
	m.append(t, l, makeBatch(2, 1, 50, 1))
	m.append(t, l, makeBatch(2, 2, 50, 2))
	started, release, _ := blockingSync(l)
	done := make(chan int64, 1)
	go func() {
		end, _ := l.Sync()
		done <- end
	}()
	<-started
	if err := l.Truncate(2); err != nil {
		t.Fatal(err)
	}
	m.truncate(2)
	m.append(t, l, makeBatch(2, 3, 60, 3)) // offsets 2-3 again, not fsynced
	release <- nil
	// Offsets 0-1 may be durable (the truncation fsyncs what it keeps, a
	// roll what it seals); 2-3 are not.
	if end := <-done; end > 2 || l.SyncedEnd() > 2 {
		t.Fatalf("Sync across a truncation = %d (SyncedEnd %d), want at most 2", end, l.SyncedEnd())
	}
}

// TestSyncFailureFailsTheLog: a failed fsync leaves the page cache state
// unknown, so the log refuses appends and further syncs, as after a failed
// flush.
func TestSyncFailureFailsTheLog(t *testing.T) {
	l := openTestLog(t, t.TempDir(), 0, smallConfig(t, newTestClock()))
	var m model
	m.append(t, l, makeBatch(2, 1, 50, 1))
	started, release, _ := blockingSync(l)
	go func() { <-started; release <- errors.New("EIO") }()
	if _, err := l.Sync(); err == nil {
		t.Fatal("Sync with a failing fsync succeeded")
	}
	if l.SyncedEnd() != 0 {
		t.Fatalf("SyncedEnd after a failed fsync = %d, want 0", l.SyncedEnd())
	}
	records, batches := appendRequest(makeBatch(1, 2, 10, 2))
	if _, _, err := l.Append(records, batches); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Append after a failed fsync: %v, want ErrLogFailed", err)
	}
	if _, err := l.Sync(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Sync after a failed fsync: %v, want ErrLogFailed", err)
	}
}

// TestSyncedEndAtOpen: after a clean shutdown everything is durable; after
// a crash only the sealed segments are known to be, until a Sync.
func TestSyncedEndAtOpen(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	l, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m model
	for i := range 30 { // rolls: segments of 1000 bytes
		m.append(t, l, makeBatch(1, int64(i), 100, byte(i)))
	}
	segs := l.Segments()
	activeBase := segs[len(segs)-1].BaseOffset
	if len(segs) < 2 || l.SyncedEnd() > activeBase {
		t.Fatalf("SyncedEnd with %d segments = %d, want at most the active segment's base %d", len(segs), l.SyncedEnd(), activeBase)
	}
	if err := awaitRollSync(l); err != nil || l.SyncedEnd() != activeBase {
		t.Fatalf("SyncedEnd once the last roll's fsync is done = %d (%v), want the active segment's base %d (rolls fsync)", l.SyncedEnd(), err, activeBase)
	}
	crash(l)
	l = openTestLog(t, dir, 0, cfg)
	if l.SyncedEnd() != activeBase || l.EndOffset() != 30 {
		t.Fatalf("after a crash: SyncedEnd %d, EndOffset %d; want %d, 30", l.SyncedEnd(), l.EndOffset(), activeBase)
	}
	if end, err := l.Sync(); err != nil || end != 30 {
		t.Fatalf("Sync = %d, %v; want 30", end, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	if l.SyncedEnd() != 30 {
		t.Fatalf("after a clean shutdown: SyncedEnd %d, want 30", l.SyncedEnd())
	}
}
