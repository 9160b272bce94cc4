package group

import (
	"encoding/binary"
	"math"
	"sort"

	"github.com/strata-log/strata/broker/recordbatch"
)

// Transactional offset commits (KIP-98, KIP-447), as Kafka's group
// coordinator keeps them.
//
// TxnOffsetCommit writes a group's offsets to its __consumer_offsets
// partition with Log.AppendTxn: the same OffsetCommitKey/OffsetCommitValue
// records as OffsetCommit, in one transactional batch carrying the
// producer's id and epoch, so the partition's last stable offset and the
// transaction's markers cover them. Before writing, the shard has the Log
// verify that the partition is in the producer's ongoing transaction
// (Log.VerifyTxn: KIP-890 part 1, as Kafka verifies TxnOffsetCommit with
// the transaction coordinator), so a TxnOffsetCommit arriving after its
// transaction ended is refused instead of opening a new, hanging
// transaction on the partition. Until the producer's transaction ends the
// commits are pending: not the group's committed offsets (OffsetFetch and
// GroupOffsets do not see them; OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for their partitions). The transaction's marker
// (a control batch: key int16 version, int16 type 0 = ABORT, 1 = COMMIT)
// ends them: Manager.CompleteTransaction once the marker is written, and
// the marker itself when the shard replays its log. A commit makes each
// pending offset the committed one unless a later plain commit of the
// partition was written after it (Kafka compares the log offsets of the
// two records: the later record wins, so compaction, which keeps only the
// latest record of a key, cannot change the outcome); an abort drops them.
//
// A marker ends only the producer's commits written below it: each pending
// commit keeps the log offset of its record, and CompleteTransaction
// carries the marker's offset. So the live state is what a replay of the
// log gives, whatever order the writes and the markers' completions run
// in:
//   - a CompleteTransaction that arrives while a TxnOffsetCommit write is
//     in flight waits for it (the shard holds mu from before the append to
//     after the commits are recorded, so no in-flight state is visible),
//     then completes the write's commits if they landed below the marker
//     and leaves them pending (for the producer's next marker, as a replay
//     would) if they landed above it — which the verification keeps from
//     happening to a transaction that is over, as in Kafka;
//   - a delayed CompleteTransaction of an earlier transaction (a
//     WriteTxnMarkers whose marker was written again and completed by a
//     retry, then answered late) does not end the newer transaction's
//     commits of the same producer: they are above its marker;
//   - a write that fails records nothing (as Kafka's coordinator drops the
//     pending commit of a failed append).
//
// Pending commits of one group partition are kept in log order (a
// transaction may commit a partition more than once; the latest below the
// marker counts).
//
// A tombstone of a group's partition (OffsetDelete, expiry, a deleted
// group) also drops the partition's pending commits of that group, as in
// Kafka; a deleted group gets tombstones for its pending-only partitions
// too. Offset expiry keeps an offset whose partition has a pending commit
// and does not delete a group with pending commits.

// TxnProducer is the transactional producer of a TxnOffsetCommit.
type TxnProducer struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

// noProducerID marks a plain (non-transactional) commit.
const noProducerID int64 = -1

// txnOffsets are the pending transactional commits of a shard, by producer
// and by group. Guarded by the shard's mu.
type txnOffsets struct {
	// byProducer holds each producer's pending commits by group and
	// partition, in log order (never empty).
	byProducer map[int64]map[string]map[TopicPartition][]storedOffset
	byGroup    map[string]map[int64]struct{} // group → producers with commits of it pending
	// held are the groups offset expiry left without offsets but did not
	// delete while a transaction had commits of them pending: a later
	// pass deletes them once it has ended.
	held map[string]bool
}

func newTxnOffsets() txnOffsets {
	return txnOffsets{byProducer: map[int64]map[string]map[TopicPartition][]storedOffset{}, byGroup: map[string]map[int64]struct{}{}, held: map[string]bool{}}
}

// put adds a pending commit; c.at is above those of the commits already
// pending (the shard records commits in log order).
func (t *txnOffsets) put(producerID int64, groupID string, tp TopicPartition, c storedOffset) {
	groups := t.byProducer[producerID]
	if groups == nil {
		groups = map[string]map[TopicPartition][]storedOffset{}
		t.byProducer[producerID] = groups
	}
	parts := groups[groupID]
	if parts == nil {
		parts = map[TopicPartition][]storedOffset{}
		groups[groupID] = parts
	}
	parts[tp] = append(parts[tp], c)
	producers := t.byGroup[groupID]
	if producers == nil {
		producers = map[int64]struct{}{}
		t.byGroup[groupID] = producers
	}
	producers[producerID] = struct{}{}
}

// pending reports whether some transaction has a commit of the group's
// partition pending.
func (t *txnOffsets) pending(groupID string, tp TopicPartition) bool {
	for producerID := range t.byGroup[groupID] {
		if _, ok := t.byProducer[producerID][groupID][tp]; ok {
			return true
		}
	}
	return false
}

// open reports whether some transaction has commits of the group pending.
func (t *txnOffsets) open(groupID string) bool { return len(t.byGroup[groupID]) > 0 }

// partitions returns the group's partitions with pending commits.
func (t *txnOffsets) partitions(groupID string) []TopicPartition {
	seen := map[TopicPartition]bool{}
	var out []TopicPartition
	for producerID := range t.byGroup[groupID] {
		for tp := range t.byProducer[producerID][groupID] {
			if !seen[tp] {
				seen[tp] = true
				out = append(out, tp)
			}
		}
	}
	sortTopicPartitions(out)
	return out
}

// first is the earliest pending commit (by log offset) of the group's
// partition; false if none.
func (t *txnOffsets) first(groupID string, tp TopicPartition) (storedOffset, bool) {
	first := storedOffset{at: math.MaxInt64}
	found := false
	for producerID := range t.byGroup[groupID] {
		if pending := t.byProducer[producerID][groupID][tp]; len(pending) > 0 && pending[0].at < first.at {
			first, found = pending[0], true
		}
	}
	return first, found
}

// deletePartition drops every pending commit of the group's partition.
func (t *txnOffsets) deletePartition(groupID string, tp TopicPartition) {
	for producerID := range t.byGroup[groupID] {
		parts := t.byProducer[producerID][groupID]
		delete(parts, tp)
		if len(parts) == 0 {
			t.forget(producerID, groupID)
		}
	}
}

func (t *txnOffsets) forget(producerID int64, groupID string) {
	if groups := t.byProducer[producerID]; groups != nil {
		delete(groups, groupID)
		if len(groups) == 0 {
			delete(t.byProducer, producerID)
		}
	}
	if producers := t.byGroup[groupID]; producers != nil {
		delete(producers, producerID)
		if len(producers) == 0 {
			delete(t.byGroup, groupID)
		}
	}
}

// take removes the producer's pending commits written below the log
// offset before (its transaction's marker) and returns, per group and
// partition, the latest of them; those written above it stay pending.
func (t *txnOffsets) take(producerID, before int64) map[string]map[TopicPartition]storedOffset {
	out := map[string]map[TopicPartition]storedOffset{}
	for groupID, parts := range t.byProducer[producerID] {
		for tp, commits := range parts {
			n := 0
			for n < len(commits) && commits[n].at < before {
				n++
			}
			if n == 0 {
				continue
			}
			if out[groupID] == nil {
				out[groupID] = map[TopicPartition]storedOffset{}
			}
			out[groupID][tp] = commits[n-1]
			if n == len(commits) {
				delete(parts, tp)
			} else {
				parts[tp] = commits[n:]
			}
		}
		if len(parts) == 0 {
			t.forget(producerID, groupID)
		}
	}
	return out
}

// CommitTxnOffsets verifies (Log.VerifyTxn, without the shard's lock: it
// may ask another broker) that the producer's transaction includes the
// shard's partition, then writes the producer's offset commits
// (TxnOffsetCommit) as one transactional batch and keeps them pending
// until the transaction's marker (CompleteTransaction); on failure nothing
// changes. Who may commit is checked as the commits are written, as
// CommitOffsets does (ValidateOffsetCommit's rules, with Transactional
// set whatever req says).
func (sh *Shard) CommitTxnOffsets(req OffsetCommitRequest, p TxnProducer, commits map[TopicPartition]CommittedOffset) error {
	if len(commits) == 0 {
		return nil
	}
	if err := sh.log.VerifyTxn(p); err != nil {
		return err
	}
	// Checked and written in one step with the group's writeMu held, as
	// CommitOffsets.
	req.Transactional = true
	return sh.coord.withGroup(req, func() error {
		return sh.commitOffsets(req.GroupID, p.ProducerID, commits, nil, func(records []recordbatch.Record) (int64, error) {
			return sh.log.AppendTxn(records, p)
		})
	})
}

// PendingTxnOffset reports whether a transaction has a commit of the
// group's partition pending (OffsetFetch RequireStable), not counting
// those of a deleted topic whose tombstone is yet to be written.
func (sh *Shard) PendingTxnOffset(groupID string, tp TopicPartition) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.markDeletedLocked()
	return sh.txns.pending(groupID, tp) && !sh.deletedLocked(groupID, tp)
}

// CompleteTransaction ends the producer's transaction in this shard, given
// its marker's log offset: on commit its pending offsets written below the
// marker become the committed ones (each unless a later-written plain
// commit of its partition is committed), on abort they are dropped; those
// written above the marker are not this transaction's and stay pending.
// The marker is already in the log; nothing is written.
func (sh *Shard) CompleteTransaction(producerID, markerOffset int64, commit bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.completeTxnLocked(producerID, markerOffset, commit)
}

func (sh *Shard) completeTxnLocked(producerID, markerOffset int64, commit bool) {
	groups := sh.txns.take(producerID, markerOffset)
	if !commit {
		return
	}
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for tp, c := range groups[id] {
			if cur, ok := sh.offsets[id][tp]; ok && cur.at > c.at {
				continue // a plain commit written after this one
			}
			sh.setOffsetLocked(id, tp, c)
		}
	}
}

// replayMarkerLocked applies a control batch met while loading: a
// transaction marker ends its producer's transaction (the commits replayed
// so far, all below it). Other control records are skipped.
func (sh *Shard) replayMarkerLocked(h recordbatch.Header, recs []recordbatch.Record) {
	for _, r := range recs {
		if len(r.Key) < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(r.Key[2:4]) { // after the int16 version
		case markerAbort:
			sh.completeTxnLocked(h.ProducerID, r.Offset, false)
		case markerCommit:
			sh.completeTxnLocked(h.ProducerID, r.Offset, true)
		}
	}
}

// The control record types of transaction markers (Kafka's
// ControlRecordType).
const (
	markerAbort  = 0
	markerCommit = 1
)

// CompleteTransaction makes the transactional offset commits producerID
// wrote to partition's shard below markerOffset visible (commit) or drops
// them (abort), once the transaction's marker, at markerOffset, is
// committed in that __consumer_offsets partition (Shard.CompleteTransaction).
// A partition without a shard here has nothing pending: its next shard
// replays the marker from the log.
func (m *Manager) CompleteTransaction(partition int32, producerID int64, producerEpoch int16, markerOffset int64, commit bool) {
	sh, ok := m.shards.Of(partition)
	if !ok {
		return
	}
	sh.CompleteTransaction(producerID, markerOffset, commit)
}
