package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Entry sizes. Part of the format, do not change.
const (
	OffsetEntrySize = 8  // relative offset int32, position int32
	TimeEntrySize   = 12 // timestamp int64, relative offset int32
)

// MaxRelativeOffset is the largest offset distance from a segment's base
// offset that an entry can hold: a segment never spans more offsets.
const MaxRelativeOffset = math.MaxInt32

// OffsetEntry maps the last offset of a batch (relative to the segment's
// base offset) to the position of that batch in the .log file.
type OffsetEntry struct {
	RelativeOffset int32
	Position       int32
}

// TimeEntry says that the largest timestamp of the segment up to and
// including the batch whose last offset is RelativeOffset is Timestamp.
type TimeEntry struct {
	Timestamp      int64
	RelativeOffset int32
}

// CorruptError says why index bytes cannot be trusted.
type CorruptError struct {
	// Offset is the byte offset of the bad entry in the file, -1 when the
	// size itself is wrong.
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string { return e.Reason }

// EncodeOffsetEntries returns the .index bytes of entries.
func EncodeOffsetEntries(entries []OffsetEntry) []byte {
	out := make([]byte, len(entries)*OffsetEntrySize)
	for i, entry := range entries {
		binary.BigEndian.PutUint32(out[i*OffsetEntrySize:], uint32(entry.RelativeOffset))
		binary.BigEndian.PutUint32(out[i*OffsetEntrySize+4:], uint32(entry.Position))
	}
	return out
}

// EncodeTimeEntries returns the .timeindex bytes of entries.
func EncodeTimeEntries(entries []TimeEntry) []byte {
	out := make([]byte, len(entries)*TimeEntrySize)
	for i, entry := range entries {
		binary.BigEndian.PutUint64(out[i*TimeEntrySize:], uint64(entry.Timestamp))
		binary.BigEndian.PutUint32(out[i*TimeEntrySize+8:], uint32(entry.RelativeOffset))
	}
	return out
}

// DecodeOffsetEntries decodes .index bytes and checks that the entries
// strictly increase, point below logSize and name relative offsets in
// [0, maxRelative]; otherwise it returns a *CorruptError.
func DecodeOffsetEntries(data []byte, logSize, maxRelative int64) ([]OffsetEntry, error) {
	if len(data)%OffsetEntrySize != 0 {
		return nil, &CorruptError{Offset: -1, Reason: fmt.Sprintf("size %d is not a multiple of %d", len(data), OffsetEntrySize)}
	}
	entries := make([]OffsetEntry, len(data)/OffsetEntrySize)
	for i := range entries {
		entry := OffsetEntry{
			RelativeOffset: int32(binary.BigEndian.Uint32(data[i*OffsetEntrySize:])),
			Position:       int32(binary.BigEndian.Uint32(data[i*OffsetEntrySize+4:])),
		}
		var reason string
		switch {
		case entry.RelativeOffset < 0 || int64(entry.RelativeOffset) > maxRelative:
			reason = fmt.Sprintf("entry %d: relative offset %d outside [0, %d]", i, entry.RelativeOffset, maxRelative)
		case entry.Position < 0 || int64(entry.Position) >= logSize:
			reason = fmt.Sprintf("entry %d: position %d outside the log (%d bytes)", i, entry.Position, logSize)
		case i > 0 && (entry.RelativeOffset <= entries[i-1].RelativeOffset || entry.Position <= entries[i-1].Position):
			reason = fmt.Sprintf("entry %d (%d at %d) does not follow entry %d (%d at %d)",
				i, entry.RelativeOffset, entry.Position, i-1, entries[i-1].RelativeOffset, entries[i-1].Position)
		}
		if reason != "" {
			return nil, &CorruptError{Offset: int64(i * OffsetEntrySize), Reason: reason}
		}
		entries[i] = entry
	}
	return entries, nil
}

// DecodeTimeEntries decodes .timeindex bytes and checks that timestamps are
// not negative and strictly increase and that relative offsets do not
// decrease and lie in [0, maxRelative]; otherwise it returns a
// *CorruptError.
func DecodeTimeEntries(data []byte, maxRelative int64) ([]TimeEntry, error) {
	if len(data)%TimeEntrySize != 0 {
		return nil, &CorruptError{Offset: -1, Reason: fmt.Sprintf("size %d is not a multiple of %d", len(data), TimeEntrySize)}
	}
	entries := make([]TimeEntry, len(data)/TimeEntrySize)
	for i := range entries {
		entry := TimeEntry{
			Timestamp:      int64(binary.BigEndian.Uint64(data[i*TimeEntrySize:])),
			RelativeOffset: int32(binary.BigEndian.Uint32(data[i*TimeEntrySize+8:])),
		}
		var reason string
		switch {
		case entry.RelativeOffset < 0 || int64(entry.RelativeOffset) > maxRelative:
			reason = fmt.Sprintf("entry %d: relative offset %d outside [0, %d]", i, entry.RelativeOffset, maxRelative)
		case entry.Timestamp < 0:
			reason = fmt.Sprintf("entry %d: negative timestamp %d", i, entry.Timestamp)
		case i > 0 && (entry.Timestamp <= entries[i-1].Timestamp || entry.RelativeOffset < entries[i-1].RelativeOffset):
			reason = fmt.Sprintf("entry %d (%d at %d) does not follow entry %d (%d at %d)",
				i, entry.Timestamp, entry.RelativeOffset, i-1, entries[i-1].Timestamp, entries[i-1].RelativeOffset)
		}
		if reason != "" {
			return nil, &CorruptError{Offset: int64(i * TimeEntrySize), Reason: reason}
		}
		entries[i] = entry
	}
	return entries, nil
}

// SearchOffsetEntries returns the last entry whose relative offset is at
// most relativeOffset; false when there is none.
func SearchOffsetEntries(entries []OffsetEntry, relativeOffset int64) (OffsetEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return int64(entries[i].RelativeOffset) > relativeOffset })
	if i == 0 {
		return OffsetEntry{}, false
	}
	return entries[i-1], true
}

// SearchTimeEntries returns the last entry whose timestamp is at most
// timestamp; false when there is none.
func SearchTimeEntries(entries []TimeEntry, timestamp int64) (TimeEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Timestamp > timestamp })
	if i == 0 {
		return TimeEntry{}, false
	}
	return entries[i-1], true
}

// IsCorrupt reports whether err (or an error it wraps) is a *CorruptError.
func IsCorrupt(err error) bool {
	var corrupt *CorruptError
	return errors.As(err, &corrupt)
}
