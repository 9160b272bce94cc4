package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestBuildValidateRoundTrip(t *testing.T) {
	recordSets := []struct {
		name    string
		records []Record
	}{
		{"one empty record", []Record{{Timestamp: 5}}},
		{"null and empty fields", []Record{
			{Timestamp: 10, Key: nil, Value: nil},
			{Timestamp: 9, Key: []byte{}, Value: []byte{}},
			{Timestamp: 12, Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{{Key: "", Value: []byte{}}, {Key: "h", Value: nil}}},
		}},
		{"16 records of 1 KiB", makeRecords(16, 1024, 1)},
		{"1000 small records", makeRecords(1000, 20, 2)},
		{"values larger than the window", makeRecords(3, 100<<10, 3)},
	}
	for _, codec := range codecCases {
		for _, set := range recordSets {
			t.Run(codec.name+"/"+set.name, func(t *testing.T) {
				opts := BuildOptions{
					BaseOffset: 1234, PartitionLeaderEpoch: 7, Codec: codec.codec, XerialSnappy: codec.xerial,
					Idempotent: true, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 17,
				}
				batch := mustBuild(t, opts, set.records)
				h, err := Validate(batch, Limits{})
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				n := int32(len(set.records))
				if h.BaseOffset != 1234 || h.PartitionLeaderEpoch != 7 || h.Codec() != codec.codec || h.NumRecords != n ||
					h.LastOffsetDelta != n-1 || h.LastOffset() != 1234+int64(n)-1 || h.ProducerID != 42 || h.ProducerEpoch != 3 ||
					h.BaseSequence != 17 || h.LastSequence() != 17+n-1 || !h.HasProducerID() || h.LogAppendTime() ||
					h.IsControl() || h.IsTransactional() || h.Size() != int64(len(batch)) {
					t.Fatalf("header %+v does not match the build options", h)
				}
				got, err := Records(batch)
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				equalRecords(t, got, set.records, 1234)
				var visited int64
				if err := Iterate(batch, func(offset, timestamp int64) bool {
					if offset != 1234+visited || timestamp != set.records[visited].Timestamp {
						t.Fatalf("Iterate record %d: offset %d timestamp %d", visited, offset, timestamp)
					}
					visited++
					return true
				}); err != nil || visited != int64(n) {
					t.Fatalf("Iterate visited %d records: %v", visited, err)
				}

				// franz-go reads the same batch the same way.
				parsed, franz := franzRecords(t, batch)
				if parsed.FirstOffset != 1234 || parsed.NumRecords != n || uint32(parsed.CRC) != h.CRC || parsed.MaxTimestamp != h.MaxTimestamp ||
					parsed.FirstTimestamp != set.records[0].Timestamp || parsed.FirstSequence != 17 || parsed.ProducerID != 42 {
					t.Fatalf("kmsg header %+v disagrees with %+v", parsed, h)
				}
				if len(franz) != len(set.records) {
					t.Fatalf("franz-go decoded %d records, want %d", len(franz), n)
				}
				for i, record := range franz {
					if record.OffsetDelta != int32(i) || !bytes.Equal(record.Value, set.records[i].Value) ||
						parsed.FirstTimestamp+record.TimestampDelta64 != set.records[i].Timestamp {
						t.Fatalf("franz-go record %d differs", i)
					}
				}
			})
		}
	}
}

// TestValidateFranzBuiltBatches checks batches encoded by another
// implementation: kmsg's framing and kgo's compressor (raw snappy).
func TestValidateFranzBuiltBatches(t *testing.T) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		want  Codec
	}{
		{"none", kgo.NoCompression(), None},
		{"gzip", kgo.GzipCompression(), Gzip},
		{"snappy", kgo.SnappyCompression(), Snappy},
		{"lz4", kgo.Lz4Compression(), LZ4},
		{"zstd", kgo.ZstdCompression(), Zstd},
	}
	want := makeRecords(40, 300, 4)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			var raw []byte
			for i, record := range want {
				encoded := kmsg.Record{TimestampDelta64: record.Timestamp - want[0].Timestamp, OffsetDelta: int32(i), Key: record.Key, Value: record.Value}
				for _, header := range record.Headers {
					encoded.Headers = append(encoded.Headers, kmsg.Header{Key: header.Key, Value: header.Value})
				}
				body := encoded.AppendTo(nil)[1:] // drop the zero Length varint
				encoded.Length = int32(len(body))
				raw = encoded.AppendTo(raw)
			}
			payload, used := raw, kgo.CodecNone
			if c.want != None {
				compressor, err := kgo.DefaultCompressor(c.codec)
				if err != nil {
					t.Fatal(err)
				}
				var buffer bytes.Buffer
				payload, used = compressor.Compress(&buffer, raw)
			}
			if Codec(used) != c.want {
				t.Fatalf("kgo compressed with %v, want %v", used, c.want)
			}
			maxTimestamp := want[0].Timestamp
			for _, record := range want {
				maxTimestamp = max(maxTimestamp, record.Timestamp)
			}
			franz := kmsg.RecordBatch{
				FirstOffset: 0, Magic: 2, Attributes: int16(used), LastOffsetDelta: int32(len(want) - 1),
				FirstTimestamp: want[0].Timestamp, MaxTimestamp: maxTimestamp,
				ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(want)), Records: payload,
			}
			batch := franz.AppendTo(nil)
			binary.BigEndian.PutUint32(batch[lengthPosition:], uint32(len(batch)-LengthFieldEnd))
			recomputeCRC(batch)
			h, err := Validate(batch, Limits{})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Codec() != c.want || h.NumRecords != int32(len(want)) {
				t.Fatalf("header %+v", h)
			}
			got, err := Records(batch)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			equalRecords(t, got, want, 0)
		})
	}
}

func TestValidateRejects(t *testing.T) {
	records := makeRecords(5, 64, 5)
	uncompressed := func() []byte { return mustBuild(t, BuildOptions{BaseOffset: 100}, records) }
	// withHeader assembles records under a header edited by edit.
	withHeader := func(codec Codec, payload []byte, edit func(*Header)) []byte {
		h := headerFor(codec, int32(len(records)))
		edit(&h)
		return Assemble(h, payload)
	}
	deltas := func(d ...int32) []byte { return encodeRaw(records, d) }
	raw := deltas(0, 1, 2, 3, 4)
	rawSnappy := snappy.Encode(nil, raw)

	tests := []struct {
		name   string
		batch  []byte
		limits Limits
		want   error
		code   int16
	}{
		{"shorter than a header", uncompressed()[:HeaderSize-1], Limits{}, ErrCorrupt, 2},
		{"truncated by one byte", func() []byte { b := uncompressed(); return b[:len(b)-1] }(), Limits{}, ErrCorrupt, 2},
		{"batch length too long", func() []byte {
			b := uncompressed()
			binary.BigEndian.PutUint32(b[lengthPosition:], uint32(len(b)))
			return b
		}(), Limits{}, ErrCorrupt, 2},
		{"batch length shorter than a header", func() []byte {
			b := uncompressed()
			binary.BigEndian.PutUint32(b[lengthPosition:], 10)
			return b
		}(), Limits{}, ErrCorrupt, 2},
		{"negative batch length", func() []byte {
			b := uncompressed()
			binary.BigEndian.PutUint32(b[lengthPosition:], math.MaxUint32)
			return b
		}(), Limits{}, ErrCorrupt, 2},
		{"magic 1", func() []byte { b := uncompressed(); b[magicPosition] = 1; return b }(), Limits{}, ErrUnsupportedMagic, 87},
		{"magic 0", func() []byte { b := uncompressed(); b[magicPosition] = 0; return b }(), Limits{}, ErrUnsupportedMagic, 87},
		{"magic 3", func() []byte { b := uncompressed(); b[magicPosition] = 3; return b }(), Limits{}, ErrCorrupt, 2},
		{"over message.max.bytes", uncompressed(), Limits{MaxBatchBytes: int32(len(uncompressed()) - 1)}, ErrTooLarge, 10},
		{"CRC field flipped", func() []byte { b := uncompressed(); b[crcPosition] ^= 1; return b }(), Limits{}, ErrCorrupt, 2},
		{"record byte flipped", func() []byte { b := uncompressed(); b[len(b)-3] ^= 0x40; return b }(), Limits{}, ErrCorrupt, 2},
		{"attributes flipped", func() []byte { b := uncompressed(); b[attributesPosition+1] ^= 0x08; return b }(), Limits{}, ErrCorrupt, 2},
		{"codec 5", withHeader(None, raw, func(h *Header) { h.Attributes = 5 }), Limits{}, ErrUnsupportedCodec, 76},
		{"codec 7", withHeader(None, raw, func(h *Header) { h.Attributes = 7 }), Limits{}, ErrUnsupportedCodec, 76},
		{"record count zero", withHeader(None, raw, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 0, -1 }), Limits{}, ErrInvalidRecord, 87},
		{"record count not lastOffsetDelta+1", withHeader(None, raw, func(h *Header) { h.NumRecords = 4 }), Limits{}, ErrInvalidRecord, 87},
		{"record count lies low, valid CRC", withHeader(None, raw, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 4, 3 }), Limits{}, ErrInvalidRecord, 87},
		{"record count lies high, valid CRC", withHeader(None, raw, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 6, 5 }), Limits{}, ErrInvalidRecord, 87},
		{"record count lies high, compressed", withHeader(Snappy, rawSnappy, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 6, 5 }), Limits{}, ErrInvalidRecord, 87},
		{"record count lies low, compressed", withHeader(Snappy, rawSnappy, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 4, 3 }), Limits{}, ErrInvalidRecord, 87},
		{"offset deltas from 1", withHeader(None, deltas(1, 2, 3, 4, 5), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"offset deltas out of order", withHeader(None, deltas(0, 2, 1, 3, 4), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"offset delta repeated", withHeader(None, deltas(0, 1, 1, 3, 4), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"offset delta gap", withHeader(None, deltas(0, 1, 2, 3, 5), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"bytes left over", withHeader(None, append(append([]byte{}, raw...), 0, 0), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"bytes left over, compressed", withHeader(Snappy, snappy.Encode(nil, append(append([]byte{}, raw...), 1)), func(*Header) {}), Limits{}, ErrInvalidRecord, 87},
		{"last record truncated", withHeader(None, raw[:len(raw)-1], func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"last record truncated, compressed", withHeader(Snappy, snappy.Encode(nil, raw[:len(raw)-1]), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		// One record "abc": length 9 (zigzag 0x12), attributes, timestamp
		// delta, offset delta, null key, value length 3, "abc", no headers.
		{"valid hand-made record", withHeader(None, []byte{0x12, 0, 0, 0, 0x01, 0x06, 'a', 'b', 'c', 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, nil, 0},
		{"record length too long", withHeader(None, []byte{0x14, 0, 0, 0, 0x01, 0x06, 'a', 'b', 'c', 0, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"record length too short", withHeader(None, []byte{0x10, 0, 0, 0, 0x01, 0x06, 'a', 'b', 'c', 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"record length negative", withHeader(None, []byte{0x01, 0, 0, 0, 1, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"record length past the end", withHeader(None, []byte{0xfe, 0x01, 0, 0, 0, 1, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"varint overflow", withHeader(None, []byte{0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 1, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"varint too long", withHeader(None, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 1, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		// length 6: attributes, timestamp delta, offset delta, key length
		// -2, value length, header count.
		{"key length below -1", withHeader(None, []byte{0x0c, 0, 0, 0, 0x03, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"key length past the record", withHeader(None, []byte{0x0c, 0, 0, 0, 0x06, 1, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"null header key", withHeader(None, []byte{0x10, 0, 0, 0, 1, 1, 0x02, 0x01, 0x01}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"header count negative", withHeader(None, []byte{0x0c, 0, 0, 0, 1, 1, 0x01}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"header count too large", withHeader(None, []byte{0x0e, 0, 0, 0, 1, 1, 0x7e, 0}, func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1, 0 }), Limits{}, ErrCorrupt, 2},
		{"control batch from a client", mustBuild(t, BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: 1, BaseSequence: -1}, records[:1]), Limits{}, ErrInvalidRecord, 87},
		{"transactional without producer id", mustBuild(t, BuildOptions{Transactional: true}, records), Limits{}, ErrInvalidRecord, 87},
		{"idempotent without sequence", mustBuild(t, BuildOptions{Idempotent: true, ProducerID: 9, BaseSequence: -1}, records), Limits{}, ErrInvalidRecord, 87},
		{"null key on a compacted topic", uncompressed(), Limits{RequireKeys: true}, ErrInvalidRecord, 87},
		{"snappy garbage", withHeader(Snappy, []byte("not snappy at all"), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"snappy with S2 extensions", withHeader(Snappy, s2.Encode(nil, bytes.Repeat(raw, 20)), func(h *Header) {}), Limits{}, ErrCorrupt, 2},
		{"snappy length header lies huge", withHeader(Snappy, append([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, rawSnappy[1:]...), func(*Header) {}), Limits{}, ErrTooLarge, 10},
		{"snappy length header lies beyond expansion", withHeader(Snappy, append(binary.AppendUvarint(nil, 1<<20), rawSnappy[2:]...), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"xerial chunk length past the end", withHeader(Snappy, func() []byte {
			b := mustBuild(t, BuildOptions{Codec: Snappy, XerialSnappy: true}, records)[HeaderSize:]
			binary.BigEndian.PutUint32(b[xerialHeaderSize:], uint32(len(b)))
			return b
		}(), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"xerial truncated chunk length", withHeader(Snappy, append(mustBuild(t, BuildOptions{Codec: Snappy, XerialSnappy: true}, records)[HeaderSize:], 0, 0), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"gzip garbage", withHeader(Gzip, []byte("not gzip"), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"lz4 garbage", withHeader(LZ4, []byte("not lz4 at all"), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"zstd garbage", withHeader(Zstd, []byte("not zstd at all"), func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"empty compressed payload", withHeader(Gzip, nil, func(*Header) {}), Limits{}, ErrCorrupt, 2},
		{"decompression bomb", mustBuild(t, BuildOptions{Codec: Zstd}, []Record{{Value: make([]byte, 1<<20)}}), Limits{MaxDecompressedBytes: 64 << 10}, ErrTooLarge, 10},
		{"decompression bomb, snappy", mustBuild(t, BuildOptions{Codec: Snappy}, []Record{{Value: make([]byte, 1<<20)}}), Limits{MaxDecompressedBytes: 64 << 10}, ErrTooLarge, 10},
	}
	// Per codec: a truncated stream, a flipped byte inside it (CRC fixed
	// up), and bytes after its end.
	for _, codec := range codecCases[1:] {
		built := mustBuild(t, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, makeRecords(20, 200, 6))
		payload := built[HeaderSize:]
		h, _ := ParseHeader(built)
		reassemble := func(p []byte) []byte { return Assemble(h, p) }
		tests = append(tests,
			struct {
				name   string
				batch  []byte
				limits Limits
				want   error
				code   int16
			}{codec.name + " stream truncated", reassemble(payload[:len(payload)-5]), Limits{}, ErrCorrupt, 2},
			struct {
				name   string
				batch  []byte
				limits Limits
				want   error
				code   int16
			}{codec.name + " trailing bytes after the stream", reassemble(append(append([]byte{}, payload...), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)), Limits{}, ErrCorrupt, 2},
		)
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := Validate(test.batch, test.limits)
			if !errors.Is(err, test.want) || (test.want == nil) != (err == nil) {
				t.Fatalf("Validate: %v, want %v", err, test.want)
			}
			if code := ErrorCode(err); code != test.code {
				t.Fatalf("ErrorCode(%v) = %d, want %d", err, code, test.code)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	records := makeRecords(3, 10, 7)
	tests := []struct {
		name   string
		batch  []byte
		limits Limits
	}{
		{"control batch when allowed", mustBuild(t, BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: 1, BaseSequence: -1}, records[:1]), Limits{AllowControl: true}},
		{"exactly message.max.bytes", mustBuild(t, BuildOptions{}, records), Limits{MaxBatchBytes: int32(len(mustBuild(t, BuildOptions{}, records)))}},
		{"keys on a compacted topic", mustBuild(t, BuildOptions{}, []Record{{Key: []byte("a")}, {Key: []byte{}}}), Limits{RequireKeys: true}},
		{"unlimited decompression", mustBuild(t, BuildOptions{Codec: Zstd}, []Record{{Value: make([]byte, 1<<20)}}), Limits{MaxDecompressedBytes: -1}},
		{"client sets LogAppendTime", mustBuild(t, BuildOptions{LogAppendTime: true}, records), Limits{}},
		{"sequence about to wrap", mustBuild(t, BuildOptions{Idempotent: true, ProducerID: 1, BaseSequence: math.MaxInt32 - 1}, records), Limits{}},
		{"negative timestamp deltas", mustBuild(t, BuildOptions{}, []Record{{Timestamp: 100}, {Timestamp: -5}, {Timestamp: math.MaxInt64 / 2}}), Limits{}},
		{"gzip with two members", func() []byte {
			first, _ := Compress(Gzip, encodeRaw(records, []int32{0, 1, 2})[:0], false)
			second, _ := Compress(Gzip, encodeRaw(records, []int32{0, 1, 2}), false)
			h := headerFor(Gzip, 3)
			h.FirstTimestamp = records[0].Timestamp
			return Assemble(h, append(first, second...))
		}(), Limits{}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			h, err := Validate(test.batch, test.limits)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := Records(test.batch)
			if err != nil || int32(len(got)) != h.NumRecords {
				t.Fatalf("Records: %d records, %v", len(got), err)
			}
		})
	}
}

func TestLogAppendTime(t *testing.T) {
	for _, codec := range codecCases {
		t.Run(codec.name, func(t *testing.T) {
			records := makeRecords(10, 100, 8)
			batch := mustBuild(t, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, records)
			before, _ := ParseHeader(batch)
			const appendTime = 1_800_000_000_000
			SetLogAppendTime(batch, appendTime)
			SetBaseOffset(batch, 5000)
			SetPartitionLeaderEpoch(batch, 12)
			h, err := Validate(batch, Limits{})
			if err != nil {
				t.Fatalf("Validate after stamping: %v", err)
			}
			if !h.LogAppendTime() || h.MaxTimestamp != appendTime || h.FirstTimestamp != before.FirstTimestamp ||
				h.BaseOffset != 5000 || h.PartitionLeaderEpoch != 12 || h.Codec() != codec.codec {
				t.Fatalf("stamped header %+v", h)
			}
			if err := VerifyChecksum(batch); err != nil {
				t.Fatalf("VerifyChecksum: %v", err)
			}
			got, err := Records(batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, record := range got {
				if record.Timestamp != appendTime || record.Offset != 5000+int64(i) {
					t.Fatalf("record %d: offset %d timestamp %d", i, record.Offset, record.Timestamp)
				}
			}
			// kmsg agrees on the CRC and the timestamp type.
			parsed, _ := franzRecords(t, batch)
			if uint32(parsed.CRC) != checksum(batch) || parsed.Attributes&0x08 == 0 {
				t.Fatalf("kmsg sees CRC %#x attributes %#x", uint32(parsed.CRC), parsed.Attributes)
			}
		})
	}
}

func TestIterateStops(t *testing.T) {
	records := makeRecords(50, 100, 9)
	for _, codec := range codecCases {
		t.Run(codec.name, func(t *testing.T) {
			batch := mustBuild(t, BuildOptions{BaseOffset: 10, Codec: codec.codec, XerialSnappy: codec.xerial}, records)
			var seen []int64
			err := Iterate(batch, func(offset, _ int64) bool {
				seen = append(seen, offset)
				return offset < 12
			})
			if err != nil || len(seen) != 3 || seen[2] != 12 {
				t.Fatalf("Iterate saw %v: %v", seen, err)
			}
		})
	}
}

func TestVerifyChecksum(t *testing.T) {
	batch := mustBuild(t, BuildOptions{}, makeRecords(2, 10, 10))
	tests := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"valid", batch, nil},
		{"flipped", func() []byte { b := bytes.Clone(batch); b[len(b)-1] ^= 1; return b }(), ErrCorrupt},
		{"truncated", batch[:len(batch)-1], ErrCorrupt},
		{"magic 1", func() []byte { b := bytes.Clone(batch); b[magicPosition] = 1; return b }(), ErrUnsupportedMagic},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if err := VerifyChecksum(test.batch); !errors.Is(err, test.want) || (test.want == nil) != (err == nil) {
				t.Fatalf("VerifyChecksum: %v, want %v", err, test.want)
			}
		})
	}
}

func TestHeaderHelpers(t *testing.T) {
	sequences := []struct {
		name            string
		base, lastDelta int32
		want            int32
	}{
		{"no sequence", -1, 4, -1},
		{"plain", 10, 4, 14},
		{"ends at max", math.MaxInt32 - 4, 4, math.MaxInt32},
		{"wraps", math.MaxInt32 - 1, 4, 2},
		{"wraps from max", math.MaxInt32, 0, math.MaxInt32},
		{"wraps to zero", math.MaxInt32, 1, 0},
	}
	for _, test := range sequences {
		t.Run("LastSequence/"+test.name, func(t *testing.T) {
			if got := (Header{BaseSequence: test.base, LastOffsetDelta: test.lastDelta}).LastSequence(); got != test.want {
				t.Fatalf("LastSequence = %d, want %d", got, test.want)
			}
		})
	}
	names := map[Codec]string{None: "none", Gzip: "gzip", Snappy: "snappy", LZ4: "lz4", Zstd: "zstd", 6: "codec(6)"}
	for codec, want := range names {
		t.Run("String/"+want, func(t *testing.T) {
			if codec.String() != want {
				t.Fatalf("%d.String() = %q", codec, codec.String())
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int16
	}{
		{"nil", nil, 0},
		{"corrupt", ErrCorrupt, 2},
		{"invalid", ErrInvalidRecord, 87},
		{"too large", ErrTooLarge, 10},
		{"codec", ErrUnsupportedCodec, 76},
		{"old magic", ErrUnsupportedMagic, 87},
		{"wrapped", errors.Join(errors.New("context"), ErrTooLarge), 10},
		{"unknown", errors.New("boom"), -1},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if got := ErrorCode(test.err); got != test.want {
				t.Fatalf("ErrorCode = %d, want %d", got, test.want)
			}
		})
	}
	if !IsCorrupt(ErrCorrupt) || !IsInvalid(ErrInvalidRecord) || !IsTooLarge(ErrTooLarge) || IsCorrupt(ErrTooLarge) {
		t.Fatal("classification helpers disagree with the sentinels")
	}
}

func TestValidateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	batch := mustBuild(t, BuildOptions{}, makeRecords(16, 1024, 11))
	allocations := testing.AllocsPerRun(20, func() {
		if _, err := Validate(batch, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocations != 0 {
		t.Fatalf("Validate of an uncompressed batch allocates %.1f times", allocations)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name    string
		opts    BuildOptions
		records []Record
		want    error
	}{
		{"no records", BuildOptions{}, nil, ErrInvalidRecord},
		{"unknown codec", BuildOptions{Codec: 6}, []Record{{}}, ErrUnsupportedCodec},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if _, err := Build(test.opts, test.records); !errors.Is(err, test.want) {
				t.Fatalf("Build: %v, want %v", err, test.want)
			}
		})
	}
}

// TestValidateConcurrent runs the pooled decoders from several goroutines,
// for the race detector.
func TestValidateConcurrent(t *testing.T) {
	var batches [][]byte
	for _, codec := range codecCases {
		batches = append(batches, mustBuild(t, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, makeRecords(8, 512, 12)))
	}
	errs := make(chan error, 4)
	for worker := range 4 {
		go func() {
			var err error
			for i := range 10 * len(batches) {
				if _, err = Validate(batches[(i+worker)%len(batches)], Limits{}); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompactedBatches: batches as the log cleaner leaves them (offset gaps,
// fewer records than lastOffsetDelta+1, or none at all) decode with Records
// and Iterate, and are still refused from clients by Validate.
func TestCompactedBatches(t *testing.T) {
	all := makeRecords(5, 16, 5)
	kept := []Record{all[1], all[3]}
	sparse := Assemble(Header{
		BaseOffset: 100, Magic: Magic, LastOffsetDelta: 4, NumRecords: 2,
		FirstTimestamp: kept[0].Timestamp, MaxTimestamp: kept[1].Timestamp,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}, encodeRaw(kept, []int32{1, 3}))
	empty := Assemble(Header{BaseOffset: 100, Magic: Magic, LastOffsetDelta: 9, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, nil)

	records, err := Records(sparse)
	if err != nil {
		t.Fatalf("Records(sparse): %v", err)
	}
	if len(records) != 2 || records[0].Offset != 101 || records[1].Offset != 103 || !bytes.Equal(records[1].Value, all[3].Value) {
		t.Fatalf("Records(sparse) = %+v", records)
	}
	var offsets []int64
	if err := Iterate(sparse, func(o, _ int64) bool { offsets = append(offsets, o); return true }); err != nil || !slices.Equal(offsets, []int64{101, 103}) {
		t.Fatalf("Iterate(sparse) = %v, %v", offsets, err)
	}
	if records, err := Records(empty); err != nil || len(records) != 0 {
		t.Fatalf("Records(empty) = %v, %v", records, err)
	}
	for name, batch := range map[string][]byte{"sparse": sparse, "empty": empty} {
		if _, err := Validate(batch, Limits{}); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Validate(%s) = %v, want ErrInvalidRecord", name, err)
		}
	}
	for name, tc := range map[string]struct {
		count, last int32
		deltas      []int32
	}{
		"delta past lastOffsetDelta": {2, 2, []int32{1, 3}},
		"deltas out of order":        {2, 4, []int32{3, 1}},
		"more records than offsets":  {2, 0, []int32{0, 1}},
	} {
		batch := Assemble(Header{BaseOffset: 100, Magic: Magic, LastOffsetDelta: tc.last, NumRecords: tc.count,
			ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, encodeRaw(kept, tc.deltas))
		if _, err := Records(batch); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Records(%s) = %v, want ErrInvalidRecord", name, err)
		}
	}
}
