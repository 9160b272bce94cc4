package index

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden pins the bytes of both entry kinds: a change here changes the
// on-disk and in-bucket format.
func TestGolden(t *testing.T) {
	offsets := []OffsetEntry{{RelativeOffset: 3, Position: 100}, {RelativeOffset: 5, Position: 200}, {RelativeOffset: 0x7fffffff, Position: 0x01020304}}
	wantOffsets := "00000003" + "00000064" + "00000005" + "000000c8" + "7fffffff" + "01020304"
	if got := hex.EncodeToString(EncodeOffsetEntries(offsets)); got != wantOffsets {
		t.Errorf(".index:\n got %s\nwant %s", got, wantOffsets)
	}
	times := []TimeEntry{{Timestamp: 3000, RelativeOffset: 3}, {Timestamp: 0x0102030405060708, RelativeOffset: 8}}
	wantTimes := "0000000000000bb8" + "00000003" + "0102030405060708" + "00000008"
	if got := hex.EncodeToString(EncodeTimeEntries(times)); got != wantTimes {
		t.Errorf(".timeindex:\n got %s\nwant %s", got, wantTimes)
	}
	decodedOffsets, err := DecodeOffsetEntries(mustHex(t, wantOffsets), 1<<30, MaxRelativeOffset)
	if err != nil || !reflect.DeepEqual(decodedOffsets, offsets) {
		t.Errorf("DecodeOffsetEntries: %v, %v; want %v", decodedOffsets, err, offsets)
	}
	decodedTimes, err := DecodeTimeEntries(mustHex(t, wantTimes), MaxRelativeOffset)
	if err != nil || !reflect.DeepEqual(decodedTimes, times) {
		t.Errorf("DecodeTimeEntries: %v, %v; want %v", decodedTimes, err, times)
	}
}

func TestDecodeEmpty(t *testing.T) {
	if entries, err := DecodeOffsetEntries(nil, 0, 0); err != nil || len(entries) != 0 {
		t.Errorf("DecodeOffsetEntries(nil) = %v, %v", entries, err)
	}
	if entries, err := DecodeTimeEntries(nil, 0); err != nil || len(entries) != 0 {
		t.Errorf("DecodeTimeEntries(nil) = %v, %v", entries, err)
	}
}

func TestDecodeOffsetEntriesRefuses(t *testing.T) {
	// A segment of 100 offsets (maxRelative 99) and 0x10000 bytes.
	tests := []struct {
		name       string
		data       string
		wantOffset int64 // byte offset of the bad entry, -1 for the size
		wantReason string
	}{
		{"size", "0000000a000010", -1, "size 7 is not a multiple of 8"},
		{"negative offset", "ffffffff00001000", 0, "entry 0: relative offset -1 outside [0, 99]"},
		{"offset past the segment", "0000006400001000", 0, "entry 0: relative offset 100 outside [0, 99]"},
		{"negative position", "0000000a" + "ffffffff", 0, "entry 0: position -1 outside the log"},
		{"position past the log", "0000000a00010000", 0, "entry 0: position 65536 outside the log (65536 bytes)"},
		{"offsets out of order", "0000001400001000" + "0000000a00002000", 8, "entry 1 (10 at 8192) does not follow entry 0 (20 at 4096)"},
		{"same offset twice", "0000001400001000" + "0000001400002000", 8, "does not follow"},
		{"positions out of order", "0000000a00002000" + "0000001400001000", 8, "does not follow"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := DecodeOffsetEntries(mustHex(t, test.data), 0x10000, 99)
			checkCorrupt(t, err, test.wantOffset, test.wantReason)
		})
	}
}

func TestDecodeTimeEntriesRefuses(t *testing.T) {
	entry := func(timestamp int64, relativeOffset int32) string {
		return fmt.Sprintf("%016x%08x", uint64(timestamp), uint32(relativeOffset))
	}
	tests := []struct {
		name       string
		data       string
		wantOffset int64
		wantReason string
	}{
		{"size", entry(1, 1)[:20], -1, "size 10 is not a multiple of 12"},
		{"negative offset", entry(1, -1), 0, "entry 0: relative offset -1 outside [0, 99]"},
		{"offset past the segment", entry(1, 100), 0, "entry 0: relative offset 100 outside [0, 99]"},
		{"negative timestamp", entry(-1, 1), 0, "entry 0: negative timestamp -1"},
		{"timestamps out of order", entry(20, 1) + entry(10, 2), 12, "entry 1 (10 at 2) does not follow entry 0 (20 at 1)"},
		{"same timestamp twice", entry(20, 1) + entry(20, 2), 12, "does not follow"},
		{"offsets going back", entry(10, 5) + entry(20, 4), 12, "does not follow"},
		{"all zero (a torn or zeroed file)", strings.Repeat("0", 48), 12, "does not follow"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			_, err := DecodeTimeEntries(mustHex(t, test.data), 99)
			checkCorrupt(t, err, test.wantOffset, test.wantReason)
		})
	}
	// Equal offsets are allowed: the rule is "do not decrease".
	if _, err := DecodeTimeEntries(mustHex(t, entry(10, 5)+entry(20, 5)), 99); err != nil {
		t.Errorf("equal offsets refused: %v", err)
	}
}

func checkCorrupt(t *testing.T, err error, wantOffset int64, wantReason string) {
	t.Helper()
	if !IsCorrupt(err) {
		t.Fatalf("error %v, want a *CorruptError", err)
	}
	var corrupt *CorruptError
	errors.As(err, &corrupt)
	if corrupt.Offset != wantOffset {
		t.Errorf("offset %d, want %d", corrupt.Offset, wantOffset)
	}
	if !strings.Contains(corrupt.Reason, wantReason) {
		t.Errorf("reason %q, want it to contain %q", corrupt.Reason, wantReason)
	}
	if !IsCorrupt(fmt.Errorf("wrapped: %w", err)) {
		t.Error("IsCorrupt does not see through wrapping")
	}
}

func TestSearch(t *testing.T) {
	offsets := []OffsetEntry{{10, 0x1000}, {20, 0x2000}, {30, 0x3000}}
	for relative, want := range map[int64]int32{-1: -1, 0: -1, 9: -1, 10: 0x1000, 15: 0x1000, 20: 0x2000, 29: 0x2000, 30: 0x3000, 99: 0x3000} {
		entry, ok := SearchOffsetEntries(offsets, relative)
		got := int32(-1)
		if ok {
			got = entry.Position
		}
		if got != want {
			t.Errorf("SearchOffsetEntries(%d) = %#x, want %#x", relative, got, want)
		}
	}
	times := []TimeEntry{{1000, 1}, {3000, 3}, {4000, 8}}
	for timestamp, want := range map[int64]int32{0: -1, 999: -1, 1000: 1, 2999: 1, 3000: 3, 3999: 3, 4000: 8, 1 << 40: 8} {
		entry, ok := SearchTimeEntries(times, timestamp)
		got := int32(-1)
		if ok {
			got = entry.RelativeOffset
		}
		if got != want {
			t.Errorf("SearchTimeEntries(%d) = %d, want %d", timestamp, got, want)
		}
	}
	if _, ok := SearchOffsetEntries(nil, 5); ok {
		t.Error("found an entry in an empty offset index")
	}
	if _, ok := SearchTimeEntries(nil, 5); ok {
		t.Error("found an entry in an empty time index")
	}
}
