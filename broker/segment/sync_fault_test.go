package segment

import (
	"bytes"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFailedFsyncIsNotRetried: an fsync that fails — sealing a segment
// after a roll (in the background), a flush by time (flush.ms) or by count
// (flush.messages) — fails the log. The kernel may have dropped the pages it could not write and
// report the next fsync of the file as a success, so a retry proves
// nothing: SyncedEnd stays where it was, and appends, flushes and syncs
// answer ErrLogFailed even once fsync works again. A reopen recovers the
// log (as after a crash): it holds what was written and takes appends and
// fsyncs again. Before, a roll or a flush by time that failed was simply
// tried again, and its second fsync counted everything as durable; a
// failed log's Flush did the same.
func TestFailedFsyncIsNotRetried(t *testing.T) {
	for _, c := range []struct {
		name      string
		configure func(*Config)
		// fill appends what the failing operation needs; fail runs it
		// and returns its error.
		fill func(t *testing.T, l *Log, m *model, clock *testClock)
		fail func(t *testing.T, l *Log, m *model, clock *testClock) error
	}{
		{
			name: "roll",
			fill: func(t *testing.T, l *Log, m *model, clock *testClock) {
				for i := range 8 { // 8 batches of about 120 bytes: the 9th rolls
					m.append(t, l, makeBatch(1, clock.Millis(), 50, byte(i)))
				}
			},
			fail: func(t *testing.T, l *Log, m *model, clock *testClock) error {
				// The append that rolls does not wait for the sealed
				// segment's fsync: it succeeds, and the fsync, failing in
				// the background, fails the log.
				m.append(t, l, makeBatch(1, clock.Millis(), 500, 9))
				if len(l.Segments()) != 2 {
					t.Fatalf("the roll left %d segments, want 2", len(l.Segments()))
				}
				awaitRollSync(l)
				return l.Failed()
			},
		},
		{
			name:      "flush.ms",
			configure: func(cfg *Config) { cfg.FlushInterval = time.Second },
			fill: func(t *testing.T, l *Log, m *model, clock *testClock) {
				m.append(t, l, makeBatch(2, clock.Millis(), 50, 1))
				clock.Advance(2 * time.Second)
			},
			fail: func(t *testing.T, l *Log, m *model, clock *testClock) error {
				return l.FlushIfDue()
			},
		},
		{
			name:      "flush.messages",
			configure: func(cfg *Config) { cfg.FlushMessages = 3 },
			fill: func(t *testing.T, l *Log, m *model, clock *testClock) {
				m.append(t, l, makeBatch(2, clock.Millis(), 50, 1))
			},
			fail: func(t *testing.T, l *Log, m *model, clock *testClock) error {
				records, batches := appendRequest(makeBatch(1, clock.Millis(), 50, 2))
				_, _, err := l.Append(records, batches)
				// Written, then its fsync failed: the batch is in the log.
				info, _ := decodeBatchHeader(records)
				m.batches = append(m.batches, modelBatch{info.baseOffset, info.lastOffset, info.maxTimestamp, bytes.Clone(records)})
				return err
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			if c.configure != nil {
				c.configure(&cfg)
			}
			var failing atomic.Bool
			cfg.SyncFault = func() error {
				if failing.Load() {
					return syscall.EIO
				}
				return nil
			}
			dir := t.TempDir()
			l, err := Open(dir, 0, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var m model
			c.fill(t, l, &m, clock)
			synced := l.SyncedEnd()

			failing.Store(true)
			if err := c.fail(t, l, &m, clock); !errors.Is(err, syscall.EIO) {
				t.Fatalf("with a failing fsync: %v, want EIO", err)
			}
			// The disk answers fsyncs again: nothing changes.
			failing.Store(false)
			records, batches := appendRequest(makeBatch(1, clock.Millis(), 50, 3))
			if _, _, err := l.Append(records, batches); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("Append after a failed fsync: %v, want ErrLogFailed", err)
			}
			clock.Advance(time.Hour)
			for name, retry := range map[string]func() error{
				"Flush":      l.Flush,
				"FlushIfDue": l.FlushIfDue,
				"Sync":       func() error { _, err := l.Sync(); return err },
			} {
				if err := retry(); err != nil && !errors.Is(err, ErrLogFailed) {
					t.Fatalf("%s after a failed fsync: %v, want ErrLogFailed", name, err)
				}
				if got := l.SyncedEnd(); got != synced {
					t.Fatalf("%s after a failed fsync moved SyncedEnd from %d to %d", name, synced, got)
				}
			}
			if l.Failed() == nil {
				t.Fatal("the log is not failed after a failed fsync")
			}
			m.verifyAll(t, l)
			if err := l.Close(); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("Close of a failed log: %v, want ErrLogFailed", err)
			}

			// Reopened (recovered as after a crash: no clean-shutdown
			// marker), the log works again.
			l = openTestLog(t, dir, 0, cfg)
			if l.Failed() != nil || l.EndOffset() != m.end(0) {
				t.Fatalf("reopened: failed %v, end %d; want a working log ending at %d", l.Failed(), l.EndOffset(), m.end(0))
			}
			m.verifyAll(t, l)
			m.append(t, l, makeBatch(2, clock.Millis(), 50, 4))
			if end, err := l.Sync(); err != nil || end != m.end(0) {
				t.Fatalf("Sync after reopening = %d, %v; want %d", end, err, m.end(0))
			}
		})
	}
}
