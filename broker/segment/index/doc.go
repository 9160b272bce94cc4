// Package index is the one codec of a segment's two sparse indexes, the
// .index and .timeindex files: the local log (broker/segment) writes, reads
// and checks them with it, and so does tiering for the copies it keeps in
// the object store, which hold the same bytes. What the entries mean, when
// they are written and how the log recovers them is broker/segment's
// package doc; the bytes are drawn here.
//
// # .index: offset index
//
// Sparse, sorted, 8 bytes per entry (OffsetEntrySize), big endian; part of
// the format, do not change:
//
//	 0                 4                 8
//	+-----------------+-----------------+
//	| relativeOffset  | position        |
//	| int32           | int32           |
//	+-----------------+-----------------+
//
// relativeOffset is a batch's last offset minus the segment's base offset;
// position is where that batch starts in the .log.
//
// # .timeindex: time index
//
// Sparse, sorted, 12 bytes per entry (TimeEntrySize), big endian; part of
// the format, do not change:
//
//	 0                                   8                 12
//	+-----------------------------------+-----------------+
//	| timestamp int64 (ms)              | relativeOffset  |
//	|                                   | int32           |
//	+-----------------------------------+-----------------+
//
// timestamp is the largest timestamp of the segment up to and including the
// batch whose last offset is relativeOffset past the segment's base offset.
//
// # Checks
//
// The indexes carry no checksum, as in Kafka: they are derived data, and
// the decoders check them instead. DecodeOffsetEntries refuses a size that
// is not a whole number of entries, a relative offset outside
// [0, maxRelative], a position outside the .log, and entries whose relative
// offsets or positions do not strictly increase. DecodeTimeEntries refuses
// a size that is not a whole number of entries, a relative offset outside
// [0, maxRelative], a negative timestamp, timestamps that do not strictly
// increase and relative offsets that decrease. Every refusal is a
// *CorruptError naming the entry.
package index
