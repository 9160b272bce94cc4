package metadata

import (
	"fmt"
	"math"
)

// checkLeaderEpoch fences a tiering command: only the current leader of the
// partition (at its current leader epoch) may change its manifest. The
// state hands out leader epochs, so an epoch above the current one is as
// wrong as a stale one.
func checkLeaderEpoch(topic *Topic, partition int32, leaderEpoch int32) error {
	current := topic.Partitions[partition].LeaderEpoch
	if leaderEpoch != current {
		return fmt.Errorf("topic %q partition %d is at leader epoch %d, the command at %d: %w",
			topic.Name, partition, current, leaderEpoch, ErrFencedLeaderEpoch)
	}
	return nil
}

// segmentCopyStartedCommand adds a manifest entry in state
// SegmentCopyStarted before the uploader writes the segment's objects.
type segmentCopyStartedCommand struct {
	topicID   [16]byte
	partition int32
	// segment's State is ignored (not encoded): the entry starts in
	// SegmentCopyStarted. Its LeaderEpoch is the uploader's and fences the
	// command.
	segment SegmentManifest
}

func (c *segmentCopyStartedCommand) commandType() commandType { return commandSegmentCopyStarted }
func (c *segmentCopyStartedCommand) encode(e *encoder) {
	e.uuid(c.topicID)
	e.int32(c.partition)
	encodeSegment(e, &c.segment)
}

// decodeSegmentCopyStarted reads version 2 (the segment with its txn index
// state) and version 1 (without: TxnIndexUnknown).
func decodeSegmentCopyStarted(version uint8, d *decoder) (command, bool) {
	if version != 1 && version != 2 {
		return nil, false
	}
	c := &segmentCopyStartedCommand{topicID: d.uuid(), partition: d.int32()}
	decodeVersionedSegment(version, d, &c.segment)
	c.segment.State = SegmentCopyStarted
	return c, true
}

func (c *segmentCopyStartedCommand) apply(b *stateBuilder) (any, error) {
	segment := c.segment
	segment.State = SegmentCopyStarted
	if err := validateSegment(&segment); err != nil {
		return nil, err
	}
	topic, err := lookupPartition(b, c.topicID, c.partition)
	if err != nil {
		return nil, err
	}
	if err := checkLeaderEpoch(topic, c.partition, segment.LeaderEpoch); err != nil {
		return nil, err
	}
	segments, _ := b.partitionSegments(c.topicID, c.partition)
	if err := checkNewSegment(segments, &segment, topic, c.partition); err != nil {
		return nil, err
	}
	segment.EpochRanges = append([]EpochRange(nil), segment.EpochRanges...)
	b.putPartitionSegments(c.topicID, c.partition, segments, segments.inserted(segment))
	return nil, nil
}

// decodeVersionedSegment reads a segment of a version 1 or 2 command.
func decodeVersionedSegment(version uint8, d *decoder, segment *SegmentManifest) {
	if version == 1 {
		decodeSegmentV1(d, segment)
		return
	}
	decodeSegment(d, segment)
}

// checkNewSegment rejects a new entry of partition's manifest (segments,
// nil when it has none) at a base offset that has an entry
// (ErrSegmentExists), or whose offsets overlap an entry being copied or
// readable (ErrSegmentOverlap); offsets of entries being deleted may be
// copied again.
func checkNewSegment(segments *partitionSegments, segment *SegmentManifest, topic *Topic, partition int32) error {
	if segments == nil {
		return nil
	}
	if _, exists := segments.find(segment.BaseOffset); exists {
		return fmt.Errorf("topic %q partition %d: segment at base offset %d: %w", topic.Name, partition, segment.BaseOffset, ErrSegmentExists)
	}
	// Entries being copied or readable never overlap (entries being
	// deleted may): they are sorted by base offset and their ranges are
	// disjoint, so only the last of them starting at or before
	// segment.LastOffset can overlap the new one.
	var overlapping *SegmentManifest
	segments.eachBackward(segments.upperBound(segment.LastOffset), func(entry *SegmentManifest) bool {
		if entry.State == SegmentDeleteStarted {
			return true
		}
		if entry.LastOffset >= segment.BaseOffset {
			overlapping = entry
		}
		return false
	})
	if overlapping != nil {
		return fmt.Errorf("topic %q partition %d: offsets %d..%d overlap segment %d..%d (%s): %w", topic.Name, partition,
			segment.BaseOffset, segment.LastOffset, overlapping.BaseOffset, overlapping.LastOffset, overlapping.State, ErrSegmentOverlap)
	}
	return nil
}

// segmentsImportedCommand adds manifest entries of segments already in the
// object store, readable (SegmentCopyFinished): disaster recovery rebuilds
// a re-created topic's manifest from its bucket. It raises the partition's
// leader epoch above every epoch of the entries, so that what is appended
// after the import carries a higher epoch than anything imported.
type segmentsImportedCommand struct {
	topicID   [16]byte
	partition int32
	// segments are sorted by base offset (validateImportedSegments). Their
	// State is ignored (not encoded): they enter as SegmentCopyFinished.
	// Their LeaderEpoch is the uploader's in the cluster that wrote them:
	// kept, and fencing nothing.
	segments []SegmentManifest
}

func (c *segmentsImportedCommand) commandType() commandType { return commandSegmentsImported }
func (c *segmentsImportedCommand) encode(e *encoder) {
	e.uuid(c.topicID)
	e.int32(c.partition)
	e.uvarint(uint64(len(c.segments)))
	for i := range c.segments {
		encodeSegment(e, &c.segments[i])
	}
}

// decodeSegmentsImported reads version 2 (segments with their txn index
// state) and version 1 (without: TxnIndexUnknown).
func decodeSegmentsImported(version uint8, d *decoder) (command, bool) {
	if version != 1 && version != 2 {
		return nil, false
	}
	c := &segmentsImportedCommand{topicID: d.uuid(), partition: d.int32()}
	// The count is bounded by the data (length), not by
	// MaxImportedSegments: a longer list is a valid entry that apply
	// rejects.
	if n := d.length(minimumSegmentSize); n > 0 {
		c.segments = make([]SegmentManifest, n)
		for i := range c.segments {
			decodeVersionedSegment(version, d, &c.segments[i])
			c.segments[i].State = SegmentCopyFinished
		}
	}
	return c, true
}

func (c *segmentsImportedCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupPartition(b, c.topicID, c.partition)
	if err != nil {
		return nil, err
	}
	if err := validateImportedSegments(c.segments); err != nil {
		return nil, fmt.Errorf("topic %q partition %d: %w", topic.Name, c.partition, err)
	}
	// The entries do not overlap each other (validateImportedSegments), so
	// each needs checking against the manifest as it was only.
	segments, _ := b.partitionSegments(c.topicID, c.partition)
	highestEpoch := int32(0)
	imported := make([]SegmentManifest, len(c.segments))
	for i := range c.segments {
		segment := &c.segments[i]
		if err := checkNewSegment(segments, segment, topic, c.partition); err != nil {
			return nil, err
		}
		// validateSegment keeps every epoch range at or below the
		// entry's LeaderEpoch, so that is the entry's highest epoch.
		highestEpoch = max(highestEpoch, segment.LeaderEpoch)
		imported[i] = *segment
		imported[i].State = SegmentCopyFinished
		imported[i].EpochRanges = append([]EpochRange(nil), segment.EpochRanges...)
	}
	current := topic.Partitions[c.partition]
	if current.LeaderEpoch <= highestEpoch {
		if highestEpoch == math.MaxInt32 {
			return nil, fmt.Errorf("topic %q partition %d: %w: leader epoch %d leaves none above it", topic.Name, c.partition, ErrInvalidSegment, highestEpoch)
		}
		next := current
		next.LeaderEpoch = highestEpoch + 1
		if _, err := b.advancePartition(topic, next); err != nil {
			return nil, err
		}
	}
	b.putPartitionSegments(c.topicID, c.partition, segments, segments.insertedSorted(imported))
	return nil, nil
}

// segmentTransitionCommand moves a manifest entry forward:
// SegmentCopyFinished, SegmentDeleteStarted, or out of the manifest
// (SegmentDeleted). The three commands share this payload.
type segmentTransitionCommand struct {
	typ commandType
	ref SegmentRef
}

func (c *segmentTransitionCommand) commandType() commandType { return c.typ }
func (c *segmentTransitionCommand) encode(e *encoder) {
	e.uuid(c.ref.TopicID)
	e.int32(c.ref.Partition)
	e.int64(c.ref.BaseOffset)
	e.uuid(c.ref.SegmentID)
	e.int32(c.ref.LeaderEpoch)
}

// decodeSegmentTransition returns the decode function of one of the
// transition commands.
func decodeSegmentTransition(typ commandType) func(version uint8, d *decoder) (command, bool) {
	return func(version uint8, d *decoder) (command, bool) {
		if version != 1 {
			return nil, false
		}
		return &segmentTransitionCommand{typ: typ, ref: SegmentRef{
			TopicID:     d.uuid(),
			Partition:   d.int32(),
			BaseOffset:  d.int64(),
			SegmentID:   d.uuid(),
			LeaderEpoch: d.int32(),
		}}, true
	}
}

func (c *segmentTransitionCommand) apply(b *stateBuilder) (any, error) {
	ref := &c.ref
	if ref.Partition < 0 {
		return nil, fmt.Errorf("partition %d: %w", ref.Partition, ErrUnknownPartition)
	}
	// Entries of a deleted topic stay until the tiering layer has deleted
	// their objects; no leader fences their deletion, and none may finish
	// a copy into the deleted topic.
	if name, exists := b.topicNameByID(ref.TopicID); exists {
		topic, _ := b.topic(name)
		if !topic.HasPartition(ref.Partition) {
			return nil, fmt.Errorf("topic %q has no partition %d: %w", name, ref.Partition, ErrUnknownPartition)
		}
		if err := checkLeaderEpoch(topic, ref.Partition, ref.LeaderEpoch); err != nil {
			return nil, err
		}
	} else if c.typ == commandSegmentCopyFinished {
		return nil, fmt.Errorf("topic id %s: %w", formatTopicID(ref.TopicID), ErrUnknownTopic)
	}

	// where describes the target in error messages; only rejections pay for it.
	where := func() string {
		return fmt.Sprintf("topic id %s partition %d segment at %d", formatTopicID(ref.TopicID), ref.Partition, ref.BaseOffset)
	}
	segments, ok := b.partitionSegments(ref.TopicID, ref.Partition)
	var position segmentPosition
	if ok {
		position, ok = segments.find(ref.BaseOffset)
	}
	if !ok || segments.at(position).SegmentID != ref.SegmentID {
		return nil, fmt.Errorf("%s: %w", where(), ErrUnknownSegment)
	}
	entry := *segments.at(position)
	var next SegmentState
	switch c.typ {
	case commandSegmentCopyFinished:
		next = SegmentCopyFinished
		if entry.State != SegmentCopyStarted {
			return nil, fmt.Errorf("%s: %s -> %s: %w", where(), entry.State, next, ErrInvalidSegmentTransition)
		}
	case commandSegmentDeleteStarted:
		next = SegmentDeleteStarted
		if entry.State != SegmentCopyStarted && entry.State != SegmentCopyFinished {
			return nil, fmt.Errorf("%s: %s -> %s: %w", where(), entry.State, next, ErrInvalidSegmentTransition)
		}
	case commandSegmentDeleted:
		if entry.State != SegmentDeleteStarted {
			return nil, fmt.Errorf("%s: %s -> deleted: %w", where(), entry.State, ErrInvalidSegmentTransition)
		}
		b.putPartitionSegments(ref.TopicID, ref.Partition, segments, segments.removed(position))
		return nil, nil
	default:
		panic(fmt.Sprintf("metadata: segment transition with command type %s", c.typ))
	}
	entry.State = next
	b.putPartitionSegments(ref.TopicID, ref.Partition, segments, segments.replaced(position, entry))
	return nil, nil
}
