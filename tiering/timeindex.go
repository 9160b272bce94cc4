package tiering

import (
	"context"

	"github.com/strata-log/strata/broker/segment/index"
	"github.com/strata-log/strata/metadata"
)

// TimestampStart returns where a search for the first batch with
// maxTimestamp >= timestamp in a remote segment starts: the offset of the
// last .timeindex entry with a timestamp at most timestamp (the segment's
// base offset when there is none), as the local log does. The caller reads
// batches from there; the .timeindex object is read whole (12 bytes per
// index interval of the segment), not the .log.
func (t *Tier) TimestampStart(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, timestamp int64) (int64, error) {
	key := t.layout.segmentKey(p, segment, suffixTimeIndex)
	data, err := t.getAll(ctx, key)
	if err != nil {
		return 0, err
	}
	entries, err := index.DecodeTimeEntries(data, segment.LastOffset-segment.BaseOffset)
	if err != nil {
		return 0, corruptIndex(key, err)
	}
	entry, ok := index.SearchTimeEntries(entries, timestamp)
	if !ok {
		return segment.BaseOffset, nil
	}
	return segment.BaseOffset + int64(entry.RelativeOffset), nil
}
