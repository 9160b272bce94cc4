package tiering

import (
	"context"
	"encoding/binary"
	"sort"
)

// timeIndexEntrySize is one .timeindex entry: timestamp int64, relative
// offset int32 (broker/segment/doc.go).
const timeIndexEntrySize = 12

// TimestampStart returns where a search for the first batch with
// maxTimestamp >= timestamp in a remote segment starts: the offset of the
// last .timeindex entry with a timestamp at most timestamp (the segment's
// base offset when there is none), as the local log does. The caller reads
// batches from there; the .timeindex object is read whole (12 bytes per
// index interval of the segment), not the .log.
func (t *Tier) TimestampStart(ctx context.Context, segment RemoteSegment, timestamp int64) (int64, error) {
	key := t.layout.segmentKey(segment, suffixTimeIndex)
	data, err := t.getAll(ctx, key)
	if err != nil {
		return 0, err
	}
	if len(data)%timeIndexEntrySize != 0 {
		return 0, corruptf(key, -1, "%d bytes is not a whole number of %d-byte entries", len(data), timeIndexEntrySize)
	}
	n := len(data) / timeIndexEntrySize
	entry := func(i int) (int64, int64) {
		e := data[i*timeIndexEntrySize:]
		return int64(binary.BigEndian.Uint64(e)), int64(int32(binary.BigEndian.Uint32(e[8:])))
	}
	for i := 0; i < n; i++ {
		ts, rel := entry(i)
		prev := int64(-1 << 63)
		if i > 0 {
			prev, _ = entry(i - 1)
		}
		if ts <= prev || rel < 0 || segment.BaseOffset+rel > segment.LastOffset {
			return 0, corruptf(key, int64(i*timeIndexEntrySize), "entry %d (timestamp %d, relative offset %d) out of order or outside offsets %d..%d",
				i, ts, rel, segment.BaseOffset, segment.LastOffset)
		}
	}
	i := sort.Search(n, func(i int) bool { ts, _ := entry(i); return ts > timestamp })
	if i == 0 {
		return segment.BaseOffset, nil
	}
	_, rel := entry(i - 1)
	return segment.BaseOffset + rel, nil
}
