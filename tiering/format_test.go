package tiering

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var goldenPartition = metadata.TopicPartition{
	Topic:     "orders",
	TopicID:   [16]byte{0x5e, 0x1f, 0x00, 0x2a, 0x9b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6},
	Partition: 3,
}

func goldenManifestSnapshot() ManifestSnapshot {
	return ManifestSnapshot{Partition: goldenPartition, LogStartOffset: 4100, Segments: []metadata.SegmentManifest{
		{
			SegmentID:  uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"),
			BaseOffset: 0, LastOffset: 4241, SizeBytes: 1048576, FirstTimestamp: 1700000000000, MaxTimestamp: 1700000099999,
			EpochRanges: []metadata.EpochRange{{Epoch: 0, StartOffset: 0}, {Epoch: 2, StartOffset: 4000}},
		},
		{
			SegmentID:  uuid.MustParse("ffeeddcc-bbaa-9988-7766-554433221100"),
			BaseOffset: 4242, LastOffset: 4242, SizeBytes: 61, FirstTimestamp: -1, MaxTimestamp: -1,
			EpochRanges: []metadata.EpochRange{{Epoch: 2, StartOffset: 4242}},
		},
	}}
}

// checkGolden compares data with testdata/name (a hex dump), rewriting it
// with -update.
func checkGolden(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	dump := hex.Dump(data)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if dump != string(want) {
		t.Fatalf("%s changed: the format is fixed (doc.go); got\n%s\nwant\n%s", name, dump, want)
	}
}

// readGolden returns the bytes of testdata/name (a hex dump).
func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	dump, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, line := range strings.Split(string(dump), "\n") {
		if len(line) < 10 {
			continue
		}
		hexPart, _, _ := strings.Cut(line[10:], "|")
		b, err := hex.DecodeString(strings.Join(strings.Fields(hexPart), ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data = append(data, b...)
	}
	return data
}

// checkManifestSnapshotDecodes checks that data decodes to want and that
// every single damaged byte and every truncation of it is caught.
func checkManifestSnapshotDecodes(t *testing.T, data []byte, want ManifestSnapshot) {
	t.Helper()
	decoded, err := UnmarshalManifestSnapshot("manifest", data)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(decoded) != fmt.Sprint(want) {
		t.Fatalf("decoded %+v\nwant %+v", decoded, want)
	}
	for i := range data {
		damaged := append([]byte(nil), data...)
		damaged[i] ^= 0x01
		if _, err := UnmarshalManifestSnapshot("manifest", damaged); !IsCorrupt(err) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
		if _, err := UnmarshalManifestSnapshot("manifest", data[:i]); !IsCorrupt(err) {
			t.Fatalf("truncated to %d bytes: %v", i, err)
		}
	}
}

func TestManifestSnapshotGolden(t *testing.T) {
	m := goldenManifestSnapshot()
	// Marshal sorts: hand the segments over in reverse.
	reversed := m
	reversed.Segments = []metadata.SegmentManifest{m.Segments[1], m.Segments[0]}
	data, err := MarshalManifestSnapshot(reversed)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "manifest-v2.golden", data)
	checkManifestSnapshotDecodes(t, data, m)
	for _, logStart := range []int64{-1, 0} {
		empty, err := MarshalManifestSnapshot(ManifestSnapshot{Partition: goldenPartition, LogStartOffset: logStart})
		if err != nil {
			t.Fatal(err)
		}
		if decoded, err := UnmarshalManifestSnapshot("manifest", empty); err != nil || len(decoded.Segments) != 0 || decoded.Partition != goldenPartition || decoded.LogStartOffset != logStart {
			t.Fatalf("empty manifest, log start %d: %+v, %v", logStart, decoded, err)
		}
	}
}

// TestManifestSnapshotVersion1Golden: objects written before the log start
// offset joined the format still decode, with the log start unknown.
func TestManifestSnapshotVersion1Golden(t *testing.T) {
	want := goldenManifestSnapshot()
	want.LogStartOffset = -1
	checkManifestSnapshotDecodes(t, readGolden(t, "manifest.golden"), want)
}

func TestManifestSnapshotRefusesInconsistentEntries(t *testing.T) {
	for name, change := range map[string]func(*ManifestSnapshot){
		"duplicate base offset": func(m *ManifestSnapshot) { m.Segments[1].BaseOffset = 0; m.Segments[1].LastOffset = 5 },
		"last below base":       func(m *ManifestSnapshot) { m.Segments[0].LastOffset = -1 },
		"epochs out of order":   func(m *ManifestSnapshot) { m.Segments[0].EpochRanges[1].Epoch = 0 },
		"no topic":              func(m *ManifestSnapshot) { m.Partition.Topic = "" },
		"log start below -1":    func(m *ManifestSnapshot) { m.LogStartOffset = -2 },
	} {
		t.Run(name, func(t *testing.T) {
			m := goldenManifestSnapshot()
			change(&m)
			if _, err := MarshalManifestSnapshot(m); err == nil {
				t.Fatal("marshalled")
			}
		})
	}
}

func TestEpochsGolden(t *testing.T) {
	ranges := []metadata.EpochRange{{Epoch: 0, StartOffset: 0}, {Epoch: 2, StartOffset: 4000}, {Epoch: 7, StartOffset: 4100}}
	data := marshalEpochs(ranges)
	checkGolden(t, "epochs.golden", data)
	decoded, err := unmarshalEpochs("x.epochs", data)
	if err != nil || fmt.Sprint(decoded) != fmt.Sprint(ranges) {
		t.Fatalf("decoded %v, %v", decoded, err)
	}
	for i := range data {
		damaged := append([]byte(nil), data...)
		damaged[i] ^= 0x80
		if _, err := unmarshalEpochs("x.epochs", damaged); !IsCorrupt(err) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

func TestLayoutGolden(t *testing.T) {
	segment := goldenManifestSnapshot().Segments[1]
	for _, c := range []struct {
		prefix, suffix, want string
	}{
		{"", suffixLog, "orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.log"},
		{"strata/cluster-1", suffixOffsetIndex, "strata/cluster-1/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.index"},
		{"p", suffixTimeIndex, "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.timeindex"},
		{"p", suffixEpochs, "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.epochs"},
		{"p", suffixProducers, "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.producers"},
	} {
		key := layout{prefix: c.prefix}.segmentKey(goldenPartition, segment, c.suffix)
		if key != c.want {
			t.Fatalf("key %s, want %s", key, c.want)
		}
		base, id, suffix, ok := parseSegmentObject(key)
		if !ok || base != 4242 || id != segment.SegmentID || suffix != c.suffix {
			t.Fatalf("parse %s: %d %s %s %v", key, base, id, suffix, ok)
		}
	}
	l := layout{prefix: "p"}
	if got := l.manifestSnapshotKey(goldenPartition, 7); got != "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/manifest-0000000007" {
		t.Fatalf("manifest snapshot key %s", got)
	}
	if got := l.manifestSnapshotKey(goldenPartition, math.MaxInt32); got != "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/manifest-2147483647" {
		t.Fatalf("manifest snapshot key %s", got)
	}
	if got := l.legacyManifestSnapshotKey(goldenPartition); got != "p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/manifest" {
		t.Fatalf("legacy manifest snapshot key %s", got)
	}
	for key, want := range map[string]int32{
		"p/t-00/3/manifest":            -1,
		"p/t-00/3/manifest-0000000000": 0,
		"p/t-00/3/manifest-0000000007": 7,
		"p/t-00/3/manifest-2147483647": math.MaxInt32,
	} {
		if epoch, ok := parseManifestSnapshotObject(key); !ok || epoch != want {
			t.Fatalf("parse %s: epoch %d %v, want %d", key, epoch, ok, want)
		}
	}
	for _, bad := range []string{"p/t-00/3/manifest-7", "p/t-00/3/manifest-+000000007", "p/t-00/3/manifest-2147483648", "p/t-00/3/manifests", "p/t-00/3/manifest-0000000007.tmp"} {
		if _, ok := parseManifestSnapshotObject(bad); ok {
			t.Fatalf("parsed %s as a manifest snapshot", bad)
		}
	}
	for _, bad := range []string{"p/x/manifest", "p/0-ffeeddcc-bbaa-9988-7766-554433221100.log", "p/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.tmp"} {
		if _, _, _, ok := parseSegmentObject(bad); ok {
			t.Fatalf("parsed %s", bad)
		}
	}
}

func TestOffsetIndexLookup(t *testing.T) {
	segment := metadata.SegmentManifest{BaseOffset: 100, LastOffset: 199, SizeBytes: 1 << 16}
	raw, _ := hex.DecodeString(strings.Join([]string{"0000000a" + "00001000", "00000014" + "00002000", "0000001e" + "00003000"}, ""))
	index, err := decodeOffsetIndex("x.index", raw, segment)
	if err != nil {
		t.Fatal(err)
	}
	for relative, want := range map[int64]int64{0: 0, 9: 0, 10: 0x1000, 15: 0x1000, 20: 0x2000, 30: 0x3000, 99: 0x3000} {
		if got := index.lookup(relative); got != want {
			t.Fatalf("lookup(%d) = %#x, want %#x", relative, got, want)
		}
	}
	for name, bad := range map[string]string{
		"size":           "0000000a000010",
		"out of order":   "0000001400001000" + "0000000a00002000",
		"past the end":   "0000000a00010000",
		"offset too big": "0000006400001000",
	} {
		raw, _ := hex.DecodeString(bad)
		if _, err := decodeOffsetIndex("x.index", raw, segment); !IsCorrupt(err) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestIsTemporary: fileblob's temporary files of the objects this package
// writes are recognized; other names ending in .tmp are not.
func TestIsTemporary(t *testing.T) {
	for key, want := range map[string]bool{
		"p/t-00/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.log.18f3a2b4c5d6e7f8.tmp": true,
		"p/t-00/3/manifest-0000000007.18f3a2b4c5d6e7f8.tmp":                                           true,
		"p/t-00/3/manifest.1a.tmp": true,
		"p/t-00/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.log": false,
		"p/t-00/3/notes.1a.tmp":     false,
		"p/t-00/3/manifest.tmp":     false,
		"p/t-00/3/manifest.xyz.tmp": false,
	} {
		if got := isTemporary(key); got != want {
			t.Errorf("isTemporary(%s) = %v, want %v", key, got, want)
		}
	}
}

// The aws-chunked body of an upload with its CRC-32 trailer (s3payload.go),
// byte for byte: one chunk, the final chunk, the trailer, the terminator.
// The CRC-32 of "Hello world" is 0x8bd69e52.
func TestCRC32ChunkedGolden(t *testing.T) {
	var sum string
	encoded := newCRC32Chunked(strings.NewReader("Hello world"), 11, func(s string) { sum = s })
	got, err := io.ReadAll(iotest.OneByteReader(encoded))
	if err != nil {
		t.Fatal(err)
	}
	const want = "b\r\nHello world\r\n0\r\nx-amz-checksum-crc32:i9aeUg==\r\n\r\n"
	if string(got) != want {
		t.Fatalf("encoded %q, want %q", got, want)
	}
	if encoded.length != int64(len(want)) || sum != "i9aeUg==" {
		t.Fatalf("length %d (want %d), CRC-32 %q", encoded.length, len(want), sum)
	}
	// A body shorter than announced is an error, not a short object.
	short := newCRC32Chunked(strings.NewReader("Hello"), 11, func(string) {})
	if _, err := io.ReadAll(short); err != io.ErrUnexpectedEOF {
		t.Fatalf("body 6 bytes short: %v, want io.ErrUnexpectedEOF", err)
	}
}
