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

// FollowerLogStart records a follower's log start offset as its fetch
// states it (Fetch v5+), and wakes the waiters when it moves (a
// DeleteRecords waiting for LowWatermark).
func (p *Partition) FollowerLogStart(follower int32, logStart int64) {
	p.appendMu.Lock()
	f := p.followers[follower]
	moved := f != nil && p.leading.Load() && logStart > f.logStartOffset
	if moved {
		f.logStartOffset = logStart
	}
	p.appendMu.Unlock()
	if moved {
		p.notifyWaiters()
	}
}

// LowWatermark is the lowest log start offset of this leader and its
// in-sync followers (Kafka's low watermark, over the ISR): DeleteRecords
// answers once it has reached the offset asked. A follower that has not
// stated its log start yet counts as -1.
func (p *Partition) LowWatermark() int64 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	low := p.segments.StartOffset()
	for _, id := range p.assignment.ISR {
		if f := p.followers[id]; f != nil && id != p.self {
			low = min(low, f.logStartOffset)
		}
	}
	return low
}
