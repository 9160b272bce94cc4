package recordbatch

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// FuzzValidate checks that Validate never panics, never modifies its input,
// and that every batch it accepts decodes — with Records, Iterate and,
// independently, franz-go — to exactly NumRecords records at offsets
// base..base+n-1. Each input is checked as is and with its batch length and
// CRC repaired, so that mutations reach the record framing instead of
// stopping at the CRC.
func FuzzValidate(f *testing.F) {
	f.Fuzz(func(t *testing.T, batch []byte) {
		checkValidateProperty(t, batch)
		if len(batch) >= HeaderSize {
			repaired := bytes.Clone(batch)
			binary.BigEndian.PutUint32(repaired[lengthPosition:], uint32(len(repaired)-LengthFieldEnd))
			recomputeCRC(repaired)
			checkValidateProperty(t, repaired)
		}
	})
}

func checkValidateProperty(t *testing.T, batch []byte) {
	t.Helper()
	original := bytes.Clone(batch)
	h, err := Validate(batch, Limits{MaxDecompressedBytes: 4 << 20, AllowControl: true})
	if !bytes.Equal(batch, original) {
		t.Fatal("Validate modified its input")
	}
	if err != nil {
		if ErrorCode(err) == kerr.UnknownServerError.Code {
			t.Fatalf("unclassified error: %v", err)
		}
		return
	}
	records, err := Records(batch)
	if err != nil {
		t.Fatalf("Validate accepted a batch Records cannot decode: %v", err)
	}
	if int32(len(records)) != h.NumRecords {
		t.Fatalf("header says %d records, Records decoded %d", h.NumRecords, len(records))
	}
	for i, record := range records {
		if record.Offset != h.BaseOffset+int64(i) {
			t.Fatalf("record %d has offset %d, want %d", i, record.Offset, h.BaseOffset+int64(i))
		}
	}
	visited := 0
	if err := Iterate(batch, func(offset, timestamp int64) bool {
		if offset != records[visited].Offset || timestamp != records[visited].Timestamp {
			t.Fatalf("Iterate record %d: offset %d timestamp %d, Records says %d and %d", visited, offset, timestamp, records[visited].Offset, records[visited].Timestamp)
		}
		visited++
		return true
	}); err != nil || visited != len(records) {
		t.Fatalf("Iterate visited %d of %d records: %v", visited, len(records), err)
	}
	_, franz := franzRecords(t, batch)
	if len(franz) != len(records) {
		t.Fatalf("franz-go decoded %d records, Records %d", len(franz), len(records))
	}
	for i, record := range franz {
		if record.OffsetDelta != int32(i) || !bytes.Equal(record.Key, records[i].Key) || !bytes.Equal(record.Value, records[i].Value) {
			t.Fatalf("franz-go record %d differs", i)
		}
	}
}

// FuzzSplit checks that Split never panics and that the spans it returns
// tile its input exactly, each one a batch whose length field agrees.
func FuzzSplit(f *testing.F) {
	f.Fuzz(func(t *testing.T, records []byte) {
		spans, err := Split(records)
		if err != nil {
			if ErrorCode(err) == kerr.UnknownServerError.Code {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		next := int32(0)
		for i, span := range spans {
			if span.Position != next || span.Length < HeaderSize {
				t.Fatalf("span %d = %+v after position %d", i, span, next)
			}
			length := binary.BigEndian.Uint32(records[span.Position+lengthPosition:])
			if int64(length)+LengthFieldEnd != int64(span.Length) {
				t.Fatalf("span %d length %d, batch length field %d", i, span.Length, length)
			}
			next += span.Length
		}
		if int(next) != len(records) {
			t.Fatalf("spans cover %d of %d bytes", next, len(records))
		}
	})
}

// TestSeedCorpus keeps the committed corpora in step with what
// seedBatches makes; run with -update-corpus to rewrite them.
func TestSeedCorpus(t *testing.T) {
	seeds := seedBatches(t)
	corpora := map[string]map[string][]byte{"FuzzValidate": seeds, "FuzzSplit": {
		"two-batches":   append(append([]byte{}, seeds["none-small"]...), seeds["gzip-small"]...),
		"one-batch":     seeds["zstd-small"],
		"trailing-byte": append(append([]byte{}, seeds["none-small"]...), 0),
		"truncated":     seeds["lz4-small"][:40],
	}}
	for target, seeds := range corpora {
		directory := filepath.Join("testdata", "fuzz", target)
		for name, batch := range seeds {
			path := filepath.Join(directory, name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(batch)))
			if *updateCorpus {
				if err := os.MkdirAll(directory, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing (run go test -run TestSeedCorpus -update-corpus): %v", path, err)
			}
		}
	}
}

// seedBatches returns valid batches for every codec and a few broken ones.
func seedBatches(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{}
	for _, codec := range codecCases {
		seeds[codec.name+"-small"] = mustBuild(t, BuildOptions{BaseOffset: 3, Codec: codec.codec, XerialSnappy: codec.xerial,
			Idempotent: true, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 5}, makeRecords(4, 24, 30))
		seeds[codec.name+"-one-record"] = mustBuild(t, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, []Record{{Timestamp: 1, Key: []byte("k"), Value: []byte("v"),
			Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}}})
	}
	seeds["none-log-append-time"] = mustBuild(t, BuildOptions{LogAppendTime: true}, makeRecords(3, 8, 31))
	seeds["control"] = mustBuild(t, BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: 2, BaseSequence: -1},
		[]Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}})

	valid := seeds["none-small"]
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-2] ^= 0x10
	seeds["broken-crc"] = flipped

	h, _ := ParseHeader(valid)
	h.NumRecords, h.LastOffsetDelta = h.NumRecords+1, h.LastOffsetDelta+1
	seeds["broken-count"] = Assemble(h, valid[HeaderSize:])

	records := makeRecords(3, 8, 32)
	seeds["broken-deltas"] = Assemble(headerFor(None, 3), encodeRaw(records, []int32{0, 2, 1}))
	seeds["broken-truncated-zstd"] = func() []byte {
		built := seeds["zstd-small"]
		h, _ := ParseHeader(built)
		return Assemble(h, built[HeaderSize:len(built)-3])
	}()
	return seeds
}
