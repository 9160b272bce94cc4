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

	mu      sync.Mutex // guards queued and retrying
	queued  []proposal
	pending chan struct{} // a token when queued grew
	// retrying holds, by partition, the expansion whose outcome is unknown
	// (a timeout, a lost controller): the partition hands its ISR back
	// (LaggingISR) to be proposed again, and it goes out again with the
	// broker epochs it named, so a follower that registered again
	// meanwhile is still refused (KIP-903).
	retrying map[*partition.Partition]proposal
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
// a follower that has not caught up for ReplicaLagTimeMax at now, and
// hands over every led partition whose last append failed on this
// broker's disk (resign). Run calls it periodically; tests call it with
// their own times.
func (m *ISR) CheckLagging(ctx context.Context, now time.Time) {
	partitions := m.cfg.Partitions()
	m.forgetRetries(partitions)
	for _, p := range partitions {
		if isr := p.StorageResignation(); isr != nil {
			m.resign(ctx, p, isr)
			continue
		}
		if isr := p.LaggingISR(now, m.cfg.ReplicaLagTimeMax); isr != nil {
			pr := proposal{p: p, isr: isr}
			if retry, ok := m.takeRetry(p); ok && slices.Equal(retry.isr, isr) {
				// An expansion proposed again: with its broker epochs.
				pr.brokerEpochs = retry.brokerEpochs
				p.Logger().Info("proposing again an ISR change whose outcome is unknown", "isr", isr)
			} else {
				p.Logger().Warn("follower fell behind; shrinking the ISR", "isr", isr, "replica_lag_time_max", m.cfg.ReplicaLagTimeMax)
			}
			m.propose(ctx, pr)
		}
	}
}

// takeRetry removes and returns the expansion of p whose outcome is
// unknown, if any.
func (m *ISR) takeRetry(p *partition.Partition) (proposal, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pr, ok := m.retrying[p]
	delete(m.retrying, p)
	return pr, ok
}

// forgetRetries drops the expansions waiting to be proposed again of the
// partitions no longer hosted (closed, removed).
func (m *ISR) forgetRetries(hosted []*partition.Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.retrying {
		if !slices.Contains(hosted, p) {
			delete(m.retrying, p)
		}
	}
}

// setRetry records pr as p's expansion whose outcome is unknown (nil
// epochs: none).
func (m *ISR) setRetry(p *partition.Partition, pr *proposal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pr == nil {
		delete(m.retrying, p)
		return
	}
	if m.retrying == nil {
		m.retrying = map[*partition.Partition]proposal{}
	}
	m.retrying[p] = *pr
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
// timeout, a lost controller: proposed again as is).
func (m *ISR) propose(ctx context.Context, pr proposal) {
	var outcome partition.ISROutcome // unknown unless answered
	defer func() {
		if outcome.Committed == nil && !outcome.Refused && pr.brokerEpochs != nil {
			m.setRetry(pr.p, &pr)
		} else {
			m.setRetry(pr.p, nil)
		}
		pr.p.ISRChangeDone(outcome)
	}()
	a := pr.p.ISRChangeBasis()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	committed, err := m.cfg.Store.ChangePartition(ctx, metadata.PartitionChange{
		TopicID: pr.p.TopicID(), Partition: pr.p.Index(), PartitionEpoch: a.PartitionEpoch,
		Leader: metadata.NoLeaderChange, ISR: pr.isr, ISRBrokerEpochs: pr.brokerEpochs,
	})
	if err != nil {
		outcome.Refused = refused(err)
		outcome.Ineligible = errors.Is(err, metadata.ErrIneligibleReplica)
		pr.p.Logger().Debug("ISR change not applied; proposed again", "isr", pr.isr, "refused", outcome.Refused, "err", err)
		return
	}
	outcome.Committed = &committed
	pr.p.Logger().Info("ISR changed", "isr", pr.isr, "previous_isr", a.ISR)
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
func refused(err error) bool {
	for _, rejection := range []error{metadata.ErrStalePartitionEpoch, metadata.ErrInvalidPartitions, metadata.ErrUnknownTopic, metadata.ErrUnknownPartition, metadata.ErrIneligibleReplica} {
		if errors.Is(err, rejection) {
			return true
		}
	}
	return false
}
