package txn

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
)

// Marker is one transaction's outcome, to be written as a control batch
// (COMMIT or ABORT) to each of its partitions by the partition's leader.
type Marker struct {
	ProducerID    int64
	ProducerEpoch int16
	Commit        bool
	// CoordinatorEpoch is the writing shard's coordinator epoch: a leader
	// that has seen a marker of a newer coordinator refuses it.
	CoordinatorEpoch int32
	// Version is the transaction's protocol (WriteTxnMarkers v2's
	// TransactionVersion): in V2 ProducerEpoch is the bumped epoch.
	Version    Version
	Partitions []group.TopicPartition
}

// MarkerWriter writes markers to partition leaders (WriteTxnMarkers v1 to
// each leader, the broker's implementation).
type MarkerWriter interface {
	// WriteMarkers writes m to each of its partitions and returns the
	// outcome per partition: nil (written), an error wrapping
	// ErrPartitionGone (the topic or partition was deleted: nothing to
	// write), one wrapping ErrCoordinatorFenced (a newer coordinator owns
	// the transaction: give up), any other error (retried after a
	// backoff). A partition missing from the result is retried. It returns
	// early when ctx ends.
	WriteMarkers(ctx context.Context, m Marker) map[group.TopicPartition]error
}

// Marker outcomes a MarkerWriter classifies.
var (
	ErrPartitionGone     = errors.New("txn: the partition no longer exists")
	ErrCoordinatorFenced = errors.New("txn: a newer transaction coordinator wrote markers for this producer")
)

// startMarkers writes t's markers and then its completion, in a goroutine
// the shard's workers group counts. t is a copy in PrepareCommit or
// PrepareAbort.
func (sh *Shard) startMarkers(t *transaction) {
	sh.workers.Add(1)
	sh.pendingMarkers.Add(1)
	go func() {
		defer sh.workers.Done()
		defer sh.pendingMarkers.Add(-1)
		sh.complete(t)
	}()
}

// complete writes t's markers to every partition of the transaction,
// retrying those that fail until each is written or gone, then writes
// the transaction's CompleteCommit or CompleteAbort state. It gives up when
// the shard closes (the next coordinator resumes from the Prepare record)
// or a newer coordinator fenced it.
func (sh *Shard) complete(t *transaction) {
	commit := t.state == kmsg.TransactionStatePrepareCommit
	m := Marker{ProducerID: t.producerID, ProducerEpoch: t.producerEpoch, Commit: commit, CoordinatorEpoch: sh.coordinatorEpoch, Version: t.version}
	remaining := t.sortedPartitions()
	for attempt := 0; len(remaining) > 0; attempt++ {
		if sh.ctx.Err() != nil {
			return
		}
		m.Partitions = remaining
		results := sh.markers.WriteMarkers(sh.ctx, m)
		var retry []group.TopicPartition
		for _, tp := range remaining {
			err, answered := results[tp]
			switch {
			case answered && err == nil:
			case errors.Is(err, ErrPartitionGone):
				sh.logger.Info("not writing a transaction marker to a deleted partition", "transactional_id", t.id, "topic", tp.Topic, "partition", tp.Partition)
			case errors.Is(err, ErrCoordinatorFenced):
				sh.logger.Warn("a newer transaction coordinator owns this transaction; this one stops completing it",
					"transactional_id", t.id, "coordinator_epoch", sh.coordinatorEpoch, "err", err)
				return
			default:
				if attempt%50 == 49 {
					sh.logger.Warn("transaction marker not written yet; retrying", "transactional_id", t.id, "topic", tp.Topic, "partition", tp.Partition, "attempts", attempt+1, "err", err)
				}
				retry = append(retry, tp)
			}
		}
		remaining = retry
		if len(remaining) > 0 && !sh.sleep(sh.cfg.MarkerRetryBackoff) {
			return
		}
	}
	for {
		now := sh.cfg.Now().UnixMilli()
		sh.mu.Lock()
		cur := sh.txns[t.id]
		if sh.life.ClosedLocked() || cur == nil || cur.producerID != t.producerID || cur.producerEpoch != t.producerEpoch || cur.state != t.state {
			sh.mu.Unlock()
			return
		}
		if cur.pending {
			sh.mu.Unlock()
			if !sh.sleep(sh.cfg.MarkerRetryBackoff) {
				return
			}
			continue
		}
		next := cur.clone()
		next.state = kmsg.TransactionStateCompleteAbort
		if commit {
			next.state = kmsg.TransactionStateCompleteCommit
		}
		clear(next.partitions)
		next.lastUpdate = now
		if next.nextProducerID >= 0 {
			// V2 at an exhausted epoch: the producer continues with the
			// next producer id (the retry of its EndTxn is recognised by
			// the previous id and epoch).
			next.lastProducerID, next.producerID, next.producerEpoch = cur.producerID, cur.nextProducerID, 0
			next.lastProducerEpoch = cur.lastProducerEpoch
			next.nextProducerID = noProducerID
		}
		cur.pending = true
		sh.mu.Unlock()
		err := sh.write(cur, next)
		if err == nil {
			sh.events.Ended(commit)
			return
		}
		if errors.Is(err, kerr.NotCoordinator) {
			return
		}
		sh.logger.Warn("writing a transaction's completion failed; retrying", "transactional_id", t.id, "err", err)
		if !sh.sleep(sh.cfg.MarkerRetryBackoff) {
			return
		}
	}
}

// sleep waits d, or returns false when the shard closes first.
func (sh *Shard) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-sh.ctx.Done():
		return false
	}
}
