package lazyfs

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
)

// appendBatches appends one batch of one record per value to l, and
// returns the batches as the log must hold them (offset i is batch i).
func appendBatches(t *testing.T, l *segment.Log, values ...string) [][]byte {
	t.Helper()
	var appended [][]byte
	for _, value := range values {
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{
			{Timestamp: time.Now().UnixMilli(), Value: []byte(value)},
		})
		if err != nil {
			t.Fatal(err)
		}
		header, err := recordbatch.ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Append(batch, []segment.AppendBatch{{
			Length: int32(len(batch)), MaxTimestamp: header.MaxTimestamp, Records: 1,
		}}); err != nil {
			t.Fatalf("append %s: %v", value, err)
		}
		appended = append(appended, batch) // Append stamped the base offset in place
	}
	return appended
}

// readAll reads the whole log from offset 0.
func readAll(t *testing.T, l *segment.Log) []byte {
	t.Helper()
	data, err := l.Read(0, 1<<30, l.EndOffset(), true)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return data
}

// mountedLog is a segment log's directory on a lost-page-cache mount.
type mountedLog struct {
	m   *Mount
	dir string
	cfg segment.Config
}

// openMountedLog opens a log in a fresh mount. The log is abandoned at a
// power loss, not closed: its descriptors are closed only when the test
// ends (before the unmount, which must not find them open).
func openMountedLog(t *testing.T, segmentBytes int64) (*mountedLog, *segment.Log) {
	t.Helper()
	dir, m := mountTest(t)
	ml := &mountedLog{m: m, dir: filepath.Join(dir, "topic-0"), cfg: segment.Config{SegmentBytes: segmentBytes}}
	l, err := segment.Open(ml.dir, 0, ml.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return ml, l
}

// powerLoss drops what was not made durable and opens the log again, as
// a restarted broker would; the reopened log is closed when the test ends.
func (ml *mountedLog) powerLoss(t *testing.T) *segment.Log {
	t.Helper()
	drop(t, ml.m)
	reopened, err := segment.Open(ml.dir, 0, ml.cfg)
	if err != nil {
		t.Fatalf("reopen after drop: %v", err)
	}
	t.Cleanup(func() { reopened.Close() })
	return reopened
}

// valueStrings returns n distinct record values.
func valueStrings(n int) []string {
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("value-%03d", i)
	}
	return values
}

// TestSegmentLogRecoversSyncedPrefix runs the broker's own log
// (broker/segment) on the lost-page-cache mount: whatever was flushed, or
// fsynced by a segment roll, must come back after a power loss, and the log
// recovers to exactly that prefix.
func TestSegmentLogRecoversSyncedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name         string
		segmentBytes int64
		synced       int // values appended and flushed
		unsynced     int // values appended after
	}{
		{name: "one segment", synced: 3, unsynced: 2},
		{name: "nothing flushed", synced: 0, unsynced: 4},
		{name: "rolled segments", segmentBytes: 300, synced: 10, unsynced: 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ml, l := openMountedLog(t, tc.segmentBytes)
			values := valueStrings(tc.synced + tc.unsynced)
			batches := appendBatches(t, l, values[:tc.synced]...)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			batches = append(batches, appendBatches(t, l, values[tc.synced:]...)...)
			if !bytes.Equal(readAll(t, l), bytes.Join(batches, nil)) {
				t.Fatal("log before the drop does not hold what was appended")
			}
			// A roll fsyncs the segment it seals: everything below the
			// active segment is durable too.
			segments := l.Segments()
			durableEnd := max(int64(tc.synced), segments[len(segments)-1].BaseOffset)

			// Power loss: the process is gone (l is abandoned, not closed).
			reopened := ml.powerLoss(t)
			if got := reopened.EndOffset(); got != durableEnd {
				t.Fatalf("log end offset after drop = %d, want %d (the flushed records); stats %s", got, durableEnd, ml.m.FS().Stats())
			}
			if !bytes.Equal(readAll(t, reopened), bytes.Join(batches[:durableEnd], nil)) {
				t.Fatal("recovered log is not the durable prefix")
			}
			// It takes appends again at the recovered end.
			appendBatches(t, reopened, "after")
			if got := reopened.EndOffset(); got != durableEnd+1 {
				t.Fatalf("end offset after a new append = %d, want %d", got, durableEnd+1)
			}
		})
	}
}

// TestSegmentTruncateIsDurable: a replica that truncates its log (to a
// leader epoch end) must not get the truncated records back after a power
// loss, or it would diverge from its leader. Truncate within the active
// segment, across segments, and below the first one.
func TestSegmentTruncateIsDurable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		truncateTo int64
		fully      bool // TruncateFullyAndStartAt instead of Truncate
	}{
		{name: "within the active segment", truncateTo: 14},
		{name: "across segments", truncateTo: 4},
		{name: "below the first segment", truncateTo: 0},
		{name: "fully, restarting above the end", truncateTo: 40, fully: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ml, l := openMountedLog(t, 300)
			values := valueStrings(16)
			batches := appendBatches(t, l, values...)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			var err error
			if tc.fully {
				err = l.TruncateFullyAndStartAt(tc.truncateTo)
			} else {
				err = l.Truncate(tc.truncateTo)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantEnd := l.EndOffset()
			wantStart := l.StartOffset()
			var want []byte
			if !tc.fully {
				want = bytes.Join(batches[:wantEnd], nil)
			}

			reopened := ml.powerLoss(t)
			if reopened.EndOffset() != wantEnd || reopened.StartOffset() != wantStart {
				t.Fatalf("after drop the log is [%d, %d), want [%d, %d) as truncated; stats %s",
					reopened.StartOffset(), reopened.EndOffset(), wantStart, wantEnd, ml.m.FS().Stats())
			}
			if got, err := reopened.Read(wantStart, 1<<30, wantEnd, true); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after drop the log holds %d bytes (%v), want the %d bytes below the truncation", len(got), err, len(want))
			}
		})
	}
}

// TestSegmentSyncIsDurable checks the durable acknowledgement mode's group
// commit (Log.Sync): every record below the SyncedEnd it returns survives
// a power loss, and what was appended after it does not come back torn.
func TestSegmentSyncIsDurable(t *testing.T) {
	for _, tc := range []struct {
		name         string
		segmentBytes int64
	}{
		{name: "one segment"},
		{name: "rolled segments", segmentBytes: 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ml, l := openMountedLog(t, tc.segmentBytes)
			values := valueStrings(12)
			batches := appendBatches(t, l, values[:10]...)
			syncedEnd, err := l.Sync()
			if err != nil {
				t.Fatal(err)
			}
			if syncedEnd != 10 {
				t.Fatalf("Sync returned synced end %d, want 10", syncedEnd)
			}
			segmentsBefore := len(l.Segments())
			batches = append(batches, appendBatches(t, l, values[10:]...)...)
			if len(l.Segments()) != segmentsBefore {
				t.Fatal("the appends after Sync rolled a segment: the test means them to stay unsynced")
			}

			reopened := ml.powerLoss(t)
			if got := reopened.EndOffset(); got != syncedEnd {
				t.Fatalf("log end offset after drop = %d, want the synced end %d; stats %s", got, syncedEnd, ml.m.FS().Stats())
			}
			if !bytes.Equal(readAll(t, reopened), bytes.Join(batches[:syncedEnd], nil)) {
				t.Fatal("recovered log is not the synced prefix")
			}
		})
	}
}
