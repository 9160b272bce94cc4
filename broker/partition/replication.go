package partition

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
)

// leaderEpochCheckpoint is the partition directory's epoch cache file (as
// Kafka names it). Part of the format.
const leaderEpochCheckpoint = "leader-epoch-checkpoint"

type epochEntry struct {
	epoch int32
	start int64
}

// epochCache maps leader epochs to their first offsets, increasing in both.
// The partition's appendMu guards it.
type epochCache struct {
	entries []epochEntry
}

// assign records that epoch starts at start, if it is newer than the last.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if epoch <= last.epoch {
			return false
		}
		if start < last.start {
			start = last.start
		}
	}
	c.entries = append(c.entries, epochEntry{epoch, start})
	return true
}

func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// endOffsetFor answers OffsetForLeaderEpoch as Kafka's
// LeaderEpochFileCache.endOffsetFor does: the latest epoch ends at logEnd;
// an older one answers the largest epoch at or below it and the start of
// the first epoch above it (where that epoch's records end). A requested
// epoch older than the oldest kept (trimmed below the log start) answers
// itself and the oldest kept epoch's start: whoever asks truncates there.
// (-1, -1) — unknown — for the undefined epoch (-1), an empty cache, and an
// epoch newer than the latest: this log has no epoch ending after it, so
// it cannot say where the asker's log stops agreeing with it (a Kafka
// follower then truncates to its high watermark).
func (c *epochCache) endOffsetFor(requested int32, logEnd int64) (int32, int64) {
	n := len(c.entries)
	switch {
	case requested == -1 || n == 0 || requested > c.entries[n-1].epoch:
		return -1, -1
	case requested == c.entries[n-1].epoch:
		return requested, logEnd
	}
	i := floorEpoch(c.entries, requested)
	if i < 0 {
		return requested, c.entries[0].start
	}
	return c.entries[i].epoch, c.entries[i+1].start
}

// lastEpochBelow is the epoch of the last batch below offset: the latest
// entry starting before it (-1: none). An entry starting at or past offset
// holds no batch below it (a leader's epoch begun at its log end, with
// nothing appended yet).
func (c *epochCache) lastEpochBelow(offset int64) int32 {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].start < offset {
			return c.entries[i].epoch
		}
	}
	return -1
}

// floorEpoch is the index of the last entry with epoch <= epoch, or -1.
func floorEpoch(entries []epochEntry, epoch int32) int {
	i, _ := slices.BinarySearchFunc(entries, epoch+1, func(e epochEntry, target int32) int {
		switch {
		case e.epoch < target:
			return -1
		case e.epoch > target:
			return 1
		}
		return 0
	})
	return i - 1
}

// truncateFromEnd drops the epochs that start at or after offset.
func (c *epochCache) truncateFromEnd(offset int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].start >= offset {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart forgets the epochs entirely below a new log start
// offset, as Kafka's LeaderEpochFileCache.truncateFromStart: the entries
// starting at or before offset go but the last of them, which now starts
// at offset (the epoch of the first record kept).
func (c *epochCache) truncateFromStart(offset int64) bool {
	n := 0
	for n < len(c.entries) && c.entries[n].start <= offset {
		n++
	}
	if n == 0 || (n == 1 && c.entries[0].start == offset) {
		return false
	}
	first := epochEntry{c.entries[n-1].epoch, offset}
	c.entries = append([]epochEntry{first}, c.entries[n:]...)
	return true
}

func (c *epochCache) write(dir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return atomicfile.WriteFile(filepath.Join(dir, leaderEpochCheckpoint), []byte(b.String()), fsperm.File)
}

// readEpochCache reads the checkpoint; ok is false when it is missing or
// does not parse (then the caller rebuilds from the log).
func readEpochCache(dir string) (epochCache, bool) {
	f, err := os.Open(filepath.Join(dir, leaderEpochCheckpoint))
	if err != nil {
		return epochCache{}, false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	var lines []string
	for scanner.Scan() {
		lines = append(lines, strings.TrimSpace(scanner.Text()))
	}
	if scanner.Err() != nil || len(lines) < 2 || lines[0] != "0" {
		return epochCache{}, false
	}
	count, err := strconv.Atoi(lines[1])
	if err != nil || count != len(lines)-2 {
		return epochCache{}, false
	}
	var c epochCache
	for _, line := range lines[2:] {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return epochCache{}, false
		}
		epoch, err1 := strconv.ParseInt(fields[0], 10, 32)
		start, err2 := strconv.ParseInt(fields[1], 10, 64)
		if err1 != nil || err2 != nil || !c.assign(int32(epoch), start) {
			return epochCache{}, false
		}
	}
	return c, true
}

// loadEpochCache restores the epoch cache at open: the checkpoint cut to
// the log end, or the batch headers.
func (p *Partition) loadEpochCache() error {
	end := p.segments.EndOffset()
	if c, ok := readEpochCache(p.dir); ok {
		trimmed := c.truncateFromEnd(end)
		p.epochs = c
		if trimmed {
			// Epochs that started above what the log kept (an unsynced
			// tail lost): the checkpoint must forget them too, or they
			// come back after the next crash, once the log has grown
			// past their start under other epochs.
			return c.write(p.dir)
		}
		return nil
	}
	var c epochCache
	err := p.segments.Scan(p.segments.StartOffset(), func(h recordbatch.Header) error {
		c.assign(h.PartitionLeaderEpoch, h.BaseOffset)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild leader epochs: %w", err)
	}
	p.epochs = c
	if len(c.entries) > 0 {
		return c.write(p.dir)
	}
	return nil
}

// followerState is what a leader knows of one follower.
type followerState struct {
	logEndOffset int64     // the follower's log end offset: its last fetch offset (-1: unknown)
	lastCaughtUp time.Time // last time it had everything the leader had at its previous fetch
	leaderEndAt  int64     // the leader's log end when it last fetched
	// logStartOffset is the follower's log start, as its fetches state it
	// (-1: unknown); DeleteRecords waits for it (LowWatermark).
	logStartOffset int64
}

// Registrations is what ObserveRegistrations needs of the metadata state
// (*metadata.State): each broker's current registration.
type Registrations interface {
	Broker(id int32) (metadata.Broker, bool)
}

// ObserveRegistrations notes the registration (broker epoch) in state of
// each broker of replicas, the partition's replicas, and which of them are
// alive (registered and unfenced). A follower whose
// broker registered again since the last call is a new incarnation that may
// have lost what the previous one reported (an unsynced tail, a power
// loss): what this leader knew of its log end no longer counts for the high
// watermark (it is unknown until the new incarnation fetches), and it is
// caught up only once its own fetches reach the leader's end. The
// partition manager calls it before ApplyAssignment with the same state.
func (p *Partition) ObserveRegistrations(replicas []int32, state Registrations) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.brokerEpochs == nil {
		p.brokerEpochs = map[int32]int64{}
	}
	p.liveReplicas = map[int32]bool{}
	for _, r := range replicas {
		if r == p.self {
			continue
		}
		epoch := int64(-1) // not registered
		if b, ok := state.Broker(r); ok {
			epoch = b.Epoch
			p.liveReplicas[r] = !b.Fenced
		}
		if known, ok := p.brokerEpochs[r]; ok && known != epoch {
			if f := p.followers[r]; f != nil {
				p.log.Debug("follower registered again: its earlier progress no longer counts", "follower", r, "broker_epoch", epoch, "previous_broker_epoch", known, "previous_log_end_offset", f.logEndOffset)
				f.logEndOffset, f.leaderEndAt = -1, math.MaxInt64
			}
		}
		p.brokerEpochs[r] = epoch
	}
}

// ApplyAssignment takes the partition's replicated assignment: whether
// this broker leads, the leader epoch, replicas and ISR. It reports whether
// a new leadership term began (this broker started or stopped leading, or
// the leader epoch moved).
func (p *Partition) ApplyAssignment(a metadata.Partition, now time.Time) (newTerm bool) {
	return p.ApplyAssignmentAfterRemote(a, now, nil)
}

// ApplyAssignmentAfterRemote is ApplyAssignment that also aligns a leader's
// log with the partition's tiered data in state (nil: none): when this
// broker starts a leadership term and its local log ends inside the remote
// data (a topic recovered from the bucket into an empty cluster, or a
// replica whose whole log is in the object store), the log restarts after
// the remote log end, so that new records are not written at offsets the
// object store already holds. The restart is made in the same critical
// section as the term's start: no produce of the term is appended (and
// acknowledged) before it, only to be wiped by it.
// A term starting here also moves the local log start up to the quorum's
// (FollowQuorumLogStart): this replica may have missed a DeleteRecords;
// a log ending below it (an unclean election) restarts there, as Kafka's
// is truncated fully when its log start passes its end, so that the
// term's records are not written below the log start, where no consumer
// could read them.
func (p *Partition) ApplyAssignmentAfterRemote(a metadata.Partition, now time.Time, state *metadata.State) (newTerm bool) {
	p.appendMu.Lock()
	self := p.self
	leading := a.Leader == self
	newTerm = leading != p.leading.Load() || a.LeaderEpoch != p.leaderEpoch.Load() || !p.assigned
	var restartedFrom, restartAt int64 = -1, -1
	var restartErr error
	if newTerm && leading && state != nil {
		restartedFrom, restartAt = p.segments.EndOffset(), leaderRestartOffset(state, p.topicID, p.index, p.segments.EndOffset())
		if restartAt >= 0 {
			restartErr = p.restartAtLocked(restartAt, p.RemoteEpochs(state, restartAt), nil)
		}
	}
	p.assigned = true
	p.assignment = a
	if newTerm || a.PartitionEpoch >= p.isrPendingUntil {
		// The proposals' outcome is applied (or void).
		p.isrPending, p.isrRetry, p.isrRetryEpochs, p.isrRetryBump, p.isrUnknown = nil, nil, nil, false, false
	}
	if newTerm {
		p.leading.Store(leading)
		p.leaderEpoch.Store(a.LeaderEpoch)
		if leading {
			// A new term starts at the current end; followers are given
			// a fresh lag allowance.
			p.leaderStart.Store(p.segments.EndOffset())
			p.followers = map[int32]*followerState{}
			for _, r := range a.Replicas {
				if r != self {
					p.followers[r] = &followerState{logEndOffset: -1, lastCaughtUp: now, logStartOffset: -1}
				}
			}
			if p.epochs.assign(a.LeaderEpoch, p.segments.EndOffset()) {
				if err := p.writeEpochsLocked(); err != nil {
					p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
				}
			}
		} else {
			p.followers = nil
		}
		p.storageFailed = false
		p.log.Debug("partition leadership", "leader", leading, "leader_epoch", a.LeaderEpoch, "isr", a.ISR)
	}
	if leading {
		for _, r := range a.Replicas {
			if _, ok := p.followers[r]; !ok && r != self {
				p.followers[r] = &followerState{logEndOffset: -1, lastCaughtUp: now, logStartOffset: -1}
			}
		}
		p.advanceHighWatermarkLocked()
	}
	var logStartErr error
	if newTerm && leading && state != nil {
		logStartErr = p.followQuorumLogStartLocked(state)
	}
	p.appendMu.Unlock()
	if logStartErr != nil {
		p.log.Error("moving the local log start up to the quorum's failed", "err", logStartErr)
	}
	if restartAt >= 0 {
		p.log.Warn("local log ends inside the tiered data or below the log start; restarting it past them",
			"local_log_end_offset", restartedFrom, "restart_offset", restartAt)
		if restartErr != nil {
			p.log.Error("restarting the local log failed", "err", restartErr)
		}
	}
	if leading && p.Durable() && p.segments.SyncedEnd() < p.segments.EndOffset() {
		p.requestSync() // a follower's appends not fsynced yet count once they are
	}
	p.notifyWaiters() // long-polls and acks=all waits re-check
	return newTerm
}

// leaderRestartOffset is where a leader whose local log ends at end
// restarts it when its term starts (ApplyAssignmentAfterRemote), or -1 to
// keep it: past the remote data when the log ends inside it, and at the
// log start committed in the quorum when the log ends below it.
func leaderRestartOffset(state *metadata.State, topicID [16]byte, index int32, end int64) int64 {
	restartAt := int64(-1)
	if _, remoteEnd, ok := state.RemoteLogOffsets(topicID, index); ok && end <= remoteEnd {
		restartAt = remoteEnd + 1
	}
	if logStart, ok := state.LogStartOffset(topicID, index); ok && end < logStart {
		restartAt = max(restartAt, logStart)
	}
	return restartAt
}

// advanceHighWatermarkLocked moves the high watermark to the smallest log
// end offset in the maximal ISR (never backwards); the leader's own is
// ownEndLocked (its fsynced end in durable mode). Called with appendMu
// held.
func (p *Partition) advanceHighWatermarkLocked() bool {
	highWatermark, ok := highWatermarkOver(p.maximalISRLocked(), p.self, p.ownEndLocked(), p.followers)
	if ok && highWatermark > p.highWatermark.Load() {
		p.highWatermark.Store(highWatermark)
		return true
	}
	return false
}

// highWatermarkOver is the high watermark the replicas in isr allow: the
// smallest log end offset among them, the leader's (self) being leaderEnd
// and each follower's the one its fetches reported. ok is false while an
// in-sync follower has not reported one (since this term or its broker's
// latest registration).
func highWatermarkOver(isr []int32, self int32, leaderEnd int64, followers map[int32]*followerState) (highWatermark int64, ok bool) {
	highWatermark = leaderEnd
	for _, r := range isr {
		if r == self {
			continue
		}
		f := followers[r]
		if f == nil || f.logEndOffset < 0 {
			return 0, false
		}
		highWatermark = min(highWatermark, f.logEndOffset)
	}
	return highWatermark, true
}

// maximalISRLocked is the set the high watermark is computed over, as in
// Kafka's AlterPartition flow: the applied ISR plus the members of the ISR
// changes this leader proposed whose outcome is not applied yet. A follower
// proposed into the ISR counts from the proposal on, so it holds everything
// below the high watermark once the controller commits it (and before this
// leader applies that); one proposed out counts until its removal is
// applied (it is still in the applied ISR).
func (p *Partition) maximalISRLocked() []int32 {
	if len(p.isrPending) == 0 {
		return p.assignment.ISR
	}
	isr := slices.Clone(p.assignment.ISR)
	for _, r := range p.isrPending {
		if !slices.Contains(isr, r) {
			isr = append(isr, r)
		}
	}
	return isr
}

// proposeISRLocked marks the ISR change to isr (with its ISR broker
// epochs, nil for none) in flight and counts its members for the high
// watermark until its outcome is applied (an assignment past the current
// partition epoch: the controller checks the change against that epoch,
// so a later one either holds it or refused it). The change keeps the
// leader epoch; a caller that bumps it sets isrInFlightBump after.
func (p *Partition) proposeISRLocked(isr []int32, brokerEpochs []int64) {
	p.isrChanging, p.isrInFlight, p.isrInFlightEpochs, p.isrBasis = true, isr, brokerEpochs, p.assignment
	p.isrInFlightBump = false
	for _, r := range isr {
		if !slices.Contains(p.isrPending, r) {
			p.isrPending = append(p.isrPending, r)
		}
	}
	p.isrPendingUntil = max(p.isrPendingUntil, p.assignment.PartitionEpoch+1)
}

// FetchPosition is where a follower's fetch stands (Kafka's Fetch v12+,
// KIP-595): the offset it fetches from, which is its log end (in durable
// mode its fsynced end), and the leader epoch of its last batch below that
// offset (LastFetchedEpoch; -1: none, or not sent before Fetch v12).
type FetchPosition struct {
	Offset           int64
	LastFetchedEpoch int32
}

// EpochEnd is a leader epoch and the offset it ends at on a replica (the
// next epoch's start, or the log end for the latest): Fetch's
// DivergingEpoch.
type EpochEnd struct {
	Epoch     int32
	EndOffset int64
}

// FetchPosition is this follower's position for its next fetch: its
// ReplicaFetchOffset and the epoch of its last batch below it.
func (p *Partition) FetchPosition() FetchPosition {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	offset := p.ReplicaFetchOffset()
	return FetchPosition{Offset: offset, LastFetchedEpoch: p.epochs.lastEpochBelow(offset)}
}

// DivergingEpoch checks a follower's fetch position against this leader's
// log, as Kafka's leader checks Fetch v12+'s LastFetchedEpoch: the logs
// agree below the fetch offset when this leader has the follower's last
// epoch and that epoch ends here at or past the fetch offset. Otherwise it
// returns the largest epoch at or below the follower's and where it ends
// here: the follower truncates to where both logs agree and fetches again.
// It fails with segment.ErrOffsetOutOfRange when this leader cannot say
// where the follower's last epoch ends (endOffsetFor answers (-1, -1): no
// epochs, or the follower's is newer than this leader's latest), as Kafka
// answers OFFSET_OUT_OF_RANGE; the follower then truncates to its high
// watermark. A position without an epoch is not checked.
func (p *Partition) DivergingEpoch(position FetchPosition) (*EpochEnd, error) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.divergingEpochLocked(position)
}

func (p *Partition) divergingEpochLocked(position FetchPosition) (*EpochEnd, error) {
	if position.LastFetchedEpoch < 0 {
		return nil, nil
	}
	epoch, end := p.epochs.endOffsetFor(position.LastFetchedEpoch, p.segments.EndOffset())
	if epoch < 0 {
		return nil, fmt.Errorf("%w: the end offset of the follower's last fetched epoch %d is unknown to this leader (latest epoch %d)", segment.ErrOffsetOutOfRange, position.LastFetchedEpoch, p.epochs.latest())
	}
	if epoch < position.LastFetchedEpoch || end < position.Offset {
		return &EpochEnd{Epoch: epoch, EndOffset: end}, nil
	}
	return nil, nil
}

// FollowerFetched records a follower's fetch at offset and returns the ISR
// to propose when the follower caught up, is not in it and its broker is
// not fenced (fencedLocked); nil otherwise.
// A returned proposal marks an ISR change in flight: the caller proposes it
// and calls ISRChangeDone. It fails with ErrNotLeader, with
// segment.ErrOffsetOutOfRange past the log end, or for a broker that is not
// a replica. It is FollowerFetchedAt without an epoch to check.
func (p *Partition) FollowerFetched(follower int32, offset int64, now time.Time) (expand []int32, err error) {
	expand, _, err = p.FollowerFetchedAt(follower, FetchPosition{Offset: offset, LastFetchedEpoch: -1}, -1, now)
	return expand, err
}

// FollowerFetchedAt is FollowerFetched for a fetch that states its last
// fetched epoch (Fetch v12+): it is checked first, under the same lock
// (DivergingEpoch). A follower whose log diverges from this leader's gets
// the diverging epoch back and its fetch counts for nothing — its fetch
// offset covers records this leader does not have, so it neither moves the
// high watermark nor catches the follower up (as Kafka skips the follower
// state update of a diverging fetch). followerEpoch is the broker epoch
// the fetch carried (Fetch v15+; -1: not checked): an expansion it brings
// names it for the follower (ISRChangeBrokerEpochs), so the controller
// refuses it (ErrIneligibleReplica) if the follower has registered again
// since: a replica that caught up as an earlier incarnation does not join
// the ISR as the next one (KIP-903).
func (p *Partition) FollowerFetchedAt(follower int32, position FetchPosition, followerEpoch int64, now time.Time) (expand []int32, diverging *EpochEnd, err error) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if !p.leading.Load() {
		return nil, nil, ErrNotLeader
	}
	f := p.followers[follower]
	if f == nil {
		return nil, nil, fmt.Errorf("broker %d is not a replica of %s-%d", follower, p.topic, p.index)
	}
	if diverging, err := p.divergingEpochLocked(position); diverging != nil || err != nil {
		return nil, diverging, err
	}
	expand, err = p.followerFetchedLocked(f, follower, followerEpoch, position.Offset, now)
	return expand, nil, err
}

// followerFetchedLocked is FollowerFetchedAt's bookkeeping once the
// position is checked. Called with appendMu held.
func (p *Partition) followerFetchedLocked(f *followerState, follower int32, followerEpoch, offset int64, now time.Time) (expand []int32, err error) {
	end := p.segments.EndOffset()
	if offset > end {
		return nil, segment.ErrOffsetOutOfRange
	}
	if offset >= f.leaderEndAt || offset >= end {
		f.lastCaughtUp = now
	}
	f.logEndOffset, f.leaderEndAt = offset, end
	if p.advanceHighWatermarkLocked() {
		defer p.notifyWaiters()
	}
	highWatermark := p.highWatermark.Load()
	epochStart := int64(0)
	if n := len(p.epochs.entries); n > 0 {
		epochStart = p.epochs.entries[n-1].start
	}
	if !slices.Contains(p.assignment.ISR, follower) && offset >= highWatermark && offset >= epochStart && !p.isrChanging && p.isrRetry == nil && !p.fencedLocked(follower) {
		expand = append(slices.Clone(p.assignment.ISR), follower)
		var epochs []int64
		if followerEpoch >= 0 {
			epochs = make([]int64, len(expand))
			for i := range epochs {
				epochs[i] = -1
			}
			epochs[len(epochs)-1] = followerEpoch
		}
		p.proposeISRLocked(expand, epochs)
		return expand, nil
	}
	return nil, nil
}

// fencedLocked reports whether replica r's broker was registered and
// fenced when last observed (ObserveRegistrations): it does not join the
// ISR, as Kafka's leader proposes only replicas its metadata shows
// unfenced (KIP-841). The controller takes a fenced broker out of every
// ISR; an in-flight fetch from it must not put it back. Called with
// appendMu held.
func (p *Partition) fencedLocked(r int32) bool {
	live, registered := p.liveReplicas[r]
	return registered && !live
}

// LaggingISR returns the ISR without the followers that have not caught up
// for lag (nil when nobody lags or a change is in flight). A member of a
// proposed change not applied yet (maximal ISR) that lags is proposed out
// too — when only such members lag while a proposal's outcome is unknown,
// by the ISR as it is with the leader epoch bumped
// (ISRChangeBumpsLeaderEpoch): the ISR as it is alone would be a no-op,
// which fences nothing. A change whose outcome is unknown is returned
// again as it was, before anything else. A returned proposal marks an ISR
// change in flight, as FollowerFetched's does.
func (p *Partition) LaggingISR(now time.Time, lag time.Duration) []int32 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if !p.leading.Load() || p.isrChanging {
		return nil
	}
	if p.isrRetry != nil {
		retry := slices.Clone(p.isrRetry)
		p.proposeISRLocked(retry, p.isrRetryEpochs)
		p.isrInFlightBump = p.isrRetryBump
		return retry
	}
	lagging := func(r int32) bool {
		f := p.followers[r]
		return r != p.self && (f == nil || now.Sub(f.lastCaughtUp) > lag)
	}
	if !slices.ContainsFunc(p.maximalISRLocked(), lagging) {
		return nil
	}
	keep := slices.DeleteFunc(slices.Clone(p.assignment.ISR), lagging)
	bump := false
	if p.isrUnknown && slices.Equal(keep, p.assignment.ISR) {
		// Only members of proposals not applied lag, and one of those
		// proposals may still commit. Proposing the ISR as it is would
		// be a no-op at the controller: answered without a new partition
		// epoch, it would end their count yet fence nothing, and the
		// late commit would put a follower below the high watermark into
		// the ISR. They count until the partition epoch moves, and
		// nothing else may move it (the controller fences a broker
		// without touching a partition whose ISR it is not in): the ISR
		// as it is, with the leader epoch bumped, does. Committed, it
		// fences the earlier proposals, checked against the partition
		// epoch they were computed from; until its outcome is applied
		// the lagging members count, as for any change.
		bump = true
	}
	p.proposeISRLocked(keep, nil)
	p.isrInFlightBump = bump
	return keep
}

// storageFailedLocked records that an append or an fsync failed on this
// broker's disk (a full disk, an I/O error): the leader hands the partition
// over (StorageResignation), as Kafka's controller moves leadership off a
// log directory that went offline. Called with appendMu held.
// It reports whether this is the term's first failure (the one worth an
// error line: every produce after it fails the same way until the
// partition is handed over).
func (p *Partition) storageFailedLocked() (first bool) {
	if !p.leading.Load() || p.storageFailed {
		return false
	}
	p.storageFailed = true
	return true
}

// StorageResignation returns the ISR that hands the partition over after
// an append or an fsync failed on this broker's disk during the current
// leadership term, or while its log is failed (LogFailed: an fsync failed,
// until the broker reopens the log): the ISR without this replica (the new
// leader is one of them). A returned proposal marks an ISR change in
// flight, as LaggingISR's does; nil when nothing failed, this broker does
// not lead, a change is in flight, or no other replica is in sync (the
// partition then stays here, answering KAFKA_STORAGE_ERROR, rather than
// going offline).
func (p *Partition) StorageResignation() []int32 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	failed := p.storageFailed || p.segments.Failed() != nil
	if !failed || !p.leading.Load() || p.isrChanging {
		return nil
	}
	var rest []int32
	for _, r := range p.assignment.ISR {
		if r != p.self {
			rest = append(rest, r)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	p.isrChanging, p.isrBasis = true, p.assignment
	return rest
}

// ISRChangeBasis is the assignment the ISR change in flight was computed
// from (by FollowerFetched, LaggingISR or StorageResignation), which the
// change is proposed against: the controller refuses it
// (ErrStalePartitionEpoch) once the partition has moved past that
// partition epoch. A change computed in an earlier state — by a leader
// whose term has ended since, its proposal late behind a pause or an
// unreachable controller — never applies to the partition as it is now
// (which could put a replica that lacks committed records into the ISR,
// and then elect it).
func (p *Partition) ISRChangeBasis() metadata.Partition {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.isrBasis
}

// ISRChangeBrokerEpochs is the ISR broker epochs the ISR change in flight
// names (metadata.PartitionChange.ISRBrokerEpochs; nil: none): an
// expansion's, or a retry's of one whose outcome is unknown.
func (p *Partition) ISRChangeBrokerEpochs() []int64 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.isrInFlightEpochs
}

// ISRChangeBumpsLeaderEpoch reports whether the ISR change in flight bumps
// the leader epoch with the ISR kept (metadata.PartitionChange.
// BumpLeaderEpoch): LaggingISR's way to move the partition epoch past a
// proposal whose outcome is unknown when only its members lag, or a
// retry of that.
func (p *Partition) ISRChangeBumpsLeaderEpoch() bool {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.isrInFlightBump
}

// LogFailed returns why this replica's log failed (an fsync that failed, a
// failed write that could not be undone), or nil. A failed log takes no
// appends, replicated or produced, and its fsynced end no longer moves,
// until the broker reopens it (recovering it, as after a crash): a leader
// hands the partition over (StorageResignation), a follower stops fetching.
func (p *Partition) LogFailed() error { return p.segments.Failed() }

// ErrNotLeader: this broker does not lead the partition (any more).
var ErrNotLeader = errors.New("partition: this broker does not lead the partition")

// ISROutcome is how a proposed ISR change ended. The zero value means
// the outcome is unknown (a timeout: it may still commit).
type ISROutcome struct {
	// Committed is the partition's state the controller answered with
	// when it accepted the change.
	Committed *metadata.Partition
	// Refused: nothing was committed (the controller refused the change,
	// or it was never sent).
	Refused bool
	// Ineligible, with Refused: the controller refused the change at the
	// partition epoch it was computed from because a member it adds may
	// not join (fenced, or registered again since its fetch: Kafka's
	// INELIGIBLE_REPLICA), or because this leader is fenced (it leads
	// until the controller's election, and changes nothing meanwhile).
	// The partition stood at that epoch then, so no proposal made from it
	// was committed.
	Ineligible bool
}

// ISRChangeDone ends the ISR change in flight (proposed from FollowerFetched
// or LaggingISR): the next one may be proposed. The proposed members keep
// counting for the high watermark until an assignment showing the outcome
// is applied: the committed one, or any past the proposal's partition
// epoch. A change whose outcome is unknown is proposed again (LaggingISR)
// before any other, so that a late commit of it is never mistaken for
// its absence — unless an assignment past its basis was applied meanwhile,
// which shows its outcome.
func (p *Partition) ISRChangeDone(outcome ISROutcome) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	inFlight, inFlightEpochs, inFlightBump := p.isrInFlight, p.isrInFlightEpochs, p.isrInFlightBump
	p.isrChanging, p.isrInFlight, p.isrInFlightEpochs, p.isrInFlightBump = false, nil, nil, false
	committed := outcome.Committed
	switch {
	case committed == nil && outcome.Refused:
		p.isrRetry, p.isrRetryEpochs, p.isrRetryBump = nil, nil, false
		if outcome.Ineligible && !p.isrUnknown && p.isrBasis.PartitionEpoch == p.assignment.PartitionEpoch {
			// Nothing proposed since the applied assignment was committed,
			// and no proposal is left that could still commit (none had
			// an unknown outcome): its members stop counting, as Kafka's
			// leader falls back to the committed state on
			// INELIGIBLE_REPLICA. Otherwise a follower refused for being
			// fenced — gone, maybe — held the high watermark, and every
			// acks=all produce, until the partition epoch moved. After an
			// unknown outcome the first try may still commit (once the
			// broker is unfenced at the same registration): its members
			// count until the partition epoch moves, which the lag check
			// makes happen once they lag (LaggingISR's leader epoch
			// bump).
			p.isrPending = nil
			if p.leading.Load() && p.advanceHighWatermarkLocked() {
				defer p.notifyWaiters()
			}
		}
		return
	case committed == nil && p.isrBasis.PartitionEpoch != p.assignment.PartitionEpoch:
		// An assignment past the change's basis was applied while it was
		// in flight: the controller checks a change against its basis,
		// so the change is in that assignment or can never commit, and
		// ApplyAssignment has taken its outcome. It is not proposed
		// again: a retry is checked against the applied assignment, which
		// it was not computed from, and would put a follower caught up
		// before (in an earlier term, say) into an ISR whose high
		// watermark has moved past its log.
		return
	case committed == nil:
		if inFlight != nil {
			p.isrRetry, p.isrRetryEpochs, p.isrRetryBump = inFlight, inFlightEpochs, inFlightBump
		}
		p.isrUnknown = true
		return
	}
	p.isrRetry, p.isrRetryEpochs, p.isrRetryBump = nil, nil, false
	if committed.PartitionEpoch <= p.assignment.PartitionEpoch {
		// The controller's state is the one applied (the change was a
		// no-op there) or an older one: nothing is pending any more.
		p.isrPending = nil
		if p.leading.Load() && p.advanceHighWatermarkLocked() {
			defer p.notifyWaiters()
		}
		return
	}
	// Committed, not applied here yet: the committed ISR counts until it
	// is.
	p.isrPending = slices.Clone(committed.ISR)
	p.isrPendingUntil = committed.PartitionEpoch
}

// Assignment is the replicated assignment last applied.
func (p *Partition) Assignment() metadata.Partition {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.assignment
}

// ErrStaleLeaderEpoch: replicated data fetched under a leader epoch that is
// no longer this replica's (the leader changed while the fetch was in
// flight) is discarded, not appended: it may continue a history the new
// leader does not have.
var ErrStaleLeaderEpoch = errors.New("partition: replicated data from a previous leader epoch")

// AppendReplicated appends batches fetched from the leader as they are, at
// the offsets they carry, and takes the leader's high watermark. fetchEpoch
// is the leader epoch the fetch was issued under: unless it is still this
// replica's, nothing is appended (ErrStaleLeaderEpoch) — checked under
// appendMu, so no leader change or truncation interleaves.
func (p *Partition) AppendReplicated(data []byte, leaderHighWatermark int64, fetchEpoch int32) error {
	var spans []recordbatch.Span
	if len(data) > 0 {
		var err error
		if spans, err = recordbatch.Split(data); err != nil {
			return fmt.Errorf("replicated data: %w", err)
		}
	}
	appended := false
	defer func() {
		// Durable mode: the fsync of what this fetch brought starts now,
		// while the fetcher appends the response's other partitions, not
		// when it next asks (WaitSynced then finds it running or done).
		// After appendMu is released (deferred calls run last first).
		if appended && p.Durable() {
			p.requestSync()
		}
	}()
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.leading.Load() {
		return errors.New("leads the partition: not appending replicated data")
	}
	if current := p.leaderEpoch.Load(); fetchEpoch != current {
		return fmt.Errorf("%w: fetched under leader epoch %d, the partition is at %d", ErrStaleLeaderEpoch, fetchEpoch, current)
	}
	end := p.segments.EndOffset()
	var descriptors []segment.AppendBatch
	var headers []recordbatch.Header
	var controls [][]byte // the control batches' bytes (nil for others), by headers' index
	first := -1
	for i, sp := range spans {
		batch := data[sp.Position : sp.Position+sp.Length]
		h, err := recordbatch.ParseHeader(batch)
		if err != nil {
			return fmt.Errorf("replicated batch: %w", err)
		}
		if h.LastOffset() < end {
			continue // already here
		}
		if first < 0 && h.BaseOffset < end && h.NumRecords == 0 && !h.IsControl() {
			// A compaction filler (segment.Log.Compact: an empty batch
			// spanning a run of removed batches) across the log end: the
			// leader's cleaner merged batches this replica still has
			// apart. Nothing survives in the filler's offsets on the
			// leader: take the part past the log end as a filler of its
			// own (replicas of a compacted log compact independently, so
			// their bytes differ anyway).
			p.log.Info("the leader's compaction filler spans this replica's log end: appending its part past the end",
				"filler_base_offset", h.BaseOffset, "filler_last_offset", h.LastOffset(), "log_end_offset", end)
			p.dropEmptyEpochsLocked(end)
			if err := p.appendFillerLocked(end, h); err != nil {
				return fmt.Errorf("replicated compaction filler at offset %d, log end %d: %w", h.BaseOffset, end, err)
			}
			end = p.segments.EndOffset()
			continue
		}
		if first < 0 && h.BaseOffset < end {
			// The log end is inside the leader's batch: what this replica
			// holds from h.BaseOffset on is not the leader's (another
			// history under the same leader epoch, which
			// OffsetForLeaderEpoch cannot tell apart, or a log restarted
			// at an offset inside the batch). Take the leader's: cut back
			// to the batch (whole local batches go, so the end may land
			// lower still, and the next fetch resumes there) and append
			// it. Kafka restarts an empty log at the batch's base offset
			// and otherwise fails the partition until its leader changes;
			// this replica would never catch up.
			p.log.Warn("the leader's batch starts below this replica's log end: the logs diverge there; truncating to take the leader's",
				"batch_base_offset", h.BaseOffset, "batch_last_offset", h.LastOffset(), "log_end_offset", end, "log_start_offset", p.segments.StartOffset())
			if err := p.truncateLocked(h.BaseOffset); err != nil {
				return fmt.Errorf("replicated batch at offset %d, log end %d: truncating to it: %w", h.BaseOffset, end, err)
			}
			if end = p.segments.EndOffset(); h.BaseOffset > end {
				// A local batch straddled h.BaseOffset: fetch again from
				// the new end.
				break
			}
		}
		if first < 0 {
			if h.BaseOffset != end {
				return fmt.Errorf("replicated batch at offset %d, log end is %d", h.BaseOffset, end)
			}
			first = i
			p.dropEmptyEpochsLocked(end)
		}
		if err := recordbatch.VerifyChecksum(batch); err != nil {
			return fmt.Errorf("replicated batch at offset %d: %w", h.BaseOffset, err)
		}
		headers = append(headers, h)
		var control []byte
		if h.IsControl() {
			control = batch
		}
		controls = append(controls, control)
		descriptors = append(descriptors, segment.AppendBatch{
			Position: int32(sp.Position - spans[first].Position), Length: int32(sp.Length),
			LastOffsetDelta: h.LastOffsetDelta, MaxTimestamp: h.MaxTimestamp, Records: h.NumRecords,
		})
	}
	if first >= 0 {
		records := data[spans[first].Position : spans[len(spans)-1].Position+spans[len(spans)-1].Length]
		// One append may not exceed segment.bytes (a fetch brings up to
		// its partition limit, which may be more): append in runs that fit.
		segmentBytes := p.config.Load().SegmentBytes
		// The batches' leader epochs are checkpointed before the batches
		// reach the log, as Kafka's append assigns them first: a crash in
		// between leaves entries past the log end, which loadEpochCache
		// cuts. The other way round it left batches of an epoch the
		// checkpoint lacked, which the restarted replica took for the
		// previous epoch's (and answered OffsetForLeaderEpoch for that one
		// with an end past its last batch).
		checkpoint := false
		for _, h := range headers {
			checkpoint = p.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) || checkpoint
		}
		if checkpoint {
			if err := p.writeEpochsLocked(); err != nil {
				p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
			}
		}
		var appendErr error
		for start := 0; start < len(descriptors) && appendErr == nil; {
			end, size := start, int64(0)
			for end < len(descriptors) && (end == start || size+int64(descriptors[end].Length) <= segmentBytes) {
				size += int64(descriptors[end].Length)
				end++
			}
			// Positions are relative to records; a later run's are shifted
			// in place to its own start (the first run's already are).
			run := descriptors[start:end]
			offset := run[0].Position
			for i := range run {
				run[i].Position -= offset
			}
			var runBase int64
			if runBase, _, appendErr = p.segments.Append(records[offset:int64(offset)+size], run); appendErr != nil {
				break
			}
			p.snapshotAtRollLocked(runBase)
			appended = true
			for i, h := range headers[start:end] {
				if appendErr = p.replicatedProducerBatchLocked(h, controls[start+i]); appendErr != nil {
					break
				}
			}
			start = end
		}
		if appendErr != nil {
			// The epochs of the batches the log did not take go again.
			p.dropEmptyEpochsLocked(p.segments.EndOffset())
			return appendErr
		}
	}
	if highWatermark := min(leaderHighWatermark, p.segments.EndOffset()); highWatermark > p.highWatermark.Load() {
		p.highWatermark.Store(highWatermark)
	}
	return nil
}

// dropEmptyEpochsLocked forgets the epochs that start at or past end, the
// log end where the leader's batches are about to be appended: they hold no
// batch here (this replica led in them and appended nothing before another
// leader was elected), and the leader's batches, which may be of an
// earlier epoch (records this replica never had), say which epochs the
// offsets from end on belong to. Kept, such an epoch would claim the
// leader's earlier-epoch records (AppendReplicated's assign refuses an
// epoch below the latest), and this replica would answer OffsetForLeaderEpoch
// and DivergingEpoch for that earlier epoch with an end too low — making
// followers truncate committed records once it leads. As Kafka's
// UnifiedLog.truncateTo does with "a conflicting epoch entry at the end of
// the log". An append that failed drops the same way the epochs it
// checkpointed for batches the log did not take. Called with appendMu
// held.
func (p *Partition) dropEmptyEpochsLocked(end int64) {
	if p.epochs.truncateFromEnd(end) {
		if err := p.writeEpochsLocked(); err != nil {
			p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
		}
	}
}

// replicatedProducerBatchLocked applies a replicated batch (control: the
// whole control batch, else nil) to the producer state, and an ABORT
// marker to the aborted-transaction index, as the leader did. Called with
// appendMu held.
func (p *Partition) replicatedProducerBatchLocked(h recordbatch.Header, control []byte) error {
	if !h.HasProducerID() {
		return nil
	}
	if control == nil {
		p.producers.Update(batchMeta(h, h.BaseOffset))
		if h.IsTransactional() {
			p.updateFirstUnstableLocked()
		}
		return nil
	}
	marker, ok, err := recordbatch.ParseMarker(control)
	if err != nil {
		return fmt.Errorf("replicated control batch at offset %d: %w", h.BaseOffset, err)
	}
	if !ok {
		return nil
	}
	m := producer.Marker{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, CoordinatorEpoch: marker.CoordinatorEpoch, Commit: marker.Type == recordbatch.ControlCommit}
	return p.completeTxnLocked(m, h.BaseOffset, h.MaxTimestamp, true)
}

// appendFillerLocked appends the part of the compaction filler h from
// offset from on (h spans it): an empty batch of its own, under h's leader
// epoch. Called with appendMu held.
func (p *Partition) appendFillerLocked(from int64, h recordbatch.Header) error {
	filler := recordbatch.Assemble(recordbatch.Header{
		BaseOffset: from, PartitionLeaderEpoch: h.PartitionLeaderEpoch, LastOffsetDelta: int32(h.LastOffset() - from),
		FirstTimestamp: -1, MaxTimestamp: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}, nil)
	// Its epoch is checkpointed first, as AppendReplicated's batches' are.
	if p.epochs.assign(h.PartitionLeaderEpoch, from) {
		if err := p.writeEpochsLocked(); err != nil {
			p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
		}
	}
	if _, _, err := p.segments.Append(filler, []segment.AppendBatch{{Length: int32(len(filler)), LastOffsetDelta: int32(h.LastOffset() - from), MaxTimestamp: -1}}); err != nil {
		p.dropEmptyEpochsLocked(p.segments.EndOffset())
		return err
	}
	return nil
}

// TruncateTo cuts the log at offset (a follower agreeing with its new
// leader), with the epoch cache, producer state and high watermark.
func (p *Partition) TruncateTo(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.truncateLocked(offset)
}

// TruncateFollowing is TruncateTo for a follower acting on its leader's
// answer (DivergingEpoch, OffsetForLeaderEpoch) to a request issued under
// leader epoch fetchEpoch: unless the partition still follows at that
// epoch, nothing is cut (ErrStaleLeaderEpoch, or ErrNotLeader's opposite:
// a replica that leads now keeps its log) — checked under appendMu, as
// AppendReplicated checks.
func (p *Partition) TruncateFollowing(offset int64, fetchEpoch int32) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if current := p.leaderEpoch.Load(); fetchEpoch != current {
		return fmt.Errorf("%w: truncation asked under leader epoch %d, the partition is at %d", ErrStaleLeaderEpoch, fetchEpoch, current)
	}
	if p.leading.Load() {
		return errors.New("leads the partition: not truncating to another leader's log")
	}
	return p.truncateLocked(offset)
}

// truncateLocked is TruncateTo with appendMu held.
func (p *Partition) truncateLocked(offset int64) error {
	if offset >= p.segments.EndOffset() {
		return nil
	}
	p.log.Info("truncating to agree with the leader", "from_log_end", p.segments.EndOffset(), "to", offset)
	if err := p.segments.Truncate(offset); err != nil {
		return err
	}
	if p.epochs.truncateFromEnd(p.segments.EndOffset()) {
		if err := p.writeEpochsLocked(); err != nil {
			p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
		}
	}
	p.lowerHighWatermarkLocked(p.segments.EndOffset())
	return p.recoverProducers()
}

// RestartAt empties the log and restarts it at offset (a follower behind
// its leader's log start). epochs seeds the leader-epoch cache with the
// epochs of the offsets below (from the tiered segments' manifest), and
// producers, when not nil, is the producer-state snapshot to start from.
func (p *Partition) RestartAt(offset int64, epochs []metadata.EpochRange, producers []byte) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.restartAtLocked(offset, epochs, producers)
}

// restartAtLocked is RestartAt with appendMu held.
func (p *Partition) restartAtLocked(offset int64, epochs []metadata.EpochRange, producers []byte) error {
	if err := p.segments.TruncateFullyAndStartAt(offset); err != nil {
		return err
	}
	p.epochs.truncateFromEnd(0)
	for _, e := range epochs {
		if e.StartOffset <= offset {
			p.epochs.assign(e.Epoch, e.StartOffset)
		}
	}
	if err := p.writeEpochsLocked(); err != nil {
		p.log.Warn("writing the leader epoch checkpoint failed", "err", err)
	}
	p.lowerHighWatermarkLocked(offset)
	p.raiseHighWatermarkLocked(offset)
	if len(producers) > 0 {
		if err := atomicfile.WriteFile(p.producerSnapshotPath(offset), producers, fsperm.File); err != nil {
			return err
		}
	}
	return p.recoverProducers()
}

// UnderReplicated reports whether this broker leads the partition and its
// ISR lacks some replica.
func (p *Partition) UnderReplicated() bool {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.leading.Load() && len(p.assignment.ISR) < len(p.assignment.Replicas)
}

// EpochEndOffset answers OffsetForLeaderEpoch from this replica's cache.
func (p *Partition) EpochEndOffset(requested int32) (int32, int64) {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.epochs.endOffsetFor(requested, p.segments.EndOffset())
}

// EpochAt is the leader epoch covering offset in this replica's cache
// (the latest starting at or before it; -1: none), as Kafka's
// LeaderEpochFileCache.epochForOffset: what ListOffsets answers for the
// log starts. The cache keeps the epochs of the records in the object
// store until they are deleted there (TrimLeaderEpochs), so it covers
// remote offsets too.
func (p *Partition) EpochAt(offset int64) int32 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.epochs.lastEpochBelow(offset + 1)
}

// LatestEpoch is the newest epoch in this replica's log.
func (p *Partition) LatestEpoch() int32 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	return p.epochs.latest()
}

// RemoteEpochs are the leader-epoch ranges of the partition's readable
// remote segments (in state's manifest) that start below offset: the
// leader-epoch cache of a log restarted there.
func (p *Partition) RemoteEpochs(state *metadata.State, below int64) []metadata.EpochRange {
	var epochs []metadata.EpochRange
	state.EachSegment(p.topicID, p.index, 0, func(e metadata.SegmentManifest) bool {
		if e.BaseOffset >= below {
			return false
		}
		if e.State == metadata.SegmentCopyFinished {
			epochs = append(epochs, e.EpochRanges...)
		}
		return true
	})
	return epochs
}
