package segment

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The byte formats below are part of the on-disk format. If one of these
// tests fails, the format changed: that breaks existing data directories and
// Kafka's tools, so fix the code, not the expectation.

func TestGoldenIndexFiles(t *testing.T) {
	// Four 100-byte batches at base offset 1000 (the log starts there):
	// offsets 1000-1001 ts 1000, 1002-1003 ts 3000, 1004-1005 ts 2000,
	// 1006-1008 ts 4000.
	tests := []struct {
		name          string
		intervalBytes int32
		wantIndex     string // hex, entries: relative last offset, position
		wantTimeIndex string // hex, entries: timestamp, relative offset
	}{
		{
			name:          "entry per batch",
			intervalBytes: 1,
			wantIndex: "00000003" + "00000064" + // batch 1002-1003 at 100
				"00000005" + "000000c8" + // batch 1004-1005 at 200
				"00000008" + "0000012c", // batch 1006-1008 at 300
			wantTimeIndex: "0000000000000bb8" + "00000003" + // 3000 at 1003
				"0000000000000fa0" + "00000008", // 4000 at 1008
		},
		{
			name:          "sparse, with the final entry appended on close",
			intervalBytes: 150,
			wantIndex:     "00000005" + "000000c8", // batch 1004-1005 at 200
			wantTimeIndex: "0000000000000bb8" + "00000003" + // 3000 at 1003 (written with the offset entry)
				"0000000000000fa0" + "00000008", // 4000 at 1008 (largest timestamp, on close)
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			cfg.IndexIntervalBytes = test.intervalBytes
			dir := t.TempDir()
			l := openTestLog(t, dir, 1000, cfg)
			var m model
			for i, batch := range []struct {
				records   int32
				timestamp int64
			}{{2, 1000}, {2, 3000}, {2, 2000}, {3, 4000}} {
				m.append(t, l, makeBatch(batch.records, batch.timestamp, 39, byte(i)))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, file := range []struct{ name, want string }{
				{"00000000000000001000.index", test.wantIndex},
				{"00000000000000001000.timeindex", test.wantTimeIndex},
			} {
				got, err := os.ReadFile(filepath.Join(dir, file.name))
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(got) != file.want {
					t.Errorf("%s:\n got %x\nwant %s", file.name, got, file.want)
				}
			}
			// The .log holds the appended bytes with only the base offsets
			// stamped.
			logBytes, err := os.ReadFile(filepath.Join(dir, "00000000000000001000.log"))
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for i, batch := range m.batches {
				if got := int64(binary.BigEndian.Uint64(batch.bytes)); got != []int64{1000, 1002, 1004, 1006}[i] {
					t.Errorf("batch %d stamped %d", i, got)
				}
				want = append(want, batch.bytes...)
			}
			if !bytes.Equal(logBytes, want) {
				t.Errorf(".log differs from the appended batches")
			}
		})
	}
}

func TestGoldenCheckpoints(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{
			name: "log start offset",
			got:  encodeCheckpoint(logStartOffsetKey, "1234"),
			want: "version: 0\nlog_start_offset: 1234\ncrc32c: 1c21bf17\n",
		},
		{
			name: "clean shutdown",
			got:  encodeCheckpoint(logEndOffsetKey, "5678"),
			want: "version: 0\nlog_end_offset: 5678\ncrc32c: ed0c018b\n",
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if string(test.got) != test.want {
				t.Fatalf("got %q, want %q", test.got, test.want)
			}
			key, _, _ := strings.Cut(strings.Split(test.want, "\n")[1], ":")
			value, err := decodeCheckpointInt("test", []byte(test.want), key)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(strings.Split(test.want, "\n")[1], key+": "); itoa(value) != want {
				t.Fatalf("decoded %d, want %s", value, want)
			}
		})
	}
}

func TestDecodeCheckpointRejects(t *testing.T) {
	valid := "version: 0\nlog_start_offset: 1234\ncrc32c: 1c21bf17\n"
	tests := []struct {
		name string
		data string
	}{
		{name: "empty", data: ""},
		{name: "no crc", data: "version: 0\nlog_start_offset: 1234\n"},
		{name: "crc mismatch", data: strings.Replace(valid, "1234", "1235", 1)},
		{name: "other version", data: "version: 1\nlog_start_offset: 1234\ncrc32c: " + crcHex("version: 1\nlog_start_offset: 1234\n") + "\n"},
		{name: "wrong key", data: string(encodeCheckpoint(logEndOffsetKey, "1234"))},
		{name: "negative", data: string(encodeCheckpoint(logStartOffsetKey, "-1"))},
		{name: "extra line", data: "version: 0\nlog_start_offset: 1234\nmore: 1\ncrc32c: " + crcHex("version: 0\nlog_start_offset: 1234\nmore: 1\n") + "\n"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if _, err := decodeCheckpointInt("test", []byte(test.data), logStartOffsetKey); !IsCorrupt(err) {
				t.Fatalf("got %v, want a corruption error", err)
			}
		})
	}
}

func crcHex(body string) string {
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], crc32c([]byte(body)))
	return hex.EncodeToString(out[:])
}

func crc32c(data []byte) uint32 {
	// Bitwise CRC-32C, independent of the table-driven one under test.
	crc := ^uint32(0)
	for _, b := range data {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestGoldenPartitionMetadata(t *testing.T) {
	dir := t.TempDir()
	var topicID [16]byte
	for i := range topicID {
		topicID[i] = byte(i)
	}
	if err := WritePartitionMetadata(dir, topicID); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, partitionMetadataFileName))
	if err != nil {
		t.Fatal(err)
	}
	// Kafka's PartitionMetadataFile with Uuid.toString (URL-safe base64, no
	// padding).
	if want := "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPartitionMetadata(t *testing.T) {
	topicID := [16]byte{0xfb, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xef}
	tests := []struct {
		name    string
		content *string // nil: written by WritePartitionMetadata; else written raw
		want    [16]byte
		check   func(error) bool
	}{
		{name: "round trip", want: topicID, check: func(err error) bool { return err == nil }},
		{name: "Kafka-written with trailing newline", content: ptr("version: 0\ntopic_id: -_8QIDBAUGBwgJCgsMDQ7w\n"), want: topicID, check: func(err error) bool { return err == nil }},
		{name: "absent", check: func(err error) bool { return errors.Is(err, ErrNoPartitionMetadata) }},
		{name: "other version", content: ptr("version: 1\ntopic_id: -_8QIDBAUGBwgJCgsMDQ7w"), check: IsCorrupt},
		{name: "bad id", content: ptr("version: 0\ntopic_id: not-an-id"), check: IsCorrupt},
		{name: "missing id", content: ptr("version: 0\n"), check: IsCorrupt},
		{name: "garbage", content: ptr("\x00\x01\x02"), check: IsCorrupt},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			switch {
			case test.name == "absent":
			case test.content == nil:
				if err := WritePartitionMetadata(dir, topicID); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(filepath.Join(dir, partitionMetadataFileName), []byte(*test.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadPartitionMetadata(dir)
			if !test.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
			if err == nil && got != test.want {
				t.Fatalf("got %x, want %x", got, test.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }
