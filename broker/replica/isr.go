package replica

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// ISRConfig configures an ISR maintainer.
type ISRConfig struct {
	// Store proposes ISR changes (checked against the partition epoch by
	// the controller); its state says which brokers are alive.
	Store interface {
		ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error)
		State() *metadata.State
	}
	// Partitions lists the partitions hosted here (those this broker leads
	// are checked for lagging followers).
	Partitions func() []*partition.Partition
	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower that has not
	// caught up for this long leaves the ISR. Default 30 s.
	ReplicaLagTimeMax time.Duration
	// Changed, when set, is called after each ISR change committed (a
	// metric).
	Changed func()
	Logger  *slog.Logger
}

// ISR is the leader's ISR maintenance: one goroutine (Run) owns every ISR
// proposal of this broker. It checks the led partitions for followers that
// stopped catching up (partition.LaggingISR) and proposes the shrinks, and
// proposes the expansions the fetch path hands it (Expand). Proposals go
// to the controller one at a time, in arrival order; each ends with
// partition.ISRChangeDone, so a partition has at most one in flight.
type ISR struct {
	cfg ISRConfig

	mu      sync.Mutex // guards queued
	queued  []proposal
	pending chan struct{} // a token when queued grew
}

type proposal struct {
	p   *partition.Partition
	isr []int32
}

// NewISR makes an ISR maintainer; it acts once Run runs.
func NewISR(cfg ISRConfig) *ISR {
	if cfg.ReplicaLagTimeMax == 0 {
		cfg.ReplicaLagTimeMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ISR{cfg: cfg, pending: make(chan struct{}, 1)}
}

// Expand hands over an ISR expansion partition.FollowerFetchedAt
// returned. The partition keeps the broker epochs it names
// (ISRChangeBrokerEpochs, KIP-903) with the change. It does not block; the
// partition's change stays in flight until Run has proposed it.
func (m *ISR) Expand(p *partition.Partition, isr []int32) {
	m.mu.Lock()
	m.queued = append(m.queued, proposal{p: p, isr: isr})
	m.mu.Unlock()
	select {
	case m.pending <- struct{}{}:
	default:
	}
}

// Run proposes queued expansions and, every min(ReplicaLagTimeMax/2, 1 s),
// the shrinks of lagging ISRs, until ctx ends. Proposals still queued then
// are dropped (their changes marked done).
func (m *ISR) Run(ctx context.Context) {
	ticker := time.NewTicker(min(m.cfg.ReplicaLagTimeMax/2, time.Second))
	defer ticker.Stop()
	defer m.drop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.pending:
			m.proposeQueued(ctx)
		case now := <-ticker.C:
			m.CheckLagging(ctx, now)
			m.proposeQueued(ctx)
		}
	}
}

// CheckLagging proposes the shrink of every led partition whose ISR holds
// a follower that has not caught up for ReplicaLagTimeMax at now, and
// hands over every led partition whose last append failed on this
// broker's disk (resign). Run calls it periodically; tests call it with
// their own times.
func (m *ISR) CheckLagging(ctx context.Context, now time.Time) {
	for _, p := range m.cfg.Partitions() {
		if isr := p.StorageResignation(); isr != nil {
			m.resign(ctx, p, isr)
			continue
		}
		if isr := p.LaggingISR(now, m.cfg.ReplicaLagTimeMax); isr != nil {
			p.Logger().Warn("follower fell behind, or an ISR change's outcome is unknown; proposing the ISR", "isr", isr, "replica_lag_time_max", m.cfg.ReplicaLagTimeMax)
			m.propose(ctx, proposal{p: p, isr: isr})
		}
	}
}

func (m *ISR) take() []proposal {
	m.mu.Lock()
	defer m.mu.Unlock()
	queued := m.queued
	m.queued = nil
	return queued
}

func (m *ISR) proposeQueued(ctx context.Context) {
	for _, pr := range m.take() {
		m.propose(ctx, pr)
	}
}

func (m *ISR) drop() {
	for _, pr := range m.take() {
		pr.p.ISRChangeDone(partition.ISROutcome{Refused: true}) // never sent
	}
}

// propose sends one ISR change to the controller and ends the partition's
// change in flight with its outcome: the committed state (the proposed
// members count for the high watermark until the partition applies it), a
// refusal (proposed again when its condition still holds), or unknown (a
// timeout, a lost controller: proposed again as is, unless an assignment
// past the change's basis was applied meanwhile, which settles it;
// partition.ISRChangeDone). The change is the
// partition's: its ISR, basis, broker epochs and whether it bumps the
// leader epoch.
func (m *ISR) propose(ctx context.Context, pr proposal) {
	var outcome partition.ISROutcome // unknown unless answered
	defer func() { pr.p.ISRChangeDone(outcome) }()
	a := pr.p.ISRChangeBasis()
	bump := pr.p.ISRChangeBumpsLeaderEpoch()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	committed, err := m.cfg.Store.ChangePartition(ctx, metadata.PartitionChange{
		TopicID: pr.p.TopicID(), Partition: pr.p.Index(), PartitionEpoch: a.PartitionEpoch,
		Leader: metadata.NoLeaderChange, ISR: pr.isr, ISRBrokerEpochs: pr.p.ISRChangeBrokerEpochs(),
		BumpLeaderEpoch: bump,
	})
	if err != nil {
		outcome.Refused = refused(err)
		outcome.Ineligible = errors.Is(err, metadata.ErrIneligibleReplica)
		pr.p.Logger().Debug("ISR change not applied; proposed again", "isr", pr.isr, "refused", outcome.Refused, "err", err)
		return
	}
	outcome.Committed = &committed
	if bump {
		// The ISR as it was, with a new leader epoch: said as such, not as
		// an ISR change that changed nothing.
		pr.p.Logger().Info("leader epoch bumped with the ISR kept, fencing an earlier ISR change whose outcome was unknown",
			"isr", pr.isr, "leader_epoch", committed.LeaderEpoch, "previous_leader_epoch", a.LeaderEpoch)
	} else {
		pr.p.Logger().Info("ISR changed", "isr", pr.isr, "previous_isr", a.ISR)
	}
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}

// resign hands a partition whose append failed on this broker's disk (a
// full disk, an I/O error) to the first live replica of isr, the ISR
// without this broker, in replica order: one AlterPartition with the new
// leader and the smaller ISR, fenced by the partition epoch like any ISR
// change. Producers, answered KAFKA_STORAGE_ERROR (retriable), find the new
// leader in their next metadata; this replica follows it and rejoins the
// ISR only once its appends work again and it has caught up. It ends the
// partition's change in flight, committed or not (a refused change is
// proposed again on the next check).
func (m *ISR) resign(ctx context.Context, p *partition.Partition, isr []int32) {
	var outcome partition.ISROutcome // unknown unless answered
	defer func() { p.ISRChangeDone(outcome) }()
	a := p.ISRChangeBasis()
	state := m.cfg.Store.State()
	leader := int32(-1)
	for _, r := range a.Replicas {
		if b, ok := state.Broker(r); ok && !b.Fenced && slices.Contains(isr, r) {
			leader = r
			break
		}
	}
	if leader < 0 {
		p.Logger().Warn("append failed on this broker's disk, but no other in-sync replica is alive to take the partition over; producers get KAFKA_STORAGE_ERROR until one is", "isr", a.ISR)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	committed, err := m.cfg.Store.ChangePartition(ctx, metadata.PartitionChange{
		TopicID: p.TopicID(), Partition: p.Index(), PartitionEpoch: a.PartitionEpoch,
		Leader: leader, ISR: isr,
	})
	if err != nil {
		outcome.Refused = refused(err)
		p.Logger().Warn("handing the partition over after a failed append was not applied; retried", "leader", leader, "isr", isr, "err", err)
		return
	}
	outcome.Committed = &committed
	p.Logger().Warn("handed the partition over after an append failed on this broker's disk", "leader", leader, "isr", isr, "previous_isr", a.ISR)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}

// refused reports whether a ChangePartition error is the controller's
// refusal (nothing was committed), rather than an unknown outcome. An
// ineligible replica (a follower that registered again since the fetch
// that caught it up) is a refusal: proposed again as it was, the change
// would be refused forever (and hold every other change of the
// partition), or, without its broker epochs, admit the new incarnation.
// So is a change refused because this leader is fenced (the same
// sentinel): the controller's election moves the partition on, and until
// this broker applies that, its lag check proposes afresh, and is refused
// again, once per check.
func refused(err error) bool {
	for _, rejection := range []error{metadata.ErrStalePartitionEpoch, metadata.ErrInvalidPartitions, metadata.ErrUnknownTopic, metadata.ErrUnknownPartition, metadata.ErrIneligibleReplica} {
		if errors.Is(err, rejection) {
			return true
		}
	}
	return false
}
