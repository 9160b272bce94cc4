package segment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// faultGate is a Config.SyncFault that, once armed, blocks the next fsync
// it is asked about until the test releases it, then fails it with the
// error released (nil: the fsync runs). onRelease, when set, runs when the
// blocked fsync is released, before it goes on.
type faultGate struct {
	armed     atomic.Bool
	entered   chan struct{}
	release   chan error
	onRelease func()
}

func newFaultGate() *faultGate {
	return &faultGate{entered: make(chan struct{}, 1), release: make(chan error, 1)}
}

func (g *faultGate) fault() error {
	if !g.armed.CompareAndSwap(true, false) {
		return nil
	}
	g.entered <- struct{}{}
	err := <-g.release
	if g.onRelease != nil {
		g.onRelease()
	}
	return err
}

// closeOnLazyFS registers a cleanup that lets a blocked fsync of g go,
// waits for l's roll sync and closes l's files as a crash does, before
// the lost-page-cache mount goes away: a test that fails half way must
// not leave files open on it (the process would hang at exit, flushing
// them to the file system it serves itself).
func closeOnLazyFS(t *testing.T, l *Log, g *faultGate) {
	t.Cleanup(func() {
		select {
		case g.release <- nil:
		default:
		}
		awaitRollSync(l)
		crash(l)
	})
}

// guard is how long a call that must not wait for a blocked fsync may
// take before the test calls it a hang.
const guard = 10 * time.Second

// within runs f and fails the test when it does not return within guard,
// releasing the gate first so that a call stuck behind it ends.
func within(t *testing.T, g *faultGate, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(guard):
		g.release <- nil
		<-done
		t.Fatalf("%s did not return within %v: it waited for a blocked fsync", what, guard)
	}
}

// rollWithBlockedSync fills the first segment of a smallConfig log
// (1000 bytes: 8 batches of about 110 bytes) and appends the batch that
// rolls it with the sealed segment's fsync blocked by g. It returns the
// sealed segment's end offset once that fsync has started.
func rollWithBlockedSync(t *testing.T, l *Log, g *faultGate, m *model, clock *testClock) int64 {
	t.Helper()
	for i := range 8 {
		m.append(t, l, makeBatch(1, clock.Millis(), 50, byte(i)))
	}
	sealedEnd := l.EndOffset()
	g.armed.Store(true)
	within(t, g, "the Append that rolls", func() { m.append(t, l, makeBatch(1, clock.Millis(), 500, 9)) })
	if segs := l.Segments(); len(segs) != 2 || segs[0].EndOffset != sealedEnd {
		t.Fatalf("after the roll: %+v, want 2 segments, the first ending at %d", segs, sealedEnd)
	}
	<-g.entered // the sealed segment's fsync started (and waits)
	return sealedEnd
}

// TestRollDoesNotWaitForTheSealedSegmentsFsync: the Append that rolls the
// active segment completes while the fsync of the segment it sealed is
// blocked, and so do the appends and reads after it; SyncedEnd stays below
// the sealed segment's end until that fsync is done, then reaches it.
// Before, rollLocked fsynced the sealed segment with the append lock held:
// every append to the partition waited for it (6-13 ms on an idle disk,
// up to 400 ms on a busy one). Failed before: "the Append that rolls did not
// return within 10s".
func TestRollDoesNotWaitForTheSealedSegmentsFsync(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	sealedEnd := rollWithBlockedSync(t, l, gate, &m, clock)

	within(t, gate, "appends and reads after the roll", func() {
		m.append(t, l, makeBatch(2, clock.Millis(), 50, 10))
		m.append(t, l, makeBatch(1, clock.Millis(), 50, 11))
		m.verifyAll(t, l)
	})
	if got := l.SyncedEnd(); got >= sealedEnd {
		t.Fatalf("SyncedEnd while the sealed segment's fsync is blocked = %d, want below its end %d", got, sealedEnd)
	}

	gate.release <- nil
	if err := awaitRollSync(l); err != nil {
		t.Fatalf("the sealed segment's fsync: %v", err)
	}
	if got := l.SyncedEnd(); got != sealedEnd {
		t.Fatalf("SyncedEnd once the sealed segment is fsynced = %d, want its end %d", got, sealedEnd)
	}
	if end, err := l.Sync(); err != nil || end != m.end(0) {
		t.Fatalf("Sync = %d, %v; want %d", end, err, m.end(0))
	}
}

// TestSyncWaitsForTheSealedSegmentsFsync: Sync fsyncs only the active
// segment's file, so while the segment sealed by the last roll is still
// being fsynced in the background it waits for that fsync before it
// publishes SyncedEnd (the durable mode acknowledges only what it says).
func TestSyncWaitsForTheSealedSegmentsFsync(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	rollWithBlockedSync(t, l, gate, &m, clock)
	type result struct {
		end int64
		err error
	}
	synced := make(chan result, 1)
	go func() {
		end, err := l.Sync()
		synced <- result{end, err}
	}()
	gate.release <- nil
	r := <-synced
	if r.err != nil || r.end != m.end(0) || l.SyncedEnd() != m.end(0) {
		t.Fatalf("Sync = %d, %v (SyncedEnd %d); want %d", r.end, r.err, l.SyncedEnd(), m.end(0))
	}
}

// TestFailedRollSyncFailsTheLog: the background fsync of a sealed segment
// that fails fails the log as any failed fsync does: a Sync waiting for
// it fails and publishes nothing, SyncedEnd stays below the sealed
// segment, appends, flushes and Close answer ErrLogFailed, Close writes no
// clean-shutdown marker, and a reopen recovers everything written.
func TestFailedRollSyncFailsTheLog(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	dir := t.TempDir()
	l, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m model
	sealedEnd := rollWithBlockedSync(t, l, gate, &m, clock)
	synced := make(chan error, 1)
	go func() {
		_, err := l.Sync()
		synced <- err
	}()
	gate.release <- syscall.EIO
	if err := <-synced; !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Sync while the sealed segment's fsync fails: %v, want ErrLogFailed", err)
	}
	awaitRollSync(l)
	if err := l.Failed(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Failed after the sealed segment's fsync failed: %v, want EIO", err)
	}
	if got := l.SyncedEnd(); got >= sealedEnd {
		t.Fatalf("SyncedEnd after the sealed segment's fsync failed = %d, want below %d", got, sealedEnd)
	}
	records, batches := appendRequest(makeBatch(1, clock.Millis(), 50, 20))
	if _, _, err := l.Append(records, batches); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Append: %v, want ErrLogFailed", err)
	}
	if err := l.Flush(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Flush: %v, want ErrLogFailed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Close: %v, want ErrLogFailed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFileName)); !os.IsNotExist(err) {
		t.Fatalf("clean-shutdown marker after a failed fsync (stat: %v)", err)
	}
	l = openTestLog(t, dir, 0, cfg)
	if l.Failed() != nil || l.EndOffset() != m.end(0) {
		t.Fatalf("reopened: failed %v, end %d; want a working log ending at %d", l.Failed(), l.EndOffset(), m.end(0))
	}
	m.verifyAll(t, l)
}

// TestCloseWaitsForTheSealedSegmentsFsync: Close after a roll writes the
// clean-shutdown marker only once the sealed segment's background fsync
// is done (the marker makes the next Open skip verifying it), and the
// reopened log counts everything as fsynced.
func TestCloseWaitsForTheSealedSegmentsFsync(t *testing.T) {
	clock := newTestClock()
	logger, logs := newTestLogger(t)
	cfg := smallConfig(t, clock)
	cfg.Logger = logger
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	dir := t.TempDir()
	l, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var markerAtFsync atomic.Bool
	gate.onRelease = func() {
		_, err := os.Stat(filepath.Join(dir, cleanShutdownFileName))
		markerAtFsync.Store(err == nil)
	}
	var m model
	rollWithBlockedSync(t, l, gate, &m, clock)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	gate.release <- nil
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if markerAtFsync.Load() {
		t.Fatal("Close wrote the clean-shutdown marker before the sealed segment's fsync")
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFileName)); err != nil {
		t.Fatalf("no clean-shutdown marker after Close: %v", err)
	}
	l = openTestLog(t, dir, 0, cfg)
	if l.EndOffset() != m.end(0) || l.SyncedEnd() != m.end(0) {
		t.Fatalf("reopened after Close: end %d, SyncedEnd %d; want %d", l.EndOffset(), l.SyncedEnd(), m.end(0))
	}
	if strings.Contains(logs.String(), "recovering segment") {
		t.Fatalf("a clean open recovered a segment:\n%s", logs.String())
	}
	m.verifyAll(t, l)
}

// TestOpenRecoversTheSegmentSealedByTheLastRoll: a crash can leave the
// segment sealed by the last roll torn (its background fsync had not
// finished) as well as the active one. Without the clean-shutdown marker
// Open verifies it batch by batch, truncates it at the first bad batch or
// where its file ends, and deletes the active segment after it so that
// offsets stay dense; appends continue after the last good batch. Failed
// before for a lost tail (Open checked only the last segment batch by
// batch; the index check of the shortened one rebuilt it and left the
// active segment after an offset gap).
func TestOpenRecoversTheSegmentSealedByTheLastRoll(t *testing.T) {
	for _, c := range []struct {
		name string
		// cut returns the size the sealed segment's file is cut to and
		// the offset recovery must end the log at.
		cut func(size int64, batches []modelBatch) (cutTo, end int64)
	}{
		{"torn batch", func(size int64, batches []modelBatch) (int64, int64) {
			last := batches[len(batches)-1]
			return size - 30, last.baseOffset
		}},
		{"lost tail", func(size int64, batches []modelBatch) (int64, int64) {
			// The file ends at a batch boundary, three batches short.
			var dropped int64
			for _, b := range batches[len(batches)-3:] {
				dropped += int64(len(b.bytes))
			}
			return size - dropped, batches[len(batches)-3].baseOffset
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := newTestClock()
			logger, logs := newTestLogger(t)
			cfg := smallConfig(t, clock)
			cfg.Logger = logger
			dir := t.TempDir()
			l, err := Open(dir, 0, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var m model
			// Segments of 6 batches of 161 bytes; timestamps go down, so a
			// sealed segment's time index names its first batch, not the
			// torn one.
			for i := range 15 {
				m.append(t, l, makeBatch(1, int64(1000-i), 100, byte(i)))
			}
			segs := l.Segments()
			if len(segs) != 3 {
				t.Fatalf("%d segments, want 3", len(segs))
			}
			sealed := segs[1]
			var sealedBatches []modelBatch
			for _, b := range m.batches {
				if b.baseOffset >= sealed.BaseOffset && b.lastOffset < sealed.EndOffset {
					sealedBatches = append(sealedBatches, b)
				}
			}
			awaitRollSync(l)
			crash(l)
			cutTo, end := c.cut(sealed.Size, sealedBatches)
			if err := os.Truncate(sealed.LogPath, cutTo); err != nil {
				t.Fatal(err)
			}

			l = openTestLog(t, dir, 0, cfg)
			if l.EndOffset() != end {
				t.Fatalf("end offset after recovery %d, want %d", l.EndOffset(), end)
			}
			if segs := l.Segments(); len(segs) != 2 || segs[1].BaseOffset != sealed.BaseOffset || !segs[1].Active {
				t.Fatalf("segments after recovery %+v, want 2, the recovered one active", segs)
			}
			if _, err := os.Stat(segs[2].LogPath); !os.IsNotExist(err) {
				t.Fatalf("the segment after the torn one is still there (stat: %v)", err)
			}
			if !strings.Contains(logs.String(), "deleting the segments after a damaged segment") {
				t.Fatalf("no deletion logged:\n%s", logs.String())
			}
			m.truncate(end)
			m.verifyAll(t, l)
			m.append(t, l, makeBatch(2, 2000, 100, 99))
			m.verifyAll(t, l)
		})
	}
}

// TestPowerLossWithTheRollSyncPending runs a log on the lost-page-cache
// file system (internal/lazyfs) and loses power while the fsync of the
// segment sealed by the last roll is blocked: that segment comes back
// without what it was not fsynced (as the active one), and Open ends the
// log where the sealed segment's data ends, at SyncedEnd as it was,
// deleting the active segment after it, with the records before intact.
func TestPowerLossWithTheRollSyncPending(t *testing.T) {
	mount, dir, cfg, gate, l, m, syncedEnd := rollSyncBlockedOnLazyFS(t)
	if len(l.Segments()) != 3 || l.SyncedEnd() != syncedEnd {
		t.Fatalf("%d segments, SyncedEnd %d; want 3, %d", len(l.Segments()), l.SyncedEnd(), syncedEnd)
	}
	mount.Drop(t)
	powerLost := filepath.Join(t.TempDir(), "orders-0")
	copyDir(t, dir, powerLost)
	gate.release <- nil
	awaitRollSync(l)
	crash(l)

	cfg.SyncFault = nil
	l = openTestLog(t, powerLost, 0, cfg)
	if l.EndOffset() != syncedEnd || len(l.Segments()) != 2 {
		t.Fatalf("after a power loss: end %d with %d segments; want %d with 2 (the sealed segment's unsynced records gone, the active segment deleted)", l.EndOffset(), len(l.Segments()), syncedEnd)
	}
	m.truncate(syncedEnd)
	m.verifyAll(t, l)
}

// TestUncleanOpenSyncsTheSegmentSealedByTheLastRoll: after a process crash
// with the sealed segment's fsync not done, its records are whole in the
// page cache, and Open finds it good; it fsyncs it, since no later unclean
// open verifies it once another roll made it third to last. A power loss
// after that Open keeps it whole (lost-page-cache file system).
func TestUncleanOpenSyncsTheSegmentSealedByTheLastRoll(t *testing.T) {
	mount, dir, cfg, gate, first, m, _ := rollSyncBlockedOnLazyFS(t)
	sealedEnd := first.Segments()[2].BaseOffset
	crash(first) // its sealed segment's fsync still blocked

	cfg.SyncFault = nil
	second, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	closeOnLazyFS(t, second, newFaultGate())
	if second.EndOffset() != m.end(0) || second.SyncedEnd() != sealedEnd {
		t.Fatalf("after a crash: end %d, SyncedEnd %d; want %d, %d", second.EndOffset(), second.SyncedEnd(), m.end(0), sealedEnd)
	}
	crash(second)
	mount.Drop(t)
	powerLost := filepath.Join(t.TempDir(), "orders-0")
	copyDir(t, dir, powerLost)
	gate.release <- nil
	awaitRollSync(first)

	third := openTestLog(t, powerLost, 0, cfg)
	if third.EndOffset() != sealedEnd {
		t.Fatalf("after a power loss: end %d, want %d (the sealed segment fsynced by the unclean open)", third.EndOffset(), sealedEnd)
	}
	m.truncate(sealedEnd)
	m.verifyAll(t, third)
}

// TestTruncateIntoTheSegmentWaitingForItsFsync: a Truncate that cuts into
// the segment sealed by the last roll waits for its background fsync
// (whose failure the cut's own fsync could hide) and leaves it the active
// segment, with SyncedEnd at the new end.
func TestTruncateIntoTheSegmentWaitingForItsFsync(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	sealedEnd := rollWithBlockedSync(t, l, gate, &m, clock)
	truncated := make(chan error, 1)
	go func() { truncated <- l.Truncate(sealedEnd - 3) }()
	gate.release <- nil
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}
	m.truncate(sealedEnd - 3)
	if segs := l.Segments(); len(segs) != 1 || l.EndOffset() != sealedEnd-3 || l.SyncedEnd() != sealedEnd-3 {
		t.Fatalf("after truncating into the sealed segment: %d segments, end %d, SyncedEnd %d; want 1, %d, %d", len(segs), l.EndOffset(), l.SyncedEnd(), sealedEnd-3, sealedEnd-3)
	}
	m.append(t, l, makeBatch(2, clock.Millis(), 50, 30))
	m.verifyAll(t, l)
	if end, err := l.Sync(); err != nil || end != m.end(0) {
		t.Fatalf("Sync = %d, %v; want %d", end, err, m.end(0))
	}
}

// TestRetentionDeletesTheSegmentWaitingForItsFsync: retention deletes the
// segment sealed by the last roll without waiting for its background
// fsync, which goes on with its own reference on the files; appends and
// reads continue, and the fsync's end is published once it is done.
func TestRetentionDeletesTheSegmentWaitingForItsFsync(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	gate := newFaultGate()
	cfg.SyncFault = gate.fault
	l := openTestLog(t, t.TempDir(), 0, cfg)
	var m model
	sealedEnd := rollWithBlockedSync(t, l, gate, &m, clock)
	sealedPath := l.Segments()[0].LogPath
	cfg.RetentionBytes = 1
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	within(t, gate, "retention", func() {
		if deleted, err := l.EnforceRetention(); deleted != 1 || err != nil {
			t.Errorf("EnforceRetention = %d, %v; want 1 segment deleted", deleted, err)
		}
	})
	if _, err := os.Stat(sealedPath); !os.IsNotExist(err) || l.StartOffset() != sealedEnd {
		t.Fatalf("after retention: sealed file stat %v, start offset %d; want it gone, %d", err, l.StartOffset(), sealedEnd)
	}
	m.append(t, l, makeBatch(1, clock.Millis(), 50, 40))
	gate.release <- nil
	if err := awaitRollSync(l); err != nil || l.SyncedEnd() != sealedEnd {
		t.Fatalf("after the deleted segment's fsync: %v, SyncedEnd %d; want %d", err, l.SyncedEnd(), sealedEnd)
	}
	var kept model
	for _, b := range m.batches {
		if b.baseOffset >= sealedEnd {
			kept.batches = append(kept.batches, b)
		}
	}
	kept.verifyAll(t, l)
}

// rollSyncBlockedOnLazyFS opens a log on the lost-page-cache file system
// (internal/lazyfs), rolls it once with the fsync let through (SyncedEnd
// 6, returned), then appends through a second roll whose background fsync
// blocks in the returned gate. The log then has three segments.
func rollSyncBlockedOnLazyFS(t *testing.T) (mount *lazyfstest.Mounted, dir string, cfg Config, gate *faultGate, l *Log, m *model, syncedEnd int64) {
	t.Helper()
	mount = lazyfstest.Mount(t)
	dir = filepath.Join(mount.Dir, "orders-0")
	clock := newTestClock()
	cfg = smallConfig(t, clock)
	gate = newFaultGate()
	cfg.SyncFault = gate.fault
	l, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	closeOnLazyFS(t, l, gate)
	m = &model{}
	for i := range 8 { // rolls at the 7th: segments of 6 batches
		m.append(t, l, makeBatch(1, clock.Millis(), 100, byte(i)))
	}
	if err := awaitRollSync(l); err != nil {
		t.Fatal(err)
	}
	if syncedEnd = l.SyncedEnd(); syncedEnd != 6 {
		t.Fatalf("SyncedEnd after the first roll's fsync %d, want 6", syncedEnd)
	}
	gate.armed.Store(true)
	within(t, gate, "appends through a roll", func() {
		for i := range 6 { // rolls at the 5th
			m.append(t, l, makeBatch(1, clock.Millis(), 100, byte(10+i)))
		}
	})
	<-gate.entered
	return mount, dir, cfg, gate, l, m, syncedEnd
}
