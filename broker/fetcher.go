package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// replicaFetchers run one fetcher per leader broker this broker follows:
// it fetches every partition it follows from that leader in one Fetch
// request (replica id = this broker) over the leader's inter-broker
// listener, as Kafka's replica fetcher threads do.
type replicaFetchers struct {
	s   *Server
	log *slog.Logger

	mu       sync.Mutex // guards byLeader
	byLeader map[leaderKey]*replicaFetcher
	wg       sync.WaitGroup
}

// leaderKey identifies a fetcher: a leader at one address (a re-registered
// broker may move).
type leaderKey struct {
	id      int32
	address string
}

// followed is one partition a fetcher follows at a leader epoch.
type followed struct {
	part  *partition.Partition
	topic metadata.Topic
	epoch int32
	// truncated is set once the log agrees with this leader epoch
	// (OffsetForLeaderEpoch done); pausedUntil holds off a partition the
	// leader refused (it may not know the new epoch yet).
	truncated   bool
	pausedUntil time.Time
}

type replicaFetcher struct {
	f      *replicaFetchers
	leader leaderKey
	client *kgo.Client
	cancel context.CancelFunc

	mu         sync.Mutex // guards partitions
	partitions map[*partition.Partition]*followed
}

func newReplicaFetchers(s *Server) *replicaFetchers {
	return &replicaFetchers{s: s, log: s.log.With("subsystem", "replication"), byLeader: map[leaderKey]*replicaFetcher{}}
}

// update assigns every local partition that follows a live leader to that
// leader's fetcher, and stops fetchers that follow nothing.
func (f *replicaFetchers) update(state *metadata.State, parts []*partition.Partition) {
	self := f.s.cfg.NodeID
	want := map[leaderKey]map[*partition.Partition]*followed{}
	for _, p := range parts {
		t, ok := state.TopicByID(p.TopicID())
		if !ok || !t.HasPartition(p.Index()) {
			continue
		}
		a := t.Partitions[p.Index()]
		if a.Leader < 0 || a.Leader == self {
			continue
		}
		b, ok := state.Broker(a.Leader)
		if !ok || b.Fenced {
			continue
		}
		endpoint, ok := b.Endpoint(f.s.cfg.InterBrokerListener)
		if !ok {
			f.log.Warn("leader has no inter-broker listener; not replicating from it", "leader", a.Leader, "listener", f.s.cfg.InterBrokerListener)
			continue
		}
		key := leaderKey{a.Leader, net.JoinHostPort(endpoint.Host, strconv.Itoa(int(endpoint.Port)))}
		if want[key] == nil {
			want[key] = map[*partition.Partition]*followed{}
		}
		want[key][p] = &followed{part: p, topic: t, epoch: a.LeaderEpoch}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, rf := range f.byLeader {
		if want[key] == nil {
			rf.cancel()
			delete(f.byLeader, key)
		}
	}
	for key, partitions := range want {
		rf := f.byLeader[key]
		if rf == nil {
			var err error
			if rf, err = f.start(key); err != nil {
				f.log.Error("cannot start a replica fetcher", "leader", key.id, "address", key.address, "err", err)
				continue
			}
			f.byLeader[key] = rf
		}
		rf.assign(partitions)
	}
}

func (f *replicaFetchers) start(key leaderKey) (*replicaFetcher, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(key.address), kgo.ClientID(fmt.Sprintf("strata-replica-%d", f.s.cfg.NodeID)),
		kgo.RequestTimeoutOverhead(5*time.Second))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(f.s.ctx)
	rf := &replicaFetcher{f: f, leader: key, client: client, cancel: cancel, partitions: map[*partition.Partition]*followed{}}
	f.wg.Go(func() {
		defer client.Close()
		rf.run(ctx)
	})
	return rf, nil
}

// assign replaces the followed partitions; a partition keeps its progress
// when its leader epoch did not change.
func (rf *replicaFetcher) assign(partitions map[*partition.Partition]*followed) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for p, fo := range partitions {
		if old := rf.partitions[p]; old != nil && old.epoch == fo.epoch {
			fo.truncated, fo.pausedUntil = old.truncated, old.pausedUntil
		}
	}
	rf.partitions = partitions
}

// snapshot copies the followed partitions that are not paused; changes go
// back through setTruncated and pause, which match on the leader epoch.
func (rf *replicaFetcher) snapshot() []*followed {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	out := make([]*followed, 0, len(rf.partitions))
	now := time.Now()
	for _, fo := range rf.partitions {
		if now.After(fo.pausedUntil) {
			c := *fo
			out = append(out, &c)
		}
	}
	return out
}

func (rf *replicaFetcher) run(ctx context.Context) {
	log := rf.f.log.With("leader", rf.leader.id)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		parts := rf.snapshot()
		err := rf.fetchOnce(ctx, parts)
		if err != nil && ctx.Err() == nil {
			log.Debug("replica fetch failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(parts) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// fetchOnce truncates the partitions new to this leader epoch, then sends
// one Fetch for all of them and applies the answer.
func (rf *replicaFetcher) fetchOnce(ctx context.Context, parts []*followed) error {
	if len(parts) == 0 {
		return nil
	}
	seed := rf.client.SeedBrokers()
	if len(seed) == 0 {
		return fmt.Errorf("no connection to leader %d", rf.leader.id)
	}
	broker := seed[0]
	var untruncated []*followed
	for _, fo := range parts {
		if !fo.truncated {
			untruncated = append(untruncated, fo)
		}
	}
	if len(untruncated) > 0 {
		if err := rf.truncate(ctx, broker, untruncated); err != nil {
			return err
		}
	}
	self := rf.f.s.cfg.NodeID
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = self
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	req.SessionEpoch = -1
	byTopic := map[[16]byte]int{}
	index := map[[16]byte]map[int32]*followed{}
	for _, fo := range parts {
		if !fo.truncated {
			continue
		}
		i, ok := byTopic[fo.topic.ID]
		if !ok {
			i = len(req.Topics)
			byTopic[fo.topic.ID] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = fo.topic.Name, fo.topic.ID
			req.Topics = append(req.Topics, t)
			index[fo.topic.ID] = map[int32]*followed{}
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = fo.part.Index()
		p.FetchOffset = fo.part.LogEndOffset()
		p.CurrentLeaderEpoch = fo.epoch
		p.LogStartOffset = fo.part.LogStartOffset()
		p.PartitionMaxBytes = 4 << 20
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		index[fo.topic.ID][fo.part.Index()] = fo
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := broker.Request(ctx, req)
	if err != nil {
		return err
	}
	fr := resp.(*kmsg.FetchResponse)
	if fr.ErrorCode != 0 {
		return kerr.ErrorForCode(fr.ErrorCode)
	}
	for ti, rt := range fr.Topics {
		id := rt.TopicID
		if fr.Version < 13 && ti < len(req.Topics) {
			id = req.Topics[ti].TopicID
		}
		for _, rp := range rt.Partitions {
			fo := index[id][rp.Partition]
			if fo == nil {
				continue
			}
			switch rp.ErrorCode {
			case 0:
				if err := fo.part.AppendReplicated(rp.RecordBatches, rp.HighWatermark); err != nil {
					fo.part.Logger().Error("appending replicated data failed; fetching again from the leader", "err", err)
					rf.setTruncated(fo, false)
				}
			case kerr.OffsetOutOfRange.Code:
				// Behind the leader's log start (retention): start over there.
				if fo.part.LogEndOffset() < rp.LogStartOffset {
					fo.part.Logger().Warn("follower is behind the leader's log start; restarting the log there", "leader_log_start", rp.LogStartOffset)
					if err := fo.part.RestartAt(rp.LogStartOffset, nil, nil); err != nil {
						fo.part.Logger().Error("restarting the log failed", "err", err)
					}
				} else {
					rf.setTruncated(fo, false) // ahead of the leader: truncate again
				}
			case kerr.OffsetMovedToTieredStorage.Code:
				// Behind the leader's local log, in data the object store
				// holds: copy only the leader's local log.
				if err := rf.restartFromTier(ctx, broker, fo); err != nil {
					fo.part.Logger().Warn("restarting from the leader's local log start failed; retrying", "err", err)
					rf.pause(fo)
				}
			default:
				// NOT_LEADER, FENCED/UNKNOWN_LEADER_EPOCH…: wait for the
				// metadata to say who leads now.
				fo.part.Logger().Debug("leader refused the replica fetch; waiting for new metadata", "err", kerr.ErrorForCode(rp.ErrorCode))
				rf.pause(fo)
			}
		}
	}
	return nil
}

// restartFromTier restarts a follower's log at the leader's earliest local
// offset (ListOffsets -4) when what it lacks below is in the object store:
// its leader-epoch cache comes from the manifest, its producer state from
// the .producers object of the remote segment holding the offset before.
func (rf *replicaFetcher) restartFromTier(ctx context.Context, broker *kgo.Broker, fo *followed) error {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 8
	req.ReplicaID = rf.f.s.cfg.NodeID
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = fo.topic.Name
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition = fo.part.Index()
	p.CurrentLeaderEpoch = fo.epoch
	p.Timestamp = listEarliestLocal
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, broker)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("ListOffsets answered %d topics", len(resp.Topics))
	}
	rp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
		return fmt.Errorf("ListOffsets earliest local: %w", err)
	}
	start := rp.Offset
	remote := rf.f.s.cfg.RemoteReader
	if remote == nil {
		return fmt.Errorf("the leader tiers %s-%d but this broker has no object store", fo.topic.Name, fo.part.Index())
	}
	state := rf.f.s.cfg.Metadata.State()
	epochs := remoteEpochs(state, fo.part, start)
	var producers []byte
	if prev, ok := state.SegmentContaining(fo.topic.ID, fo.part.Index(), start-1); ok {
		if producers, err = remote.ReadProducerSnapshot(ctx, fo.part.Name(), prev); err != nil {
			return fmt.Errorf("producer state from the object store: %w", err)
		}
	}
	fo.part.Logger().Info("follower starts from the leader's local log; older offsets are in the object store",
		"leader_local_log_start", start, "log_end_offset", fo.part.LogEndOffset(), "epochs_from_manifest", len(epochs))
	return fo.part.RestartAt(start, epochs, producers)
}

// truncate asks the leader where each partition's latest local epoch ends
// and cuts the local log there.
func (rf *replicaFetcher) truncate(ctx context.Context, broker *kgo.Broker, parts []*followed) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = rf.f.s.cfg.NodeID
	byName := map[string]int{}
	for _, fo := range parts {
		i, ok := byName[fo.topic.Name]
		if !ok {
			i = len(req.Topics)
			byName[fo.topic.Name] = i
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = fo.topic.Name
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.Partition = fo.part.Index()
		p.CurrentLeaderEpoch = fo.epoch
		p.LeaderEpoch = fo.part.LatestEpoch()
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	resp, err := broker.Request(ctx, req)
	if err != nil {
		return err
	}
	find := func(topic string, partition int32) *followed {
		for _, fo := range parts {
			if fo.topic.Name == topic && fo.part.Index() == partition {
				return fo
			}
		}
		return nil
	}
	for _, rt := range resp.(*kmsg.OffsetForLeaderEpochResponse).Topics {
		for _, rp := range rt.Partitions {
			fo := find(rt.Topic, rp.Partition)
			if fo == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				fo.part.Logger().Debug("leader refused OffsetForLeaderEpoch; waiting for new metadata", "err", kerr.ErrorForCode(rp.ErrorCode))
				rf.pause(fo)
				continue
			}
			target := fo.part.LogEndOffset()
			if fo.part.LatestEpoch() >= 0 {
				if rp.LeaderEpoch < 0 {
					target = fo.part.HighWatermark() // the leader knows none of our epochs
				} else {
					_, localEnd := fo.part.EpochEndOffset(rp.LeaderEpoch)
					target = min(target, rp.EndOffset, max(localEnd, 0))
				}
			}
			if err := fo.part.TruncateTo(target); err != nil {
				return fmt.Errorf("truncate %s-%d to %d: %w", fo.topic.Name, fo.part.Index(), target, err)
			}
			rf.setTruncated(fo, true)
		}
	}
	return nil
}

func (rf *replicaFetcher) setTruncated(fo *followed, truncated bool) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	fo.truncated = truncated
	if cur := rf.partitions[fo.part]; cur != nil && cur.epoch == fo.epoch {
		cur.truncated = truncated
	}
}

func (rf *replicaFetcher) pause(fo *followed) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if cur := rf.partitions[fo.part]; cur != nil && cur.epoch == fo.epoch {
		cur.pausedUntil = time.Now().Add(500 * time.Millisecond)
	}
}

// close stops every fetcher and waits for them.
func (f *replicaFetchers) close() {
	f.mu.Lock()
	for key, rf := range f.byLeader {
		rf.cancel()
		delete(f.byLeader, key)
	}
	f.mu.Unlock()
	f.wg.Wait()
}
