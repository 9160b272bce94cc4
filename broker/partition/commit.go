package partition

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// CommitStatus tells an acks=all append ending at end, made while this
// replica led at leaderEpoch, whether it is committed (below the high
// watermark, with at least min.insync.replicas in sync, as Kafka checks;
// in durable mode also fsynced here), still waiting, or failed with a
// Kafka error code: leadership moved, the ISR shrank below
// min.insync.replicas, or the fsync failed. Once this replica no longer
// leads at leaderEpoch the append fails (NOT_LEADER_OR_FOLLOWER) whatever
// the high watermark says, as Kafka fails a delayed produce when its
// replica stops leading: as a follower it may have truncated the records
// away and taken another leader's at their offsets, which the high
// watermark then passes (and it may lead again since, over those). The
// leadership, ISR and high watermark are read together under appendMu,
// so no leader change slips in between. A removed partition's appends
// fail as Kafka's delayed produce does once the partition is gone:
// UNKNOWN_TOPIC_OR_PARTITION when its topic was deleted, else
// NOT_LEADER_OR_FOLLOWER.
func (p *Partition) CommitStatus(end int64, leaderEpoch int32) (done bool, code int16, msg string) {
	p.appendMu.Lock()
	isr, sameTerm := len(p.assignment.ISR), p.leadsAtLocked(leaderEpoch)
	highWatermark := p.highWatermark.Load()
	synced, failed := p.syncStatus(end)
	removedCode, removedMsg := p.removedStatusLocked()
	p.appendMu.Unlock()
	need := int(p.config.Load().MinInsyncReplicas)
	switch {
	case removedCode != 0:
		return false, removedCode, removedMsg
	case failed:
		return false, kerr.KafkaStorageError.Code, "written to the leader, but its fsync failed"
	case !sameTerm:
		return false, kerr.NotLeaderForPartition.Code, "leadership moved before the write was replicated"
	case highWatermark >= end && isr >= need && synced:
		return true, 0, ""
	case isr < need:
		return false, kerr.NotEnoughReplicasAfterAppend.Code, fmt.Sprintf("written to the leader, but the ISR shrank to %d, below min.insync.replicas %d", isr, need)
	}
	return false, 0, ""
}

// leadsAtLocked reports whether this replica leads at leaderEpoch: the
// term an append was made in has not ended (a leader never truncates its
// own log). Called with appendMu held.
func (p *Partition) leadsAtLocked(leaderEpoch int32) bool {
	return p.leading.Load() && p.leaderEpoch.Load() == leaderEpoch
}

// removedStatusLocked is the Kafka error of an append waiting on a
// removed partition, or 0. Called with appendMu held.
func (p *Partition) removedStatusLocked() (code int16, msg string) {
	switch {
	case !p.removed.Load():
		return 0, ""
	case p.topicDeleted:
		return kerr.UnknownTopicOrPartition.Code, "the topic was deleted before the write was replicated"
	}
	return kerr.NotLeaderForPartition.Code, "this broker no longer hosts the partition"
}

// syncStatus tells whether records below end are fsynced here (always
// true outside durable mode), or failed when they never will be: an fsync
// failed and failed the log (LogFailed).
func (p *Partition) syncStatus(end int64) (synced, failed bool) {
	if !p.Durable() || p.segments.SyncedEnd() >= end {
		return true, false
	}
	return false, p.segments.Failed() != nil
}

// leaderStatus is CommitStatus for acks=1: done once written, and in
// durable mode fsynced, on the leader — still leading at leaderEpoch,
// else the records may have been truncated away (and their offsets
// fsynced with another leader's).
func (p *Partition) leaderStatus(end int64, leaderEpoch int32) (done bool, code int16, msg string) {
	p.appendMu.Lock()
	sameTerm := p.leadsAtLocked(leaderEpoch)
	synced, failed := p.syncStatus(end)
	removedCode, removedMsg := p.removedStatusLocked()
	p.appendMu.Unlock()
	switch {
	case removedCode != 0:
		return false, removedCode, removedMsg
	case failed:
		return false, kerr.KafkaStorageError.Code, "written to the leader, but its fsync failed"
	case !sameTerm:
		return false, kerr.NotLeaderForPartition.Code, "leadership moved before the write was fsynced"
	case synced:
		return true, 0, ""
	}
	return false, 0, ""
}

// WaitCommitted waits until an append ending at end, made while this
// replica led at leaderEpoch, is committed, for at most timeout; it
// returns 0 or the Kafka error code of why it cannot be (CommitStatus's,
// or REQUEST_TIMED_OUT).
func (p *Partition) WaitCommitted(end int64, leaderEpoch int32, timeout time.Duration) int16 {
	return WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: leaderEpoch}}, time.Now().Add(timeout), nil)[0].Code
}

// Pending is an acks=all append waiting to be committed, or (LeaderOnly)
// an acks=1 append of a durable partition waiting for the leader's fsync.
type Pending struct {
	Partition *Partition
	End       int64 // the offset after the append's last record
	// LeaderEpoch is the leader epoch the append was made at: the
	// partition's LeaderEpoch read before appending (an append at a later
	// epoch then fails the wait, never the other way round).
	LeaderEpoch int32
	LeaderOnly  bool
}

// Outcome is how a Pending append ended: Code 0 (committed) or the Kafka
// error code, with a message.
type Outcome struct {
	Code    int16
	Message string
}

// WaitAll waits until every pending append is committed or cannot be
// (CommitStatus; for LeaderOnly, fsynced on the leader), until deadline (REQUEST_TIMED_OUT for those left), or
// until stop is closed (REQUEST_TIMED_OUT: the broker is stopping). The
// records stay in the log whatever the outcome, as in Kafka. Outcomes are
// in the order of pending.
func WaitAll(pending []Pending, deadline time.Time, stop <-chan struct{}) []Outcome {
	outcomes := make([]Outcome, len(pending))
	waiting := make([]int, 0, len(pending))
	for i := range pending {
		waiting = append(waiting, i)
	}
	// settle drops the appends that are committed or failed.
	settle := func() {
		left := waiting[:0]
		for _, i := range waiting {
			status := pending[i].Partition.CommitStatus
			if pending[i].LeaderOnly {
				status = pending[i].Partition.leaderStatus
			}
			done, code, msg := status(pending[i].End, pending[i].LeaderEpoch)
			switch {
			case code != 0:
				outcomes[i] = Outcome{Code: code, Message: msg}
			case !done:
				left = append(left, i)
			}
		}
		waiting = left
	}
	// Usually committed already (a leader alone in its ISR): no waiting
	// set up then.
	if settle(); len(waiting) == 0 {
		return outcomes
	}
	wake := make(chan struct{}, 1)
	for _, i := range waiting {
		pending[i].Partition.AddWaiter(wake)
		defer pending[i].Partition.RemoveWaiter(wake)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	timedOut := func(msg string) []Outcome {
		for _, i := range waiting {
			outcomes[i] = Outcome{Code: kerr.RequestTimedOut.Code, Message: msg}
		}
		return outcomes
	}
	// Re-check after registering: the high watermark may have moved in
	// between.
	for settle(); len(waiting) > 0; settle() {
		select {
		case <-wake:
		case <-timer.C:
			return timedOut("the write did not reach every in-sync replica within the request timeout")
		case <-stop:
			return timedOut("the broker is shutting down")
		}
	}
	return outcomes
}
