package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// The group coordinators (broker/group) keep their records in
// __consumer_offsets: this file gives them the topic (created on first
// use, compacted) and each partition's log, and follows the partitions'
// leadership.

const offsetsTopic = group.OffsetsTopic

// offsetsTopicManager creates and upgrades the offsets topic through the
// metadata quorum; it is the group.Manager's view of the topic.
type offsetsTopicManager struct {
	s   *Server
	log *slog.Logger

	createMu sync.Mutex  // serializes creating and upgrading the topic
	upgraded atomic.Bool // the topic exists with compaction on
}

var _ group.Topic = (*offsetsTopicManager)(nil)

// Leaders implements group.Topic.
func (o *offsetsTopicManager) Leaders() ([]int32, error) {
	t, err := o.ensure()
	if err != nil {
		return nil, err
	}
	leaders := make([]int32, len(t.Partitions))
	for i, p := range t.Partitions {
		leaders[i] = p.Leader
	}
	return leaders, nil
}

// PartitionExists implements group.Topic.
func (o *offsetsTopicManager) PartitionExists(tp group.TopicPartition) bool {
	t, ok := o.s.cfg.Metadata.State().Topic(tp.Topic)
	return ok && t.HasPartition(tp.Partition)
}

// ensure returns the offsets topic, creating it on first use with
// offsets.topic.num.partitions partitions of replicationFactor replicas
// each, or errOffsetsTopicReplicas while fewer brokers are up.
func (o *offsetsTopicManager) ensure() (metadata.Topic, error) {
	store := o.s.cfg.Metadata
	if t, ok := store.State().Topic(offsetsTopic); ok && o.upgraded.Load() {
		return t, nil
	}
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if t, ok := store.State().Topic(offsetsTopic); ok {
		o.upgrade(t)
		return t, nil
	}
	n := o.s.cfg.OffsetsTopicNumPartitions
	state := store.State()
	replicas, err := o.replicationFactor(state)
	if err != nil {
		return metadata.Topic{}, err
	}
	live := liveBrokers(state)
	if len(live) < replicas {
		return metadata.Topic{}, fmt.Errorf("%w: it needs %d replicas (--offsets-topic-replication-factor) and %d brokers are registered and unfenced; groups get COORDINATOR_NOT_AVAILABLE until more brokers are up (a smaller cluster needs a smaller --offsets-topic-replication-factor)", errOffsetsTopicReplicas, replicas, len(live))
	}
	o.upgraded.Store(true)
	assignments := placeNew(live, n, replicas)
	ctx, cancel := context.WithTimeout(o.s.ctx, 10*time.Second)
	defer cancel()
	t, err := store.CreateTopic(ctx, metadata.TopicSpec{
		Name:        offsetsTopic,
		Assignments: assignments,
		Configs:     o.configs(nil),
		Internal:    true,
	})
	if err != nil {
		if errors.Is(err, metadata.ErrTopicExists) {
			if t, ok := store.State().Topic(offsetsTopic); ok {
				return t, nil
			}
		}
		return metadata.Topic{}, fmt.Errorf("creating %s: %w", offsetsTopic, err)
	}
	o.log.Info("created the offsets topic", "partitions", n, "replication_factor", replicas)
	if err := o.s.partitions.reconcile(); err != nil {
		o.log.Error("opening offsets topic partitions failed", "err", err)
	}
	return t, nil
}

// errOffsetsTopicReplicas: too few brokers are up to create the offsets
// topic with its replication factor; groups wait (COORDINATOR_NOT_AVAILABLE).
var errOffsetsTopicReplicas = errors.New("broker: not enough brokers for the offsets topic")

// replicationFactor is the offsets topic's replication factor:
// OffsetsTopicReplicationFactor, or 1 in a one-node cluster (the quorum
// names one voter and no broker but this one has registered), so a lone
// broker serves groups without a flag. A cluster that is meant to grow
// past one voter never gets a single-replica offsets topic.
func (o *offsetsTopicManager) replicationFactor(state *metadata.State) (int, error) {
	configured := int(o.s.cfg.OffsetsTopicReplicationFactor)
	if configured <= 1 {
		return 1, nil
	}
	for _, b := range state.Brokers() {
		if b.ID != o.s.cfg.NodeID {
			return configured, nil
		}
	}
	members, err := o.s.cfg.Metadata.Voters()
	if err != nil {
		return 0, fmt.Errorf("reading the quorum: %w", err)
	}
	voters := 0
	for _, m := range members {
		if m.Voting {
			voters++
		}
	}
	if voters == 1 {
		return 1, nil
	}
	return configured, nil
}

// configs are the offsets topic's configs: compacted, with
// offsets.topic.segment.bytes segments, on top of configs already set.
func (o *offsetsTopicManager) configs(set map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range set {
		out[k] = v
	}
	// Written by an earlier version that could not compact: delete with
	// unlimited retention.
	if out[topicconfig.CleanupPolicy] == "delete" && out[topicconfig.RetentionMs] == "-1" {
		delete(out, topicconfig.RetentionMs)
	}
	out[topicconfig.CleanupPolicy] = "compact"
	if _, ok := out[topicconfig.SegmentBytes]; !ok {
		out[topicconfig.SegmentBytes] = strconv.Itoa(int(o.s.cfg.OffsetsTopicSegmentBytes))
	}
	return out
}

// upgrade switches an offsets topic created before compaction existed to
// cleanup.policy=compact, once per process. Called with createMu held.
func (o *offsetsTopicManager) upgrade(t metadata.Topic) {
	if o.upgraded.Load() {
		return
	}
	if t.Configs[topicconfig.CleanupPolicy] == "compact" {
		o.upgraded.Store(true)
		return
	}
	ctx, cancel := context.WithTimeout(o.s.ctx, 10*time.Second)
	defer cancel()
	if err := o.s.cfg.Metadata.SetTopicConfigs(ctx, offsetsTopic, o.configs(t.Configs)); err != nil {
		o.log.Warn("switching the offsets topic to cleanup.policy=compact failed; retrying on next use", "err", err)
		return
	}
	o.upgraded.Store(true)
	o.log.Info("switched the offsets topic to cleanup.policy=compact")
}

// offsetsLog is one __consumer_offsets partition as a coordinator shard's
// log: appends go through the normal append path and wait for the ISR.
type offsetsLog struct {
	p   *partition.Partition
	log *slog.Logger
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
		l.log.Error("writing to the offsets topic failed", "partition", l.p.Index(), "err", err)
		return 0, kerr.CoordinatorNotAvailable
	}
	// acks=all, as Kafka writes commits: answered once every in-sync
	// replica has them.
	switch code := l.p.WaitCommitted(base+int64(n), offsetCommitTimeout); code {
	case 0:
		return base, nil
	case kerr.NotLeaderForPartition.Code:
		return 0, kerr.NotCoordinator
	default:
		l.log.Warn("offsets topic write not replicated in time", "partition", l.p.Index(), "err", kerr.ErrorForCode(code))
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
		l = &offsetsLog{p: p, log: g.s.log.With("subsystem", "groups")}
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
