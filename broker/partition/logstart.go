package partition

import (
	"fmt"

	"github.com/strata-log/strata/broker/segment"
)

// DeleteRecordsBefore moves the log start offset of a partition this broker
// leads to offset (DeleteRecords; -1: the high watermark), deleting the
// local segments entirely below it, and returns the log start after it. The
// new start is durable (the segment log's checkpoint) before it is
// returned. It fails with ErrNotLeader, or with segment.ErrOffsetOutOfRange
// for an offset below -1 or above the high watermark (records not yet
// committed cannot be deleted, as in Kafka). An offset at or below the log
// start changes nothing. Followers follow with FollowLogStart.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if !p.leading.Load() {
		return 0, ErrNotLeader
	}
	highWatermark := p.highWatermark.Load()
	if offset == -1 {
		offset = highWatermark
	}
	if offset < 0 || offset > highWatermark {
		return 0, fmt.Errorf("partition %s-%d: delete records before %d, high watermark %d: %w", p.topic, p.index, offset, highWatermark, segment.ErrOffsetOutOfRange)
	}
	if err := p.segments.SetStartOffset(offset); err != nil {
		return 0, err
	}
	return p.segments.StartOffset(), nil
}

// FollowLogStart advances a follower's log start offset to its leader's
// (leaderLogStart, from a Fetch response), as far as this replica's high
// watermark: what the leader deleted (DeleteRecords, retention) goes here
// too. A leader's log start below this replica's changes nothing (a tiered
// partition's leader answers the log start of its remote data).
func (p *Partition) FollowLogStart(leaderLogStart int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.leading.Load() {
		return nil
	}
	target := min(leaderLogStart, p.highWatermark.Load())
	if target <= p.segments.StartOffset() {
		return nil
	}
	return p.segments.SetStartOffset(target)
}
