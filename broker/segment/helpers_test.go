package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/internal/testclock"
)

// testClock is an injectable clock.
type testClock = testclock.Clock

func newTestClock() *testClock {
	return testclock.New(time.UnixMilli(1_700_000_000_000))
}

// logBuffer collects slog output so tests can assert on it and print it on
// failure.
type logBuffer struct {
	mu     sync.Mutex // guards buffer
	buffer bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}

func newTestLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buffer := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log output:\n%s", buffer.String())
		}
	})
	return slog.New(slog.NewTextHandler(buffer, &slog.HandlerOptions{Level: slog.LevelDebug})), buffer
}

// makeBatch builds a valid record batch v2 with base offset 0: a real header
// and CRC-32C, and payloadSize arbitrary bytes derived from seed in place of
// records (this package never decodes records).
func makeBatch(records int32, maxTimestamp int64, payloadSize int, seed byte) []byte {
	length := BatchHeaderSize - batchLogOverhead + payloadSize
	batch := make([]byte, batchLogOverhead+length)
	binary.BigEndian.PutUint32(batch[batchLengthPosition:], uint32(length))
	batch[batchMagicPosition] = batchMagic
	binary.BigEndian.PutUint32(batch[batchLastOffsetDeltaPosition:], uint32(records-1))
	binary.BigEndian.PutUint64(batch[27:], uint64(maxTimestamp)) // firstTimestamp
	binary.BigEndian.PutUint64(batch[batchMaxTimestampPosition:], uint64(maxTimestamp))
	binary.BigEndian.PutUint64(batch[43:], ^uint64(0)) // producerId -1
	binary.BigEndian.PutUint16(batch[51:], 0xffff)     // producerEpoch -1
	binary.BigEndian.PutUint32(batch[53:], 0xffffffff) // baseSequence -1
	binary.BigEndian.PutUint32(batch[batchRecordCountPosition:], uint32(records))
	for i := BatchHeaderSize; i < len(batch); i++ {
		batch[i] = seed + byte(i)
	}
	binary.BigEndian.PutUint32(batch[batchCRCPosition:], crc32.Checksum(batch[batchCRCStart:], castagnoli))
	return batch
}

// appendRequest concatenates batches and describes them for Append.
func appendRequest(batches ...[]byte) ([]byte, []AppendBatch) {
	var records []byte
	descriptors := make([]AppendBatch, 0, len(batches))
	for _, batch := range batches {
		info, reason := decodeBatchHeader(batch)
		if reason != "" {
			panic(reason)
		}
		descriptors = append(descriptors, AppendBatch{
			Position:        int32(len(records)),
			Length:          int32(len(batch)),
			LastOffsetDelta: int32(info.lastOffset - info.baseOffset),
			MaxTimestamp:    info.maxTimestamp,
			Records:         info.records,
		})
		records = append(records, batch...)
	}
	return records, descriptors
}

// modelBatch is a batch as the log should hold it.
type modelBatch struct {
	baseOffset, lastOffset, maxTimestamp int64
	bytes                                []byte
}

// model is the expected content of a log: what was appended, in order.
type model struct {
	batches []modelBatch
}

// append appends batches to l in one call and records them.
func (m *model) append(t *testing.T, l *Log, batches ...[]byte) {
	t.Helper()
	records, descriptors := appendRequest(batches...)
	before := l.EndOffset()
	base, end, err := l.Append(records, descriptors)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if base != before {
		t.Fatalf("append got base offset %d, want %d", base, before)
	}
	for _, descriptor := range descriptors {
		data := records[descriptor.Position : descriptor.Position+descriptor.Length]
		info, _ := decodeBatchHeader(data)
		if info.baseOffset != base {
			t.Fatalf("batch stamped with %d, want %d", info.baseOffset, base)
		}
		m.batches = append(m.batches, modelBatch{info.baseOffset, info.lastOffset, info.maxTimestamp, bytes.Clone(data)})
		base = info.lastOffset + 1
	}
	if end != base {
		t.Fatalf("append returned end %d, want %d", end, base)
	}
}

// truncate drops the batches whose last offset is at least offset.
func (m *model) truncate(offset int64) {
	for i, batch := range m.batches {
		if batch.lastOffset >= offset {
			m.batches = m.batches[:i]
			return
		}
	}
}

func (m *model) end(start int64) int64 {
	if len(m.batches) == 0 {
		return start
	}
	return m.batches[len(m.batches)-1].lastOffset + 1
}

// expectedRead is the reference implementation of Read's result.
func (m *model) expectedRead(offset int64, maxBytes int32, upTo, end int64, minOneBatch bool) []byte {
	limit := min(upTo, end)
	var out []byte
	for _, batch := range m.batches {
		if batch.lastOffset < offset {
			continue
		}
		if batch.lastOffset >= limit {
			break
		}
		if int64(len(out))+int64(len(batch.bytes)) > int64(max(maxBytes, 0)) {
			if len(out) == 0 && minOneBatch {
				out = batch.bytes
			}
			break
		}
		out = append(out, batch.bytes...)
	}
	return out
}

// expectedTimestampBatch is the first batch at or above start with
// maxTimestamp >= timestamp.
func (m *model) expectedTimestampBatch(timestamp, start int64) []byte {
	for _, batch := range m.batches {
		if batch.lastOffset >= start && batch.maxTimestamp >= timestamp {
			return batch.bytes
		}
	}
	return nil
}

// expectedMaxTimestampBatch is the first batch with the largest timestamp.
func (m *model) expectedMaxTimestampBatch(start int64) []byte {
	var best []byte
	bestTimestamp := int64(-1)
	for _, batch := range m.batches {
		if batch.lastOffset >= start && batch.maxTimestamp > bestTimestamp {
			best, bestTimestamp = batch.bytes, batch.maxTimestamp
		}
	}
	return best
}

// verifyAll checks every readable offset and a sweep of timestamps against
// the model.
func (m *model) verifyAll(t *testing.T, l *Log) {
	t.Helper()
	start, end := l.StartOffset(), l.EndOffset()
	if want := m.end(start); end != want {
		t.Fatalf("end offset %d, want %d", end, want)
	}
	for offset := start; offset <= end; offset++ {
		got, err := l.Read(offset, 1<<20, end, true)
		if err != nil {
			t.Fatalf("read %d: %v", offset, err)
		}
		if want := m.expectedRead(offset, 1<<20, end, end, true); !bytes.Equal(got, want) {
			t.Fatalf("read %d: got %d bytes, want %d (%s)", offset, len(got), len(want), describeBatches(got))
		}
	}
	var timestamps []int64
	for _, batch := range m.batches {
		timestamps = append(timestamps, batch.maxTimestamp-1, batch.maxTimestamp, batch.maxTimestamp+1)
	}
	for _, timestamp := range timestamps {
		got, found, err := l.FindTimestamp(timestamp, 0)
		if err != nil {
			t.Fatalf("find timestamp %d: %v", timestamp, err)
		}
		want := m.expectedTimestampBatch(timestamp, start)
		if found != (want != nil) || !bytes.Equal(got, want) {
			t.Fatalf("find timestamp %d: got %s (found %v), want %s", timestamp, describeBatches(got), found, describeBatches(want))
		}
	}
	got, found, err := l.MaxTimestampBatch()
	if err != nil {
		t.Fatalf("max timestamp batch: %v", err)
	}
	if want := m.expectedMaxTimestampBatch(start); found != (want != nil) || !bytes.Equal(got, want) {
		t.Fatalf("max timestamp batch: got %s, want %s", describeBatches(got), describeBatches(want))
	}
}

// describeBatches renders the offsets of the batches in data.
func describeBatches(data []byte) string {
	var out bytes.Buffer
	out.WriteString("[")
	for len(data) >= BatchHeaderSize {
		info, reason := decodeBatchHeader(data)
		if reason != "" || info.size > int64(len(data)) {
			fmt.Fprintf(&out, " garbage(%s)", reason)
			break
		}
		fmt.Fprintf(&out, " %d-%d@%d", info.baseOffset, info.lastOffset, info.maxTimestamp)
		data = data[info.size:]
	}
	out.WriteString(" ]")
	return out.String()
}

// checkBatches verifies that data is whole batches with valid CRCs and dense
// offsets.
func checkBatches(data []byte) error {
	next := int64(-1)
	for position := 0; position < len(data); {
		if len(data)-position < BatchHeaderSize {
			return fmt.Errorf("%d trailing bytes", len(data)-position)
		}
		info, reason := decodeBatchHeader(data[position:])
		if reason != "" {
			return fmt.Errorf("at %d: %s", position, reason)
		}
		if int64(position)+info.size > int64(len(data)) {
			return fmt.Errorf("at %d: batch of %d bytes cut", position, info.size)
		}
		if problem := checkBatchCRC(data[position : int64(position)+info.size]); problem != "" {
			return fmt.Errorf("at %d: %s", position, problem)
		}
		if next >= 0 && info.baseOffset != next {
			return fmt.Errorf("at %d: base offset %d, want %d", position, info.baseOffset, next)
		}
		next = info.lastOffset + 1
		position += int(info.size)
	}
	return nil
}

// openTestLog opens a log and closes it when the test ends.
func openTestLog(t *testing.T, dir string, startOffset int64, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, startOffset, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// crash abandons l as a killed process would: no flush, no marker, the
// written bytes stay (they are in the page cache).
func crash(l *Log) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	segments := l.segments
	l.segments, l.closed = nil, true
	l.mu.Unlock()
	for _, s := range segments {
		s.release()
	}
}

// awaitRollSync waits for the background fsync of the segment sealed by
// the last roll, if one is pending, and publishes its outcome as its own
// goroutine does (which may have done so first: then it returns nil).
func awaitRollSync(l *Log) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.awaitRollSyncLocked()
}
