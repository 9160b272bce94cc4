package segment

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// compactRecord is one record as the model expects it.
type compactRecord struct {
	offset    int64
	timestamp int64
	key       []byte // nil: null key
	value     []byte // nil: tombstone
	batch     int64  // its batch's base offset (the model's; not read back)
}

func (r compactRecord) String() string {
	return fmt.Sprintf("%d@%d %q=%q", r.offset, r.timestamp, r.key, r.value)
}

// compactModel tracks what was appended to a log and the delete horizons
// the cleaner stamped.
type compactModel struct {
	records  []compactRecord
	codecs   map[int64]recordbatch.Codec // by batch base offset
	horizons map[int64]int64             // delete horizon (Unix ms) by batch base offset
}

var allCodecs = []recordbatch.Codec{recordbatch.None, recordbatch.Gzip, recordbatch.Snappy, recordbatch.LZ4, recordbatch.Zstd}

// appendRecords appends one batch built by recordbatch.Build.
func (m *compactModel) appendRecords(t *testing.T, l *Log, codec recordbatch.Codec, records []compactRecord, producer int64) {
	t.Helper()
	built := make([]recordbatch.Record, len(records))
	for i, r := range records {
		built[i] = recordbatch.Record{Key: r.key, Value: r.value, Timestamp: r.timestamp,
			Headers: []recordbatch.RecordHeader{{Key: "h", Value: []byte{byte(i)}}}}
	}
	opts := recordbatch.BuildOptions{Codec: codec}
	if producer >= 0 {
		opts.Idempotent, opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = true, producer, 3, int32(len(m.records))
	}
	batch, err := recordbatch.Build(opts, built)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	data, descriptors := appendRequest(batch)
	base, _, err := l.Append(data, descriptors)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if m.codecs == nil {
		m.codecs = map[int64]recordbatch.Codec{}
	}
	m.codecs[base] = codec
	for i, r := range records {
		r.offset, r.batch = base+int64(i), base
		m.records = append(m.records, r)
	}
}

// compact applies a pass that cleaned the offsets below cleanableEnd at
// now (Unix ms) with delete.retention.ms retention, and returns the records
// the log must hold after it: a keyed record goes when a later record has
// its key, a tombstone also once its batch's delete horizon is at or before
// now; a batch that keeps a tombstone and has no horizon yet gets now +
// retention (KIP-534: two passes remove a tombstone).
func (m *compactModel) compact(cleanableEnd, now int64, retention time.Duration) []compactRecord {
	latest := map[string]int64{}
	for _, r := range m.records {
		if r.key != nil {
			latest[string(r.key)] = r.offset
		}
	}
	if m.horizons == nil {
		m.horizons = map[int64]int64{}
	}
	var out []compactRecord
	stamp := map[int64]bool{}
	for _, r := range m.records {
		if r.offset < cleanableEnd && r.key != nil {
			if latest[string(r.key)] != r.offset {
				continue
			}
			if r.value == nil {
				horizon, stamped := m.horizons[r.batch]
				if stamped && horizon <= now {
					continue
				}
				stamp[r.batch] = !stamped
			}
		}
		out = append(out, r)
	}
	for batch, ok := range stamp {
		if ok {
			m.horizons[batch] = now + retention.Milliseconds()
		}
	}
	return out
}

// checkHorizons checks that every batch of l holding records carries the
// delete horizon the model stamped into it, or none.
func (m *compactModel) checkHorizons(t *testing.T, l *Log) {
	t.Helper()
	data, err := l.Read(l.StartOffset(), 1<<30, l.EndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		h, err := recordbatch.ParseHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		data = data[h.Size():]
		got, stamped := h.DeleteHorizon()
		want, ok := m.horizons[h.BaseOffset]
		if h.NumRecords > 0 && (stamped != ok || (ok && got != want)) {
			t.Fatalf("batch %d: delete horizon %d (%v), want %d (%v)", h.BaseOffset, got, stamped, want, ok)
		}
	}
}

// readRecords reads the whole log, checks batch framing, CRCs and offset
// order, and returns the records and the codec of every batch.
func readRecords(t *testing.T, l *Log) ([]compactRecord, map[int64]recordbatch.Codec) {
	t.Helper()
	var out []compactRecord
	codecs := map[int64]recordbatch.Codec{}
	offset, end := l.StartOffset(), l.EndOffset()
	previous := int64(-1)
	for offset < end {
		data, err := l.Read(offset, 1<<20, end, true)
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		if len(data) == 0 {
			t.Fatalf("read at %d (end %d): no data", offset, end)
		}
		for len(data) > 0 {
			h, err := recordbatch.ParseHeader(data)
			if err != nil {
				t.Fatalf("parse header: %v", err)
			}
			batch := data[:h.Size()]
			data = data[h.Size():]
			if err := recordbatch.VerifyChecksum(batch); err != nil {
				t.Fatalf("batch %d: %v", h.BaseOffset, err)
			}
			if h.BaseOffset <= previous {
				t.Fatalf("batch %d after offset %d", h.BaseOffset, previous)
			}
			if h.NumRecords > 0 {
				codecs[h.BaseOffset] = h.Codec()
			}
			_, records, err := decodeRecords(batch)
			if err != nil {
				t.Fatalf("batch %d: %v", h.BaseOffset, err)
			}
			if len(records) != int(h.NumRecords) {
				t.Fatalf("batch %d: %d records, header says %d", h.BaseOffset, len(records), h.NumRecords)
			}
			for _, r := range records {
				if r.Offset <= previous || r.Offset > h.LastOffset() {
					t.Fatalf("record offset %d after %d in batch [%d, %d]", r.Offset, previous, h.BaseOffset, h.LastOffset())
				}
				previous = r.Offset
				out = append(out, compactRecord{offset: r.Offset, timestamp: r.Timestamp, key: r.Key, value: r.Value})
			}
			previous = h.LastOffset()
			offset = h.LastOffset() + 1
		}
	}
	return out, codecs
}

// mixedSegment returns the index of the first of segments whose records
// in got are neither those in before (the old segment) nor those in after
// (the cleaned one), or -1 when every segment is one or the other.
func mixedSegment(segments []SegmentInfo, got, before, after []compactRecord) int {
	for j, s := range segments {
		inRange := func(records []compactRecord) []compactRecord {
			var out []compactRecord
			for _, r := range records {
				if r.offset >= s.BaseOffset && r.offset < s.EndOffset {
					out = append(out, r)
				}
			}
			return out
		}
		part := inRange(got)
		if sameRecords(part, inRange(before)) != "" && sameRecords(part, inRange(after)) != "" {
			return j
		}
	}
	return -1
}

func sameRecords(got, want []compactRecord) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.offset != w.offset || g.timestamp != w.timestamp || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) ||
			(g.key == nil) != (w.key == nil) || (g.value == nil) != (w.value == nil) {
			return fmt.Sprintf("record %d is %v, want %v", i, g, w)
		}
	}
	return ""
}

// fillLog appends batches of random keys, values and tombstones, one second
// apart, with a codec per batch from codecs.
func fillLog(t *testing.T, l *Log, clock *testClock, m *compactModel, rng *rand.Rand, batches, keys int, codecs []recordbatch.Codec) {
	t.Helper()
	for b := range batches {
		n := 1 + rng.IntN(5)
		records := make([]compactRecord, n)
		for i := range records {
			r := compactRecord{timestamp: clock.Millis() + int64(i), key: fmt.Appendf(nil, "key-%03d", rng.IntN(keys))}
			switch x := rng.IntN(100); {
			case x < 15: // tombstone
			case x < 18:
				r.key = nil
				r.value = fmt.Appendf(nil, "nokey-%d-%d", b, i)
			default:
				r.value = bytes.Repeat(fmt.Appendf(nil, "v%d-%d|", b, i), 1+rng.IntN(8))
			}
			records[i] = r
		}
		producer := int64(-1)
		if b%3 == 0 {
			producer = 7
		}
		m.appendRecords(t, l, codecs[rng.IntN(len(codecs))], records, producer)
		clock.Advance(time.Second)
	}
}

func TestCompactModel(t *testing.T) {
	tests := []struct {
		name            string
		codecs          []recordbatch.Codec
		lag             time.Duration
		deleteRetention time.Duration
	}{
		{"none", []recordbatch.Codec{recordbatch.None}, 0, 100 * time.Second},
		{"mixed codecs", allCodecs, 0, 30 * time.Second},
		{"young tombstones kept", []recordbatch.Codec{recordbatch.None, recordbatch.Snappy}, 0, time.Hour},
		{"old tombstones dropped", []recordbatch.Codec{recordbatch.None}, 0, 0},
		{"compaction lag", []recordbatch.Codec{recordbatch.None, recordbatch.Zstd}, 150 * time.Second, 0},
		{"lag beyond everything", []recordbatch.Codec{recordbatch.None}, time.Hour, 0},
	}
	for i, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			logger, _ := newTestLogger(t)
			cfg := Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger}
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			m := &compactModel{}
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			batches := 300
			if len(test.codecs) > 2 {
				batches = 150 // the lz4 writer of recordbatch.Build is slow under -race
			}
			fillLog(t, l, clock, m, rng, batches, 40, test.codecs)

			before := l.Segments()
			active := before[len(before)-1]
			activeBytes, err := os.ReadFile(active.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			cleanableEndAt := func(now time.Time) int64 {
				end := before[0].BaseOffset
				for _, s := range before[:len(before)-1] {
					if now.Sub(time.UnixMilli(s.MaxTimestamp)) < test.lag {
						break
					}
					end = s.EndOffset
				}
				return end
			}
			cleanableEnd := cleanableEndAt(clock.Now())

			stats, err := l.Compact(CompactOptions{MinCompactionLag: test.lag, DeleteRetention: test.deleteRetention, MinCleanableDirtyRatio: 0.5})
			if err != nil {
				t.Fatalf("compact: %v", err)
			}
			t.Logf("segments %d, cleanable end %d, stats %+v", len(before), cleanableEnd, stats)
			if cleanableEnd == before[0].BaseOffset {
				if !stats.Skipped {
					t.Fatalf("nothing cleanable, stats %+v", stats)
				}
			} else if stats.Skipped || stats.CleanableEnd != cleanableEnd || stats.RecordsRemoved == 0 || stats.BytesAfter >= stats.BytesBefore {
				t.Fatalf("stats %+v, want cleanable end %d and records removed", stats, cleanableEnd)
			}
			// The first pass keeps the latest tombstones, however old,
			// and stamps their batches' delete horizon.
			want := m.compact(cleanableEnd, clock.Millis(), test.deleteRetention)
			if stats.TombstonesRemoved != 0 {
				t.Fatalf("first pass removed tombstones: %+v", stats)
			}
			check := func(l *Log) {
				t.Helper()
				got, codecs := readRecords(t, l)
				if problem := sameRecords(got, want); problem != "" {
					t.Fatalf("after compaction: %s", problem)
				}
				m.checkHorizons(t, l)
				for base, codec := range codecs {
					if m.codecs[base] != codec {
						t.Fatalf("batch %d has codec %v, was %v", base, codec, m.codecs[base])
					}
				}
				after := l.Segments()
				if last := after[len(after)-1]; last.BaseOffset != active.BaseOffset || last.Size != active.Size {
					t.Fatalf("active segment changed: %+v, was %+v", last, active)
				}
				if data, err := os.ReadFile(active.LogPath); err != nil || !bytes.Equal(data, activeBytes) {
					t.Fatalf("active segment bytes changed (%v)", err)
				}
				// Merging only ever reduces the segment count.
				if len(after) > len(before) || l.StartOffset() != 0 || l.EndOffset() != m.records[len(m.records)-1].offset+1 {
					t.Fatalf("segments %d (was %d), offsets [%d, %d)", len(after), len(before), l.StartOffset(), l.EndOffset())
				}
				// A fetch at a removed offset returns the next kept batch.
				kept := map[int64]bool{}
				for _, r := range want {
					kept[r.offset] = true
				}
				for _, r := range m.records {
					if kept[r.offset] {
						continue
					}
					data, err := l.Read(r.offset, 1, l.EndOffset(), true)
					if err != nil {
						t.Fatalf("read removed %d: %v", r.offset, err)
					}
					if len(data) == 0 {
						continue // nothing kept after it in range
					}
					h, _ := recordbatch.ParseHeader(data)
					if h.LastOffset() < r.offset {
						t.Fatalf("read at removed %d returned batch [%d, %d]", r.offset, h.BaseOffset, h.LastOffset())
					}
					next := slices.IndexFunc(want, func(w compactRecord) bool { return w.offset >= r.offset })
					if next >= 0 && h.BaseOffset > want[next].offset {
						t.Fatalf("read at removed %d skipped kept record %d (batch at %d)", r.offset, want[next].offset, h.BaseOffset)
					}
				}
				// Timestamps still resolve.
				batch, found, err := l.MaxTimestampBatch()
				if err != nil || !found {
					t.Fatalf("max timestamp batch: %v %v", found, err)
				}
				if h, _ := recordbatch.ParseHeader(batch); h.MaxTimestamp != want[len(want)-1].timestamp && h.MaxTimestamp < want[len(want)-1].timestamp {
					t.Fatalf("max timestamp %d below the last record's %d", h.MaxTimestamp, want[len(want)-1].timestamp)
				}
				for _, r := range want[:min(len(want), 50)] {
					batch, found, err := l.FindTimestamp(r.timestamp, 0)
					if err != nil || !found {
						t.Fatalf("find timestamp %d: %v %v", r.timestamp, found, err)
					}
					if h, _ := recordbatch.ParseHeader(batch); h.MaxTimestamp < r.timestamp || h.BaseOffset > r.offset {
						t.Fatalf("find timestamp %d (record %d) gave batch at %d max %d", r.timestamp, r.offset, h.BaseOffset, h.MaxTimestamp)
					}
				}
			}
			check(l)

			// A second pass finds nothing dirty.
			if stats, err := l.Compact(CompactOptions{MinCompactionLag: test.lag, DeleteRetention: test.deleteRetention, MinCleanableDirtyRatio: 0.01}); err != nil || !stats.Skipped {
				t.Fatalf("second pass: %+v %v", stats, err)
			}
			// A forced one removes only the tombstones whose horizon is
			// now (delete.retention.ms 0) and merges the now small
			// cleaned segments.
			segmentsBefore := len(l.Segments())
			stats, err = l.Compact(CompactOptions{MinCompactionLag: test.lag, DeleteRetention: test.deleteRetention, Force: true})
			previous := len(want)
			want = m.compact(cleanableEnd, clock.Millis(), test.deleteRetention)
			if err != nil || stats.RecordsRemoved != int64(previous-len(want)) || stats.TombstonesRemoved != stats.RecordsRemoved ||
				(test.deleteRetention > 0 && stats.RecordsRemoved != 0) {
				t.Fatalf("forced pass: %+v %v, want %d tombstones removed", stats, err, previous-len(want))
			}
			t.Logf("forced pass: %d tombstones removed", stats.TombstonesRemoved)
			if segmentsAfter := len(l.Segments()); segmentsAfter != segmentsBefore-stats.SegmentsMerged || (stats.SegmentsRewritten > 2 && stats.SegmentsMerged == 0) {
				t.Fatalf("forced pass: %d segments before, %d after, stats %+v", segmentsBefore, segmentsAfter, stats)
			}
			check(l)

			// Reopen, cleanly and after a crash.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTestLog(t, dir, 0, cfg)
			check(l)
			crash(l)
			l = openTestLog(t, dir, 0, cfg)
			check(l)
			if stats, err := l.Compact(CompactOptions{MinCompactionLag: test.lag, DeleteRetention: test.deleteRetention, MinCleanableDirtyRatio: 0.01}); err != nil || !stats.Skipped {
				t.Fatalf("pass after reopen (cleaner offset checkpoint): %+v %v", stats, err)
			}

			// Past the horizons stamped (kept across the reopen), a
			// forced pass removes every tombstone they cover.
			clock.Advance(test.deleteRetention)
			cleanableEnd = cleanableEndAt(clock.Now())
			stats, err = l.Compact(CompactOptions{MinCompactionLag: test.lag, DeleteRetention: test.deleteRetention, Force: true})
			tombstones := 0
			for _, r := range want {
				if horizon, ok := m.horizons[r.batch]; ok && horizon <= clock.Millis() && r.key != nil && r.value == nil {
					tombstones++
				}
			}
			want = m.compact(cleanableEnd, clock.Millis(), test.deleteRetention)
			if err != nil || stats.TombstonesRemoved != int64(tombstones) {
				t.Fatalf("pass past the horizon: %+v %v, want %d tombstones removed", stats, err, tombstones)
			}
			t.Logf("past the horizon: %d tombstones removed", stats.TombstonesRemoved)
			check(l)
		})
	}
}

func TestCompactDirtyRatio(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	l := openTestLog(t, t.TempDir(), 0, Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger})
	m := &compactModel{}
	rng := rand.New(rand.NewPCG(1, 2))
	fillLog(t, l, clock, m, rng, 200, 20, []recordbatch.Codec{recordbatch.None})
	stats, err := l.Compact(CompactOptions{MinCleanableDirtyRatio: 0.5})
	if err != nil || stats.Skipped || stats.DirtyRatio != 1 {
		t.Fatalf("first pass: %+v %v", stats, err)
	}
	m.compact(stats.CleanableEnd, clock.Millis(), 0)
	// A little more: the dirty share is small.
	fillLog(t, l, clock, m, rng, 15, 20, []recordbatch.Codec{recordbatch.None})
	stats, err = l.Compact(CompactOptions{MinCleanableDirtyRatio: 0.9})
	if err != nil || !stats.Skipped || stats.DirtyRatio <= 0 || stats.DirtyRatio >= 0.9 {
		t.Fatalf("small dirty part: %+v %v", stats, err)
	}
	stats, err = l.Compact(CompactOptions{MinCleanableDirtyRatio: 0.9, Force: true})
	if err != nil || stats.Skipped {
		t.Fatalf("forced: %+v %v", stats, err)
	}
	got, _ := readRecords(t, l)
	if problem := sameRecords(got, m.compact(stats.CleanableEnd, clock.Millis(), 0)); problem != "" {
		t.Fatal(problem)
	}
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if !entry.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, entry.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, entry.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompactCrashRecovery copies the directory after every step of every
// segment swap, as a crash would leave it, and opens each copy: every
// segment holds either its old or its cleaned records, never a mix, and
// nothing the compaction keeps is lost.
func TestCompactCrashRecovery(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	cfg := Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger}
	dir := t.TempDir()
	l := openTestLog(t, dir, 0, cfg)
	m := &compactModel{}
	rng := rand.New(rand.NewPCG(3, 4))
	fillLog(t, l, clock, m, rng, 60, 10, []recordbatch.Codec{recordbatch.None, recordbatch.Snappy, recordbatch.Gzip})
	segments := l.Segments()
	before, _ := readRecords(t, l)

	snapshots := t.TempDir()
	var steps []string
	hook := func(step string) {
		name := fmt.Sprintf("%03d", len(steps))
		steps = append(steps, step)
		copyDir(t, dir, filepath.Join(snapshots, name))
	}
	compactHook.Store(&hook)
	defer compactHook.Store(nil)
	stats, err := l.Compact(CompactOptions{Force: true, DeleteRetention: time.Hour})
	compactHook.Store(nil)
	if err != nil || stats.SegmentsRewritten < 2 {
		t.Fatalf("compact: %+v %v", stats, err)
	}
	after, _ := readRecords(t, l)
	want := m.compact(stats.CleanableEnd, clock.Millis(), time.Hour)
	if problem := sameRecords(after, want); problem != "" {
		t.Fatal(problem)
	}
	sawCleaned, sawSwap := false, false
	for i, step := range steps {
		snapshot := filepath.Join(snapshots, fmt.Sprintf("%03d", i))
		entries, _ := os.ReadDir(snapshot)
		for _, entry := range entries {
			sawCleaned = sawCleaned || strings.HasSuffix(entry.Name(), cleanedFileSuffix)
			sawSwap = sawSwap || strings.HasSuffix(entry.Name(), swapFileSuffix)
		}
		recovered, err := Open(snapshot, 0, cfg)
		if err != nil {
			t.Fatalf("step %d (%s): open: %v", i, step, err)
		}
		got, _ := readRecords(t, recovered)
		if recovered.EndOffset() != l.EndOffset() {
			t.Fatalf("step %d (%s): end offset %d, want %d", i, step, recovered.EndOffset(), l.EndOffset())
		}
		if j := mixedSegment(segments, got, before, after); j >= 0 {
			t.Fatalf("step %d (%s): segment %d [%d, %d) is neither the old nor the cleaned one", i, step, j, segments[j].BaseOffset, segments[j].EndOffset)
		}
		leftovers, _ := os.ReadDir(snapshot)
		for _, entry := range leftovers {
			if strings.HasSuffix(entry.Name(), cleanedFileSuffix) || strings.HasSuffix(entry.Name(), swapFileSuffix) {
				t.Fatalf("step %d (%s): %s left after open", i, step, entry.Name())
			}
		}
		if err := recovered.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !sawCleaned || !sawSwap || len(steps) < 7 {
		t.Fatalf("steps %v: cleaned %v swap %v", steps, sawCleaned, sawSwap)
	}

	// A second pass merges the now small cleaned segments: a crash at any
	// step of a merge recovers to the same records, in fewer or the same
	// segments, never with a merged segment's offsets twice.
	snapshots, steps = t.TempDir(), nil
	compactHook.Store(&hook)
	stats, err = l.Compact(CompactOptions{Force: true, DeleteRetention: time.Hour})
	compactHook.Store(nil)
	if err != nil || stats.SegmentsMerged == 0 || stats.RecordsRemoved != 0 {
		t.Fatalf("merging pass: %+v %v", stats, err)
	}
	sawRemove := false
	for i, step := range steps {
		sawRemove = sawRemove || strings.HasPrefix(step, "remove ")
		recovered, err := Open(filepath.Join(snapshots, fmt.Sprintf("%03d", i)), 0, cfg)
		if err != nil {
			t.Fatalf("merge step %d (%s): open: %v", i, step, err)
		}
		got, _ := readRecords(t, recovered)
		if problem := sameRecords(got, after); problem != "" || recovered.EndOffset() != l.EndOffset() {
			t.Fatalf("merge step %d (%s): %s (end %d, want %d)", i, step, problem, recovered.EndOffset(), l.EndOffset())
		}
		infos := recovered.Segments()
		for j := 1; j < len(infos); j++ {
			if infos[j].BaseOffset < infos[j-1].EndOffset {
				t.Fatalf("merge step %d (%s): segment at %d overlaps [%d, %d)", i, step, infos[j].BaseOffset, infos[j-1].BaseOffset, infos[j-1].EndOffset)
			}
		}
		if err := recovered.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !sawRemove {
		t.Fatalf("merge steps %v: no merged segment removed", steps)
	}
}

// TestCompactConcurrent runs appends, reads and compactions at once (meant
// for -race): readers never fail and always see increasing offsets, and the
// final log holds the latest value of every key.
func TestCompactConcurrent(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	cfg := Config{SegmentBytes: 2000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger}
	l := openTestLog(t, t.TempDir(), 0, cfg)
	m := &compactModel{}
	rng := rand.New(rand.NewPCG(5, 6))
	fillLog(t, l, clock, m, rng, 50, 15, allCodecs)

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				offset, end := l.StartOffset(), l.EndOffset()
				previous := int64(-1)
				for offset < end {
					data, err := l.Read(offset, 4096, end, true)
					if err != nil {
						errs <- err
						return
					}
					if len(data) == 0 {
						errs <- fmt.Errorf("empty read at %d below %d", offset, end)
						return
					}
					for len(data) > 0 {
						h, err := recordbatch.ParseHeader(data)
						if err != nil {
							errs <- err
							return
						}
						if err := recordbatch.VerifyChecksum(data[:h.Size()]); err != nil {
							errs <- err
							return
						}
						// A batch may start below the offset asked for when a
						// compaction merged removed batches into a filler that
						// covers it; it must still end above what was read.
						if h.LastOffset() <= previous {
							errs <- fmt.Errorf("batch [%d, %d] after %d", h.BaseOffset, h.LastOffset(), previous)
							return
						}
						previous = h.LastOffset()
						data = data[h.Size():]
					}
					offset = previous + 1
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := l.Compact(CompactOptions{Force: true}); err != nil {
				errs <- err
				return
			}
		}
	}()
	// Appends in this goroutine (the model is not shared).
	fillLog(t, l, clock, m, rng, 150, 15, allCodecs)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Two passes at the same time with delete.retention.ms 0: the first
	// stamps the tombstones the concurrent passes left unstamped, the
	// second removes every latest tombstone, whatever those passes did.
	var stats CompactStats
	for range 2 {
		var err error
		if stats, err = l.Compact(CompactOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := readRecords(t, l)
	m.compact(stats.CleanableEnd, clock.Millis(), 0)
	if problem := sameRecords(got, m.compact(stats.CleanableEnd, clock.Millis(), 0)); problem != "" {
		t.Fatal(problem)
	}
}

// TestCompactTruncateDuringPass truncates the log while a cleaned copy is
// being built: the pass must drop its copies rather than swap in segments
// whose offset map saw records that are gone.
func TestCompactTruncateDuringPass(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	dir := t.TempDir()
	l := openTestLog(t, dir, 0, Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger})
	m := &compactModel{}
	rng := rand.New(rand.NewPCG(7, 8))
	fillLog(t, l, clock, m, rng, 80, 10, []recordbatch.Codec{recordbatch.None})
	segments := l.Segments()
	cut := segments[len(segments)-2].BaseOffset // inside the sealed part
	truncated := false
	hook := func(step string) {
		if step == "cleaned" && !truncated {
			truncated = true
			if err := l.Truncate(cut); err != nil {
				t.Errorf("truncate: %v", err)
			}
		}
	}
	compactHook.Store(&hook)
	defer compactHook.Store(nil)
	stats, err := l.Compact(CompactOptions{Force: true})
	if err != nil || stats.SegmentsRewritten != 0 || !truncated {
		t.Fatalf("compact: %+v %v (truncated %v)", stats, err, truncated)
	}
	var want []compactRecord
	for _, r := range m.records {
		if r.offset < cut {
			want = append(want, r)
		}
	}
	got, _ := readRecords(t, l)
	if problem := sameRecords(got, want); problem != "" {
		t.Fatal(problem)
	}
	entries, _ := os.ReadDir(dir)
	for _, entry := range entries {
		if strings.HasSuffix(entry.Name(), cleanedFileSuffix) || strings.HasSuffix(entry.Name(), swapFileSuffix) {
			t.Fatalf("left %s", entry.Name())
		}
	}
}

// TestCompactBatchRewrite checks one rebuilt batch field by field: kept
// records keep offsets, producer fields, codec and base offset; control
// batches and untouched batches stay byte for byte; a tombstone's batch is
// stamped with its delete horizon (only that changes) on the first pass
// and the tombstone goes on a pass past it; null keys stay.
func TestCompactBatchRewrite(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	l := openTestLog(t, t.TempDir(), 0, Config{SegmentAge: time.Minute, IndexIntervalBytes: 100, Now: clock.Now, Logger: logger})
	ts := clock.Millis()
	build := func(opts recordbatch.BuildOptions, records ...recordbatch.Record) []byte {
		batch, err := recordbatch.Build(opts, records)
		if err != nil {
			t.Fatal(err)
		}
		data, descriptors := appendRequest(batch)
		base, _, err := l.Append(data, descriptors)
		if err != nil {
			t.Fatal(err)
		}
		recordbatch.SetBaseOffset(batch, base)
		clock.Advance(2 * time.Minute) // the next append rolls
		return batch
	}
	kv := func(k, v string, dt int64) recordbatch.Record {
		r := recordbatch.Record{Timestamp: ts + dt}
		if k != "" {
			r.Key = []byte(k)
		}
		if v != "" {
			r.Value = []byte(v)
		}
		return r
	}
	build(recordbatch.BuildOptions{Codec: recordbatch.Gzip, Idempotent: true, ProducerID: 9, ProducerEpoch: 2, BaseSequence: 100},
		kv("k1", "a", 0), kv("k2", "b", 1), kv("k1", "c", 2))
	control := build(recordbatch.BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: 9, ProducerEpoch: 2}, kv("k1", "ctl", 3))
	b := build(recordbatch.BuildOptions{Codec: recordbatch.Zstd}, kv("k2", "", 4), kv("", "nokey", 5))
	build(recordbatch.BuildOptions{}, kv("k3", "x", 6)) // becomes the active segment's first batch
	if n := len(l.Segments()); n < 4 {
		t.Fatalf("%d segments, want one per batch", n)
	}
	readBatches := func() [][]byte {
		data, err := l.Read(0, 1<<20, l.EndOffset(), true)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for len(data) > 0 {
			h, _ := recordbatch.ParseHeader(data)
			out = append(out, data[:h.Size()])
			data = data[h.Size():]
		}
		return out
	}

	if _, err := l.Compact(CompactOptions{DeleteRetention: time.Hour, Force: true}); err != nil {
		t.Fatal(err)
	}
	batches := readBatches()
	if len(batches) != 4 || !bytes.Equal(batches[1], control) {
		t.Fatalf("control batch changed: %d batches", len(batches))
	}
	// The tombstone's batch: its header but the horizon (attribute bit 6,
	// firstTimestamp) and the CRC, its records, are the original's.
	stamped, err := recordbatch.Validate(batches[2], recordbatch.Limits{Compacted: true})
	if err != nil {
		t.Fatalf("stamped batch: %v", err)
	}
	original, _ := recordbatch.ParseHeader(b)
	wantStamped := original.WithDeleteHorizon(clock.Now().Add(time.Hour).UnixMilli())
	stamped.CRC, stamped.Length, wantStamped.CRC, wantStamped.Length = 0, 0, 0, 0
	if stamped != wantStamped {
		t.Fatalf("stamped header %+v, want %+v", stamped, wantStamped)
	}
	originalRecords, err := recordbatch.Records(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recordbatch.Records(batches[2]); err != nil || fmt.Sprint(got) != fmt.Sprint(originalRecords) {
		t.Fatalf("stamped batch records %+v (%v), want %+v", got, err, originalRecords)
	}
	h, records, err := decodeRecords(batches[0])
	if err != nil {
		t.Fatal(err)
	}
	want := recordbatch.Header{BaseOffset: 0, LastOffsetDelta: 2, ProducerID: 9, ProducerEpoch: 2, BaseSequence: 100, NumRecords: 1, FirstTimestamp: ts, MaxTimestamp: ts + 2}
	if h.BaseOffset != want.BaseOffset || h.LastOffsetDelta != want.LastOffsetDelta || h.ProducerID != want.ProducerID || h.ProducerEpoch != want.ProducerEpoch ||
		h.BaseSequence != want.BaseSequence || h.NumRecords != want.NumRecords || h.FirstTimestamp != want.FirstTimestamp || h.MaxTimestamp != want.MaxTimestamp ||
		h.Codec() != recordbatch.Gzip || recordbatch.VerifyChecksum(batches[0]) != nil {
		t.Fatalf("rebuilt header %+v (codec %v), want %+v gzip", h, h.Codec(), want)
	}
	if len(records) != 1 || records[0].Offset != 2 || string(records[0].Value) != "c" || records[0].Timestamp != ts+2 || len(records[0].Headers) != 0 {
		t.Fatalf("rebuilt records %+v", records)
	}

	clock.Advance(2 * time.Hour)
	if _, err := l.Compact(CompactOptions{DeleteRetention: time.Hour, Force: true}); err != nil {
		t.Fatal(err)
	}
	batches = readBatches()
	_, records, err = decodeRecords(batches[2])
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := recordbatch.ParseHeader(batches[2]); h.Codec() != recordbatch.Zstd || len(records) != 1 || records[0].Key != nil || string(records[0].Value) != "nokey" || records[0].Offset != 5 {
		t.Fatalf("old tombstone batch: codec %v records %+v", h.Codec(), records)
	}
	if !bytes.Equal(batches[1], control) {
		t.Fatal("control batch changed")
	}
}
