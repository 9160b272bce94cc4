package broker

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/segment"
)

// TestLegacyOffsets pins ListOffsets v0's "offsets before" answers.
func TestLegacyOffsets(t *testing.T) {
	const now = 10_000
	segments := []segment.SegmentInfo{
		{BaseOffset: 0, EndOffset: 100, Size: 1000, MaxTimestamp: 1000},
		{BaseOffset: 100, EndOffset: 250, Size: 1500, MaxTimestamp: 2000},
		{BaseOffset: 250, EndOffset: 300, Size: 500, MaxTimestamp: 3000},
	}
	sealedEmpty := append(slices.Clone(segments[:2]), segment.SegmentInfo{BaseOffset: 250, EndOffset: 250})
	cases := []struct {
		name         string
		segments     []segment.SegmentInfo
		logStart, hw int64
		timestamp    int64
		max          int32
		want         []int64
	}{
		{"latest, one", segments, 0, 300, listLatest, 1, []int64{300}},
		{"latest, all", segments, 0, 300, listLatest, 10, []int64{300, 250, 100, 0}},
		{"latest, two", segments, 0, 300, listLatest, 2, []int64{300, 250}},
		{"latest above the high watermark", segments, 0, 280, listLatest, 10, []int64{280, 250, 100, 0}},
		{"latest, high watermark below a segment base", segments, 0, 200, listLatest, 10, []int64{200, 100, 0}},
		{"earliest", segments, 0, 300, listEarliest, 10, []int64{0}},
		{"earliest after retention moved the start", segments, 40, 300, listEarliest, 10, []int64{40}},
		{"earliest, none asked", segments, 0, 300, listEarliest, 0, []int64{}},
		{"before the second segment's newest record", segments, 0, 300, 2500, 10, []int64{100, 0}},
		{"at a segment's newest record", segments, 0, 300, 2000, 1, []int64{100}},
		{"before every record", segments, 0, 300, 500, 10, []int64{}},
		{"after every record", segments, 0, 300, now + 1, 10, []int64{300, 250, 100, 0}},
		{"empty active segment", sealedEmpty, 0, 250, listLatest, 10, []int64{250, 100, 0}},
		{"empty log", []segment.SegmentInfo{{BaseOffset: 0, EndOffset: 0, MaxTimestamp: -1}}, 0, 0, listLatest, 5, []int64{0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := legacyOffsets(tc.segments, tc.logStart, tc.hw, tc.timestamp, tc.max, now)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("legacyOffsets = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOffsetsNotAvailable: while a new leader's high watermark is below
// its start (KIP-207), clients asking for the latest offset, any v0
// question, or an offset (latest tiered, by timestamp) not below the high
// watermark get OFFSET_NOT_AVAILABLE from v5 on and LEADER_NOT_AVAILABLE
// before; answers below the high watermark, and replicas, go out.
func TestOffsetsNotAvailable(t *testing.T) {
	for _, c := range []struct {
		name          string
		version       int16
		replicaID     int32
		timestamp     int64
		offset        int64 // -1: before the lookup, or nothing found
		highWatermark int64
		available     bool
		want          int16
	}{
		{"available", 9, -1, listLatest, -1, 0, true, 0},
		{"latest, v5+", 5, -1, listLatest, -1, 0, false, kerr.OffsetNotAvailable.Code},
		{"latest, v4", 4, -1, listLatest, -1, 0, false, kerr.LeaderNotAvailable.Code},
		{"v0 offsets before", 0, -1, 1000, -1, 0, false, kerr.LeaderNotAvailable.Code},
		{"latest tiered below the high watermark", 9, -1, listLatestTiered, 99, 100, false, 0},
		{"latest tiered at the high watermark", 9, -1, listLatestTiered, 100, 100, false, kerr.OffsetNotAvailable.Code},
		{"latest tiered before the lookup", 9, -1, listLatestTiered, -1, 0, false, 0},
		{"earliest", 9, -1, listEarliest, 0, 100, false, 0},
		{"a timestamp below the high watermark", 9, -1, 1000, 50, 100, false, 0},
		{"a replica", 8, 2, listLatest, -1, 0, false, 0},
	} {
		if got := offsetsNotAvailable(c.version, c.replicaID, c.timestamp, c.offset, c.highWatermark, c.available); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
