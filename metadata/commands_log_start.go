package metadata

import (
	"context"
	"fmt"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
)

// A partition's log start offset in the quorum (DeleteRecords on a tiered
// partition): the first offset consumers may read, local or remote. Tiered
// segments entirely below it are deleted by the tiering layer, the ones it
// falls inside are served from it on; partitions without tiered data keep
// their log start in the local log only (its log-start-offset-checkpoint).
//
// Command 37 SetLogStartOffset, payload version 1 (part of the format):
//
//	topic id      16 bytes
//	partition     int32
//	leader epoch  int32   the proposing leader's; fences a deposed leader
//	offset        int64   the new log start offset
//
// The log start only moves forward: an offset at or below the current one
// is accepted and changes nothing. Snapshot record 0x09 (recordLogStart)
// carries one partition's log start with the same layout without the
// leader epoch (topic id, partition, offset), in (topic id, partition)
// order. Both go when the topic is deleted.

// setLogStartOffsetCommand advances a partition's log start offset.
type setLogStartOffsetCommand struct {
	topicID     [16]byte
	partition   int32
	leaderEpoch int32
	offset      int64
}

func (c *setLogStartOffsetCommand) commandType() commandType { return commandSetLogStartOffset }
func (c *setLogStartOffsetCommand) encode(e *encoder) {
	e.uuid(c.topicID)
	e.int32(c.partition)
	e.int32(c.leaderEpoch)
	e.int64(c.offset)
}

func decodeSetLogStartOffset(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &setLogStartOffsetCommand{topicID: d.uuid(), partition: d.int32(), leaderEpoch: d.int32(), offset: d.int64()}, true
}

// apply returns the partition's log start offset after the command (an
// int64).
func (c *setLogStartOffsetCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupPartition(b, c.topicID, c.partition)
	if err != nil {
		return nil, err
	}
	if err := checkLeaderEpoch(topic, c.partition, c.leaderEpoch); err != nil {
		return nil, err
	}
	if c.offset < 0 {
		return nil, fmt.Errorf("topic %q partition %d: log start offset %d: %w", topic.Name, c.partition, c.offset, ErrInvalidLogStartOffset)
	}
	key := segmentPartitionKey(c.topicID, c.partition)
	if current, ok := b.logStarts.Get(key); ok && current >= c.offset {
		return current, nil
	}
	b.logStarts.Insert(key, c.offset)
	return c.offset, nil
}

// LogStartOffset returns a partition's log start offset set by
// SetLogStartOffset (ok false when none was set).
func (s *State) LogStartOffset(topicID [16]byte, partition int32) (offset int64, ok bool) {
	return s.logStarts.Get(segmentPartitionKey(topicID, partition))
}

// SetLogStartOffset advances a partition's log start offset in the quorum
// (DeleteRecords on a tiered partition) and returns the log start offset
// after it: offset, or a higher one set before. leaderEpoch is the
// proposing leader's and must be the partition's current one
// (ErrFencedLeaderEpoch).
func (s *Store) SetLogStartOffset(ctx context.Context, topicID [16]byte, partition, leaderEpoch int32, offset int64) (int64, error) {
	result, err := s.propose(ctx, &setLogStartOffsetCommand{topicID: topicID, partition: partition, leaderEpoch: leaderEpoch, offset: offset})
	if err != nil {
		return 0, err
	}
	return result.(int64), nil
}

// deleteLogStarts drops the log start offsets of a deleted topic.
func (b *stateBuilder) deleteLogStarts(topicID [16]byte) {
	b.logStarts.DeletePrefix(topicID[:])
}

// writeLogStarts writes one recordLogStart per partition with a log start.
func writeLogStarts(w *snapshotWriter, state *State) error {
	iterator := state.logStarts.Root().Iterator()
	for key, offset, ok := iterator.Next(); ok; key, offset, ok = iterator.Next() {
		topicID, partition := parseSegmentPartitionKey(key)
		w.payload.uuid(topicID)
		w.payload.int32(partition)
		w.payload.int64(offset)
		if err := w.record(recordLogStart); err != nil {
			return fmt.Errorf("write log start of topic id %s partition %d: %w", formatTopicID(topicID), partition, err)
		}
	}
	return nil
}

// restoreLogStart reads one recordLogStart into logStarts.
func restoreLogStart(logStarts *iradix.Txn[int64], d *decoder) error {
	topicID, partition, offset := d.uuid(), d.int32(), d.int64()
	if err := d.err(); err != nil {
		return err
	}
	if partition < 0 || offset < 0 {
		return corruptf("log start %d of topic id %s partition %d", offset, formatTopicID(topicID), partition)
	}
	if _, exists := logStarts.Insert(segmentPartitionKey(topicID, partition), offset); exists {
		return corruptf("log start of topic id %s partition %d appears twice", formatTopicID(topicID), partition)
	}
	return nil
}
