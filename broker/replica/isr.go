package replica

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// ISRConfig configures an ISR maintainer.
type ISRConfig struct {
	// Store proposes ISR changes (checked against the partition epoch by
	// the controller).
	Store interface {
		ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error)
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
	// brokerEpochs, for an expansion, is ISRBrokerEpochs: the added
	// follower's fetch broker epoch, -1 for the others (nil: unchecked).
	brokerEpochs []int64
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

// Expand hands over an ISR expansion partition.FollowerFetched returned
// for follower, whose fetch carried followerEpoch (its broker epoch; -1
// from fetches before v15: not checked). The proposal names that epoch for
// the follower, so the controller refuses it (ErrIneligibleReplica) if
// the follower has registered again since: a replica that caught up as an
// earlier incarnation does not join the ISR as the next one (KIP-903). It
// does not block; the partition's change stays in flight until Run has
// proposed it.
func (m *ISR) Expand(p *partition.Partition, isr []int32, follower int32, followerEpoch int64) {
	var epochs []int64
	if followerEpoch >= 0 {
		epochs = make([]int64, len(isr))
		for i, r := range isr {
			epochs[i] = -1
			if r == follower {
				epochs[i] = followerEpoch
			}
		}
	}
	m.mu.Lock()
	m.queued = append(m.queued, proposal{p: p, isr: isr, brokerEpochs: epochs})
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
// a follower that has not caught up for ReplicaLagTimeMax at now. Run
// calls it periodically; tests call it with their own times.
func (m *ISR) CheckLagging(ctx context.Context, now time.Time) {
	for _, p := range m.cfg.Partitions() {
		if isr := p.LaggingISR(now, m.cfg.ReplicaLagTimeMax); isr != nil {
			p.Logger().Warn("follower fell behind; shrinking the ISR", "isr", isr, "replica_lag_time_max", m.cfg.ReplicaLagTimeMax)
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
		pr.p.ISRChangeDone()
	}
}

// propose sends one ISR change to the controller and ends the partition's
// change in flight, committed or not (a refused change is proposed again
// when its condition still holds).
func (m *ISR) propose(ctx context.Context, pr proposal) {
	defer pr.p.ISRChangeDone()
	a := pr.p.Assignment()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := m.cfg.Store.ChangePartition(ctx, metadata.PartitionChange{
		TopicID: pr.p.TopicID(), Partition: pr.p.Index(), PartitionEpoch: a.PartitionEpoch,
		Leader: metadata.NoLeaderChange, ISR: pr.isr, ISRBrokerEpochs: pr.brokerEpochs,
	})
	if err != nil {
		pr.p.Logger().Debug("ISR change not applied; retried later", "isr", pr.isr, "err", err)
		return
	}
	pr.p.Logger().Info("ISR changed", "isr", pr.isr, "previous_isr", a.ISR)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}
