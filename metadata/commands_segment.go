package metadata

import "fmt"

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

func decodeSegmentCopyStarted(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &segmentCopyStartedCommand{topicID: d.uuid(), partition: d.int32()}
	decodeSegment(d, &c.segment)
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
	// where describes the target in error messages; only rejections pay for it.
	where := func() string { return fmt.Sprintf("topic %q partition %d", topic.Name, c.partition) }
	segments, _ := b.partitionSegments(c.topicID, c.partition)
	if segments != nil {
		if _, exists := segments.find(segment.BaseOffset); exists {
			return nil, fmt.Errorf("%s: segment at base offset %d: %w", where(), segment.BaseOffset, ErrSegmentExists)
		}
		// Entries being copied or readable never overlap (entries being
		// deleted may): they are sorted by base offset and their ranges
		// are disjoint, so only the last of them starting at or before
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
			return nil, fmt.Errorf("%s: offsets %d..%d overlap segment %d..%d (%s): %w", where(),
				segment.BaseOffset, segment.LastOffset, overlapping.BaseOffset, overlapping.LastOffset, overlapping.State, ErrSegmentOverlap)
		}
	}
	segment.EpochRanges = append([]EpochRange(nil), segment.EpochRanges...)
	b.putPartitionSegments(c.topicID, c.partition, segments, segments.inserted(segment))
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
