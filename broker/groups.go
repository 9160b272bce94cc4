package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
)

// The group coordinators (broker/group) keep their records in
// __consumer_offsets: internaltopic.go gives them the topic (created on
// first use, compacted), this file each partition's log, and follows the
// partitions' leadership. The transaction coordinators use the same log
// adapter for __transaction_state (txns.go).

// offsetsLog is one __consumer_offsets partition as a coordinator shard's
// log: appends go through the normal append path and wait for the ISR.
type offsetsLog struct {
	p   *partition.Partition
	log *slog.Logger
	// verifyTxn is VerifyTxn's question to the transaction coordinator
	// (Server.verifyOffsetsTxn, groups_txn.go); nil for
	// __transaction_state, which has no transactional appends.
	verifyTxn func(*partition.Partition, group.TxnProducer) error
}

var _ group.Log = (*offsetsLog)(nil)

// offsetCommitTimeout is offsets.commit.timeout.ms (Kafka's default).
const offsetCommitTimeout = 5 * time.Second

// Append implements group.Log.
func (l *offsetsLog) Append(records []recordbatch.Record) (int64, error) {
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
	if err != nil {
		return 0, err
	}
	return l.write(batch, len(records))
}

// write appends one batch of n records through the partition's append
// path and waits until every in-sync replica has it; it returns the
// batch's base offset, or the Kafka error the group coordinator's client
// is to see.
func (l *offsetsLog) write(batch []byte, n int) (int64, error) {
	leaderEpoch := l.p.LeaderEpoch() // the term the write is made in
	base, err := l.p.AppendFromCoordinator(batch, time.Now())
	if err != nil {
		var pe *partition.Error
		if errors.As(err, &pe) {
			switch pe.Code {
			case kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code:
				return 0, kerr.NotCoordinator
			case kerr.InvalidProducerEpoch.Code, kerr.ProducerFenced.Code, kerr.InvalidTxnState.Code:
				// A transactional write's producer is fenced or its
				// transaction is not open here (groups_txn.go).
				return 0, kerr.ErrorForCode(pe.Code)
			}
		}
		l.log.Error("writing to an internal topic failed", "topic", l.p.Topic(), "partition", l.p.Index(), "err", err)
		return 0, kerr.CoordinatorNotAvailable
	}
	// acks=all, as Kafka writes commits: answered once every in-sync
	// replica has them.
	switch code := l.p.WaitCommitted(base+int64(n), leaderEpoch, offsetCommitTimeout); code {
	case 0:
		return base, nil
	case kerr.NotLeaderForPartition.Code, kerr.UnknownTopicOrPartition.Code:
		// The leadership moved, or the partition was removed here.
		return 0, kerr.NotCoordinator
	default:
		l.log.Warn("internal topic write not replicated in time", "topic", l.p.Topic(), "partition", l.p.Index(), "err", kerr.ErrorForCode(code))
		return 0, kerr.CoordinatorNotAvailable
	}
}

// Replay implements group.Log.
func (l *offsetsLog) Replay(fn func(batch []byte) error) (int64, error) {
	offset, end := l.p.LogStartOffset(), l.p.LogEndOffset()
	for offset < end {
		data, err := l.p.Read(offset, 1<<20, end, true)
		if err != nil {
			return end, fmt.Errorf("offset %d: %w", offset, err)
		}
		if len(data) == 0 {
			return end, nil
		}
		spans, err := recordbatch.Split(data)
		if err != nil || len(spans) == 0 {
			return end, fmt.Errorf("corrupt batch at offset %d: %v", offset, err)
		}
		for _, sp := range spans {
			batch := data[sp.Position : sp.Position+sp.Length]
			h, err := recordbatch.ParseHeader(batch)
			if err != nil {
				return end, fmt.Errorf("corrupt batch header at offset %d: %w", offset, err)
			}
			offset = max(offset, h.BaseOffset+int64(h.LastOffsetDelta)+1)
			if err := fn(batch); err != nil {
				return end, err
			}
		}
	}
	return end, nil
}

// AwaitCommitted implements group.Log: it waits for the high watermark
// alone (not min.insync.replicas, which only gates writes), so a shard
// whose ISR shrank to its leader still serves reads once its log is
// committed.
func (l *offsetsLog) AwaitCommitted(end int64, stop <-chan struct{}) error {
	wake := make(chan struct{}, 1)
	l.p.AddWaiter(wake)
	defer l.p.RemoveWaiter(wake)
	for {
		switch {
		case !l.p.Leading():
			return kerr.NotCoordinator
		case l.p.HighWatermark() >= end:
			return nil
		}
		select {
		case <-wake:
		case <-stop:
			return kerr.NotCoordinator
		}
	}
}

// Leading implements group.Log.
func (l *offsetsLog) Leading() bool { return l.p.Leading() }

// groupsFollow makes the group manager follow the offsets partitions'
// leadership: a __consumer_offsets partition this broker now leads gets a
// fresh coordinator shard, loaded in the background from the log (which it
// may have replicated as a follower); one it no longer leads, or closes,
// loses its shard. Each partition keeps one offsetsLog, so a shard is
// resigned only by its own partition.
type groupsFollow struct {
	s *Server

	mu   sync.Mutex // guards logs
	logs map[*partition.Partition]*offsetsLog
}

func (g *groupsFollow) logOf(p *partition.Partition) *offsetsLog {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.logs[p]
	if l == nil {
		l = &offsetsLog{p: p, log: g.s.log.With("subsystem", "groups"), verifyTxn: g.s.verifyOffsetsTxn}
		g.logs[p] = l
	}
	return l
}

// leadership is the partition manager's onLeadership.
func (g *groupsFollow) leadership(p *partition.Partition) {
	if p.Topic() != offsetsTopic {
		return
	}
	if !p.Leading() {
		g.s.groups.Resign(p.Index(), g.logOf(p))
		return
	}
	if err := g.s.groups.Lead(p.Index(), g.logOf(p)); err != nil {
		g.s.log.Error("cannot start group coordinator", "partition", p.Index(), "err", err)
	}
}

// closing is the partition manager's onClose.
func (g *groupsFollow) closing(p *partition.Partition) {
	if p.Topic() != offsetsTopic {
		return
	}
	g.s.groups.Resign(p.Index(), g.logOf(p))
	g.mu.Lock()
	delete(g.logs, p)
	g.mu.Unlock()
}
