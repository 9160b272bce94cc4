package metadata

import (
	"fmt"
	"sort"
)

// SegmentState is where a tiered segment is in its life: copied to the
// object store, readable there, being deleted. Part of the command and
// snapshot formats: do not change the numbers.
type SegmentState uint8

const (
	// SegmentCopyStarted: the uploader is writing the segment's objects;
	// readers must not use it.
	SegmentCopyStarted SegmentState = 1
	// SegmentCopyFinished: every object is written; readers may serve it
	// and the local copy may go (after local retention).
	SegmentCopyFinished SegmentState = 2
	// SegmentDeleteStarted: the segment is no longer served and its objects
	// may be deleted; SegmentDeleted then drops the entry.
	SegmentDeleteStarted SegmentState = 3
)

func (s SegmentState) String() string {
	switch s {
	case SegmentCopyStarted:
		return "CopyStarted"
	case SegmentCopyFinished:
		return "CopyFinished"
	case SegmentDeleteStarted:
		return "DeleteStarted"
	}
	return fmt.Sprintf("SegmentState(%d)", uint8(s))
}

// TxnIndexState says what a tiered segment's aborted-transaction index
// (its .txnindex object) holds, as the uploader saw it: Kafka's
// RemoteLogSegmentMetadata txnIdxEmpty (KIP-1058), with a third value for
// entries written before it was recorded. A read_committed fetch from
// tiered data never fetches the index of a segment known to have none.
// Part of the command and snapshot formats: do not change the numbers.
type TxnIndexState uint8

const (
	// TxnIndexUnknown: not recorded (an entry written by an older version,
	// or imported without the object's size): read the object to know.
	TxnIndexUnknown TxnIndexState = 0
	// TxnIndexEmpty: the segment has no aborted transaction whose ABORT
	// marker is in it (its .txnindex is empty or absent).
	TxnIndexEmpty TxnIndexState = 1
	// TxnIndexNotEmpty: the .txnindex holds at least one entry.
	TxnIndexNotEmpty TxnIndexState = 2
)

func (s TxnIndexState) String() string {
	switch s {
	case TxnIndexUnknown:
		return "Unknown"
	case TxnIndexEmpty:
		return "Empty"
	case TxnIndexNotEmpty:
		return "NotEmpty"
	}
	return fmt.Sprintf("TxnIndexState(%d)", uint8(s))
}

// TopicPartition names one partition of one topic incarnation: the topic
// id keeps a re-created topic apart from an earlier one of the same name.
// It is what a tiered segment's objects are stored under (tiering) and what
// the broker reads remote data of.
type TopicPartition struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
}

// String is "<topic>-<topic id hex>/<partition>", as the partition's
// directory in the bucket.
func (p TopicPartition) String() string {
	return fmt.Sprintf("%s-%x/%d", p.Topic, p.TopicID, p.Partition)
}

// EpochRange says that the offsets from StartOffset on (up to the next
// range's start, or the segment's end) were written in leader epoch Epoch:
// a segment's slice of the leader-epoch cache.
type EpochRange struct {
	Epoch       int32
	StartOffset int64
}

// SegmentManifest is the manifest entry of one tiered segment of a
// partition. Entries of a partition are keyed by base offset.
//
// A SegmentManifest obtained from a State shares its EpochRanges with every
// other reader of that State: treat it as read-only.
type SegmentManifest struct {
	// SegmentID is the UUID naming the segment's objects, never all zeros.
	SegmentID [16]byte
	// BaseOffset and LastOffset are the first and last offsets in the
	// segment (inclusive).
	BaseOffset int64
	LastOffset int64
	// SizeBytes is the size of the segment's log object.
	SizeBytes int64
	// FirstTimestamp and MaxTimestamp are the first batch's and the largest
	// record timestamps (Unix milliseconds), for time-based retention and
	// ListOffsets by time. A segment without timestamps has FirstTimestamp
	// -1 and, as Kafka's largestTimestamp, its local copy's last
	// modification at upload as MaxTimestamp (-1 from older builds).
	FirstTimestamp int64
	MaxTimestamp   int64
	// LeaderEpoch is the leader epoch of the uploader.
	LeaderEpoch int32
	State       SegmentState
	// TxnIndex says whether the segment's .txnindex object holds entries
	// (set by the uploader from the index it uploads).
	TxnIndex TxnIndexState
	// EpochRanges are the leader epochs of the segment's offsets: at least
	// one, the first starting at BaseOffset, epochs and start offsets
	// strictly increasing, none after LastOffset or above LeaderEpoch.
	EpochRanges []EpochRange
}

// SegmentRef names a manifest entry in the commands that move it forward,
// with the leader epoch of the proposer that fences them.
type SegmentRef struct {
	TopicID    [16]byte
	Partition  int32
	BaseOffset int64
	// SegmentID must be the entry's: a command about another upload of the
	// same offsets never touches this one.
	SegmentID [16]byte
	// LeaderEpoch is the proposer's leader epoch for the partition.
	LeaderEpoch int32
}

// segmentChunkSize is the most entries a chunk of a partition's manifest
// holds. A change copies one chunk and the partition's list of chunk
// headers, so Apply stays cheap however many segments a partition has,
// while a chunk's entries sit together in one allocation (a tree node per
// entry would cost several times the entry itself).
const segmentChunkSize = 64

// partitionSegments is the tiered-segment manifest of one partition: its
// entries in base-offset order, split into chunks. Immutable once it is
// reachable from a State: a change builds a new one that shares the
// untouched chunks.
type partitionSegments struct {
	// chunks are non-empty, each sorted by base offset, and every base
	// offset of a chunk is below those of the next.
	chunks [][]SegmentManifest
	count  int
}

// segmentPosition addresses one entry of a partitionSegments.
type segmentPosition struct{ chunk, entry int }

// upperBound returns the position of the first entry whose base offset is
// above offset (the end position when there is none).
func (p *partitionSegments) upperBound(offset int64) segmentPosition {
	chunk := sort.Search(len(p.chunks), func(i int) bool { return p.chunks[i][0].BaseOffset > offset })
	if chunk == 0 {
		return segmentPosition{}
	}
	entries := p.chunks[chunk-1]
	entry := sort.Search(len(entries), func(i int) bool { return entries[i].BaseOffset > offset })
	if entry == len(entries) {
		return segmentPosition{chunk: chunk}
	}
	return segmentPosition{chunk: chunk - 1, entry: entry}
}

// previous returns the position before at, and false at the start.
func (p *partitionSegments) previous(at segmentPosition) (segmentPosition, bool) {
	if at.entry > 0 {
		return segmentPosition{at.chunk, at.entry - 1}, true
	}
	if at.chunk == 0 {
		return segmentPosition{}, false
	}
	return segmentPosition{at.chunk - 1, len(p.chunks[at.chunk-1]) - 1}, true
}

func (p *partitionSegments) at(position segmentPosition) *SegmentManifest {
	return &p.chunks[position.chunk][position.entry]
}

// find returns the position of the entry with the given base offset.
func (p *partitionSegments) find(baseOffset int64) (segmentPosition, bool) {
	position, ok := p.previous(p.upperBound(baseOffset))
	if !ok || p.at(position).BaseOffset != baseOffset {
		return segmentPosition{}, false
	}
	return position, true
}

// each calls fn for the entries from position start on, until fn returns
// false.
func (p *partitionSegments) each(start segmentPosition, fn func(*SegmentManifest) bool) {
	entry := start.entry
	for chunk := start.chunk; chunk < len(p.chunks); chunk++ {
		for ; entry < len(p.chunks[chunk]); entry++ {
			if !fn(&p.chunks[chunk][entry]) {
				return
			}
		}
		entry = 0
	}
}

// eachBackward calls fn for the entries before position end, last first,
// until fn returns false.
func (p *partitionSegments) eachBackward(end segmentPosition, fn func(*SegmentManifest) bool) {
	for position, ok := p.previous(end); ok; position, ok = p.previous(position) {
		if !fn(p.at(position)) {
			return
		}
	}
}

// withChunks returns a copy of p whose chunks from..to-1 are replaced by
// replacement.
func (p *partitionSegments) withChunks(from, to int, replacement ...[]SegmentManifest) *partitionSegments {
	chunks := make([][]SegmentManifest, 0, len(p.chunks)-(to-from)+len(replacement))
	chunks = append(chunks, p.chunks[:from]...)
	for _, chunk := range replacement {
		if len(chunk) > 0 {
			chunks = append(chunks, chunk)
		}
	}
	chunks = append(chunks, p.chunks[to:]...)
	count := 0
	for _, chunk := range replacement {
		count += len(chunk)
	}
	for _, chunk := range p.chunks[from:to] {
		count -= len(chunk)
	}
	return &partitionSegments{chunks: chunks, count: p.count + count}
}

// inserted returns p with entry added; no entry with its base offset may
// exist. Appending at the end fills chunks completely; inserting into a
// full chunk splits it in halves.
func (p *partitionSegments) inserted(entry SegmentManifest) *partitionSegments {
	if p == nil || len(p.chunks) == 0 {
		return &partitionSegments{chunks: [][]SegmentManifest{{entry}}, count: 1}
	}
	position := p.upperBound(entry.BaseOffset)
	if position.chunk == len(p.chunks) {
		// After every entry: into the last chunk, or a new one.
		last := len(p.chunks) - 1
		if len(p.chunks[last]) == segmentChunkSize {
			return p.withChunks(len(p.chunks), len(p.chunks), []SegmentManifest{entry})
		}
		position = segmentPosition{chunk: last, entry: len(p.chunks[last])}
	}
	old := p.chunks[position.chunk]
	chunk := make([]SegmentManifest, 0, len(old)+1)
	chunk = append(chunk, old[:position.entry]...)
	chunk = append(chunk, entry)
	chunk = append(chunk, old[position.entry:]...)
	if len(chunk) <= segmentChunkSize {
		return p.withChunks(position.chunk, position.chunk+1, chunk)
	}
	half := len(chunk) / 2
	return p.withChunks(position.chunk, position.chunk+1, chunk[:half:half], chunk[half:])
}

// insertedSorted returns p (nil: empty) with entries added: entries sorted
// by base offset, none at a base offset p already has. Each chunk takes the
// new entries below the next chunk's first base offset (the first chunk
// also those before it, the last every one after it): a chunk that takes
// none is shared, and one that takes some is merged with them and packed
// into full chunks, as the snapshot restorer packs them. So adding a batch
// costs the chunks it touches and one list of chunk headers, where adding
// its entries one by one would copy the header list for each.
func (p *partitionSegments) insertedSorted(entries []SegmentManifest) *partitionSegments {
	if len(entries) == 0 {
		return p
	}
	if p == nil || len(p.chunks) == 0 {
		merged := append([]SegmentManifest(nil), entries...)
		return &partitionSegments{chunks: packChunks(nil, merged), count: len(merged)}
	}
	count := p.count + len(entries)
	chunks := make([][]SegmentManifest, 0, len(p.chunks)+len(entries)/segmentChunkSize+1)
	for i, chunk := range p.chunks {
		taken := len(entries)
		if i+1 < len(p.chunks) {
			bound := p.chunks[i+1][0].BaseOffset
			taken = sort.Search(len(entries), func(j int) bool { return entries[j].BaseOffset >= bound })
		}
		if taken == 0 {
			chunks = append(chunks, chunk)
			continue
		}
		adding := entries[:taken]
		entries = entries[taken:]
		merged := make([]SegmentManifest, 0, len(chunk)+len(adding))
		for len(chunk) > 0 && len(adding) > 0 {
			if adding[0].BaseOffset < chunk[0].BaseOffset {
				merged, adding = append(merged, adding[0]), adding[1:]
			} else {
				merged, chunk = append(merged, chunk[0]), chunk[1:]
			}
		}
		merged = append(append(merged, chunk...), adding...)
		chunks = packChunks(chunks, merged)
	}
	return &partitionSegments{chunks: chunks, count: count}
}

// packChunks appends entries to chunks, cut into chunks of
// segmentChunkSize (the last may hold fewer). The new chunks share entries'
// array, each capped at its own end.
func packChunks(chunks [][]SegmentManifest, entries []SegmentManifest) [][]SegmentManifest {
	for len(entries) > segmentChunkSize {
		chunks = append(chunks, entries[:segmentChunkSize:segmentChunkSize])
		entries = entries[segmentChunkSize:]
	}
	return append(chunks, entries)
}

// replaced returns p with the entry at position replaced.
func (p *partitionSegments) replaced(position segmentPosition, entry SegmentManifest) *partitionSegments {
	chunk := append([]SegmentManifest(nil), p.chunks[position.chunk]...)
	chunk[position.entry] = entry
	return p.withChunks(position.chunk, position.chunk+1, chunk)
}

// removed returns p without the entry at position (nil when it was the
// last). A chunk that falls to a quarter merges with its successor when
// they fit in one.
func (p *partitionSegments) removed(position segmentPosition) *partitionSegments {
	if p.count == 1 {
		return nil
	}
	old := p.chunks[position.chunk]
	to := position.chunk + 1
	var next []SegmentManifest
	if len(old)-1 < segmentChunkSize/4 && to < len(p.chunks) && len(old)-1+len(p.chunks[to]) <= segmentChunkSize {
		next = p.chunks[to]
		to++
	}
	chunk := make([]SegmentManifest, 0, len(old)-1+len(next))
	chunk = append(chunk, old[:position.entry]...)
	chunk = append(chunk, old[position.entry+1:]...)
	chunk = append(chunk, next...)
	return p.withChunks(position.chunk, to, chunk)
}

// segmentPartitionKey is the radix-tree key of a partition's manifest: the
// topic id, then the partition (never negative) as 8 big-endian 4-bit
// digits, one per byte. The tree iterates in (topic id, partition) order,
// and its nodes have at most 16 children below the topic id: a change
// copies the nodes on its path, and with whole bytes a node of 256
// partitions would cost 4 KiB to copy on every change.
func segmentPartitionKey(topicID [16]byte, partition int32) []byte {
	key := make([]byte, segmentPartitionKeySize)
	copy(key, topicID[:])
	for i := range 8 {
		key[16+i] = byte(uint32(partition)>>(28-4*i)) & 0x0f
	}
	return key
}

const segmentPartitionKeySize = 16 + 8

// parseSegmentPartitionKey inverts segmentPartitionKey.
func parseSegmentPartitionKey(key []byte) (topicID [16]byte, partition int32) {
	copy(topicID[:], key)
	var value uint32
	for _, digit := range key[16:segmentPartitionKeySize] {
		value = value<<4 | uint32(digit)
	}
	return topicID, int32(value)
}

func (s *State) partitionSegments(topicID [16]byte, partition int32) (*partitionSegments, bool) {
	if partition < 0 {
		return nil, false
	}
	return s.segments.Get(segmentPartitionKey(topicID, partition))
}

// SegmentCount returns the number of tiered-segment manifest entries of
// every partition.
func (s *State) SegmentCount() int { return s.segmentCount }

// PartitionSegmentCount returns the number of manifest entries of one
// partition.
func (s *State) PartitionSegmentCount(topicID [16]byte, partition int32) int {
	segments, ok := s.partitionSegments(topicID, partition)
	if !ok {
		return 0
	}
	return segments.count
}

// Segment returns the manifest entry of a partition with the given base
// offset, in whatever state.
func (s *State) Segment(topicID [16]byte, partition int32, baseOffset int64) (SegmentManifest, bool) {
	segments, ok := s.partitionSegments(topicID, partition)
	if !ok {
		return SegmentManifest{}, false
	}
	position, ok := segments.find(baseOffset)
	if !ok {
		return SegmentManifest{}, false
	}
	return *segments.at(position), true
}

// EachSegment calls fn, in base-offset order, for the manifest entries of a
// partition in every state, starting with the one with the greatest base
// offset not above fromOffset (the first when there is none: pass 0 for
// all), until fn returns false. Readers serve only SegmentCopyFinished
// entries.
func (s *State) EachSegment(topicID [16]byte, partition int32, fromOffset int64, fn func(SegmentManifest) bool) {
	segments, ok := s.partitionSegments(topicID, partition)
	if !ok {
		return
	}
	start, ok := segments.previous(segments.upperBound(fromOffset))
	if !ok {
		start = segmentPosition{}
	}
	segments.each(start, func(entry *SegmentManifest) bool { return fn(*entry) })
}

// SegmentContaining returns the readable (SegmentCopyFinished) segment of a
// partition whose offsets include offset.
func (s *State) SegmentContaining(topicID [16]byte, partition int32, offset int64) (SegmentManifest, bool) {
	segments, ok := s.partitionSegments(topicID, partition)
	if !ok {
		return SegmentManifest{}, false
	}
	// Finished segments never overlap, so the candidate is the finished
	// segment with the greatest base offset not above offset.
	var found *SegmentManifest
	segments.eachBackward(segments.upperBound(offset), func(entry *SegmentManifest) bool {
		if entry.State != SegmentCopyFinished {
			return true
		}
		if entry.LastOffset >= offset {
			found = entry
		}
		return false
	})
	if found == nil {
		return SegmentManifest{}, false
	}
	return *found, true
}

// RemoteLogOffsets returns the first and last offsets of a partition held
// in readable (SegmentCopyFinished) tiered segments: the remote log start
// offset and the remote log end offset (inclusive). ok is false when the
// partition has no readable tiered segment.
func (s *State) RemoteLogOffsets(topicID [16]byte, partition int32) (start, end int64, ok bool) {
	segments, found := s.partitionSegments(topicID, partition)
	if !found {
		return 0, 0, false
	}
	segments.each(segmentPosition{}, func(entry *SegmentManifest) bool {
		if entry.State == SegmentCopyFinished {
			start, ok = entry.BaseOffset, true
			return false
		}
		return true
	})
	segments.eachBackward(segmentPosition{chunk: len(segments.chunks)}, func(entry *SegmentManifest) bool {
		if entry.State == SegmentCopyFinished {
			end = entry.LastOffset
			return false
		}
		return true
	})
	return start, end, ok
}

// EachSegmentPartition calls fn for every partition that has manifest
// entries, in (topic id, partition) order, with its entry count, until fn
// returns false. It includes partitions of deleted topics (TopicByID finds
// nothing for them): their entries wait for the tiering layer to delete the
// objects and then the entries (SegmentDeleteStarted, SegmentDeleted).
func (s *State) EachSegmentPartition(fn func(topicID [16]byte, partition int32, segments int) bool) {
	iterator := s.segments.Root().Iterator()
	for key, segments, ok := iterator.Next(); ok; key, segments, ok = iterator.Next() {
		topicID, partition := parseSegmentPartitionKey(key)
		if !fn(topicID, partition, segments.count) {
			return
		}
	}
}

// hasSegmentsOfTopic reports whether any manifest entry has the topic id.
func (b *stateBuilder) hasSegmentsOfTopic(topicID [16]byte) bool {
	iterator := b.segments.Root().Iterator()
	iterator.SeekPrefix(topicID[:])
	_, _, ok := iterator.Next()
	return ok
}

func (b *stateBuilder) partitionSegments(topicID [16]byte, partition int32) (*partitionSegments, bool) {
	return b.segments.Get(segmentPartitionKey(topicID, partition))
}

// putPartitionSegments stores a partition's manifest (nil: removes it) and
// keeps the total count.
func (b *stateBuilder) putPartitionSegments(topicID [16]byte, partition int32, old, segments *partitionSegments) {
	if old != nil {
		b.segmentCount -= old.count
	}
	key := segmentPartitionKey(topicID, partition)
	if segments == nil {
		b.segments.Delete(key)
		return
	}
	b.segmentCount += segments.count
	b.segments.Insert(key, segments)
}

// minimumEpochRangeSize and minimumSegmentSize are the fewest bytes an
// encoded epoch range and segment take.
const (
	minimumEpochRangeSize = 4 + 8
	minimumSegmentSize    = 16 + 5*8 + 4 + 1
)

// encodeSegment writes a manifest entry without its state (which commands
// imply and snapshot records write before it), in the current layout: the
// version 1 layout (encodeSegmentV1), then the txn index state.
func encodeSegment(e *encoder, segment *SegmentManifest) {
	encodeSegmentV1(e, segment)
	e.uint8(uint8(segment.TxnIndex))
}

// decodeSegment reads what encodeSegment writes.
func decodeSegment(d *decoder, segment *SegmentManifest) {
	decodeSegmentV1(d, segment)
	segment.TxnIndex = decodeTxnIndexState(d)
}

func decodeTxnIndexState(d *decoder) TxnIndexState {
	state := TxnIndexState(d.uint8())
	if state > TxnIndexNotEmpty {
		d.fail(fmt.Errorf("txn index state %d", state))
		return TxnIndexUnknown
	}
	return state
}

// encodeSegmentV1 writes a manifest entry without its txn index state, as
// SegmentCopyStarted and SegmentsImported version 1 and snapshot records
// of type 0x04 hold it (decoded, the state is TxnIndexUnknown).
func encodeSegmentV1(e *encoder, segment *SegmentManifest) {
	e.uuid(segment.SegmentID)
	e.int64(segment.BaseOffset)
	e.int64(segment.LastOffset)
	e.int64(segment.SizeBytes)
	e.int64(segment.FirstTimestamp)
	e.int64(segment.MaxTimestamp)
	e.int32(segment.LeaderEpoch)
	e.uvarint(uint64(len(segment.EpochRanges)))
	for _, epochRange := range segment.EpochRanges {
		e.int32(epochRange.Epoch)
		e.int64(epochRange.StartOffset)
	}
}

func decodeSegmentV1(d *decoder, segment *SegmentManifest) {
	segment.SegmentID = d.uuid()
	segment.BaseOffset = d.int64()
	segment.LastOffset = d.int64()
	segment.SizeBytes = d.int64()
	segment.FirstTimestamp = d.int64()
	segment.MaxTimestamp = d.int64()
	segment.LeaderEpoch = d.int32()
	if n := d.length(minimumEpochRangeSize); n > 0 {
		segment.EpochRanges = make([]EpochRange, n)
		for i := range segment.EpochRanges {
			segment.EpochRanges[i] = EpochRange{Epoch: d.int32(), StartOffset: d.int64()}
		}
	}
}

// MaxImportedSegments is the most entries one ImportSegments call (one
// SegmentsImported command) may carry, so that a Raft entry and its Apply
// stay small; a longer manifest is imported in batches.
const MaxImportedSegments = 10000

// validateImportedSegments checks the entries of one import: at least one,
// at most MaxImportedSegments, each valid (validateSegment), sorted by base
// offset (ErrInvalidSegment), no base offset twice (ErrSegmentExists), no
// two overlapping (ErrSegmentOverlap).
func validateImportedSegments(segments []SegmentManifest) error {
	switch {
	case len(segments) == 0:
		return fmt.Errorf("%w: no segments to import", ErrInvalidSegment)
	case len(segments) > MaxImportedSegments:
		return fmt.Errorf("%w: %d segments in one import, at most %d: import them in batches", ErrInvalidSegment, len(segments), MaxImportedSegments)
	}
	for i := range segments {
		segment := &segments[i]
		if err := validateSegment(segment); err != nil {
			return fmt.Errorf("imported segment %d (offsets %d..%d): %w", i, segment.BaseOffset, segment.LastOffset, err)
		}
		if i == 0 {
			continue
		}
		previous := &segments[i-1]
		switch {
		case segment.BaseOffset == previous.BaseOffset:
			return fmt.Errorf("imported segments %d and %d both at base offset %d: %w", i-1, i, segment.BaseOffset, ErrSegmentExists)
		case segment.BaseOffset < previous.BaseOffset:
			return fmt.Errorf("%w: imported segments are not sorted by base offset: %d (at %d) follows %d (at %d)",
				ErrInvalidSegment, i, segment.BaseOffset, i-1, previous.BaseOffset)
		case segment.BaseOffset <= previous.LastOffset:
			return fmt.Errorf("imported segment %d (offsets %d..%d) overlaps %d (offsets %d..%d): %w",
				i, segment.BaseOffset, segment.LastOffset, i-1, previous.BaseOffset, previous.LastOffset, ErrSegmentOverlap)
		}
	}
	return nil
}

// validateSegment checks a new manifest entry's own fields.
func validateSegment(segment *SegmentManifest) error {
	switch {
	case segment.SegmentID == [16]byte{}:
		return fmt.Errorf("%w: zero segment id", ErrInvalidSegment)
	case segment.BaseOffset < 0 || segment.LastOffset < segment.BaseOffset:
		return fmt.Errorf("%w: offsets %d..%d", ErrInvalidSegment, segment.BaseOffset, segment.LastOffset)
	case segment.SizeBytes < 0:
		return fmt.Errorf("%w: size %d", ErrInvalidSegment, segment.SizeBytes)
	case segment.LeaderEpoch < 0:
		return fmt.Errorf("%w: leader epoch %d", ErrInvalidSegment, segment.LeaderEpoch)
	case segment.TxnIndex > TxnIndexNotEmpty:
		return fmt.Errorf("%w: %s", ErrInvalidSegment, segment.TxnIndex)
	case len(segment.EpochRanges) == 0:
		return fmt.Errorf("%w: no epoch ranges", ErrInvalidSegment)
	case segment.EpochRanges[0].StartOffset != segment.BaseOffset:
		return fmt.Errorf("%w: the first epoch range starts at %d, the segment at %d", ErrInvalidSegment, segment.EpochRanges[0].StartOffset, segment.BaseOffset)
	}
	for i, epochRange := range segment.EpochRanges {
		if epochRange.Epoch < 0 || epochRange.Epoch > segment.LeaderEpoch || epochRange.StartOffset > segment.LastOffset {
			return fmt.Errorf("%w: epoch range %d (epoch %d from %d) is outside epochs 0..%d, offsets %d..%d",
				ErrInvalidSegment, i, epochRange.Epoch, epochRange.StartOffset, segment.LeaderEpoch, segment.BaseOffset, segment.LastOffset)
		}
		if i > 0 && (epochRange.Epoch <= segment.EpochRanges[i-1].Epoch || epochRange.StartOffset <= segment.EpochRanges[i-1].StartOffset) {
			return fmt.Errorf("%w: epoch ranges are not strictly increasing at %d", ErrInvalidSegment, i)
		}
	}
	return nil
}
