package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/metadata"
)

// Fetchers run one fetcher per leader broker this broker follows: it
// fetches every partition it follows from that leader in one Fetch request
// (replica id = this broker) over the leader's inter-broker listener, as
// Kafka's replica fetcher threads do. Update assigns the partitions; Close
// stops every fetcher and waits for them.
type Fetchers struct {
	cfg FetchersConfig
	log *slog.Logger
	ctx context.Context // ends with Close
	end context.CancelFunc

	mu       sync.Mutex // guards byLeader
	byLeader map[leaderKey]*fetcher
	wg       sync.WaitGroup
}

// FetchersConfig configures Fetchers.
type FetchersConfig struct {
	// NodeID is this broker's id: the replica id of its fetches.
	NodeID int32
	// BrokerEpoch returns this broker's current broker epoch, sent with
	// every fetch (Fetch v15 ReplicaState, KIP-903) so that the leader
	// counts a follower's progress only for its current registration.
	// Nil sends -1 (unknown).
	BrokerEpoch func() int64
	// InterBrokerListener names the leaders' listener to fetch from.
	InterBrokerListener string
	// ClientOpts are added to the fetchers' kgo clients: how to connect to
	// that listener (its TLS dialer).
	ClientOpts []kgo.Opt
	// Store is the metadata state (who leads, the tiered-segment
	// manifest).
	Store interface{ State() *metadata.State }
	// Remote reads producer snapshots of tiered segments, for a follower
	// that restarts its log after the leader's remote data; nil without
	// an object store.
	Remote ProducerSnapshotReader
	Logger *slog.Logger
	// LogLimiter bounds the error lines a failing disk causes on every
	// retry (a full disk fails every partition's appends); default one of
	// the Fetchers' own.
	LogLimiter *ratelog.Limiter
	// Now is the clock of retry backoffs; default time.Now (tests inject
	// their own).
	Now func() time.Time
	// Throttle, when set, is follower.replication.throttled.rate: it
	// bounds the catch-up traffic of the partitions this broker is being
	// added to by a reassignment (throttle.go).
	Throttle *Throttle
}

// ProducerSnapshotReader reads the producer-state snapshot uploaded with a
// tiered segment (tiering.Tier implements it).
type ProducerSnapshotReader interface {
	ReadProducerSnapshot(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]byte, error)
}

// NewFetchers makes the fetchers; none runs until Update assigns
// partitions.
func NewFetchers(cfg FetchersConfig) *Fetchers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogLimiter == nil {
		cfg.LogLimiter = ratelog.New(ratelog.Config{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, end := context.WithCancel(context.Background())
	return &Fetchers{cfg: cfg, log: cfg.Logger, ctx: ctx, end: end, byLeader: map[leaderKey]*fetcher{}}
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
	// ready says whether the partition may fetch in this leader epoch,
	// and why; pausedUntil holds off a partition the leader refused (it
	// may not know the new epoch yet) or whose last append failed;
	// retryDelay is that append backoff (0: the last append worked).
	ready       readiness
	pausedUntil time.Time
	retryDelay  time.Duration
	// throttled: the follower throttle counts this partition's traffic
	// (followerThrottled).
	throttled bool
}

// readiness is whether a followed partition may fetch in its leader epoch.
type readiness int8

const (
	// notReady: new to the leader epoch, or its last append failed.
	notReady readiness = iota
	// readyLeaderChecks: fetching at once, relying on the leader to check
	// every fetch's last fetched epoch (Fetch v12+, DivergingEpoch). A
	// leader that answers an older Fetch did not check: the data is
	// discarded and the partition asks OffsetForLeaderEpoch first.
	readyLeaderChecks
	// readyTruncated: the log was cut to where it agrees with the leader
	// first (its high watermark for a log without epochs; the answer to
	// OffsetForLeaderEpoch from an older leader).
	readyTruncated
)

// Fetch retries: a fetch round that failed (the leader unreachable) and a
// partition whose fetched data could not be appended (a full disk) wait
// retryBackoffMin, doubled after each further failure up to
// retryBackoffMax (Kafka's replica.fetch.backoff.ms).
const (
	retryBackoffMin = 50 * time.Millisecond
	retryBackoffMax = time.Second
)

// nextBackoff is the wait after one more failure than the one that waited
// d (0: none yet).
func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, retryBackoffMin), retryBackoffMax)
}

// fetcher follows the partitions of one leader.
type fetcher struct {
	f      *Fetchers
	leader leaderKey
	client *kgo.Client
	cancel context.CancelFunc

	mu         sync.Mutex // guards partitions
	partitions map[*partition.Partition]*followed
	// olderLeader is set once the leader answered a Fetch older than v12,
	// which cannot check the follower's last fetched epoch: partitions
	// then ask OffsetForLeaderEpoch before fetching in a new leader epoch.
	olderLeader atomic.Bool
}

// Update assigns every local partition that follows a live leader to that
// leader's fetcher, and stops fetchers that follow nothing.
func (f *Fetchers) Update(state *metadata.State, parts []*partition.Partition) {
	self := f.cfg.NodeID
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
		endpoint, ok := b.Endpoint(f.cfg.InterBrokerListener)
		if !ok {
			f.log.Warn("leader has no inter-broker listener; not replicating from it", "leader", a.Leader, "listener", f.cfg.InterBrokerListener)
			continue
		}
		key := leaderKey{a.Leader, net.JoinHostPort(endpoint.Host, strconv.Itoa(int(endpoint.Port)))}
		if want[key] == nil {
			want[key] = map[*partition.Partition]*followed{}
		}
		want[key][p] = &followed{part: p, topic: t, epoch: a.LeaderEpoch, throttled: followerThrottled(t, p.Index(), self)}
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

// followerThrottled reports whether this broker (self) counts what it
// fetches of topic's partition against follower.replication.throttled.rate:
// it is outside the ISR and being added by a reassignment, or the topic's
// follower.replication.throttled.replicas names partition:self (Kafka's
// follower-side throttle, set by kafka-reassign-partitions --throttle).
// An in-sync replica is never throttled (Kafka's shouldFollowerThrottle),
// an adding one either: it holds the leader's high watermark from when it
// joins until the reassignment finishes.
func followerThrottled(t metadata.Topic, partition, self int32) bool {
	a := t.Partitions[partition]
	if slices.Contains(a.ISR, self) {
		return false
	}
	return slices.Contains(a.AddingReplicas, self) ||
		topicconfig.ThrottledReplica(t.Configs[topicconfig.FollowerReplicationThrottledReplicas], partition, self)
}

func (f *Fetchers) start(key leaderKey) (*fetcher, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(key.address), kgo.ClientID(fmt.Sprintf("strata-replica-%d", f.cfg.NodeID)),
		kgo.RequestTimeoutOverhead(5 * time.Second)}, f.cfg.ClientOpts...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	rf := &fetcher{f: f, leader: key, client: client, cancel: cancel, partitions: map[*partition.Partition]*followed{}}
	f.wg.Go(func() {
		defer client.Close()
		rf.run(ctx)
	})
	return rf, nil
}

// assign replaces the followed partitions; a partition keeps its progress
// when its leader epoch did not change.
func (rf *fetcher) assign(partitions map[*partition.Partition]*followed) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for p, fo := range partitions {
		if old := rf.partitions[p]; old != nil && old.epoch == fo.epoch {
			fo.ready, fo.pausedUntil, fo.retryDelay = old.ready, old.pausedUntil, old.retryDelay
		}
	}
	rf.partitions = partitions
}

// snapshot copies the followed partitions that are not paused; changes go
// back through setReady, pause and appended, which match on the leader
// epoch. A partition whose log failed (an fsync failed) is not fetched:
// it takes no data until the broker restarts and recovers it, and the
// leader's lag check drops it from the ISR.
func (rf *fetcher) snapshot() []*followed {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	out := make([]*followed, 0, len(rf.partitions))
	now := rf.f.cfg.Now()
	for _, fo := range rf.partitions {
		if now.After(fo.pausedUntil) && fo.part.LogFailed() == nil {
			c := *fo
			out = append(out, &c)
		}
	}
	return out
}

func (rf *fetcher) run(ctx context.Context) {
	log := rf.f.log.With("leader", rf.leader.id)
	var backoff time.Duration
	for ctx.Err() == nil {
		parts := rf.snapshot()
		err := rf.fetchOnce(ctx, parts)
		var throttled *throttledError
		if errors.As(err, &throttled) {
			// Only throttled partitions to fetch: wait until the rate
			// allows them (re-checked at least every second, as the
			// rate may change).
			select {
			case <-ctx.Done():
			case <-time.After(min(max(throttled.delay, time.Millisecond), time.Second)):
			}
			continue
		}
		if err != nil && ctx.Err() == nil {
			backoff = nextBackoff(backoff)
			log.Debug("replica fetch failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if len(parts) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// throttledError is fetchOnce's answer when every partition it could fetch
// is held by the follower throttle: nothing was sent, and delay is how long
// until the rate allows them.
type throttledError struct{ delay time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("over follower.replication.throttled.rate for %v", e.delay)
}

// fetchOnce readies the partitions new to this leader epoch, then sends
// one Fetch for all of them and applies the answer. Each partition states
// the epoch of its last batch with its fetch offset (LastFetchedEpoch,
// KIP-595): the leader checks it against its own log and answers a log
// that diverges with DivergingEpoch and no records, the follower truncates
// to where the logs agree and fetches again — no OffsetForLeaderEpoch
// round trip on a new leader epoch.
func (rf *fetcher) fetchOnce(ctx context.Context, parts []*followed) error {
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
		switch {
		case fo.ready != notReady:
		case fo.part.LatestEpoch() < 0:
			// No epochs (usually an empty log): nothing to ask the
			// leader about, so no OffsetForLeaderEpoch round trip; what
			// the log holds past its high watermark is not known to be
			// the leader's, so it goes (as in Kafka).
			if err := fo.part.TruncateFollowing(truncationTarget(fo.part, -1, -1), fo.epoch); err != nil {
				if errors.Is(err, partition.ErrStaleLeaderEpoch) {
					continue // the next round fetches under the new epoch
				}
				return fmt.Errorf("truncate %s-%d to its high watermark: %w", fo.topic.Name, fo.part.Index(), err)
			}
			rf.setReady(fo, readyTruncated)
		case !rf.olderLeader.Load():
			// The leader checks every fetch against its log
			// (LastFetchedEpoch) and answers DivergingEpoch where they
			// part: fetch at once.
			rf.setReady(fo, readyLeaderChecks)
		default:
			untruncated = append(untruncated, fo)
		}
	}
	if len(untruncated) > 0 {
		if err := rf.truncate(ctx, broker, untruncated); err != nil {
			return err
		}
	}
	// Durable mode: the fetch offset tells the leader what this replica
	// has, which must be on disk; fsync what the last fetch appended (all
	// partitions at once, from the broker's pool) before asking again.
	synced := make([]*partition.Partition, 0, len(parts))
	for _, fo := range parts {
		if fo.ready != notReady {
			synced = append(synced, fo.part)
		}
	}
	partition.WaitSynced(synced, ctx.Done())
	self := rf.f.cfg.NodeID
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = self // v4-v14
	req.ReplicaState.ID = self
	if rf.f.cfg.BrokerEpoch != nil {
		req.ReplicaState.Epoch = rf.f.cfg.BrokerEpoch()
	}
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	req.SessionEpoch = -1
	byTopic := map[[16]byte]int{}
	index := map[[16]byte]map[int32]*followed{}
	throttle := rf.f.cfg.Throttle
	throttledOut := false
	for _, fo := range parts {
		if fo.ready == notReady {
			continue
		}
		partitionMaxBytes := int64(4 << 20)
		if fo.throttled && throttle != nil {
			allowance := throttle.Allowance()
			if allowance <= 0 {
				throttledOut = true // over follower.replication.throttled.rate
				continue
			}
			partitionMaxBytes = min(partitionMaxBytes, allowance)
		}
		position := fo.part.FetchPosition()
		if position.Offset < fo.part.LogEndOffset() {
			// Not all fsynced (WaitSynced stopped, or an fsync failed):
			// the leader would check this log only below the fetch
			// offset, and the unsynced tail above it would be skipped as
			// already here. Fetched once the tail is fsynced.
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
		p.FetchOffset = position.Offset
		p.LastFetchedEpoch = position.LastFetchedEpoch
		p.CurrentLeaderEpoch = fo.epoch
		p.LogStartOffset = fo.part.LogStartOffset()
		p.PartitionMaxBytes = int32(partitionMaxBytes)
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		index[fo.topic.ID][fo.part.Index()] = fo
	}
	if len(req.Topics) == 0 {
		if throttledOut {
			return &throttledError{delay: throttle.Delay()}
		}
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
			switch {
			case rp.ErrorCode == 0 && fr.Version < 12 && fo.ready == readyLeaderChecks:
				// A leader older than Fetch v12 did not check this log
				// against its own: the data may continue a history it
				// does not have. Ask OffsetForLeaderEpoch first from now
				// on.
				rf.olderLeader.Store(true)
				rf.setReady(fo, notReady)
			case rp.ErrorCode == 0 && rp.DivergingEpoch.Epoch >= 0:
				rf.diverged(fo, rp.DivergingEpoch)
			case rp.ErrorCode == 0:
				if fo.throttled && throttle != nil {
					throttle.Record(len(rp.RecordBatches))
				}
				err := fo.part.AppendReplicated(rp.RecordBatches, rp.HighWatermark, fo.epoch)
				switch {
				case errors.Is(err, partition.ErrStaleLeaderEpoch):
					// The leader changed while this fetch was in flight:
					// the next fetch goes out under the new epoch, after
					// truncating to agree with its leader.
					fo.part.Logger().Debug("discarded a replica fetch response from a previous leader epoch", "err", err)
				default:
					if err == nil {
						if err := fo.part.FollowLogStart(rp.LogStartOffset); err != nil {
							fo.part.Logger().Warn("following the leader's log start failed", "leader_log_start", rp.LogStartOffset, "err", err)
						}
					}
					rf.appended(fo, err)
				}
			case rp.ErrorCode == kerr.OffsetOutOfRange.Code:
				switch {
				case fo.part.LogEndOffset() < rp.LogStartOffset:
					// Behind the leader's log start (retention): start over there.
					fo.part.Logger().Warn("follower is behind the leader's log start; restarting the log there", "leader_log_start", rp.LogStartOffset)
					if err := fo.part.RestartAt(rp.LogStartOffset, nil, nil); err != nil {
						fo.part.Logger().Error("restarting the log failed", "err", err)
					}
				case fo.ready == readyLeaderChecks:
					// The leader cannot end this log's last epoch (it has
					// no epochs, or this one is newer than its latest;
					// or, without epochs, this log ends past the
					// leader's): keep only what is known committed, as
					// OffsetForLeaderEpoch's "unknown epoch" answer does.
					rf.diverged(fo, kmsg.FetchResponseTopicPartitionDivergingEpoch{Epoch: -1, EndOffset: -1})
				default:
					rf.setReady(fo, notReady) // ahead of the leader: truncate again
				}
			case rp.ErrorCode == kerr.OffsetMovedToTieredStorage.Code:
				// Behind the leader's local log, in data the object store
				// holds: copy only the leader's local log.
				if err := rf.restartFromTier(ctx, broker, fo); err != nil {
					fo.part.Logger().Warn("restarting from the leader's local log start failed; retrying", "err", err)
					rf.pause(fo)
				}
			case rp.ErrorCode == kerr.TopicAuthorizationFailed.Code:
				fo.part.Logger().Warn("the leader refuses this broker's replica fetches: it does not take this connection for this broker (check the inter-broker SASL user and password, or that the node certificate names this node)",
					"leader", rf.leader.id)
				rf.pause(fo)
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

// diverged truncates a partition the leader answered DivergingEpoch (the
// largest epoch at or below the follower's last fetched epoch the leader
// has, and where it ends there; -1: none, keep the high watermark) to where
// the two logs agree, as Kafka's follower does: the end of that epoch on
// both logs, or — when this log does not have that epoch — the end of its
// own largest epoch below it; the next fetch states the new last epoch and
// is checked again, until the logs agree. An answer to a fetch of an
// earlier leader epoch is discarded (TruncateFollowing checks).
func (rf *fetcher) diverged(fo *followed, leader kmsg.FetchResponseTopicPartitionDivergingEpoch) {
	target := truncationTarget(fo.part, leader.Epoch, leader.EndOffset)
	end := fo.part.LogEndOffset()
	err := fo.part.TruncateFollowing(target, fo.epoch)
	switch {
	case errors.Is(err, partition.ErrStaleLeaderEpoch):
		fo.part.Logger().Debug("discarded a diverging epoch from a previous leader epoch", "err", err)
	case err != nil:
		rf.appended(fo, fmt.Errorf("truncating to %d to agree with the leader (its epoch %d ends at %d): %w", target, leader.Epoch, leader.EndOffset, err))
	case target >= end:
		// Nothing left to cut, and the leader still does not take this
		// log (it has none of its epochs, and the log holds nothing past
		// its high watermark): the leader lacks records this replica
		// holds as committed. Ask again after a pause, not at once.
		fo.part.Logger().Warn("the leader refuses this replica's log, which holds nothing past its high watermark to truncate; retrying after a pause",
			"leader_epoch", leader.Epoch, "leader_end_offset", leader.EndOffset, "log_end_offset", end, "high_watermark", fo.part.HighWatermark())
		rf.pause(fo)
	default:
		fo.part.Logger().Info("the leader's log diverges from this replica's: truncated to where they agree",
			"leader_epoch", leader.Epoch, "leader_end_offset", leader.EndOffset, "from_log_end", end, "to", target)
	}
}

// restartFromTier restarts a follower's log at the leader's earliest local
// offset (ListOffsets -4), or after the remote segment holding it, when
// what it lacks below is in the object store: its leader-epoch cache comes
// from the manifest, its producer state from the .producers object of the
// remote segment holding the offset before.
// When this broker's copy of the manifest has no segment holding it and
// ends below it, short of the leader's remote data (ListOffsets -5, latest
// tiered), the metadata here has not caught up with the leader's last
// upload yet (the leader drops its local copy as soon as the upload
// commits): the restart waits for it (an error: retried after a pause), as
// Kafka's follower waits for the remote log metadata, rather than start
// without the producer state and leader epochs of the records below. A
// manifest that holds no such segment as far as the leader's (remote data
// ending below the leader's local log start, or resuming at it, after
// uploads were disabled) restarts without them.
func (rf *fetcher) restartFromTier(ctx context.Context, broker *kgo.Broker, fo *followed) error {
	start, err := rf.listOffset(ctx, broker, fo, partition.EarliestLocalOffset)
	if err != nil {
		return fmt.Errorf("ListOffsets earliest local: %w", err)
	}
	remote := rf.f.cfg.Remote
	if remote == nil {
		return fmt.Errorf("the leader tiers %s-%d but this broker has no object store", fo.topic.Name, fo.part.Index())
	}
	state := rf.f.cfg.Store.State()
	prev, ok := state.SegmentContaining(fo.topic.ID, fo.part.Index(), start-1)
	if !ok && start > 0 {
		leaderEnd, err := rf.listOffset(ctx, broker, fo, latestTieredOffset)
		if err != nil {
			return fmt.Errorf("ListOffsets latest tiered: %w", err)
		}
		end := int64(-1)
		if _, remoteEnd, found := state.RemoteLogOffsets(fo.topic.ID, fo.part.Index()); found {
			end = remoteEnd
		}
		if end < min(leaderEnd, start-1) {
			return fmt.Errorf("the leader's remote data ends at %d, this broker's metadata knows it up to %d only: waiting for the remote segment holding offset %d", leaderEnd, end, start-1)
		}
	}
	if ok && prev.LastOffset >= start {
		// The leader's local log starts inside the segment (DeleteRecords
		// moved it there): its producer snapshot is the state at its end,
		// so the log restarts there, as Kafka's follower restarts after the
		// remote segment. Restarted below, it would apply the segment's
		// last batches a second time over a state that already holds them.
		start = prev.LastOffset + 1
	}
	epochs := fo.part.RemoteEpochs(state, start)
	var producers []byte
	if ok {
		if producers, err = remote.ReadProducerSnapshot(ctx, fo.part.Name(), prev); err != nil {
			return fmt.Errorf("producer state from the object store: %w", err)
		}
	}
	fo.part.Logger().Info("follower starts from the leader's local log; older offsets are in the object store",
		"restart_offset", start, "log_end_offset", fo.part.LogEndOffset(), "epochs_from_manifest", len(epochs))
	return fo.part.RestartAt(start, epochs, producers)
}

// latestTieredOffset is ListOffsets' special timestamp for the last offset
// in the object store (KIP-1005, v9+; -1 when nothing is).
const latestTieredOffset = -5

// listOffset asks the leader for one special offset of a partition it
// leads (ListOffsets v9, as a replica).
func (rf *fetcher) listOffset(ctx context.Context, broker *kgo.Broker, fo *followed, timestamp int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 9
	req.ReplicaID = rf.f.cfg.NodeID
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = fo.topic.Name
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition = fo.part.Index()
	p.CurrentLeaderEpoch = fo.epoch
	p.Timestamp = timestamp
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, broker)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, fmt.Errorf("ListOffsets answered %d topics", len(resp.Topics))
	}
	rp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
		return 0, err
	}
	return rp.Offset, nil
}

// truncate asks the leader where each partition's latest local epoch ends
// and cuts the local log there: for a leader that answers Fetch below v12
// (which does not check the last fetched epoch), on every new leader
// epoch.
func (rf *fetcher) truncate(ctx context.Context, broker *kgo.Broker, parts []*followed) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = rf.f.cfg.NodeID
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
			target := truncationTarget(fo.part, rp.LeaderEpoch, rp.EndOffset)
			if err := fo.part.TruncateFollowing(target, fo.epoch); err != nil {
				if errors.Is(err, partition.ErrStaleLeaderEpoch) {
					continue // the next round asks the new leader
				}
				return fmt.Errorf("truncate %s-%d to %d: %w", fo.topic.Name, fo.part.Index(), target, err)
			}
			rf.setReady(fo, readyTruncated)
		}
	}
	return nil
}

func (rf *fetcher) setReady(fo *followed, ready readiness) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	fo.ready = ready
	if cur := rf.partitions[fo.part]; cur != nil && cur.epoch == fo.epoch {
		cur.ready = ready
	}
}

// appended takes the outcome of appending a partition's fetched data.
// After a failure (a full disk, data that does not continue the log) the
// partition is readied again (checked by the leader, or truncated) and waits before its next fetch, twice as
// long after each failure in a row (nextBackoff), rather than fetching and
// failing at once, round after round; meanwhile its fetch offset stands
// still, so the leader's lag check drops it from the ISR, and once an
// append works it fetches at once again. The error line is rate-limited:
// a full disk fails every partition on it.
func (rf *fetcher) appended(fo *followed, err error) {
	if err == nil && fo.retryDelay == 0 {
		return
	}
	rf.mu.Lock()
	cur := rf.partitions[fo.part]
	if cur == nil || cur.epoch != fo.epoch {
		rf.mu.Unlock()
		return
	}
	if err == nil {
		cur.retryDelay = 0
		rf.mu.Unlock()
		return
	}
	cur.ready = notReady
	cur.retryDelay = nextBackoff(cur.retryDelay)
	cur.pausedUntil = rf.f.cfg.Now().Add(cur.retryDelay)
	delay := cur.retryDelay
	rf.mu.Unlock()
	log := rf.f.cfg.LogLimiter.Logger(fo.part.Logger())
	if fo.part.LogFailed() != nil {
		log.Error("appending replicated data failed and failed the log; not fetching the partition until the broker restarts", "err", err)
		return
	}
	log.Error("appending replicated data failed; fetching again after a backoff", "err", err, "backoff", delay)
}

func (rf *fetcher) pause(fo *followed) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if cur := rf.partitions[fo.part]; cur != nil && cur.epoch == fo.epoch {
		cur.pausedUntil = rf.f.cfg.Now().Add(500 * time.Millisecond)
	}
}

// truncationTarget is where a follower cuts its log after the leader
// answered DivergingEpoch to a fetch, or OffsetForLeaderEpoch for the
// follower's latest epoch, with (leaderEpoch, leaderEnd): the end of the largest epoch both have, capped
// at both ends; a follower with no epochs, or whose epochs the leader does
// not know at all (the leader's (-1, -1)), keeps only what it knows is
// committed (its high watermark), as Kafka's follower does. A leader's
// epoch newer than this log's latest, which this log cannot end (its own
// answer is (-1, -1)), is cut at the leader's end, as Kafka's follower
// does when it has no end for the leader's epoch.
func truncationTarget(p *partition.Partition, leaderEpoch int32, leaderEnd int64) int64 {
	target := p.LogEndOffset()
	if p.LatestEpoch() < 0 || leaderEpoch < 0 {
		return min(target, p.HighWatermark())
	}
	if _, localEnd := p.EpochEndOffset(leaderEpoch); localEnd >= 0 {
		target = min(target, localEnd)
	}
	return min(target, leaderEnd)
}

// Close stops every fetcher and waits for them.
func (f *Fetchers) Close() {
	f.end()
	f.mu.Lock()
	for key, rf := range f.byLeader {
		rf.cancel()
		delete(f.byLeader, key)
	}
	f.mu.Unlock()
	f.wg.Wait()
}
