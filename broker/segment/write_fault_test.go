package segment

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestAppendWriteFailureLeavesNothing: a write that fails on a full or
// failing disk after writing part of the batch leaves no trace: the error
// carries the errno, the log end and the file do not move, reads see only
// the appends before, and once the disk has space again the next append
// takes the same offsets; after a crash and reopen the log holds exactly
// the successful appends. (segment.Log already truncated after a failed
// write; this test pins that down, with the short write a full disk makes.)
func TestAppendWriteFailureLeavesNothing(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			var failing atomic.Bool
			cfg.WriteFault = func(size int) (int, error) {
				if failing.Load() {
					return size / 2, errno
				}
				return 0, nil
			}
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			var m model
			m.append(t, l, makeBatch(3, clock.Millis(), 50, 1))
			m.append(t, l, makeBatch(2, clock.Millis(), 50, 2))
			segments := l.Segments()
			active := segments[len(segments)-1]
			end, size := l.EndOffset(), active.Size

			failing.Store(true)
			records, descriptors := appendRequest(makeBatch(4, clock.Millis(), 50, 3))
			if _, _, err := l.Append(records, descriptors); !errors.Is(err, errno) {
				t.Fatalf("append on a failing disk: %v, want %v", err, errno)
			}
			if got := l.EndOffset(); got != end {
				t.Fatalf("log end %d after a failed write, want %d", got, end)
			}
			segments = l.Segments()
			if got := segments[len(segments)-1]; got.BaseOffset != active.BaseOffset || got.Size != size {
				t.Fatalf("active segment %+v after a failed write, want %+v", got, active)
			}
			info, err := os.Stat(filepath.Join(dir, segmentFileName(active.BaseOffset, logFileSuffix)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() != size {
				t.Fatalf("log file of %d bytes, want %d (the partial write truncated away)", info.Size(), size)
			}
			m.verifyAll(t, l)

			failing.Store(false)
			m.append(t, l, makeBatch(4, clock.Millis(), 50, 4))
			m.verifyAll(t, l)

			crash(l)
			reopened := openTestLog(t, dir, 0, cfg)
			m.verifyAll(t, reopened)
		})
	}
}
