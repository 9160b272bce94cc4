package partition

import (
	"errors"

	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
)

// Durable acknowledgement (flush.messages=1): produces are answered only
// once the records are on disk on the leader (acks=1) and on every in-sync
// replica (acks=all). The fsync is a group commit: it runs outside the
// append lock (segment.Log.Sync), covers every append before it, and while
// it runs the next appends gather for the next one. Partitions fsync
// concurrently, at most SyncPool's size at once per broker. The leader
// counts only its own fsynced end toward the high watermark
// (ownEndLocked), and a follower reports in its fetch offset only what it
// has fsynced (ReplicaFetchOffset, WaitSynced). A follower's fsync starts
// as it appends a fetch's records (AppendReplicated), not when it next
// fetches; and a produce request to several partitions wakes the
// followers' fetches once all are appended (HoldAppendWakeups), so each
// follower fetches, fsyncs and reports the request's records in one round
// trip — the one fsync an acks=all answer waits for on each follower.

// DefaultSyncConcurrency is the number of partitions a broker fsyncs at
// once in durable mode: enough to keep an SSD's queue busy (fsyncs of
// different files proceed in parallel there), few enough not to starve
// reads and rolls of I/O.
const DefaultSyncConcurrency = 16

// SyncPool bounds how many partitions fsync at once in durable mode; one
// per broker, shared by its partitions. It has no goroutines of its own: a
// partition with a sync to do runs it in a goroutine of its own that takes
// a slot first.
type SyncPool struct {
	slots chan struct{}
}

// NewSyncPool makes a pool running at most size fsyncs at once.
func NewSyncPool(size int) *SyncPool {
	return &SyncPool{slots: make(chan struct{}, max(size, 1))}
}

// defaultSyncPool serves partitions opened without one (tests, tools).
var defaultSyncPool = NewSyncPool(DefaultSyncConcurrency)

// isDurable says whether v asks for acknowledgement after fsync.
func isDurable(v *topicconfig.Values) bool { return v.FlushMessages == 1 }

// Durable reports whether the partition acknowledges writes only once they
// are fsynced (flush.messages=1).
func (p *Partition) Durable() bool { return isDurable(p.config.Load()) }

// SyncedEnd is the offset below which this replica's records are on disk.
func (p *Partition) SyncedEnd() int64 { return p.segments.SyncedEnd() }

// ownEndLocked is the leader's own log end as the high watermark counts
// it: in durable mode only what it has fsynced. Called with appendMu held.
func (p *Partition) ownEndLocked() int64 {
	if p.Durable() {
		return p.segments.SyncedEnd()
	}
	return p.segments.EndOffset()
}

// ReplicaFetchOffset is the offset a follower fetches from, which tells the
// leader how far it has the log: in durable mode only what it has fsynced.
func (p *Partition) ReplicaFetchOffset() int64 {
	if p.Durable() {
		return min(p.segments.SyncedEnd(), p.segments.EndOffset())
	}
	return p.segments.EndOffset()
}

// requestSync makes the partition fsync everything appended so far, soon,
// without waiting. Appends requested while a sync runs are covered by one
// more sync after it (group commit).
func (p *Partition) requestSync() {
	p.syncMu.Lock()
	if p.syncRunning {
		p.syncAgain = true
		p.syncMu.Unlock()
		return
	}
	p.syncRunning = true
	p.syncMu.Unlock()
	go p.runSyncs()
}

func (p *Partition) runSyncs() {
	for {
		p.syncs.slots <- struct{}{}
		p.syncOnce()
		<-p.syncs.slots
		p.syncMu.Lock()
		if !p.syncAgain {
			p.syncRunning = false
			p.syncMu.Unlock()
			return
		}
		p.syncAgain = false
		p.syncMu.Unlock()
	}
}

// syncOnce fsyncs the log, then moves the high watermark (a leader's own
// end counts now) and wakes the waiters.
func (p *Partition) syncOnce() {
	// The first failed fsync fails the log (LogFailed): the syncs after it
	// answer ErrLogFailed, not logged again. A leader hands the partition
	// over (StorageResignation).
	if _, err := p.syncLog(); err != nil && !errors.Is(err, segment.ErrClosed) && !errors.Is(err, segment.ErrLogFailed) {
		p.log.Error("fsync failed; the log takes no writes until the broker restarts: produces waiting for it get KAFKA_STORAGE_ERROR, a leader hands the partition to another in-sync replica, a follower stops fetching it", "err", err)
	}
	p.appendMu.Lock()
	if p.leading.Load() {
		p.advanceHighWatermarkLocked()
	}
	p.appendMu.Unlock()
	p.notifyWaiters()
}

// WaitSynced fsyncs, in durable mode, every partition of parts whose log
// holds more than it has fsynced, concurrently, and waits until each has
// fsynced its log end as it was at the call, its fsync failed, or stop is
// closed. A follower calls it before it reports its log end to the leader.
func WaitSynced(parts []*Partition, stop <-chan struct{}) {
	type target struct {
		p   *Partition
		end int64
	}
	var targets []target
	for _, p := range parts {
		if end := p.segments.EndOffset(); p.Durable() && p.segments.SyncedEnd() < end {
			targets = append(targets, target{p, end})
		}
	}
	if len(targets) == 0 {
		return
	}
	wake := make(chan struct{}, 1)
	for _, t := range targets {
		t.p.AddWaiter(wake)
		defer t.p.RemoveWaiter(wake)
		t.p.requestSync()
	}
	for _, t := range targets {
		for t.p.segments.SyncedEnd() < t.end && t.p.segments.Failed() == nil && t.p.segments.EndOffset() >= t.end {
			select {
			case <-wake:
			case <-stop:
				return
			}
		}
	}
}
