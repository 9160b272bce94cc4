package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

func smallConfig(t *testing.T, clock *testClock) Config {
	logger, _ := newTestLogger(t)
	return Config{
		SegmentBytes:       1000,
		IndexIntervalBytes: 150,
		RetentionAge:       -1,
		Logger:             logger,
		Now:                clock.Now,
	}
}

// fill appends count single-batch appends (and some multi-batch appends)
// with varied sizes, record counts and timestamps, some out of order.
func fill(t *testing.T, l *Log, m *model, clock *testClock, count int) {
	t.Helper()
	for i := range count {
		timestamp := clock.Millis() + int64(i*10)
		if i%7 == 3 {
			timestamp -= 500 // producer clocks are not monotonic
		}
		batch := makeBatch(int32(1+i%4), timestamp, 20+(i*37)%150, byte(i))
		if i%5 == 4 {
			m.append(t, l, batch, makeBatch(2, timestamp+3, 30, byte(i+100)))
			continue
		}
		m.append(t, l, batch)
	}
}

func TestAppendReadRoll(t *testing.T) {
	for _, intervalBytes := range []int32{1, 150, 4096} {
		t.Run("interval="+itoa(int64(intervalBytes)), func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			cfg.IndexIntervalBytes = intervalBytes
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			var m model
			fill(t, l, &m, clock, 120)
			segments := l.Segments()
			if len(segments) < 5 {
				t.Fatalf("%d segments, want several", len(segments))
			}
			for i, s := range segments {
				if s.Size > cfg.SegmentBytes {
					t.Errorf("segment %d has %d bytes, above %d", i, s.Size, cfg.SegmentBytes)
				}
				if i > 0 && s.BaseOffset != segments[i-1].EndOffset {
					t.Errorf("segment %d starts at %d, previous ends at %d", i, s.BaseOffset, segments[i-1].EndOffset)
				}
			}
			total := int64(0)
			for _, batch := range m.batches {
				total += int64(len(batch.bytes))
			}
			if l.Size() != total {
				t.Errorf("size %d, want %d", l.Size(), total)
			}
			m.verifyAll(t, l)

			// Restart after a clean close keeps everything.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTestLog(t, dir, 0, cfg)
			if _, err := os.Stat(filepath.Join(dir, cleanShutdownFileName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("clean shutdown marker still present after open: %v", err)
			}
			if got := l.Segments(); len(got) != len(segments) {
				t.Errorf("%d segments after restart, want %d", len(got), len(segments))
			}
			m.verifyAll(t, l)
			fill(t, l, &m, clock, 10)
			m.verifyAll(t, l)
		})
	}
}

func TestRollTriggers(t *testing.T) {
	tests := []struct {
		name     string
		config   func(*Config)
		between  func(*testClock)
		wantRoll bool
	}{
		{name: "under every limit", config: func(*Config) {}, wantRoll: false},
		{name: "size", config: func(c *Config) { c.SegmentBytes = 250 }, wantRoll: true},
		{name: "age not reached", config: func(c *Config) { c.SegmentAge = time.Hour }, between: func(c *testClock) { c.Advance(time.Hour) }, wantRoll: false},
		{name: "age", config: func(c *Config) { c.SegmentAge = time.Hour }, between: func(c *testClock) { c.Advance(time.Hour + time.Millisecond) }, wantRoll: true},
		{name: "index full", config: func(c *Config) { c.IndexIntervalBytes = 1; c.MaxIndexBytes = 12 }, wantRoll: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			test.config(&cfg)
			l := openTestLog(t, t.TempDir(), 0, cfg)
			var m model
			m.append(t, l, makeBatch(1, clock.Millis(), 39, 1)) // 100 bytes
			m.append(t, l, makeBatch(1, clock.Millis(), 39, 2)) // 200 bytes, one index entry with interval 1
			if test.between != nil {
				test.between(clock)
			}
			m.append(t, l, makeBatch(1, clock.Millis(), 39, 3))
			segments := l.Segments()
			if rolled := len(segments) == 2; rolled != test.wantRoll {
				t.Fatalf("rolled = %v (%d segments), want %v", rolled, len(segments), test.wantRoll)
			}
			if test.wantRoll && (segments[1].BaseOffset != 2 || segments[0].Active || !segments[1].Active) {
				t.Fatalf("segments after roll: %+v", segments)
			}
			m.verifyAll(t, l)
		})
	}
}

func TestReadSemantics(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 400
	l := openTestLog(t, t.TempDir(), 100, cfg)
	var m model
	// Offsets 100-102 (150 bytes), 103 (100), 104-107 (300), 108-109 (100) …
	m.append(t, l, makeBatch(3, 1, 89, 1))
	m.append(t, l, makeBatch(1, 2, 39, 2))
	m.append(t, l, makeBatch(4, 3, 239, 3))
	m.append(t, l, makeBatch(2, 4, 39, 4))
	m.append(t, l, makeBatch(1, 5, 39, 5), makeBatch(1, 6, 39, 6))
	end := l.EndOffset()
	if end != 112 {
		t.Fatalf("end offset %d, want 112", end)
	}
	tests := []struct {
		name        string
		offset      int64
		maxBytes    int32
		upTo        int64
		minOneBatch bool
		wantErr     error
		wantEmpty   bool
	}{
		{name: "everything", offset: 100, maxBytes: 1 << 20, upTo: end},
		{name: "offset inside a batch returns the whole batch", offset: 101, maxBytes: 1 << 20, upTo: end},
		{name: "maxBytes cuts at a batch boundary", offset: 100, maxBytes: 260, upTo: end},
		{name: "maxBytes exactly two batches", offset: 100, maxBytes: 250, upTo: end},
		{name: "first batch larger than maxBytes, minOneBatch", offset: 104, maxBytes: 10, upTo: end, minOneBatch: true},
		{name: "first batch larger than maxBytes", offset: 104, maxBytes: 10, upTo: end, wantEmpty: true},
		{name: "zero maxBytes, minOneBatch", offset: 100, maxBytes: 0, upTo: end, minOneBatch: true},
		{name: "upTo stops before a batch ending at or past it", offset: 100, maxBytes: 1 << 20, upTo: 106},
		{name: "upTo at a batch boundary", offset: 100, maxBytes: 1 << 20, upTo: 108},
		{name: "upTo inside the first batch", offset: 104, maxBytes: 1 << 20, upTo: 105, minOneBatch: true, wantEmpty: true},
		{name: "offset equals upTo", offset: 104, maxBytes: 1 << 20, upTo: 104, wantEmpty: true},
		{name: "offset equals end", offset: end, maxBytes: 1 << 20, upTo: end + 10, wantEmpty: true},
		{name: "upTo above end", offset: 108, maxBytes: 1 << 20, upTo: end + 10},
		{name: "across segments", offset: 103, maxBytes: 1 << 20, upTo: end},
		{name: "last offset", offset: end - 1, maxBytes: 1 << 20, upTo: end},
		{name: "below start", offset: 99, maxBytes: 1 << 20, upTo: end, wantErr: ErrOffsetOutOfRange},
		{name: "above end", offset: end + 1, maxBytes: 1 << 20, upTo: end + 5, wantErr: ErrOffsetOutOfRange},
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			got, err := l.Read(test.offset, test.maxBytes, test.upTo, test.minOneBatch)
			// The same read into lent buffers: the same bytes, in the one
			// buffer it returns; every other buffer given back.
			var bufs lender
			buffered, bufferedErr := l.ReadBuffered(&bufs, test.offset, test.maxBytes, test.upTo, test.minOneBatch)
			switch lent := bufs.lent(); {
			case !errors.Is(bufferedErr, test.wantErr) || (test.wantErr == nil && !errors.Is(bufferedErr, err)):
				t.Fatalf("ReadBuffered: err = %v, Read's %v", bufferedErr, err)
			case !bytes.Equal(buffered, got):
				t.Fatalf("ReadBuffered returned %s, Read %s", describeBatches(buffered), describeBatches(got))
			case len(buffered) == 0 && len(lent) != 0:
				t.Fatalf("ReadBuffered returned nothing and kept %d buffers", len(lent))
			case len(buffered) > 0 && (len(lent) != 1 || &lent[0][:1][0] != &buffered[0]):
				t.Fatalf("ReadBuffered kept %d buffers; want one, the result's", len(lent))
			}
			if test.wantErr != nil {
				if !errors.Is(err, test.wantErr) {
					t.Fatalf("err = %v, want %v", err, test.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := m.expectedRead(test.offset, test.maxBytes, test.upTo, end, test.minOneBatch)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %s, want %s", describeBatches(got), describeBatches(want))
			}
			if (len(got) == 0) != test.wantEmpty {
				t.Fatalf("got %s, want empty = %v", describeBatches(got), test.wantEmpty)
			}
			if err := checkBatches(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFindTimestampAcrossSegments(t *testing.T) {
	for _, intervalBytes := range []int32{1, 100, 4096} {
		t.Run("interval="+itoa(int64(intervalBytes)), func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			cfg.IndexIntervalBytes = intervalBytes
			dir := t.TempDir()
			l := openTestLog(t, dir, 0, cfg)
			var m model
			fill(t, l, &m, clock, 80)
			m.append(t, l, makeBatch(1, -1, 10, 9)) // no timestamp
			if len(l.Segments()) < 4 {
				t.Fatalf("want several segments, got %d", len(l.Segments()))
			}
			m.verifyAll(t, l) // FindTimestamp and MaxTimestampBatch against the model
			if _, found, err := l.FindTimestamp(clock.Millis()+1_000_000, 0); found || err != nil {
				t.Fatalf("timestamp after everything: found=%v err=%v", found, err)
			}
		})
	}
}

func TestEmptyLog(t *testing.T) {
	clock := newTestClock()
	l := openTestLog(t, t.TempDir(), 42, smallConfig(t, clock))
	if l.StartOffset() != 42 || l.EndOffset() != 42 {
		t.Fatalf("offsets [%d, %d), want [42, 42)", l.StartOffset(), l.EndOffset())
	}
	if data, err := l.Read(42, 100, 42, true); err != nil || len(data) != 0 {
		t.Fatalf("read at end: %d bytes, %v", len(data), err)
	}
	if _, found, err := l.FindTimestamp(0, 0); found || err != nil {
		t.Fatalf("find timestamp: found=%v err=%v", found, err)
	}
	if _, found, err := l.MaxTimestampBatch(); found || err != nil {
		t.Fatalf("max timestamp batch: found=%v err=%v", found, err)
	}
	called := false
	if err := l.Scan(0, func(recordbatch.Header) error { called = true; return nil }); err != nil || called {
		t.Fatalf("scan: called=%v err=%v", called, err)
	}
	var m model
	m.append(t, l, makeBatch(2, 5, 10, 1))
	if m.batches[0].baseOffset != 42 {
		t.Fatalf("first offset %d, want 42", m.batches[0].baseOffset)
	}
}

func TestScan(t *testing.T) {
	clock := newTestClock()
	l := openTestLog(t, t.TempDir(), 0, smallConfig(t, clock))
	var m model
	fill(t, l, &m, clock, 60)
	for _, from := range []int64{0, 1, 37, m.batches[len(m.batches)-1].baseOffset, l.EndOffset()} {
		var got []recordbatch.Header
		err := l.Scan(from, func(h recordbatch.Header) error {
			got = append(got, h)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []recordbatch.Header
		for _, batch := range m.batches {
			if batch.lastOffset >= from {
				h, err := recordbatch.ParseHeader(batch.bytes[:BatchHeaderSize])
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, h)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("from %d: %d headers, want %d", from, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("from %d: header %d is %+v, want %+v", from, i, got[i], want[i])
			}
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := l.Scan(0, func(recordbatch.Header) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("scan stopping: err=%v calls=%d", err, calls)
	}
}

func TestTruncate(t *testing.T) {
	// The log: batches of 2 offsets each, 100 bytes, 4 per segment
	// (SegmentBytes 400): segments at 0, 8, 16, 24; end 30.
	tests := []struct {
		name    string
		offset  int64
		wantEnd int64
	}{
		{name: "at end is a no-op", offset: 30, wantEnd: 30},
		{name: "above end is a no-op", offset: 99, wantEnd: 30},
		{name: "batch boundary in the active segment", offset: 26, wantEnd: 26},
		{name: "inside a batch drops the whole batch", offset: 27, wantEnd: 26},
		{name: "active segment base", offset: 24, wantEnd: 24},
		{name: "inside an earlier segment", offset: 11, wantEnd: 10},
		{name: "first segment base", offset: 0, wantEnd: 0},
	}
	for _, test := range tests {
		for _, restart := range []string{"close", "crash"} {
			t.Run(test.name+"/"+restart, func(t *testing.T) {
				clock := newTestClock()
				cfg := smallConfig(t, clock)
				cfg.SegmentBytes = 400
				cfg.IndexIntervalBytes = 1
				dir := t.TempDir()
				l := openTestLog(t, dir, 0, cfg)
				var m model
				for i := range 15 {
					m.append(t, l, makeBatch(2, int64(1000+i), 39, byte(i)))
				}
				if err := l.Truncate(test.offset); err != nil {
					t.Fatal(err)
				}
				m.truncate(test.offset)
				if l.EndOffset() != test.wantEnd {
					t.Fatalf("end %d, want %d", l.EndOffset(), test.wantEnd)
				}
				m.verifyAll(t, l)
				m.append(t, l, makeBatch(3, 5000, 50, 77))
				m.verifyAll(t, l)
				if restart == "close" {
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					crash(l)
				}
				l = openTestLog(t, dir, 0, cfg)
				m.verifyAll(t, l)
				m.append(t, l, makeBatch(1, 6000, 10, 78))
				m.verifyAll(t, l)
			})
		}
	}
}

func TestTruncateBelowFirstSegment(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, 100, smallConfig(t, clock))
	var m model
	m.append(t, l, makeBatch(5, 1, 10, 1))
	if err := l.Truncate(50); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 50 || l.EndOffset() != 50 {
		t.Fatalf("offsets [%d, %d), want [50, 50)", l.StartOffset(), l.EndOffset())
	}
	m = model{}
	m.append(t, l, makeBatch(1, 2, 10, 2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, smallConfig(t, clock))
	if l.StartOffset() != 50 {
		t.Fatalf("start %d after restart, want 50", l.StartOffset())
	}
	m.verifyAll(t, l)
}

func TestFlushPolicy(t *testing.T) {
	clock := newTestClock()
	tests := []struct {
		name        string
		config      func(*Config)
		wantDirty   []bool // after each of 3 appends of 2 records
		flushIfDue  bool
		advanceEach time.Duration
	}{
		{name: "never by default", config: func(*Config) {}, wantDirty: []bool{true, true, true}},
		{name: "by message count", config: func(c *Config) { c.FlushMessages = 4 }, wantDirty: []bool{true, false, true}},
		{name: "by interval on append", config: func(c *Config) { c.FlushInterval = time.Second }, advanceEach: 600 * time.Millisecond, wantDirty: []bool{true, true, false}},
		{name: "by interval with FlushIfDue", config: func(c *Config) { c.FlushInterval = time.Second }, advanceEach: 1500 * time.Millisecond, flushIfDue: true, wantDirty: []bool{false, false, false}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			cfg := smallConfig(t, clock)
			test.config(&cfg)
			l := openTestLog(t, t.TempDir(), 0, cfg)
			var m model
			for i, want := range test.wantDirty {
				m.append(t, l, makeBatch(2, 1, 10, byte(i)))
				clock.Advance(test.advanceEach)
				if test.flushIfDue {
					if err := l.FlushIfDue(); err != nil {
						t.Fatal(err)
					}
				}
				l.appendMu.Lock()
				dirty := l.segments[len(l.segments)-1].dirty
				l.appendMu.Unlock()
				if dirty != want {
					t.Fatalf("after append %d: dirty = %v, want %v", i, dirty, want)
				}
			}
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	cfg.SegmentBytes = 300
	l := openTestLog(t, t.TempDir(), 0, cfg)
	batch := makeBatch(2, 1, 20, 1)
	valid := AppendBatch{Position: 0, Length: int32(len(batch)), LastOffsetDelta: 1, MaxTimestamp: 1, Records: 2}
	tests := []struct {
		name    string
		records []byte
		batches []AppendBatch
		want    error
	}{
		{name: "no batches", records: batch, want: ErrInvalidAppend},
		{name: "length mismatch", records: batch, batches: []AppendBatch{{Length: valid.Length - 1, LastOffsetDelta: 1}}, want: ErrInvalidAppend},
		{name: "delta mismatch", records: batch, batches: []AppendBatch{{Length: valid.Length, LastOffsetDelta: 5}}, want: ErrInvalidAppend},
		{name: "bytes left over", records: append(bytes.Clone(batch), 0), batches: []AppendBatch{valid}, want: ErrInvalidAppend},
		{name: "gap between batches", records: append(bytes.Clone(batch), batch...), batches: []AppendBatch{valid, {Position: valid.Length + 1, Length: valid.Length, LastOffsetDelta: 1}}, want: ErrInvalidAppend},
		{name: "larger than a segment", records: makeBatch(1, 1, 400, 1), batches: []AppendBatch{{Length: 461}}, want: ErrAppendTooLarge},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if _, _, err := l.Append(test.records, test.batches); !errors.Is(err, test.want) {
				t.Fatalf("err = %v, want %v", err, test.want)
			}
			if l.EndOffset() != 0 || l.Size() != 0 {
				t.Fatalf("a refused append changed the log: end %d, size %d", l.EndOffset(), l.Size())
			}
		})
	}
}

func TestClosedAndDeleted(t *testing.T) {
	clock := newTestClock()
	dir := filepath.Join(t.TempDir(), "topic-0")
	l := openTestLog(t, dir, 0, smallConfig(t, clock))
	var m model
	m.append(t, l, makeBatch(1, 1, 10, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	records, batches := appendRequest(makeBatch(1, 1, 10, 2))
	if _, _, err := l.Append(records, batches); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 100, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	l = openTestLog(t, dir, 0, smallConfig(t, clock))
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		config Config
		valid  bool
	}{
		{name: "zero value", config: Config{}, valid: true},
		{name: "unlimited retention", config: Config{RetentionAge: -1, RetentionBytes: -1}, valid: true},
		{name: "negative segment bytes", config: Config{SegmentBytes: -1}},
		{name: "segment bytes above int32", config: Config{SegmentBytes: 1 << 31}},
		{name: "negative segment age", config: Config{SegmentAge: -time.Second}},
		{name: "negative index interval", config: Config{IndexIntervalBytes: -1}},
		{name: "index smaller than an entry", config: Config{MaxIndexBytes: 11}},
		{name: "negative flush messages", config: Config{FlushMessages: -1}},
		{name: "negative flush interval", config: Config{FlushInterval: -1}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			err := test.config.Validate()
			if (err == nil) != test.valid {
				t.Fatalf("Validate() = %v, want valid = %v", err, test.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
	defaults := Config{}.withDefaults()
	if defaults.SegmentBytes != DefaultSegmentBytes || defaults.RetentionAge != DefaultRetentionAge || defaults.RetentionBytes != -1 ||
		defaults.IndexIntervalBytes != DefaultIndexIntervalBytes || defaults.MaxIndexBytes != DefaultMaxIndexBytes || defaults.Now == nil || defaults.Logger == nil {
		t.Fatalf("defaults: %+v", defaults)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// lender is a Buffers that tracks what it lent and overwrites what is
// given back, so that a read returning bytes of a buffer it gave back
// shows wrong bytes.
type lender struct {
	out [][]byte
}

func (b *lender) Get(n int) []byte {
	buf := make([]byte, 0, n+n/3) // room to spare, as a size class has
	b.out = append(b.out, buf)
	return buf
}

func (b *lender) Put(buf []byte) {
	for i, o := range b.out {
		if cap(o) == cap(buf) && &o[:1][0] == &buf[:1][0] {
			b.out = append(b.out[:i], b.out[i+1:]...)
			for j := range buf[:cap(buf)] {
				buf[:cap(buf)][j] = 0xA5
			}
			return
		}
	}
	panic("Put of a buffer not lent, or given back twice")
}

// lent are the buffers lent and not given back.
func (b *lender) lent() [][]byte { return b.out }
