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

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata"
)

// The coordinators keep their records in internal topics: the group
// coordinators in __consumer_offsets, the transaction coordinators in
// __transaction_state. Both are created on first use through the metadata
// quorum, compacted, marked internal, and never with fewer replicas than
// their replication factor.

const offsetsTopic = group.OffsetsTopic

// internalTopicSpec is what an internal topic is created with.
type internalTopicSpec struct {
	name              string
	partitions        int32
	replicationFactor int16
	segmentBytes      int32
	// minInsyncReplicas, when above 0, is set as min.insync.replicas
	// (capped at the replication factor): Kafka's
	// transaction.state.log.min.isr.
	minInsyncReplicas int
	// replicationFlag names the flag that sets replicationFactor, for the
	// error that tells an operator what to change; users names who waits
	// for the topic.
	replicationFlag, users string
}

// internalTopicManager creates and upgrades one internal topic through the
// metadata quorum; it is a coordinator manager's view of the topic.
type internalTopicManager struct {
	s    *Server
	spec internalTopicSpec
	log  *slog.Logger

	createMu sync.Mutex  // serializes creating and upgrading the topic
	upgraded atomic.Bool // the topic exists with compaction on
}

var (
	_ group.Topic = (*internalTopicManager)(nil)
	_ txn.Topic   = (*internalTopicManager)(nil)
)

// Leaders implements group.Topic and txn.Topic.
func (o *internalTopicManager) Leaders() ([]int32, error) {
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
func (o *internalTopicManager) PartitionExists(tp group.TopicPartition) bool {
	t, ok := o.s.cfg.Metadata.State().Topic(tp.Topic)
	return ok && t.HasPartition(tp.Partition)
}

// TopicID implements group.Topic: from the newest metadata applied here,
// which only moves forward.
func (o *internalTopicManager) TopicID(topic string) ([16]byte, bool) {
	t, ok := o.s.cfg.Metadata.State().Topic(topic)
	return t.ID, ok
}

// ensure returns the topic, creating it on first use with its partitions
// of replicationFactor replicas each, or errInternalTopicReplicas while
// fewer brokers are up.
func (o *internalTopicManager) ensure() (metadata.Topic, error) {
	store := o.s.cfg.Metadata
	name := o.spec.name
	if t, ok := store.State().Topic(name); ok && o.upgraded.Load() {
		return t, nil
	}
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if t, ok := store.State().Topic(name); ok {
		o.upgrade(t)
		return t, nil
	}
	n := o.spec.partitions
	state := store.State()
	replicas, err := o.replicationFactor(state)
	if err != nil {
		return metadata.Topic{}, err
	}
	live := liveBrokers(state)
	if len(live) < replicas {
		return metadata.Topic{}, fmt.Errorf("%w: %s needs %d replicas (%s) and %d brokers are registered and unfenced; %s get COORDINATOR_NOT_AVAILABLE until more brokers are up (a smaller cluster needs a smaller %s)",
			errInternalTopicReplicas, name, replicas, o.spec.replicationFlag, len(live), o.spec.users, o.spec.replicationFlag)
	}
	o.upgraded.Store(true)
	assignments := placeNew(live, n, replicas)
	ctx, cancel := context.WithTimeout(o.s.ctx, 10*time.Second)
	defer cancel()
	t, err := store.CreateTopic(ctx, metadata.TopicSpec{
		Name:        name,
		Assignments: assignments,
		Configs:     o.configs(nil, replicas),
		Internal:    true,
	})
	if err != nil {
		if errors.Is(err, metadata.ErrTopicExists) {
			if t, ok := store.State().Topic(name); ok {
				return t, nil
			}
		}
		return metadata.Topic{}, fmt.Errorf("creating %s: %w", name, err)
	}
	o.log.Info("created an internal topic", "topic", name, "partitions", n, "replication_factor", replicas)
	if err := o.s.partitions.reconcile(); err != nil {
		o.log.Error("opening internal topic partitions failed", "topic", name, "err", err)
	}
	return t, nil
}

// errInternalTopicReplicas: too few brokers are up to create an internal
// topic with its replication factor; its coordinators wait
// (COORDINATOR_NOT_AVAILABLE).
var errInternalTopicReplicas = errors.New("broker: not enough brokers for an internal topic")

// replicationFactor is the topic's replication factor: the configured one,
// or 1 in a one-node cluster (the quorum names one voter and no broker but
// this one has registered), so a lone broker serves coordinators without a
// flag. A cluster that is meant to grow past one voter never gets a
// single-replica internal topic.
func (o *internalTopicManager) replicationFactor(state *metadata.State) (int, error) {
	configured := int(o.spec.replicationFactor)
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

// configs are the topic's configs: compacted, with its segment size,
// compression.type=producer (and min.insync.replicas, where set), on top
// of configs already set. As Kafka, the coordinators' batches are stored
// as written: a broker default compression.type does not apply.
func (o *internalTopicManager) configs(set map[string]string, replicas int) map[string]string {
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
		out[topicconfig.SegmentBytes] = strconv.Itoa(int(o.spec.segmentBytes))
	}
	if _, ok := out[topicconfig.CompressionType]; !ok {
		out[topicconfig.CompressionType] = "producer"
	}
	if _, ok := out[topicconfig.MinInsyncReplicas]; !ok && o.spec.minInsyncReplicas > 0 && replicas > 0 {
		out[topicconfig.MinInsyncReplicas] = strconv.Itoa(min(o.spec.minInsyncReplicas, replicas))
	}
	return out
}

// upgrade switches a topic created before compaction existed to
// cleanup.policy=compact, once per process. Called with createMu held.
func (o *internalTopicManager) upgrade(t metadata.Topic) {
	if o.upgraded.Load() {
		return
	}
	if t.Configs[topicconfig.CleanupPolicy] == "compact" {
		o.upgraded.Store(true)
		return
	}
	ctx, cancel := context.WithTimeout(o.s.ctx, 10*time.Second)
	defer cancel()
	if err := o.s.cfg.Metadata.SetTopicConfigs(ctx, t, o.configs(t.Configs, 0)); err != nil {
		o.log.Warn("switching an internal topic to cleanup.policy=compact failed; retrying on next use", "topic", o.spec.name, "err", err)
		return
	}
	o.upgraded.Store(true)
	o.log.Info("switched an internal topic to cleanup.policy=compact", "topic", o.spec.name)
}

// internalTopic returns the manager of an internal topic by name, or nil.
func (s *Server) internalTopic(name string) *internalTopicManager {
	switch name {
	case offsetsTopic:
		return s.offsets
	case txn.TopicName:
		return s.txnTopic
	}
	return nil
}
