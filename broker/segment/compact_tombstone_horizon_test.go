package segment

import (
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestCompactTombstoneDeleteHorizon: as Kafka's cleaner (KIP-534), the
// first pass that cleans a batch holding a tombstone keeps the tombstone
// and stamps the batch's delete horizon (now + delete.retention.ms:
// attribute bit 6, the base timestamp holding it, the records' timestamps
// and the max timestamp unchanged, the CRC recomputed); only a pass at or
// after the horizon removes it. So a consumer that read the value just
// before the first pass still sees the delete, however old the tombstone
// is when the cleaner first gets to it. The horizon survives a reopen,
// and time lookups keep using the max timestamp.
func TestCompactTombstoneDeleteHorizon(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	dir := t.TempDir()
	// One batch per segment (rolled by age).
	cfg := Config{SegmentAge: time.Minute, IndexIntervalBytes: 100, Now: clock.Now, Logger: logger}
	l := openTestLog(t, dir, 0, cfg)
	m := &compactModel{}
	ts := clock.Millis()
	m.appendRecords(t, l, recordbatch.None, []compactRecord{{key: []byte("k"), value: []byte("v"), timestamp: ts}}, -1) // 0
	clock.Advance(2 * time.Minute)
	m.appendRecords(t, l, recordbatch.Gzip, []compactRecord{ // 1, 2: the tombstone and a value
		{key: []byte("k"), timestamp: ts + 10},
		{key: []byte("j"), value: []byte("w"), timestamp: ts + 20},
	}, 7)
	clock.Advance(2 * time.Minute)
	m.appendRecords(t, l, recordbatch.None, []compactRecord{{key: []byte("z"), value: []byte("a"), timestamp: clock.Millis()}}, -1) // 3: active segment
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	const retention = time.Minute
	compact := func(what string) CompactStats {
		t.Helper()
		stats, err := l.Compact(CompactOptions{Force: true, DeleteRetention: retention})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return stats
	}
	// check compares the log with want and checks the tombstone batch:
	// a valid Kafka batch, stamped with horizon, codec, producer,
	// max timestamp and record timestamps kept, found by time.
	check := func(what string, want []compactRecord, horizon int64) {
		t.Helper()
		got, _ := readRecords(t, l)
		if problem := sameRecords(got, want); problem != "" {
			t.Fatalf("%s: %s: got %v", what, problem, got)
		}
		data, err := l.Read(1, 1, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		h, err := recordbatch.Validate(data, recordbatch.Limits{Compacted: true})
		if err != nil || h.BaseOffset != 1 || h.Size() != int64(len(data)) {
			t.Fatalf("%s: stamped batch does not validate: %+v %v", what, h, err)
		}
		if got, ok := h.DeleteHorizon(); !ok || got != horizon {
			t.Fatalf("%s: delete horizon %d (%v), want %d", what, got, ok, horizon)
		}
		if h.Codec() != recordbatch.Gzip || h.ProducerID != 7 || h.MaxTimestamp != ts+20 || h.LastOffsetDelta != 1 {
			t.Fatalf("%s: stamped header %+v", what, h)
		}
		for _, lookup := range []int64{ts + 5, ts + 20} {
			batch, found, err := l.FindTimestamp(lookup, 0)
			if err != nil || !found {
				t.Fatalf("%s: find timestamp %d: %v %v", what, lookup, found, err)
			}
			if h, _ := recordbatch.ParseHeader(batch); h.BaseOffset != 1 {
				t.Fatalf("%s: find timestamp %d gave the batch at %d, want 1", what, lookup, h.BaseOffset)
			}
		}
		for _, s := range l.Segments() {
			if s.BaseOffset <= 1 && 1 < s.EndOffset && s.MaxTimestamp != ts+20 {
				t.Fatalf("%s: segment %+v: max timestamp %d, want %d", what, s, s.MaxTimestamp, ts+20)
			}
		}
	}

	// The cleaner first gets to the tombstone an hour after it was
	// written, with delete.retention.ms a minute: the value goes, the
	// tombstone stays, stamped.
	clock.Advance(time.Hour)
	stats := compact("first pass")
	horizon := clock.Now().Add(retention).UnixMilli()
	if stats.RecordsRemoved != 1 || stats.TombstonesRemoved != 0 || stats.BatchesStamped != 1 {
		t.Fatalf("first pass: %+v", stats)
	}
	afterFirst := m.records[1:]
	check("first pass", afterFirst, horizon)

	// The stamp is on disk: a reopen keeps it; a pass before the horizon
	// neither removes the tombstone nor moves the horizon.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	check("reopened", afterFirst, horizon)
	clock.Advance(retention - time.Millisecond)
	if stats := compact("before the horizon"); stats.RecordsRemoved != 0 || stats.BatchesStamped != 0 {
		t.Fatalf("before the horizon: %+v", stats)
	}
	check("before the horizon", afterFirst, horizon)

	// At the horizon the tombstone goes; the batch keeps its other record
	// and its stamp (as Kafka's rebuild does).
	clock.Advance(time.Millisecond)
	stats = compact("at the horizon")
	if stats.RecordsRemoved != 1 || stats.TombstonesRemoved != 1 || stats.BatchesStamped != 0 {
		t.Fatalf("at the horizon: %+v", stats)
	}
	check("at the horizon", m.records[2:], horizon)
}
