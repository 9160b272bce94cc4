package partition

import (
	"fmt"

	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// LogStartOffsetIn is the partition's first offset, in the object store or
// on local disk, as state (the metadata this broker has applied) describes
// its tiered data: what consumers see as the log start (ListOffsets
// earliest, Fetch's LogStartOffset). A log start set in the quorum
// (DeleteRecords on a tiered partition) hides the remote records below it
// until the tier manager deletes their segments. A state read before the
// call may lack an upload whose local copies are gone (ReadLogStarts).
func (p *Partition) LogStartOffsetIn(state *metadata.State) int64 {
	return p.logStartOffsetIn(state, p.LogStartOffset())
}

// LogStarts are a partition's log starts read together: the local one
// first, then the metadata (ReadLogStarts).
type LogStarts struct {
	// Local is the local log start (LogStartOffset).
	Local int64
	// Log is the log start, remote data included, in State
	// (LogStartOffsetIn with Local).
	Log int64
	// State is the metadata this broker had applied once Local was read:
	// it shows the upload of every local segment deleted below Local.
	State *metadata.State
}

// ReadLogStarts reads the local log start, then the metadata this broker
// has applied (currentState), and the log start in it. Local retention
// deletes only what an applied state shows uploaded, so a state read after
// the local log start holds the remote data below it: what a request
// answers about the records below the local log start (where they are, the
// log start) comes from it. With a state read before (a request's, read
// once at its start), an upload committed in between whose local copies
// local retention deleted at once looks like no remote data: the records
// uploaded would be out of range.
func (p *Partition) ReadLogStarts(currentState func() *metadata.State) LogStarts {
	localStart := p.LogStartOffset()
	state := currentState()
	return LogStarts{Local: localStart, Log: p.logStartOffsetIn(state, localStart), State: state}
}

// logStartOffsetIn is LogStartOffsetIn with the local log start given.
func (p *Partition) logStartOffsetIn(state *metadata.State, localStart int64) int64 {
	start := localStart
	if remoteStart, _, ok := state.RemoteLogOffsets(p.topicID, p.index); ok {
		start = min(start, remoteStart)
	}
	if deleted, ok := state.LogStartOffset(p.topicID, p.index); ok {
		start = max(start, deleted)
	}
	return start
}

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
	p.keepProducerSnapshotLocked(offset)
	if err := p.segments.SetStartOffset(offset); err != nil {
		return 0, err
	}
	p.trimEpochsLocked()
	return p.segments.StartOffset(), nil
}

// trimEpochsLocked forgets the leader epochs below the log start, as Kafka
// does when its log start moves (the checkpoint is rewritten; a failed
// write leaves the old one, whose extra entries below the log start only
// answer OffsetForLeaderEpoch for epochs no replica fetches from). A
// tiered partition keeps them: its local log start is not its log start
// (the remote data below it keeps its epochs); TrimLeaderEpochs trims
// them once that data is deleted. appendMu is held.
func (p *Partition) trimEpochsLocked() {
	if p.config.Load().RemoteStorage {
		return
	}
	p.trimEpochsBelowLocked(p.segments.StartOffset())
}

// TrimLeaderEpochs forgets the leader epochs below the log start
// (LogStartOffsetIn: remote data included), as trimEpochsLocked does for
// the local log: once total retention or DeleteRecords has deleted the
// remote segments of an epoch, OffsetForLeaderEpoch for it answers the log
// start, as in Kafka, not an end offset below it. The tier manager calls it
// after deleting remote segments, and on every replica each pass.
//
// currentState returns the metadata this broker has applied, and is
// called after the local log start is read: local retention deletes only
// what an applied state shows uploaded, so a state read after holds the
// remote data below the local log start. With a state read before (a
// pass's, say), an upload committed in between whose local copies local
// retention deleted at once looks like no remote data, and the epochs of
// the records uploaded would go.
func (p *Partition) TrimLeaderEpochs(currentState func() *metadata.State) {
	// Computed before taking appendMu: the log start only moves up, so
	// this one is at or below it.
	logStart := p.ReadLogStarts(currentState).Log
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	p.trimEpochsBelowLocked(logStart)
}

// trimEpochsBelowLocked forgets the leader epochs entirely below logStart
// and rewrites the checkpoint when it changed. appendMu is held.
func (p *Partition) trimEpochsBelowLocked(logStart int64) {
	if p.epochs.truncateFromStart(logStart) {
		if err := p.writeEpochsLocked(); err != nil {
			p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
		}
	}
}

// FollowLogStart advances a follower's log start offset to its leader's
// (leaderLogStart, from a Fetch response), as far as this replica's log
// end, and its high watermark with it when below (raiseLogStartLocked):
// what the leader deleted (DeleteRecords, retention) goes here too. A
// leader's log start below this replica's changes nothing (a tiered
// partition's leader answers the log start of its remote data).
func (p *Partition) FollowLogStart(leaderLogStart int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.leading.Load() {
		return nil
	}
	return p.raiseLogStartLocked(leaderLogStart)
}

// FollowQuorumLogStart advances the local log start offset to the log
// start committed in the quorum (state: DeleteRecords on a tiered
// partition), as far as the log end, and the high watermark with it when
// below (raiseLogStartLocked), as DeleteRecordsBefore would have: a
// replica that missed the DeleteRecords (down, or out of the ISR, then
// elected) would otherwise keep, and as leader serve, records below the
// log start, answer EARLIEST_LOCAL below EARLIEST, and a high watermark
// (Fetch, ListOffsets LATEST) below the log start. A leader does it when
// its term starts (ApplyAssignmentAfterRemote, which first restarts a log
// ending below the quorum's log start there), every replica on each tier
// manager pass. A quorum log start at or below the local one changes
// nothing.
func (p *Partition) FollowQuorumLogStart(state *metadata.State) error {
	// Almost always nothing to do: the append lock is taken only when
	// the quorum's log start is ahead (checked again under it).
	if quorumStart, ok := state.LogStartOffset(p.topicID, p.index); !ok || min(quorumStart, p.segments.EndOffset()) <= p.segments.StartOffset() {
		return nil
	}
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.followQuorumLogStartLocked(state)
}

func (p *Partition) followQuorumLogStartLocked(state *metadata.State) error {
	quorumStart, ok := state.LogStartOffset(p.topicID, p.index)
	if !ok {
		return nil
	}
	return p.raiseLogStartLocked(quorumStart)
}

// raiseLogStartLocked moves the local log start up to target, keeping the
// producer state and trimming the leader epochs as a DeleteRecords does,
// and the high watermark with it when it is below: the high watermark is
// never below the log start, as Kafka's (UnifiedLog.updateLogStartOffset
// raises it; a Fetch answering a high watermark below its log start, or
// ListOffsets LATEST below EARLIEST, makes clients compute a negative lag).
// Raising it exposes no record: those below the log start are deleted. A
// target past the log end stops there, so the high watermark never passes
// the records this replica has: a leader whose log ends below the quorum's
// log start restarts its log there when its term starts
// (ApplyAssignmentAfterRemote), a follower's fetcher restarts it at its
// leader's log start (OFFSET_OUT_OF_RANGE). A target at or below the log
// start changes nothing. Every move of the log start above the high
// watermark goes through here (DeleteRecordsBefore never passes it,
// retention deletes only below it, restartAtLocked sets both). appendMu
// is held.
func (p *Partition) raiseLogStartLocked(target int64) error {
	target = min(target, p.segments.EndOffset())
	if target <= p.segments.StartOffset() {
		return nil
	}
	// The high watermark first: a reader that sees the new log start
	// (it loads the log start, then the high watermark) sees it too.
	p.raiseHighWatermarkLocked(target)
	p.keepProducerSnapshotLocked(target)
	if err := p.segments.SetStartOffset(target); err != nil {
		return err
	}
	// The target is a whole log start (the quorum's, or the leader's as
	// its Fetch answers it: remote data included), so a tiered
	// partition's epochs below it go too, as Kafka's
	// maybeIncrementLogStartOffset trims them: OffsetForLeaderEpoch never
	// answers an end below the log start.
	p.trimEpochsBelowLocked(target)
	return nil
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

// LowWatermark is the lowest log start offset of this leader and its live
// followers — every replica whose broker is registered and unfenced, in
// the ISR or not (Kafka's Partition.lowWatermarkIfLeader, which
// DelayedDeleteRecords waits on): DeleteRecords answers once it has
// reached the offset asked. A live follower that has not stated its log
// start yet counts as -1; a replica whose broker is down or fenced does not
// count (it follows the log start when it fetches again).
func (p *Partition) LowWatermark() int64 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	low := p.segments.StartOffset()
	for id, f := range p.followers {
		if id != p.self && p.liveReplicas[id] {
			low = min(low, f.logStartOffset)
		}
	}
	return low
}
