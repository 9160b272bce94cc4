package segment

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestGoldenTxnIndex pins the .txnindex entry layout (Kafka's): if it
// fails, the format changed; fix the code, not the expectation.
func TestGoldenTxnIndex(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, 0, smallConfig(t, newTestClock()))
	var m model
	m.append(t, l, makeBatch(3, 1000, 10, 1), makeBatch(2, 1000, 10, 2)) // offsets 0-4
	if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: 7, FirstOffset: 1, LastOffset: 4, LastStableOffset: 5}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "00000000000000000000.txnindex"))
	if err != nil {
		t.Fatal(err)
	}
	want := "0000" + "0000000000000007" + "0000000000000001" + "0000000000000004" + "0000000000000005"
	if hex.EncodeToString(got) != want {
		t.Fatalf("txnindex = %x, want %s", got, want)
	}
}

func TestAbortedTxnsQuery(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(t, newTestClock())
	l := openTestLog(t, dir, 0, cfg)
	var m model
	for i := range 10 {
		m.append(t, l, makeBatch(1, 1000, 10, byte(i))) // offsets 0-9
	}
	// Marker order differs from first-offset order: producer 2's
	// transaction started first but was aborted last.
	entries := []AbortedTxn{
		{ProducerID: 1, FirstOffset: 3, LastOffset: 5, LastStableOffset: 1},
		{ProducerID: 2, FirstOffset: 1, LastOffset: 8, LastStableOffset: 9},
	}
	for _, e := range entries {
		if err := l.AppendAbortedTxn(e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		from, upTo int64
		want       []AbortedTxn
	}{
		{0, 10, []AbortedTxn{entries[1], entries[0]}},
		{6, 10, []AbortedTxn{entries[1]}}, // producer 1's marker is below the fetch
		{0, 2, []AbortedTxn{entries[1]}},  // producer 1's transaction starts above
		{9, 10, nil},
	}
	for _, test := range tests {
		if got := l.AbortedTxns(test.from, test.upTo); !reflect.DeepEqual(got, test.want) {
			t.Errorf("AbortedTxns(%d, %d) = %+v, want %+v", test.from, test.upTo, got, test.want)
		}
	}
	// Survives a reopen; truncation below a marker drops its entry.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	if got := l.AbortedTxns(0, 10); !reflect.DeepEqual(got, []AbortedTxn{entries[1], entries[0]}) {
		t.Fatalf("after reopen: %+v", got)
	}
	if err := l.Truncate(7); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 10); !reflect.DeepEqual(got, []AbortedTxn{entries[0]}) {
		t.Fatalf("after truncating to 7: %+v", got)
	}
	if err := l.TruncateAbortedTxns(5); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 10); got != nil {
		t.Fatalf("after TruncateAbortedTxns(5): %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000000.txnindex")); !os.IsNotExist(err) {
		t.Fatalf("empty txnindex not removed: %v", err)
	}
}

// TestCompactionMergesAbortedTxns: segments merged by the cleaner keep
// their aborted-transaction entries (under the merged segment's name), and
// the cleaner stops at StableEnd.
func TestCompactionMergesAbortedTxns(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	l := openTestLog(t, dir, 0, cfg)
	var m compactModel
	for i := range 40 {
		m.appendRecords(t, l, recordbatch.None, []compactRecord{{key: []byte("k"), value: []byte{byte(i)}, timestamp: 1}}, -1)
	}
	segments := l.Segments()
	if len(segments) < 4 {
		t.Fatalf("only %d segments", len(segments))
	}
	var want []AbortedTxn
	for _, s := range segments[1:3] {
		e := AbortedTxn{ProducerID: s.BaseOffset, FirstOffset: s.BaseOffset, LastOffset: s.BaseOffset, LastStableOffset: s.BaseOffset + 1}
		if err := l.AppendAbortedTxn(e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	// Bounded at the third segment's start: only the first two are cleaned.
	stats, err := l.Compact(CompactOptions{Force: true, StableEnd: segments[2].BaseOffset})
	if err != nil || stats.CleanableEnd != segments[2].BaseOffset {
		t.Fatalf("bounded pass: %+v, %v", stats, err)
	}
	stats, err = l.Compact(CompactOptions{Force: true})
	if err != nil || stats.SegmentsMerged == 0 {
		t.Fatalf("merging pass: %+v, %v", stats, err)
	}
	if got := l.AbortedTxns(0, l.EndOffset()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after merging: %+v, want %+v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	if got := l.AbortedTxns(0, l.EndOffset()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening: %+v, want %+v", got, want)
	}
}
