package metadata

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// controllerTick is how often the controller re-checks broker sessions and
// partition leaders while it leads (it also runs on every state change and
// heartbeat).
const controllerTick = 200 * time.Millisecond

// controller is what the Raft leader does for the brokers, as Kafka's
// KRaft controller does: it tracks broker sessions from heartbeats (in
// memory: a new leader gives every broker a fresh session), fences brokers
// whose session ended, unfences brokers that heartbeat, and elects
// partition leaders from the live in-sync replicas when a leader is fenced,
// gone or shutting down, and takes fenced or shutting-down brokers out of
// the ISRs they follow (leaveISR). Every decision is a command through
// Raft, checked against the state it was based on (broker and partition
// epochs), so a stale decision is rejected rather than applied.
//
// heartbeat is called from RPC and broker goroutines; run runs on its own
// goroutine while this node leads, owned by the Store.
type controller struct {
	s              *Store
	sessionTimeout time.Duration

	mu sync.Mutex // guards everything below
	// lastSeen is when each broker last heartbeated to this leader, and
	// seenEpoch the broker epoch it heartbeated with: a heartbeat speaks
	// for that registration only, not for a later incarnation of the id
	// (heardFromLocked).
	lastSeen  map[int32]time.Time
	seenEpoch map[int32]int64
	// shuttingDown holds brokers in controlled shutdown.
	shuttingDown map[int32]bool
	// applied is the metadata position each broker last reported
	// (propagation.go); appliedChanged is closed and replaced when one
	// rises.
	applied        map[int32]appliedPosition
	appliedChanged chan struct{}
	// since is when this node started leading; zero when it does not.
	since time.Time
	// stop ends the running loop; kick wakes it.
	stop chan struct{}
	kick chan struct{}
	// uncleanRefused holds the ids of tiered topics whose unclean
	// election was refused and logged (once per topic); a sync.Map, not
	// under mu.
	uncleanRefused sync.Map
	// lastBalance is when preferred leaders were last restored, every
	// preferredInterval.
	lastBalance       time.Time
	preferredInterval time.Duration
}

// defaultPreferredLeaderInterval is how often the controller gives
// partitions back to their preferred (first) replica when it is alive and
// in sync, as Kafka's auto.leader.rebalance.enable does every
// leader.imbalance.check.interval.seconds.
const defaultPreferredLeaderInterval = 30 * time.Second

func newController(s *Store, sessionTimeout, preferredInterval time.Duration) *controller {
	if preferredInterval == 0 {
		preferredInterval = defaultPreferredLeaderInterval
	}
	return &controller{s: s, sessionTimeout: sessionTimeout, preferredInterval: preferredInterval, kick: make(chan struct{}, 1)}
}

// setLeading starts the loop when this node becomes leader and stops it
// when it stops leading.
func (c *controller) setLeading(leading bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leading == (c.stop != nil) {
		return
	}
	if !leading {
		close(c.stop)
		c.stop, c.since = nil, time.Time{}
		return
	}
	c.stop = make(chan struct{})
	c.since = time.Now()
	c.lastSeen = map[int32]time.Time{}
	c.seenEpoch = map[int32]int64{}
	c.shuttingDown = map[int32]bool{}
	c.applied = map[int32]appliedPosition{}
	c.appliedChanged = make(chan struct{})
	stop := c.stop
	c.s.goroutines.Go(func() { c.run(stop) })
}

// heartbeat records that a broker is alive and how far it has applied the
// metadata (only on the leader).
func (c *controller) heartbeat(h BrokerHeartbeat) error {
	b, ok := c.s.State().Broker(h.ID)
	if !ok {
		return fmt.Errorf("broker %d is not registered: %w", h.ID, ErrUnknownBroker)
	}
	if b.Epoch != h.BrokerEpoch {
		return fmt.Errorf("broker %d: epoch %d, registered as %d: %w", h.ID, h.BrokerEpoch, b.Epoch, ErrStaleBrokerEpoch)
	}
	c.mu.Lock()
	if c.stop == nil {
		c.mu.Unlock()
		return c.s.notLeaderError()
	}
	c.lastSeen[h.ID] = time.Now()
	c.seenEpoch[h.ID] = h.BrokerEpoch
	changed := c.shuttingDown[h.ID] != h.ShuttingDown
	if h.ShuttingDown {
		c.shuttingDown[h.ID] = true
	} else {
		delete(c.shuttingDown, h.ID)
	}
	c.mu.Unlock()
	if changed || b.Fenced {
		c.wake()
	}
	if h.AppliedIndex > 0 {
		return c.reportApplied(h.ID, h.BrokerEpoch, h.AppliedIndex)
	}
	return nil
}

// heardFromLocked is when the broker last heartbeated to this leader in
// registration b (its broker epoch): the heartbeats of an earlier
// incarnation of the id say nothing of the process registered now, which
// stays fenced and is not elected until it heartbeats itself. A time
// recorded without an epoch (tests) counts for any. Called with mu held.
func (c *controller) heardFromLocked(b Broker) (time.Time, bool) {
	seen, heard := c.lastSeen[b.ID]
	if epoch, ok := c.seenEpoch[b.ID]; heard && ok && epoch != b.Epoch {
		return time.Time{}, false
	}
	return seen, heard
}

// admit refuses a registration of a broker id whose current registration,
// of another incarnation on another data directory, has a live session
// with this controller: two processes claim the id (Kafka's
// DUPLICATE_BROKER_REGISTRATION). A session is live while the broker has
// heartbeated within the session timeout, or, for a broker this
// controller has not heard from yet, within the session timeout since it
// took over (as reconcile counts it). A registration from the same data
// directory is admitted at once: only one process at a time runs on a
// directory (it is locked), so the registration it replaces belongs to a
// process that has stopped. A crashed process's registration from another
// directory is admitted over once its session ends (it is fenced).
func (c *controller) admit(registration BrokerRegistration) error {
	existing, ok := c.s.State().Broker(registration.ID)
	if !ok || existing.IncarnationID == registration.IncarnationID || existing.Fenced {
		return nil
	}
	if registration.DirectoryID != ([16]byte{}) && registration.DirectoryID == existing.DirectoryID {
		return nil
	}
	c.mu.Lock()
	if c.since.IsZero() && !c.s.config.withoutController {
		// Raft has made this node leader but the controller has not
		// taken over yet: it counts no session, so it cannot tell a live
		// one. Refused before appending; the sender retries.
		c.mu.Unlock()
		return fmt.Errorf("%w (node %d is taking over as controller)", ErrNotLeader, c.s.config.NodeID)
	}
	seen, heard := c.heardFromLocked(existing)
	c.mu.Unlock()
	if !heard {
		if existing.DirectoryID == ([16]byte{}) {
			// Registered by a build before directory ids, and not heard
			// from since this controller took over: no evidence of a
			// live process, as before directory ids (the first start
			// after an upgrade is not held up).
			return nil
		}
		seen = c.since
	}
	if !seen.IsZero() && time.Since(seen) <= c.sessionTimeout {
		return fmt.Errorf("broker %d is registered by another live process on another data directory (its session was renewed %v ago, session timeout %v): %w",
			registration.ID, time.Since(seen).Round(time.Millisecond), c.sessionTimeout, ErrDuplicateBroker)
	}
	return nil
}

func (c *controller) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *controller) run(stop chan struct{}) {
	ticker := time.NewTicker(controllerTick)
	defer ticker.Stop()
	for {
		_, changed := c.s.Watch()
		c.reconcile(stop)
		select {
		case <-stop:
			return
		case <-c.s.closing:
			return
		case <-ticker.C:
		case <-changed:
		case <-c.kick:
		}
	}
}

// reconcile makes one pass: broker fencing, then leader elections and
// ISR removals of unavailable brokers.
func (c *controller) reconcile(stop chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	state := c.s.State()
	now := time.Now()
	c.mu.Lock()
	since := c.since
	lastSeen := make(map[int32]time.Time, len(c.lastSeen))
	for _, b := range state.Brokers() {
		if seen, heard := c.heardFromLocked(b); heard {
			lastSeen[b.ID] = seen
		}
	}
	shuttingDown := make(map[int32]bool, len(c.shuttingDown))
	for id := range c.shuttingDown {
		shuttingDown[id] = true
	}
	c.mu.Unlock()
	if since.IsZero() {
		return
	}

	// Sessions: a broker that has not heartbeated to this leader has had
	// a session since the leader took over.
	for _, b := range state.Brokers() {
		seen, heard := lastSeen[b.ID]
		if !heard {
			seen = since
		}
		expired := now.Sub(seen) > c.sessionTimeout
		switch {
		case !b.Fenced && expired:
			c.s.logger.Warn("controller: fencing broker: no heartbeat within the session timeout", "broker", b.ID, "session_timeout", c.sessionTimeout)
			c.setFenced(ctx, b, true)
		case !b.Fenced && shuttingDown[b.ID] && !state.LeadsAny(b.ID):
			c.s.logger.Info("controller: fencing broker in controlled shutdown", "broker", b.ID)
			c.setFenced(ctx, b, true)
		case b.Fenced && heard && !expired && !shuttingDown[b.ID]:
			c.s.logger.Info("controller: unfencing broker", "broker", b.ID)
			c.setFenced(ctx, b, false)
		}
	}
	if ctx.Err() != nil {
		return
	}
	state = c.s.State()

	// Leaders: every partition whose leader cannot lead gets the first
	// live in-sync replica (in replica order) instead, or none.
	alive := func(id int32) bool {
		b, ok := state.Broker(id)
		return ok && !b.Fenced && !shuttingDown[id]
	}
	// A new leader must also have heartbeated to this controller within
	// the session timeout: a broker merely not fenced yet (its session
	// with this controller is counted from when it took over) may be
	// dead, and electing it (after a broker's re-registration took its
	// leaderships back, or after a failover) would take the partition
	// offline and drop the live replicas that are still registering from
	// the ISR.
	eligible := func(id int32) bool {
		seen, heard := lastSeen[id]
		return alive(id) && heard && now.Sub(seen) <= c.sessionTimeout
	}
	// unavailable brokers are registered but fenced or in controlled
	// shutdown: they leave every ISR at once (see leaveISR).
	unavailable := func(id int32) bool {
		b, ok := state.Broker(id)
		return ok && (b.Fenced || shuttingDown[id])
	}
	graceOver := now.Sub(since) > c.sessionTimeout
	state.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			if p.Leader >= 0 && alive(p.Leader) {
				// Only under a leader this controller has heard from: after
				// a failover (or a quorum recovery) a dead leader looks
				// alive until its session expires, and taking a restarting
				// (fenced) survivor out of its ISR meanwhile would leave
				// the partition offline once that leader is fenced.
				if eligible(p.Leader) {
					c.leaveISR(ctx, t, p, unavailable)
				}
				continue
			}
			if _, registered := state.Broker(p.Leader); p.Leader >= 0 && !registered && !graceOver {
				continue // a leader that has not registered yet since this controller started
			}
			leader, isr := electFromISR(p, alive, eligible)
			if leader == -1 && len(isr) == 0 && c.uncleanAllowed(t) {
				// Unclean election (opted in): the first live replica
				// outside the ISR leads; what only the ISR had is lost.
				for _, r := range p.Replicas {
					if eligible(r) {
						leader, isr = r, []int32{r}
						c.s.logger.Warn("controller: unclean leader election: no in-sync replica is alive; records only they had are lost", "topic", t.Name, "partition", p.Index, "leader", r)
						break
					}
				}
			}
			if leader == -1 {
				if p.Leader == -1 {
					continue // offline until an in-sync replica returns
				}
				// Keep the last in-sync set, so only one of them can be
				// elected when it returns (no unclean election).
				isr = p.ISR
			}
			change := PartitionChange{TopicID: t.ID, Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: leader, ISR: isr}
			if _, err := c.s.ChangePartition(ctx, change); err != nil {
				c.s.logger.Debug("controller: leader election not applied; retried", "topic", t.Name, "partition", p.Index, "error", err)
				continue
			}
			c.s.logger.Info("controller: elected partition leader", "topic", t.Name, "partition", p.Index,
				"leader", leader, "previous_leader", p.Leader, "leader_epoch", p.LeaderEpoch+1, "isr", isr)
		}
		return ctx.Err() == nil
	})
	if ctx.Err() != nil {
		return
	}
	c.finishReassignments(ctx, c.s.State(), eligible, unavailable)
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	balance := now.Sub(c.lastBalance) >= c.preferredInterval
	if balance {
		c.lastBalance = now
	}
	c.mu.Unlock()
	if balance {
		c.electPreferredLeaders(ctx, c.s.State(), eligible)
	}
}

// leaveISR takes the unavailable brokers — fenced (their session ended),
// or in controlled shutdown — out of the ISR of a partition whose leader
// is alive, as Kafka's controller does when a broker is fenced or enters
// controlled shutdown (ReplicationControlManager.handleBrokerFenced,
// handleBrokerInControlledShutdown): the leader's acks=all produces and
// high watermark stop waiting for a replica that no longer fetches,
// instead of waiting out replica.lag.time.max.ms until the leader shrinks
// the ISR itself. The partition's leader stays, and so does its leader
// epoch (only the partition epoch increases, as for the leader's own ISR
// shrinks and Kafka's since KAFKA-15021); the leader is in the ISR and
// alive, so at least one member stays. A partition whose leader cannot
// lead is left to the election, which keeps only live members too, or
// the whole last ISR when none is (Kafka keeps the last member as well).
// A broker that comes back rejoins through the leader's ordinary ISR
// expansion once it has caught up. Unregistered brokers are left to the
// leader's lag check.
func (c *controller) leaveISR(ctx context.Context, t Topic, p Partition, unavailable func(int32) bool) {
	if !slices.ContainsFunc(p.ISR, unavailable) {
		return
	}
	isr := slices.DeleteFunc(slices.Clone(p.ISR), unavailable)
	if len(isr) == 0 || !slices.Contains(isr, p.Leader) {
		return
	}
	change := PartitionChange{TopicID: t.ID, Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: NoLeaderChange, ISR: isr}
	if _, err := c.s.ChangePartition(ctx, change); err != nil {
		c.s.logger.Debug("controller: ISR change for a fenced or shutting-down replica not applied; retried", "topic", t.Name, "partition", p.Index, "error", err)
		return
	}
	c.s.logger.Info("controller: fenced or shutting-down replicas left the ISR", "topic", t.Name, "partition", p.Index,
		"leader", p.Leader, "isr", isr, "previous_isr", p.ISR)
}

// electFromISR is a clean election: the first replica (in replica order)
// that is electable, and the ISR without the members that are not alive;
// (-1, that ISR) when none is. eligible is alive plus "heard from
// recently" (see reconcile).
func electFromISR(p Partition, alive, eligible func(int32) bool) (leader int32, isr []int32) {
	for _, r := range p.ISR {
		if alive(r) {
			isr = append(isr, r)
		}
	}
	for _, r := range p.Replicas {
		if electable(p, r, eligible) {
			return r, isr
		}
	}
	return -1, isr
}

// electable reports whether replica r may lead p in a clean election: it
// is in the ISR — which holds everything below the high watermark, since
// the leader computes it over the maximal ISR and a broker that registers
// again leaves every ISR — and eligible (registered, unfenced, not
// shutting down, and heard from by this controller within the session
// timeout).
func electable(p Partition, r int32, eligible func(int32) bool) bool {
	return slices.Contains(p.ISR, r) && eligible(r)
}

// electPreferredLeaders moves leadership back to each partition's preferred
// replica (the first) when it is alive and in the ISR, so leaders spread as
// placed after brokers come back.
func (c *controller) electPreferredLeaders(ctx context.Context, state *State, eligible func(int32) bool) {
	state.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			preferred := p.Replicas[0]
			if p.Leader == preferred || p.Leader < 0 || !electable(p, preferred, eligible) {
				continue
			}
			change := PartitionChange{TopicID: t.ID, Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: preferred, ISR: p.ISR}
			if _, err := c.s.ChangePartition(ctx, change); err != nil {
				c.s.logger.Debug("controller: preferred leader election not applied; retried", "topic", t.Name, "partition", p.Index, "error", err)
				continue
			}
			c.s.logger.Info("controller: preferred leader elected", "topic", t.Name, "partition", p.Index, "leader", preferred, "previous_leader", p.Leader)
		}
		return ctx.Err() == nil
	})
}

// uncleanAllowed reports whether a topic opted into unclean leader
// election (unclean.leader.election.enable), or the broker default. Never
// on a tiered topic (remote.storage.enable=true): an unclean leader would
// start a history of its own below data already in the object store, and
// its uploads would splice the two into one partition's remote log, which
// no leader-epoch check against the remote data catches yet. The topic
// stays offline until an in-sync replica returns (a topic-level "true" is
// refused when set: broker/topicconfig.CheckCombined; the broker default
// is ignored).
func (c *controller) uncleanAllowed(t Topic) bool {
	allowed := c.s.config.UncleanLeaderElection
	switch t.Configs["unclean.leader.election.enable"] {
	case "true":
		allowed = true
	case "false":
		allowed = false
	}
	if allowed && t.Configs["remote.storage.enable"] == "true" {
		if _, logged := c.uncleanRefused.LoadOrStore(t.ID, true); !logged {
			c.s.logger.Warn("controller: unclean leader election refused on a tiered topic (remote.storage.enable=true): an out-of-sync leader would splice its history into the remote data; the partition stays offline until an in-sync replica returns", "topic", t.Name)
		}
		return false
	}
	return allowed
}

func (c *controller) setFenced(ctx context.Context, b Broker, fenced bool) {
	if err := c.s.SetBrokerFenced(ctx, b.ID, b.Epoch, fenced); err != nil {
		c.s.logger.Debug("controller: broker fencing change not applied; retried", "broker", b.ID, "fenced", fenced, "error", err)
	}
}

// LeadsAny reports whether broker id leads a partition.
func (state *State) LeadsAny(id int32) bool {
	found := false
	state.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			if p.Leader == id {
				found = true
				return false
			}
		}
		return true
	})
	return found
}
