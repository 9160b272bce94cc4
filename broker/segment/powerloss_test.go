package segment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"

	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// TestDeleteSurvivesPowerLoss runs a log on a lost-page-cache file system
// (internal/lazyfs): once Delete returns, a power loss does not bring the
// deleted partition's directory back. (Before, its removal was never
// fsynced and the whole directory came back; and on a file system that
// keeps some unlinks of an unsynced directory, it could come back without
// its partition.metadata, which no later start would remove or reuse.)
func TestDeleteSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	l, err := Open(dir, 0, Config{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePartitionMetadata(dir, [16]byte{7}); err != nil {
		t.Fatal(err)
	}
	var m model
	for i := range 20 {
		m.append(t, l, makeBatch(3, 1000, 500, byte(i))) // several segments
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("the deleted log's directory after a power loss: stat says %v, holding %d files; want it gone", err, len(entries))
	}
}

// TestCompactSurvivesPowerLoss is TestCompactCrashRecovery with a power
// loss instead of a process crash: at each step of a compaction pass the
// lost-page-cache file system (internal/lazyfs) forgets what was not
// fsynced, and the directory as it is then must open to every segment
// either as it was or as cleaned. Already safe: the .cleaned files are
// fsynced before their rename to .swap, the directory is fsynced before
// the swaps are renamed into place, and after.
func TestCompactSurvivesPowerLoss(t *testing.T) {
	fill := func(t *testing.T, dir string) (*Log, *testClock, []SegmentInfo, []compactRecord) {
		t.Helper()
		clock := newTestClock()
		cfg := Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now}
		l, err := Open(dir, 0, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fillLog(t, l, clock, &compactModel{}, rand.New(rand.NewPCG(3, 4)), 60, 10, []recordbatch.Codec{recordbatch.None, recordbatch.Snappy})
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		before, _ := readRecords(t, l)
		return l, clock, l.Segments(), before
	}
	// The same pass, uninterrupted, gives the cleaned records.
	reference, _, _, _ := fill(t, t.TempDir())
	defer reference.Close()
	var steps int
	countSteps := func(string) { steps++ }
	compactHook.Store(&countSteps)
	_, err := reference.Compact(CompactOptions{Force: true})
	compactHook.Store(nil)
	if err != nil || steps < 7 {
		t.Fatalf("reference compaction: %v after %d steps", err, steps)
	}
	after, _ := readRecords(t, reference)

	for step := range steps {
		t.Run(fmt.Sprintf("step %d", step), func(t *testing.T) {
			mount := lazyfstest.Mount(t)
			dir := filepath.Join(mount.Dir, "log")
			l, _, segments, before := fill(t, dir)
			powerLost := filepath.Join(t.TempDir(), "log")
			var seen int
			hook := func(name string) {
				if seen == step {
					// The power goes: keep the directory as it comes back.
					mount.Drop(t)
					copyDir(t, dir, powerLost)
				}
				seen++
			}
			compactHook.Store(&hook)
			l.Compact(CompactOptions{Force: true}) // what it does after the drop does not count
			compactHook.Store(nil)
			l.Close()

			recovered, err := Open(powerLost, 0, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
			if err != nil {
				t.Fatalf("open after a power loss: %v", err)
			}
			defer recovered.Close()
			got, _ := readRecords(t, recovered)
			if recovered.EndOffset() != reference.EndOffset() {
				t.Fatalf("end offset %d after a power loss, want %d", recovered.EndOffset(), reference.EndOffset())
			}
			if j := mixedSegment(segments, got, before, after); j >= 0 {
				t.Fatalf("segment %d [%d, %d) is neither the old nor the cleaned one after a power loss", j, segments[j].BaseOffset, segments[j].EndOffset)
			}
		})
	}
}

// TestCleanShutdownMarkerAfterPowerLoss: the clean-shutdown marker Close
// writes is taken (removed, durably) by the next Open, so a power loss
// after more appends never finds a marker that would vouch for the active
// segment's old end and skip its recovery. Already safe: the marker goes
// through atomicfile after every segment is fsynced, and Open removes it
// with a directory fsync (and a marker whose end offset differs from the
// segment's is not trusted either).
func TestCleanShutdownMarkerAfterPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	// Timestamps of now: no append rolls the segment for its age (a roll
	// fsyncs the directory, which would hide a missing fsync).
	now := time.Now().UnixMilli()
	var m model
	l, err := Open(dir, 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m.append(t, l, makeBatch(2, now, 100, byte(i)))
	}
	if err := l.Close(); err != nil { // fsyncs, writes the marker
		t.Fatal(err)
	}
	l, err = Open(dir, 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m.append(t, l, makeBatch(2, now, 100, byte(10+i)))
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	unsynced := makeBatch(2, now, 100, 99)
	records, descriptors := appendRequest(unsynced)
	if _, _, err := l.Append(records, descriptors); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)
	crash(l)

	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFileName)); !os.IsNotExist(err) {
		t.Fatalf("the clean-shutdown marker came back after a power loss (stat: %v)", err)
	}
	recovered := openTestLog(t, dir, 0, Config{})
	if recovered.EndOffset() != 12 {
		t.Fatalf("end offset after a power loss %d, want 12 (the synced records)", recovered.EndOffset())
	}
	m.verifyAll(t, recovered)
}
