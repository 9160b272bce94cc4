package tiering

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// In-bucket formats of the objects this package writes itself. Part of the
// format, do not change (see doc.go).
const (
	manifestSnapshotMagic   = "STRM"
	manifestSnapshotVersion = 2 // written; 1 (no log start) is still read
	epochsMagic             = "STRE"
	epochsVersion           = 1

	// Sizes of the fixed parts.
	formatHeaderSize          = 6 // magic + version
	formatCRCSize             = 4
	manifestSnapshotEntrySize = 16 + 5*8 + 4
	epochRangeSize            = 4 + 8
	maxTopicNameLength        = 249 // Kafka's limit
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ManifestSnapshot is a copy of one partition's manifest (its Raft
// manifest entries, sorted by base offset) taken at one moment. Encoded, it
// is the partition's manifest snapshot object, kept in the bucket so a
// cluster can be rebuilt from the bucket alone. The object holds each
// entry's segment id, offsets, size, timestamps and epoch ranges;
// LeaderEpoch, State and TxnIndex are not in it (decoded entries have them
// zero; Tier.ManifestSnapshots sets TxnIndex from the bucket listing).
type ManifestSnapshot struct {
	Partition metadata.TopicPartition
	Segments  []metadata.SegmentManifest // sorted by BaseOffset
	// LogStartOffset is the partition's log start offset when the
	// snapshot was taken (DeleteRecords, retention): records below it are
	// deleted, even inside a segment listed. -1: unknown (objects of
	// version 1, written before the field).
	LogStartOffset int64
	// Epoch is the leader epoch of the snapshot's writer: it names the
	// object (manifest-<epoch>), not in its bytes (Marshal ignores it,
	// Unmarshal leaves it 0). Readers of the bucket set it from the name;
	// -1 for an object named "manifest" (written by earlier versions).
	Epoch int32
}

// MarshalManifestSnapshot encodes m in the manifest snapshot object format
// (doc.go). Segments are written sorted by base offset; two segments with
// one base offset or a last offset below its base offset are refused.
func MarshalManifestSnapshot(m ManifestSnapshot) ([]byte, error) {
	if len(m.Partition.Topic) == 0 || len(m.Partition.Topic) > maxTopicNameLength {
		return nil, fmt.Errorf("tiering: manifest snapshot: topic name length %d out of range", len(m.Partition.Topic))
	}
	if m.LogStartOffset < -1 {
		return nil, fmt.Errorf("tiering: manifest snapshot of %s: log start offset %d", m.Partition, m.LogStartOffset)
	}
	segments := append([]metadata.SegmentManifest(nil), m.Segments...)
	sort.Slice(segments, func(i, j int) bool { return segments[i].BaseOffset < segments[j].BaseOffset })
	size := formatHeaderSize + 2 + len(m.Partition.Topic) + 16 + 4 + 8 + 4 + formatCRCSize
	for i, s := range segments {
		if s.LastOffset < s.BaseOffset {
			return nil, fmt.Errorf("tiering: manifest snapshot of %s: segment %s: last offset %d below base offset %d", m.Partition, uuid.UUID(s.SegmentID), s.LastOffset, s.BaseOffset)
		}
		if err := checkEpochRanges(s.EpochRanges); err != nil {
			return nil, fmt.Errorf("tiering: manifest snapshot of %s: segment %s: %w", m.Partition, uuid.UUID(s.SegmentID), err)
		}
		if i > 0 && segments[i-1].BaseOffset == s.BaseOffset {
			return nil, fmt.Errorf("tiering: manifest snapshot of %s: two segments at base offset %d", m.Partition, s.BaseOffset)
		}
		size += manifestSnapshotEntrySize + epochRangeSize*len(s.EpochRanges)
	}
	out := make([]byte, 0, size)
	out = append(out, manifestSnapshotMagic...)
	out = binary.BigEndian.AppendUint16(out, manifestSnapshotVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(m.Partition.Topic)))
	out = append(out, m.Partition.Topic...)
	out = append(out, m.Partition.TopicID[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(m.Partition.Partition))
	out = binary.BigEndian.AppendUint64(out, uint64(m.LogStartOffset))
	out = binary.BigEndian.AppendUint32(out, uint32(len(segments)))
	for _, s := range segments {
		out = append(out, s.SegmentID[:]...)
		for _, v := range []int64{s.BaseOffset, s.LastOffset, s.SizeBytes, s.FirstTimestamp, s.MaxTimestamp} {
			out = binary.BigEndian.AppendUint64(out, uint64(v))
		}
		out = appendEpochRanges(out, s.EpochRanges)
	}
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

// UnmarshalManifestSnapshot decodes a manifest snapshot object of either
// version (one of version 1 has LogStartOffset -1); key names the object
// in errors. Bytes that are not a valid manifest snapshot give a
// *CorruptError.
func UnmarshalManifestSnapshot(key string, data []byte) (ManifestSnapshot, error) {
	body, version, err := checkFraming(key, data, manifestSnapshotMagic, manifestSnapshotVersion)
	if err != nil {
		return ManifestSnapshot{}, err
	}
	d := decoder{key: key, data: body, position: formatHeaderSize}
	m := ManifestSnapshot{LogStartOffset: -1}
	topicLength := int(d.uint16())
	m.Partition.Topic = string(d.bytes(topicLength))
	copy(m.Partition.TopicID[:], d.bytes(16))
	m.Partition.Partition = int32(d.uint32())
	if version >= 2 {
		m.LogStartOffset = int64(d.uint64())
		if d.err == nil && m.LogStartOffset < -1 {
			return ManifestSnapshot{}, corruptf(key, int64(d.position-8), "log start offset %d", m.LogStartOffset)
		}
	}
	count := d.uint32()
	if d.err == nil && uint64(count)*manifestSnapshotEntrySize > uint64(len(body)) {
		return ManifestSnapshot{}, corruptf(key, -1, "segment count %d larger than the object", count)
	}
	m.Segments = make([]metadata.SegmentManifest, 0, count)
	for i := uint32(0); i < count && d.err == nil; i++ {
		var s metadata.SegmentManifest
		copy(s.SegmentID[:], d.bytes(16))
		s.BaseOffset = int64(d.uint64())
		s.LastOffset = int64(d.uint64())
		s.SizeBytes = int64(d.uint64())
		s.FirstTimestamp = int64(d.uint64())
		s.MaxTimestamp = int64(d.uint64())
		s.EpochRanges = d.epochRanges()
		if d.err == nil && (s.LastOffset < s.BaseOffset || (i > 0 && s.BaseOffset <= m.Segments[i-1].BaseOffset)) {
			return ManifestSnapshot{}, corruptf(key, -1, "segment %d out of order", i)
		}
		m.Segments = append(m.Segments, s)
	}
	if d.err == nil && d.position != len(body) {
		return ManifestSnapshot{}, corruptf(key, int64(d.position), "%d trailing bytes", len(body)-d.position)
	}
	return m, d.err
}

// marshalEpochs encodes a segment's leader-epoch ranges as its .epochs
// object.
func marshalEpochs(ranges []metadata.EpochRange) []byte {
	out := make([]byte, 0, formatHeaderSize+4+epochRangeSize*len(ranges)+formatCRCSize)
	out = append(out, epochsMagic...)
	out = binary.BigEndian.AppendUint16(out, epochsVersion)
	out = appendEpochRanges(out, ranges)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// unmarshalEpochs decodes an .epochs object.
func unmarshalEpochs(key string, data []byte) ([]metadata.EpochRange, error) {
	body, _, err := checkFraming(key, data, epochsMagic, epochsVersion)
	if err != nil {
		return nil, err
	}
	d := decoder{key: key, data: body, position: formatHeaderSize}
	ranges := d.epochRanges()
	if d.err == nil && d.position != len(body) {
		return nil, corruptf(key, int64(d.position), "%d trailing bytes", len(body)-d.position)
	}
	return ranges, d.err
}

func appendEpochRanges(out []byte, ranges []metadata.EpochRange) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(ranges)))
	for _, r := range ranges {
		out = binary.BigEndian.AppendUint32(out, uint32(r.Epoch))
		out = binary.BigEndian.AppendUint64(out, uint64(r.StartOffset))
	}
	return out
}

// checkFraming checks magic, version (1 to maxVersion) and the trailing
// CRC-32C and returns the bytes before the CRC and the version.
func checkFraming(key string, data []byte, magic string, maxVersion uint16) ([]byte, uint16, error) {
	if len(data) < formatHeaderSize+formatCRCSize {
		return nil, 0, corruptf(key, -1, "%d bytes, too short", len(data))
	}
	if string(data[:4]) != magic {
		return nil, 0, corruptf(key, 0, "magic %q, want %q", data[:4], magic)
	}
	version := binary.BigEndian.Uint16(data[4:])
	if version < 1 || version > maxVersion {
		return nil, 0, corruptf(key, 4, "unsupported version %d", version)
	}
	body := data[:len(data)-formatCRCSize]
	if stored, computed := binary.BigEndian.Uint32(data[len(body):]), crc32.Checksum(body, castagnoli); stored != computed {
		return nil, 0, corruptf(key, int64(len(body)), "crc32c %08x, computed %08x", stored, computed)
	}
	return body, version, nil
}

// decoder reads big-endian fields, remembering the first error.
type decoder struct {
	key      string
	data     []byte
	position int
	err      error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.data)-d.position < n {
		d.err = corruptf(d.key, int64(d.position), "truncated: need %d bytes, %d left", n, len(d.data)-d.position)
		return nil
	}
	b := d.data[d.position : d.position+n]
	d.position += n
	return b
}

func (d *decoder) uint16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) epochRanges() []metadata.EpochRange {
	count := d.uint32()
	if d.err != nil {
		return nil
	}
	if uint64(count)*epochRangeSize > uint64(len(d.data)-d.position) {
		d.err = corruptf(d.key, int64(d.position), "epoch range count %d larger than the object", count)
		return nil
	}
	var ranges []metadata.EpochRange
	for i := uint32(0); i < count; i++ {
		r := metadata.EpochRange{Epoch: int32(d.uint32()), StartOffset: int64(d.uint64())}
		if len(ranges) > 0 && (r.StartOffset < ranges[len(ranges)-1].StartOffset || r.Epoch <= ranges[len(ranges)-1].Epoch) {
			d.err = corruptf(d.key, int64(d.position-epochRangeSize), "epoch range %d out of order", i)
			return nil
		}
		ranges = append(ranges, r)
	}
	return ranges
}

// checkEpochRanges refuses ranges whose epochs or start offsets go down.
func checkEpochRanges(ranges []metadata.EpochRange) error {
	for i := 1; i < len(ranges); i++ {
		if ranges[i].Epoch <= ranges[i-1].Epoch || ranges[i].StartOffset < ranges[i-1].StartOffset {
			return fmt.Errorf("leader epoch ranges out of order at %d: %+v after %+v", i, ranges[i], ranges[i-1])
		}
	}
	return nil
}
