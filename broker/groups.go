package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// offsetsTopic is the internal topic holding committed offsets and group
// metadata, in Kafka's own key/value schemas:
//
//	key version 0/1: OffsetCommitKey{group, topic, partition}
//	                 value OffsetCommitValue (written as v3), null = deleted
//	key version 2:   GroupMetadataKey{group}
//	                 value GroupMetadataValue (written as v3), null = deleted
//
// Each partition of it is one coordinator shard: group.Partition maps a group
// id to its partition, as Kafka does. The topic is compacted
// (cleanup.policy=compact, segments of offsets.topic.segment.bytes), so it
// holds about one record per live commit key; a shard is rebuilt by
// replaying its partition.
const offsetsTopic = "__consumer_offsets"

// offsetMetadataMaxBytes is Kafka's offset.metadata.max.bytes default.
const offsetMetadataMaxBytes = 4096

// committedOffset is one committed offset of a group.
type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	timestamp   int64
}

// groupShard is the coordinator of one __consumer_offsets partition: the
// group state machine and the committed offsets of its groups.
type groupShard struct {
	m     *groupManager
	index int32
	part  *partition
	coord *group.Coordinator

	loaded chan struct{} // closed once the partition is replayed

	// mu guards offsets and closed, and serializes the shard's appends with
	// the in-memory updates they make, so both happen in the same order.
	mu      sync.Mutex
	offsets map[string]map[topicPartition]committedOffset // group → partition → commit
	closed  bool
}

// groupManager holds the coordinator shards of the __consumer_offsets
// partitions this node leads (on one node: all of them).
type groupManager struct {
	s   *Server
	log *slog.Logger

	createMu sync.Mutex  // serializes creating and upgrading the offsets topic
	upgraded atomic.Bool // the offsets topic exists with compaction on

	mu     sync.RWMutex
	shards map[int32]*groupShard
}

func newGroupManager(s *Server) *groupManager {
	return &groupManager{s: s, log: s.log.With("subsystem", "groups"), shards: map[int32]*groupShard{}}
}

// groupConfig is the coordinators' configuration.
func (m *groupManager) groupConfig(shard *groupShard) group.Config {
	return group.Config{
		InitialRebalanceDelay: m.s.cfg.GroupInitialRebalanceDelay,
		Store:                 shard,
		Logger:                m.log.With("shard", shard.index),
	}
}

// partitionLeadership is called by the partition manager when a
// partition's leadership term changes: a __consumer_offsets partition this
// broker now leads gets a fresh coordinator, loaded in the background from
// the log (which it may have replicated as a follower); one it no longer
// leads loses its coordinator.
func (m *groupManager) partitionLeadership(p *partition) {
	if p.topic != offsetsTopic {
		return
	}
	if !p.leading.Load() {
		m.partitionClosing(p)
		return
	}
	sh := &groupShard{m: m, index: p.index, part: p, loaded: make(chan struct{}), offsets: map[string]map[topicPartition]committedOffset{}}
	coord, err := group.New(m.groupConfig(sh))
	if err != nil {
		m.log.Error("cannot start group coordinator", "partition", p.index, "err", err)
		return
	}
	sh.coord = coord
	m.mu.Lock()
	if old := m.shards[p.index]; old != nil {
		old.close()
	}
	m.shards[p.index] = sh
	m.mu.Unlock()
	go sh.load()
}

// partitionClosing is called before a partition is closed or removed, and
// when this broker stops leading it.
func (m *groupManager) partitionClosing(p *partition) {
	if p.topic != offsetsTopic {
		return
	}
	m.mu.Lock()
	sh := m.shards[p.index]
	if sh != nil && sh.part == p {
		delete(m.shards, p.index)
	} else {
		sh = nil
	}
	m.mu.Unlock()
	if sh != nil {
		sh.close()
	}
}

func (sh *groupShard) close() {
	sh.mu.Lock()
	sh.closed = true
	sh.mu.Unlock()
	sh.coord.Close()
}

// ensureTopic returns the offsets topic, creating it on first use with
// offsets.topic.num.partitions partitions and replication factor
// min(3, live brokers).
func (m *groupManager) ensureTopic() (metadata.Topic, error) {
	if t, ok := m.s.cfg.Metadata.State().Topic(offsetsTopic); ok && m.upgraded.Load() {
		return t, nil
	}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if t, ok := m.s.cfg.Metadata.State().Topic(offsetsTopic); ok {
		m.upgradeTopic(t)
		return t, nil
	}
	m.upgraded.Store(true)
	n := m.s.cfg.OffsetsTopicNumPartitions
	// Spread over the live brokers, min(3, live brokers) replicas each
	// (Kafka's offsets.topic.replication.factor default).
	live := liveBrokers(m.s.cfg.Metadata.State())
	if len(live) == 0 {
		live = []metadata.Broker{{ID: m.s.cfg.NodeID}}
	}
	assignments := placeNew(live, n, min(3, len(live)))
	ctx, cancel := context.WithTimeout(m.s.ctx, 10*time.Second)
	defer cancel()
	t, err := m.s.cfg.Metadata.CreateTopic(ctx, metadata.TopicSpec{
		Name:        offsetsTopic,
		Assignments: assignments,
		Configs:     m.offsetsTopicConfigs(nil),
		Internal:    true,
	})
	if err != nil {
		if errors.Is(err, metadata.ErrTopicExists) {
			if t, ok := m.s.cfg.Metadata.State().Topic(offsetsTopic); ok {
				return t, nil
			}
		}
		return metadata.Topic{}, fmt.Errorf("creating %s: %w", offsetsTopic, err)
	}
	m.log.Info("created the offsets topic", "partitions", n)
	if err := m.s.partitions.reconcile(); err != nil {
		m.log.Error("opening offsets topic partitions failed", "err", err)
	}
	return t, nil
}

// offsetsTopicConfigs are the offsets topic's configs: compacted, with
// offsets.topic.segment.bytes segments, on top of configs already set.
func (m *groupManager) offsetsTopicConfigs(set map[string]string) map[string]string {
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
		out[topicconfig.SegmentBytes] = strconv.Itoa(int(m.s.cfg.OffsetsTopicSegmentBytes))
	}
	return out
}

// upgradeTopic switches an offsets topic created before compaction existed
// to cleanup.policy=compact, once per process. Called with createMu held.
func (m *groupManager) upgradeTopic(t metadata.Topic) {
	if m.upgraded.Load() {
		return
	}
	if t.Configs[topicconfig.CleanupPolicy] == "compact" {
		m.upgraded.Store(true)
		return
	}
	ctx, cancel := context.WithTimeout(m.s.ctx, 10*time.Second)
	defer cancel()
	if err := m.s.cfg.Metadata.SetTopicConfigs(ctx, offsetsTopic, m.offsetsTopicConfigs(t.Configs)); err != nil {
		m.log.Warn("switching the offsets topic to cleanup.policy=compact failed; retrying on next use", "err", err)
		return
	}
	m.upgraded.Store(true)
	m.log.Info("switched the offsets topic to cleanup.policy=compact")
}

// shardFor returns the loaded shard coordinating a group, or the error a
// client acts on: COORDINATOR_NOT_AVAILABLE (no offsets topic),
// NOT_COORDINATOR (not led here), COORDINATOR_LOAD_IN_PROGRESS.
func (m *groupManager) shardFor(groupID string) (*groupShard, *kerr.Error) {
	t, err := m.ensureTopic()
	if err != nil {
		m.log.Warn("offsets topic unavailable", "err", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	idx := group.Partition(groupID, int32(len(t.Partitions)))
	m.mu.RLock()
	sh := m.shards[idx]
	m.mu.RUnlock()
	if sh == nil {
		return nil, kerr.NotCoordinator
	}
	select {
	case <-sh.loaded:
	default:
		return nil, kerr.CoordinatorLoadInProgress
	}
	sh.mu.Lock()
	closed := sh.closed
	sh.mu.Unlock()
	if closed || !sh.part.leading.Load() {
		return nil, kerr.NotCoordinator
	}
	return sh, nil
}

// coordinatorOf returns the broker leading the offsets partition of a group
// (FindCoordinator), or COORDINATOR_NOT_AVAILABLE.
func (m *groupManager) coordinatorOf(groupID string) (int32, *kerr.Error) {
	t, err := m.ensureTopic()
	if err != nil {
		m.log.Warn("offsets topic unavailable", "err", err)
		return -1, kerr.CoordinatorNotAvailable
	}
	leader := t.Partitions[group.Partition(groupID, int32(len(t.Partitions)))].Leader
	if leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	return leader, nil
}

// allShards returns the shards, and whether every one of them is loaded.
func (m *groupManager) allShards() ([]*groupShard, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*groupShard, 0, len(m.shards))
	allLoaded := true
	for _, sh := range m.shards {
		select {
		case <-sh.loaded:
			out = append(out, sh)
		default:
			allLoaded = false
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out, allLoaded
}

// load replays the partition from its start: the latest commit per group
// and partition wins and tombstones delete; the latest group metadata record
// of each group is restored into the coordinator.
func (sh *groupShard) load() {
	defer close(sh.loaded)
	start := time.Now()
	log := sh.m.log.With("partition", sh.index)
	groups := map[string]*kmsg.GroupMetadataValue{}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	seg := sh.part.segments
	offset, end := seg.StartOffset(), seg.EndOffset()
	records := 0
	for offset < end {
		data, err := seg.Read(offset, 1<<20, end, true)
		if err != nil {
			log.Error("reading the offsets partition failed; its groups are incomplete", "offset", offset, "err", err)
			break
		}
		if len(data) == 0 {
			break
		}
		spans, err := recordbatch.Split(data)
		if err != nil || len(spans) == 0 {
			log.Error("corrupt batch in the offsets partition", "offset", offset, "err", err)
			break
		}
		for _, sp := range spans {
			batch := data[sp.Position : sp.Position+sp.Length]
			h, err := recordbatch.ParseHeader(batch)
			if err != nil {
				log.Error("corrupt batch header in the offsets partition", "offset", offset, "err", err)
				offset = end
				break
			}
			next := h.BaseOffset + int64(h.LastOffsetDelta) + 1
			if next > offset {
				offset = next
			}
			recs, err := recordbatch.Records(batch)
			if err != nil {
				log.Error("undecodable batch in the offsets partition; skipped", "offset", h.BaseOffset, "err", err)
				continue
			}
			for _, r := range recs {
				records++
				sh.applyRecordLocked(r.Key, r.Value, groups)
			}
		}
	}
	restored := 0
	for id, v := range groups {
		if err := sh.coord.Restore(groupRecordFromValue(id, v)); err != nil {
			log.Error("restoring group failed", "group", id, "err", err)
			continue
		}
		restored++
	}
	// Groups known only by their offsets come back Empty, as in Kafka.
	for id := range sh.offsets {
		if groups[id] == nil {
			if err := sh.coord.Restore(group.Record{GroupID: id}); err == nil {
				restored++
			}
		}
	}
	if records > 0 {
		log.Info("loaded group coordinator shard", "records", records, "groups", restored, "took", time.Since(start).Round(time.Millisecond))
	}
}

// applyRecordLocked applies one __consumer_offsets record while loading.
func (sh *groupShard) applyRecordLocked(key, value []byte, groups map[string]*kmsg.GroupMetadataValue) {
	if len(key) < 2 {
		return
	}
	switch version := int16(key[0])<<8 | int16(key[1]); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(key) != nil {
			return
		}
		tp := topicPartition{k.Topic, k.Partition}
		if value == nil {
			sh.deleteOffsetLocked(k.Group, tp)
			return
		}
		var v kmsg.OffsetCommitValue
		if v.ReadFrom(value) != nil {
			return
		}
		epoch := int32(-1)
		if v.Version >= 3 {
			epoch = v.LeaderEpoch
		}
		sh.setOffsetLocked(k.Group, tp, committedOffset{offset: v.Offset, leaderEpoch: epoch, metadata: v.Metadata, timestamp: v.CommitTimestamp})
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			delete(groups, k.Group)
			return
		}
		v := new(kmsg.GroupMetadataValue)
		if v.ReadFrom(value) != nil {
			return
		}
		groups[k.Group] = v
	}
}

func (sh *groupShard) setOffsetLocked(groupID string, tp topicPartition, c committedOffset) {
	g := sh.offsets[groupID]
	if g == nil {
		g = map[topicPartition]committedOffset{}
		sh.offsets[groupID] = g
	}
	g[tp] = c
}

func (sh *groupShard) deleteOffsetLocked(groupID string, tp topicPartition) {
	if g := sh.offsets[groupID]; g != nil {
		delete(g, tp)
		if len(g) == 0 {
			delete(sh.offsets, groupID)
		}
	}
}

func groupRecordFromValue(id string, v *kmsg.GroupMetadataValue) group.Record {
	rec := group.Record{GroupID: id, ProtocolType: v.ProtocolType, GenerationID: v.Generation}
	if v.Protocol != nil {
		rec.Protocol = *v.Protocol
	}
	if v.Leader != nil {
		rec.LeaderID = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		rec.StateTimestamp = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, m := range v.Members {
		rm := group.RecordMember{
			MemberID:       m.MemberID,
			ClientID:       m.ClientID,
			ClientHost:     m.ClientHost,
			SessionTimeout: time.Duration(m.SessionTimeoutMillis) * time.Millisecond,
			Subscription:   m.Subscription,
			Assignment:     m.Assignment,
		}
		if m.InstanceID != nil {
			rm.GroupInstanceID = *m.InstanceID
		}
		if m.RebalanceTimeoutMillis > 0 {
			rm.RebalanceTimeout = time.Duration(m.RebalanceTimeoutMillis) * time.Millisecond
		}
		rec.Members = append(rec.Members, rm)
	}
	return rec
}

func groupMetadataKey(id string) []byte {
	k := kmsg.GroupMetadataKey{Version: 2, Group: id}
	return k.AppendTo(nil)
}

func groupMetadataValue(rec group.Record) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = rec.ProtocolType
	v.Generation = rec.GenerationID
	if rec.Protocol != "" {
		p := rec.Protocol
		v.Protocol = &p
	}
	if rec.LeaderID != "" {
		l := rec.LeaderID
		v.Leader = &l
	}
	if !rec.StateTimestamp.IsZero() {
		v.CurrentStateTimestamp = rec.StateTimestamp.UnixMilli()
	} else {
		v.CurrentStateTimestamp = -1
	}
	for _, m := range rec.Members {
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID = m.MemberID
		if m.GroupInstanceID != "" {
			id := m.GroupInstanceID
			mv.InstanceID = &id
		}
		mv.ClientID = m.ClientID
		mv.ClientHost = m.ClientHost
		mv.RebalanceTimeoutMillis = int32(m.RebalanceTimeout / time.Millisecond)
		mv.SessionTimeoutMillis = int32(m.SessionTimeout / time.Millisecond)
		mv.Subscription = m.Subscription
		if mv.Subscription == nil {
			mv.Subscription = []byte{}
		}
		mv.Assignment = m.Assignment
		if mv.Assignment == nil {
			mv.Assignment = []byte{}
		}
		v.Members = append(v.Members, mv)
	}
	return v.AppendTo(nil)
}

func offsetCommitKey(groupID string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: 1, Group: groupID, Topic: tp.topic, Partition: tp.index}
	return k.AppendTo(nil)
}

func offsetCommitValue(c committedOffset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset = c.offset
	v.LeaderEpoch = c.leaderEpoch
	v.Metadata = c.metadata
	v.CommitTimestamp = c.timestamp
	return v.AppendTo(nil)
}

// appendLocked writes records to the shard's partition through the normal
// append path; on one node a batch is committed (acks=all) once appended.
// Called with sh.mu held.
func (sh *groupShard) appendLocked(records []recordbatch.Record) error {
	if sh.closed {
		return kerr.NotCoordinator
	}
	if len(records) == 0 {
		return nil
	}
	now := time.Now()
	for i := range records {
		records[i].Timestamp = now.UnixMilli()
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
	if err != nil {
		return err
	}
	base, _, err := sh.part.appendBatch(batch, 9, now)
	if err != nil {
		var pe *produceError
		if errors.As(err, &pe) && (pe.code == kerr.UnknownTopicOrPartition.Code || pe.code == kerr.NotLeaderForPartition.Code) {
			return kerr.NotCoordinator
		}
		sh.m.log.Error("writing to the offsets topic failed", "partition", sh.index, "err", err)
		return kerr.CoordinatorNotAvailable
	}
	// acks=all, as Kafka writes commits: answered once every in-sync
	// replica has them.
	switch code := sh.part.awaitCommitted(base+int64(len(records)), offsetCommitTimeout); code {
	case 0:
		return nil
	case kerr.NotLeaderForPartition.Code:
		return kerr.NotCoordinator
	default:
		sh.m.log.Warn("offsets topic write not replicated in time", "partition", sh.index, "err", kerr.ErrorForCode(code))
		return kerr.CoordinatorNotAvailable
	}
}

// offsetCommitTimeout is offsets.commit.timeout.ms (Kafka's default).
const offsetCommitTimeout = 5 * time.Second

// StoreGroup implements group.Store: the group's metadata record is
// appended to the shard's partition before the coordinator answers.
func (sh *groupShard) StoreGroup(rec group.Record, done func(error)) {
	sh.mu.Lock()
	err := sh.appendLocked([]recordbatch.Record{{Key: groupMetadataKey(rec.GroupID), Value: groupMetadataValue(rec)}})
	sh.mu.Unlock()
	done(err)
}

// commitOffsets writes commits and applies them once written.
func (sh *groupShard) commitOffsets(groupID string, commits map[topicPartition]committedOffset) error {
	tps := make([]topicPartition, 0, len(commits))
	for tp := range commits {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	records := make([]recordbatch.Record, 0, len(tps))
	for _, tp := range tps {
		records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp), Value: offsetCommitValue(commits[tp])})
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.appendLocked(records); err != nil {
		return err
	}
	for _, tp := range tps {
		sh.setOffsetLocked(groupID, tp, commits[tp])
	}
	return nil
}

// fetchOffset returns a group's committed offset of a partition.
func (sh *groupShard) fetchOffset(groupID string, tp topicPartition) (committedOffset, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, ok := sh.offsets[groupID][tp]
	return c, ok
}

// groupOffsets returns every committed offset of a group.
func (sh *groupShard) groupOffsets(groupID string) map[topicPartition]committedOffset {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make(map[topicPartition]committedOffset, len(sh.offsets[groupID]))
	for tp, c := range sh.offsets[groupID] {
		out[tp] = c
	}
	return out
}

// deleteOffsets writes tombstones for the given commits of a group (those
// that exist) and forgets them.
func (sh *groupShard) deleteOffsets(groupID string, tps []topicPartition) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var records []recordbatch.Record
	var gone []topicPartition
	for _, tp := range tps {
		if _, ok := sh.offsets[groupID][tp]; ok {
			records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp)})
			gone = append(gone, tp)
		}
	}
	if err := sh.appendLocked(records); err != nil {
		return err
	}
	for _, tp := range gone {
		sh.deleteOffsetLocked(groupID, tp)
	}
	return nil
}

// deleteGroupData writes the tombstones of a deleted group: its offsets and
// its metadata record.
func (sh *groupShard) deleteGroupData(groupID string) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var records []recordbatch.Record
	tps := make([]topicPartition, 0, len(sh.offsets[groupID]))
	for tp := range sh.offsets[groupID] {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	for _, tp := range tps {
		records = append(records, recordbatch.Record{Key: offsetCommitKey(groupID, tp)})
	}
	records = append(records, recordbatch.Record{Key: groupMetadataKey(groupID)})
	if err := sh.appendLocked(records); err != nil {
		return err
	}
	delete(sh.offsets, groupID)
	return nil
}

// runOffsetExpiry removes expired committed offsets every
// offsets.retention.check.interval.ms until ctx ends.
func (m *groupManager) runOffsetExpiry(ctx context.Context) {
	ticker := time.NewTicker(m.s.cfg.OffsetsRetentionCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			m.expireOffsets(now, nil)
		}
	}
}

// expireOffsets runs offset expiry on every loaded shard; with topics, it
// only removes the offsets of those (deleted) topics, right away.
func (m *groupManager) expireOffsets(now time.Time, deletedTopics map[string]bool) {
	state := m.s.cfg.Metadata.State()
	exists := func(tp topicPartition) bool {
		if deletedTopics != nil {
			return !deletedTopics[tp.topic]
		}
		t, ok := state.Topic(tp.topic)
		return ok && t.HasPartition(tp.index)
	}
	retention := m.s.cfg.OffsetsRetention
	if deletedTopics != nil {
		retention = -1 // only what belongs to the deleted topics
	}
	shards, _ := m.allShards()
	for _, sh := range shards {
		offsets, groups, err := sh.expireOffsets(now, retention, exists)
		if err != nil {
			m.log.Warn("expiring committed offsets failed; retried next pass", "partition", sh.index, "err", err)
		}
		if offsets > 0 || groups > 0 {
			m.log.Info("removed expired committed offsets", "partition", sh.index, "offsets", offsets, "groups_deleted", groups)
		}
	}
}

// topicsDeleted removes every group's committed offsets of deleted topics,
// as Kafka does, so a topic re-created with the same name starts without
// them.
func (m *groupManager) topicsDeleted(names ...string) {
	deleted := map[string]bool{}
	for _, n := range names {
		deleted[n] = true
	}
	m.expireOffsets(time.Now(), deleted)
}

// expireOffsets removes, as Kafka's offset expiration does (KIP-211):
//   - every offset of a group that has been Empty for retention (counted
//     from when it became Empty);
//   - offsets not committed for retention, of a group that never had
//     members (standalone consumers committing with generation -1);
//   - offsets of partitions that no longer exist.
//
// Offsets of groups with members are kept (Kafka also expires, for Stable
// consumer groups, offsets of topics the group no longer subscribes to;
// not done here). An Empty group left without offsets is deleted. A
// negative retention expires nothing by age.
func (sh *groupShard) expireOffsets(now time.Time, retention time.Duration, exists func(topicPartition) bool) (offsets, groups int, err error) {
	sh.mu.Lock()
	ids := make([]string, 0, len(sh.offsets))
	for id := range sh.offsets {
		ids = append(ids, id)
	}
	sh.mu.Unlock()
	sort.Strings(ids)
	// The coordinator is asked without sh.mu held (it may call StoreGroup).
	descriptions := make(map[string]group.Description, len(ids))
	for _, id := range ids {
		if d, err := sh.coord.Describe(id); err == nil {
			descriptions[id] = d
		}
	}
	expired := func(id string, c committedOffset) bool {
		if retention < 0 {
			return false
		}
		d, ok := descriptions[id]
		switch {
		case !ok || d.State != group.StateEmpty:
			return false
		case d.ProtocolType != "" && !d.StateTimestamp.IsZero():
			return now.Sub(d.StateTimestamp) >= retention
		default:
			return now.Sub(time.UnixMilli(c.timestamp)) >= retention
		}
	}
	sh.mu.Lock()
	var records []recordbatch.Record
	type commitKey struct {
		group string
		tp    topicPartition
	}
	var gone []commitKey
	for _, id := range ids {
		tps := make([]topicPartition, 0, len(sh.offsets[id]))
		for tp := range sh.offsets[id] {
			tps = append(tps, tp)
		}
		sortTopicPartitions(tps)
		for _, tp := range tps {
			if exists(tp) && !expired(id, sh.offsets[id][tp]) {
				continue
			}
			records = append(records, recordbatch.Record{Key: offsetCommitKey(id, tp)})
			gone = append(gone, commitKey{id, tp})
		}
	}
	if err := sh.appendLocked(records); err != nil {
		sh.mu.Unlock()
		return 0, 0, err
	}
	var emptied []string
	for _, k := range gone {
		sh.deleteOffsetLocked(k.group, k.tp)
		if _, left := sh.offsets[k.group]; !left && (len(emptied) == 0 || emptied[len(emptied)-1] != k.group) {
			emptied = append(emptied, k.group)
		}
	}
	sh.mu.Unlock()
	for _, id := range emptied {
		if d, ok := descriptions[id]; !ok || d.State != group.StateEmpty {
			continue
		}
		if sh.coord.Delete(id) != nil {
			continue // members joined meanwhile, or already gone
		}
		if err := sh.deleteGroupData(id); err != nil {
			return len(gone), groups, err
		}
		groups++
	}
	return len(gone), groups, nil
}

// errCode converts an error from the group package (or this file) into a
// Kafka error code.
func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// sortTopicPartitions sorts by topic, then partition.
func sortTopicPartitions(tps []topicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].topic != tps[j].topic {
			return tps[i].topic < tps[j].topic
		}
		return tps[i].index < tps[j].index
	})
}
