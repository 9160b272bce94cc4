package segment

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// appendRaw appends one whole batch and returns its base offset.
func appendRaw(t *testing.T, l *Log, batch []byte) int64 {
	t.Helper()
	data, descriptors := appendRequest(batch)
	base, _, err := l.Append(data, descriptors)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return base
}

// appendKeyed appends one batch of one record; producerID >= 0 makes it
// a transactional batch of that producer.
func appendKeyed(t *testing.T, l *Log, clock *testClock, producerID int64, key, value string) int64 {
	t.Helper()
	opts := recordbatch.BuildOptions{}
	if producerID >= 0 {
		opts = recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: producerID, ProducerEpoch: 0, BaseSequence: 0}
	}
	batch, err := recordbatch.Build(opts, []recordbatch.Record{{Key: []byte(key), Value: []byte(value), Timestamp: clock.Now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	return appendRaw(t, l, batch)
}

// appendMarker appends a transaction marker of producerID and, for an
// abort, its aborted-transaction index entry (as the partition does).
func appendMarker(t *testing.T, l *Log, clock *testClock, producerID, firstOffset int64, commit bool) int64 {
	t.Helper()
	typ := recordbatch.ControlAbort
	if commit {
		typ = recordbatch.ControlCommit
	}
	offset := appendRaw(t, l, recordbatch.BuildMarker(recordbatch.MarkerOptions{
		ProducerID: producerID, Timestamp: clock.Now().UnixMilli(), Marker: recordbatch.Marker{Type: typ, CoordinatorEpoch: 1},
	}))
	if !commit {
		if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: producerID, FirstOffset: firstOffset, LastOffset: offset, LastStableOffset: offset + 1}); err != nil {
			t.Fatal(err)
		}
	}
	return offset
}

// deleteHorizon returns the delete horizon of the batch at offset.
func deleteHorizon(t *testing.T, l *Log, offset int64) (int64, bool) {
	t.Helper()
	data, err := l.Read(offset, 1, offset+1, true)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(data)
	if err != nil || h.BaseOffset != offset {
		t.Fatalf("batch at %d: %+v, %v", offset, h, err)
	}
	return h.DeleteHorizon()
}

// logContents describes every non-empty batch of the log below upTo: data
// records as offset:key=value, markers as offset:COMMIT(pid)/ABORT(pid).
func logContents(t *testing.T, l *Log, upTo int64) string {
	t.Helper()
	var out []string
	data, err := l.Read(l.StartOffset(), 1<<24, upTo, true)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		h, err := recordbatch.ParseHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		batch := data[:h.Size()]
		data = data[h.Size():]
		if h.BaseOffset >= upTo {
			break
		}
		if err := recordbatch.VerifyChecksum(batch); err != nil {
			t.Fatalf("batch at %d: %v", h.BaseOffset, err)
		}
		if h.IsControl() {
			m, ok, err := recordbatch.ParseMarker(batch)
			if err != nil || !ok {
				t.Fatalf("control batch at %d: %v", h.BaseOffset, err)
			}
			name := "ABORT"
			if m.Type == recordbatch.ControlCommit {
				name = "COMMIT"
			}
			if horizon, ok := h.DeleteHorizon(); ok {
				records, err := recordbatch.Records(batch)
				if err != nil || records[0].Timestamp != h.MaxTimestamp {
					t.Fatalf("marker at %d with delete horizon %d: record timestamp changed (%+v, %v)", h.BaseOffset, horizon, records, err)
				}
			}
			out = append(out, fmt.Sprintf("%d:%s(%d)", h.BaseOffset, name, h.ProducerID))
			continue
		}
		_, records, err := decodeRecords(batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			out = append(out, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, r.Value))
		}
	}
	return strings.Join(out, " ")
}

// TestCompactTransactions: the cleaner removes aborted transactions'
// records (an aborted record never supersedes the committed one before
// it), compacts committed transactional records like any other, keeps each
// marker while a batch of its transaction remains and for
// delete.retention.ms after the first pass that found none (its delete
// horizon, stamped into the batch), and drops the index entry of a removed
// ABORT marker, also across a reopen.
func TestCompactTransactions(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	l := openTestLog(t, dir, 0, cfg)
	appendKeyed(t, l, clock, -1, "a", "plain")        // 0
	appendKeyed(t, l, clock, 5, "a", "aborted")       // 1
	appendKeyed(t, l, clock, 6, "b", "committed-old") // 2
	appendKeyed(t, l, clock, 5, "c", "aborted")       // 3
	appendMarker(t, l, clock, 5, 1, false)            // 4
	appendKeyed(t, l, clock, 6, "b", "committed")     // 5
	appendMarker(t, l, clock, 6, 2, true)             // 6
	appendKeyed(t, l, clock, 5, "d", "committed")     // 7: producer 5's next transaction
	appendMarker(t, l, clock, 5, 7, true)             // 8
	for i := 0; len(l.Segments()) < 3; i++ {
		appendKeyed(t, l, clock, -1, "z", fmt.Sprint(i))
	}
	cleanableEnd := l.Segments()[len(l.Segments())-1].BaseOffset
	if cleanableEnd <= 8 {
		t.Fatalf("the transactions are not all sealed: active segment at %d", cleanableEnd)
	}
	compact := func(what string) CompactStats {
		t.Helper()
		stats, err := l.Compact(CompactOptions{Force: true, DeleteRetention: time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return stats
	}
	check := func(what, want string, wantAborted []AbortedTxn) {
		t.Helper()
		if got := logContents(t, l, 9); got != want {
			t.Fatalf("%s: log\n%s\nwant\n%s", what, got, want)
		}
		if got := l.AbortedTxns(0, l.EndOffset()); !reflect.DeepEqual(got, wantAborted) {
			t.Fatalf("%s: aborted transactions %+v, want %+v", what, got, wantAborted)
		}
	}
	entry := []AbortedTxn{{ProducerID: 5, FirstOffset: 1, LastOffset: 4, LastStableOffset: 5}}

	// Pass 1: the aborted records go, the markers stay (their data was
	// there when the pass started).
	stats := compact("first pass")
	if stats.AbortedRemoved != 2 || stats.MarkersRemoved != 0 {
		t.Fatalf("first pass: %+v", stats)
	}
	check("first pass", "0:a=plain 4:ABORT(5) 5:b=committed 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", entry)

	// Pass 2: the ABORT marker's data is gone: it gets its delete horizon,
	// delete.retention.ms from now.
	clock.Advance(30 * time.Minute)
	stats = compact("second pass")
	if stats.MarkersStamped != 1 || stats.MarkersRemoved != 0 {
		t.Fatalf("second pass: %+v", stats)
	}
	check("second pass", "0:a=plain 4:ABORT(5) 5:b=committed 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", entry)
	if horizon, ok := deleteHorizon(t, l, 4); !ok || horizon != clock.Now().Add(time.Hour).UnixMilli() {
		t.Fatalf("ABORT marker's delete horizon %d (%v), want now + delete.retention.ms (%d)", horizon, ok, clock.Now().Add(time.Hour).UnixMilli())
	}
	if _, ok := deleteHorizon(t, l, 6); ok {
		t.Fatal("COMMIT marker stamped while its records remain")
	}
	clock.Advance(59 * time.Minute)
	compact("before the horizon")
	check("before the horizon", "0:a=plain 4:ABORT(5) 5:b=committed 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", entry)

	// Pass 3, at the horizon: the ABORT marker and its index entry go; the
	// COMMIT markers stay while their records remain.
	clock.Advance(time.Minute)
	stats = compact("third pass")
	if stats.MarkersRemoved != 1 {
		t.Fatalf("third pass: %+v", stats)
	}
	check("third pass", "0:a=plain 5:b=committed 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", nil)

	// A newer value of b supersedes the committed one; the next pass
	// removes it and the one after, its marker.
	appendKeyed(t, l, clock, -1, "b", "newer")
	for n := len(l.Segments()); len(l.Segments()) == n; {
		appendKeyed(t, l, clock, -1, "y", "roll")
	}
	clock.Advance(2 * time.Hour)
	compact("fourth pass")
	check("fourth pass", "0:a=plain 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", nil)
	compact("fifth pass") // stamps COMMIT(6)'s horizon
	check("fifth pass", "0:a=plain 6:COMMIT(6) 7:d=committed 8:COMMIT(5)", nil)
	clock.Advance(time.Hour)
	compact("sixth pass")
	check("sixth pass", "0:a=plain 7:d=committed 8:COMMIT(5)", nil)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	check("reopened", "0:a=plain 7:d=committed 8:COMMIT(5)", nil)
}

// TestCompactTransactionsCrash: a crash at any step of the pass that
// removes an ABORT marker never leaves an aborted-transaction entry
// without its marker (a read_committed consumer would then skip the
// producer's later committed batches) nor loses the marker while its entry
// stays: Open finishes or rolls back the swap and prunes the index.
func TestCompactTransactionsCrash(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	l := openTestLog(t, dir, 0, cfg)
	appendKeyed(t, l, clock, 5, "a", "aborted")   // 0
	appendMarker(t, l, clock, 5, 0, false)        // 1
	appendKeyed(t, l, clock, 5, "b", "committed") // 2
	appendMarker(t, l, clock, 5, 2, true)         // 3
	for i := 0; len(l.Segments()) < 4; i++ {
		appendKeyed(t, l, clock, -1, fmt.Sprint("z", i%3), fmt.Sprint(i))
	}
	for range 2 { // removes the data, then stamps the ABORT marker's horizon
		if _, err := l.Compact(CompactOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	snapshots := t.TempDir()
	var steps []string
	hook := func(step string) {
		steps = append(steps, step)
		copyDir(t, dir, filepath.Join(snapshots, fmt.Sprintf("%03d", len(steps)-1)))
	}
	compactHook.Store(&hook)
	defer compactHook.Store(nil)
	stats, err := l.Compact(CompactOptions{Force: true})
	compactHook.Store(nil)
	if err != nil || stats.MarkersRemoved != 1 {
		t.Fatalf("second pass: %+v, %v", stats, err)
	}
	if got := logContents(t, l, 4); got != "2:b=committed 3:COMMIT(5)" {
		t.Fatalf("after the second pass: %s", got)
	}
	for i, step := range steps {
		recovered, err := Open(filepath.Join(snapshots, fmt.Sprintf("%03d", i)), 0, cfg)
		if err != nil {
			t.Fatalf("step %d (%s): open: %v", i, step, err)
		}
		contents := logContents(t, recovered, 4)
		aborted := recovered.AbortedTxns(0, recovered.EndOffset())
		hasMarker := strings.Contains(contents, "1:ABORT(5)")
		if hasMarker != (len(aborted) == 1) || len(aborted) > 1 {
			t.Fatalf("step %d (%s): log %q with aborted transactions %+v: an entry and its marker go together", i, step, contents, aborted)
		}
		recovered.Close()
	}
}
