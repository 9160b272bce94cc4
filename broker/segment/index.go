package segment

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// Index entry sizes. Part of the format, do not change.
const (
	offsetIndexEntrySize = 8  // relative offset int32, position int32
	timeIndexEntrySize   = 12 // timestamp int64, relative offset int32
)

// offsetIndexEntry maps the last offset of a batch (relative to the segment's
// base offset) to the position of that batch in the .log file.
type offsetIndexEntry struct {
	relativeOffset int32
	position       int32
}

// timeIndexEntry says that the largest timestamp of the segment up to and
// including the batch whose last offset is relativeOffset is timestamp.
type timeIndexEntry struct {
	timestamp      int64
	relativeOffset int32
}

func encodeOffsetEntries(entries []offsetIndexEntry) []byte {
	out := make([]byte, len(entries)*offsetIndexEntrySize)
	for i, entry := range entries {
		binary.BigEndian.PutUint32(out[i*offsetIndexEntrySize:], uint32(entry.relativeOffset))
		binary.BigEndian.PutUint32(out[i*offsetIndexEntrySize+4:], uint32(entry.position))
	}
	return out
}

func encodeTimeEntries(entries []timeIndexEntry) []byte {
	out := make([]byte, len(entries)*timeIndexEntrySize)
	for i, entry := range entries {
		binary.BigEndian.PutUint64(out[i*timeIndexEntrySize:], uint64(entry.timestamp))
		binary.BigEndian.PutUint32(out[i*timeIndexEntrySize+8:], uint32(entry.relativeOffset))
	}
	return out
}

// decodeOffsetEntries decodes an .index file and checks that its entries are
// strictly increasing, point below logSize and name offsets in
// [0, maxRelative]. A non-empty reason says why it cannot be trusted.
func decodeOffsetEntries(data []byte, logSize, maxRelative int64) ([]offsetIndexEntry, string) {
	if len(data)%offsetIndexEntrySize != 0 {
		return nil, fmt.Sprintf("size %d is not a multiple of %d", len(data), offsetIndexEntrySize)
	}
	entries := make([]offsetIndexEntry, len(data)/offsetIndexEntrySize)
	for i := range entries {
		entry := offsetIndexEntry{
			relativeOffset: int32(binary.BigEndian.Uint32(data[i*offsetIndexEntrySize:])),
			position:       int32(binary.BigEndian.Uint32(data[i*offsetIndexEntrySize+4:])),
		}
		switch {
		case entry.relativeOffset < 0 || int64(entry.relativeOffset) > maxRelative:
			return nil, fmt.Sprintf("entry %d: relative offset %d outside [0, %d]", i, entry.relativeOffset, maxRelative)
		case entry.position < 0 || int64(entry.position) >= logSize:
			return nil, fmt.Sprintf("entry %d: position %d outside the log (%d bytes)", i, entry.position, logSize)
		case i > 0 && (entry.relativeOffset <= entries[i-1].relativeOffset || entry.position <= entries[i-1].position):
			return nil, fmt.Sprintf("entry %d (%d at %d) does not follow entry %d (%d at %d)",
				i, entry.relativeOffset, entry.position, i-1, entries[i-1].relativeOffset, entries[i-1].position)
		}
		entries[i] = entry
	}
	return entries, ""
}

// decodeTimeEntries decodes a .timeindex file and checks that timestamps
// strictly increase and offsets do not decrease and lie in [0, maxRelative].
func decodeTimeEntries(data []byte, maxRelative int64) ([]timeIndexEntry, string) {
	if len(data)%timeIndexEntrySize != 0 {
		return nil, fmt.Sprintf("size %d is not a multiple of %d", len(data), timeIndexEntrySize)
	}
	entries := make([]timeIndexEntry, len(data)/timeIndexEntrySize)
	for i := range entries {
		entry := timeIndexEntry{
			timestamp:      int64(binary.BigEndian.Uint64(data[i*timeIndexEntrySize:])),
			relativeOffset: int32(binary.BigEndian.Uint32(data[i*timeIndexEntrySize+8:])),
		}
		switch {
		case entry.relativeOffset < 0 || int64(entry.relativeOffset) > maxRelative:
			return nil, fmt.Sprintf("entry %d: relative offset %d outside [0, %d]", i, entry.relativeOffset, maxRelative)
		case entry.timestamp < 0:
			return nil, fmt.Sprintf("entry %d: negative timestamp %d", i, entry.timestamp)
		case i > 0 && (entry.timestamp <= entries[i-1].timestamp || entry.relativeOffset < entries[i-1].relativeOffset):
			return nil, fmt.Sprintf("entry %d (%d at %d) does not follow entry %d (%d at %d)",
				i, entry.timestamp, entry.relativeOffset, i-1, entries[i-1].timestamp, entries[i-1].relativeOffset)
		}
		entries[i] = entry
	}
	return entries, ""
}

// searchOffsetEntries returns the last entry whose relative offset is at
// most relativeOffset.
func searchOffsetEntries(entries []offsetIndexEntry, relativeOffset int64) (offsetIndexEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return int64(entries[i].relativeOffset) > relativeOffset })
	if i == 0 {
		return offsetIndexEntry{}, false
	}
	return entries[i-1], true
}

// searchTimeEntries returns the last entry whose timestamp is at most
// timestamp.
func searchTimeEntries(entries []timeIndexEntry, timestamp int64) (timeIndexEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].timestamp > timestamp })
	if i == 0 {
		return timeIndexEntry{}, false
	}
	return entries[i-1], true
}

// maxRelativeOffset is the largest offset distance an index entry can hold.
const maxRelativeOffset = math.MaxInt32
