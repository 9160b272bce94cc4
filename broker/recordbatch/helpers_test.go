package recordbatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// codecCase is one way to compress a batch.
type codecCase struct {
	name   string
	codec  Codec
	xerial bool
}

var codecCases = []codecCase{
	{"none", None, false},
	{"gzip", Gzip, false},
	{"snappy-raw", Snappy, false},
	{"snappy-xerial", Snappy, true},
	{"lz4", LZ4, false},
	{"zstd", Zstd, false},
}

// makeRecords returns count records with values of valueSize bytes: text
// that compresses about as well as JSON does, keys on every other record,
// a header on every third.
func makeRecords(count, valueSize int, seed uint64) []Record {
	random := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := []string{"order", "customer", "amount", "status", "shipped", "pending", "eur", "usd", "id", "\"", ":", ",", " "}
	records := make([]Record, count)
	base := int64(1_700_000_000_000)
	for i := range records {
		var value bytes.Buffer
		for value.Len() < valueSize {
			value.WriteString(words[random.IntN(len(words))])
			value.WriteString(fmt.Sprint(random.IntN(1000)))
		}
		records[i] = Record{Timestamp: base + int64(random.IntN(50)) - 10, Value: value.Bytes()[:valueSize]}
		if i%2 == 0 {
			records[i].Key = []byte(fmt.Sprintf("key-%d", i))
		}
		if i%3 == 0 {
			records[i].Headers = []RecordHeader{{Key: "trace", Value: []byte(fmt.Sprint(i))}, {Key: "null", Value: nil}}
		}
	}
	return records
}

// mustBuild builds a batch or fails the test.
func mustBuild(t testing.TB, opts BuildOptions, records []Record) []byte {
	t.Helper()
	batch, err := Build(opts, records)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return batch
}

// encodeRaw encodes records with explicit offset deltas, uncompressed: the
// way to make batches whose records lie.
func encodeRaw(records []Record, offsetDeltas []int32) []byte {
	var raw []byte
	for i, record := range records {
		raw = AppendRecord(raw, record, offsetDeltas[i], record.Timestamp-records[0].Timestamp)
	}
	return raw
}

// headerFor is the header Build would write for records, for Assemble.
func headerFor(codec Codec, count int32) Header {
	return Header{
		BaseOffset: 100, Magic: Magic, Attributes: int16(codec),
		LastOffsetDelta: count - 1, NumRecords: count,
		FirstTimestamp: 1000, MaxTimestamp: 1000,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}
}

// franzRecords decodes a batch with franz-go alone — kmsg for the framing,
// kgo's decompressor — as the independent reading of what a client sees.
func franzRecords(t testing.TB, batch []byte) (kmsg.RecordBatch, []kmsg.Record) {
	t.Helper()
	var parsed kmsg.RecordBatch
	if err := parsed.ReadFrom(batch); err != nil {
		t.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
	}
	raw, err := kgo.DefaultDecompressor().Decompress(parsed.Records, kgo.CompressionCodecType(parsed.Attributes&0x07))
	if err != nil {
		t.Fatalf("franz-go decompress: %v", err)
	}
	var records []kmsg.Record
	for len(raw) > 0 {
		length, n := binary.Varint(raw)
		if n <= 0 || int64(len(raw)-n) < length {
			t.Fatalf("franz-go: bad record length at record %d", len(records))
		}
		var record kmsg.Record
		if err := record.ReadFrom(raw[:n+int(length)]); err != nil {
			t.Fatalf("kmsg.Record.ReadFrom: %v", err)
		}
		records = append(records, record)
		raw = raw[n+int(length):]
	}
	return parsed, records
}

// equalRecords compares decoded records with what was built, offsets and
// timestamps included.
func equalRecords(t testing.TB, got, want []Record, baseOffset int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != baseOffset+int64(i) || g.Timestamp != w.Timestamp {
			t.Fatalf("record %d: offset %d timestamp %d, want %d and %d", i, g.Offset, g.Timestamp, baseOffset+int64(i), w.Timestamp)
		}
		if !bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) {
			t.Fatalf("record %d: key %q, want %q", i, g.Key, w.Key)
		}
		if !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
			t.Fatalf("record %d: value differs (%d bytes, want %d)", i, len(g.Value), len(w.Value))
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) || (g.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
				t.Fatalf("record %d header %d: %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// recomputeCRC fixes the CRC after a test edits covered bytes.
func recomputeCRC(batch []byte) {
	binary.BigEndian.PutUint32(batch[crcPosition:], checksum(batch))
}
