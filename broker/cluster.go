package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// membership is this broker's registration with the controller: it
// registers at start (a new incarnation each process run), heartbeats every
// HeartbeatInterval, registers again when the controller no longer knows
// the registration, and asks for a controlled shutdown before it stops.
type membership struct {
	s           *Server
	incarnation [16]byte
	epoch       atomic.Int64 // broker epoch of the current registration; 0 before the first
	stopping    atomic.Bool  // controlled shutdown requested
	// registered receives a token after each registration (reportApplied
	// reports under the new broker epoch).
	registered chan struct{}
	// cleanShutdown reports that the previous process on the data dir
	// stopped cleanly (cleanshutdown.go); only the first registration
	// says so: a registration lost later is replaced by one that
	// conservatively does not.
	cleanShutdown bool
	// beforeRegister, when set (tests only), runs before each
	// registration attempt: a test holds the broker unregistered with it.
	beforeRegister func()
}

func newMembership(s *Server) *membership {
	return &membership{s: s, incarnation: uuid.New(), registered: make(chan struct{}, 1)}
}

// registration describes this broker: every listener with its advertised
// address.
func (m *membership) registration() metadata.BrokerRegistration {
	reg := metadata.BrokerRegistration{
		ID: m.s.cfg.NodeID, IncarnationID: m.incarnation, Rack: m.s.cfg.Rack,
		DirectoryID: m.s.cfg.Metadata.DirectoryID(), CleanShutdown: m.cleanShutdown,
	}
	for _, l := range m.s.listeners {
		reg.Endpoints = append(reg.Endpoints, metadata.BrokerEndpoint{
			Listener: l.Name, Host: l.advertiseHost, Port: l.advertisePort, SecurityProtocol: string(l.SecurityProtocol),
		})
	}
	return reg
}

// run registers and heartbeats until ctx ends. It fails when another live
// process holds this broker id.
func (m *membership) run(ctx context.Context) error {
	store := m.s.cfg.Metadata
	log := m.s.log.With("subsystem", "membership")
	backoff := 50 * time.Millisecond
	failing := false
	var conflictSince time.Time
	for ctx.Err() == nil {
		var err error
		if m.epoch.Load() == 0 {
			if m.beforeRegister != nil {
				m.beforeRegister()
			}
			var epoch int64
			registration := m.registration()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			epoch, err = store.RegisterBroker(rctx, registration)
			cancel()
			if err == nil {
				m.cleanShutdown = false
				m.epoch.Store(epoch)
				select {
				case m.registered <- struct{}{}:
				default:
				}
				conflictSince = time.Time{}
				log.Info("registered with the controller", "broker_epoch", epoch, "clean_shutdown", registration.CleanShutdown)
				continue // heartbeat right away: the controller unfences on it
			}
			if errors.Is(err, metadata.ErrDuplicateBroker) {
				// Another data directory registered this broker id: a
				// crashed predecessor on a replaced disk whose session
				// has not ended yet (wait for it), or a second process
				// with this node id (give up). A restart on the same
				// directory is admitted at once.
				if conflictSince.IsZero() {
					conflictSince = time.Now()
					log.Warn("broker id is registered by another process with a live session; waiting for it to end", "session_timeout", m.s.cfg.SessionTimeout, "err", err)
				}
				if time.Since(conflictSince) > 3*m.s.cfg.SessionTimeout {
					return fmt.Errorf("another live process, on another data directory, is registered as broker %d (its heartbeats keep its session alive): two nodes have --node-id %d; give each node a unique id: %w", m.s.cfg.NodeID, m.s.cfg.NodeID, err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
		} else {
			hctx, cancel := context.WithTimeout(ctx, m.s.cfg.HeartbeatInterval)
			err = store.Heartbeat(hctx, m.heartbeat(m.stopping.Load()))
			cancel()
			if errors.Is(err, metadata.ErrUnknownBroker) || errors.Is(err, metadata.ErrStaleBrokerEpoch) {
				log.Warn("the controller no longer knows this registration; registering again", "err", err)
				m.epoch.Store(0)
				continue
			}
		}
		wait := m.s.cfg.HeartbeatInterval
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !failing {
				log.Warn("cannot reach the controller; retrying (is a majority of the controller quorum up?)", "err", err)
			}
			failing = true
			wait = min(backoff, m.s.cfg.HeartbeatInterval)
			backoff = min(2*backoff, time.Second)
		} else {
			if failing {
				log.Info("reached the controller again")
			}
			failing, backoff = false, 50*time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// heartbeat is this broker's next heartbeat: alive, maybe shutting down,
// and the metadata position it has acted on.
func (m *membership) heartbeat(shuttingDown bool) metadata.BrokerHeartbeat {
	return metadata.BrokerHeartbeat{
		ID:           m.s.cfg.NodeID,
		BrokerEpoch:  m.epoch.Load(),
		ShuttingDown: shuttingDown,
		AppliedIndex: m.s.partitions.reconciledIndex(),
	}
}

// reportApplied tells the controller each new metadata position this
// broker has acted on (its partitions opened or closed) as soon as it has,
// so an admin request waiting for the change to reach every broker
// (metadata.Store.WaitPropagated) answers without waiting for a heartbeat.
// Heartbeats carry the position too, so a lost report only costs time.
func (m *membership) reportApplied(ctx context.Context) {
	store := m.s.cfg.Metadata
	var reported uint64
	var reportedEpoch int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.s.partitions.reconciled:
		case <-m.registered:
		}
		epoch, index := m.epoch.Load(), m.s.partitions.reconciledIndex()
		if epoch == 0 || (epoch == reportedEpoch && index <= reported) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, m.s.cfg.HeartbeatInterval)
		err := store.ReportApplied(rctx, m.s.cfg.NodeID, epoch, index)
		cancel()
		if err != nil {
			m.s.log.Debug("reporting the applied metadata position failed; the next heartbeat carries it", "index", index, "err", err)
			continue
		}
		reported, reportedEpoch = index, epoch
	}
}

// active reports whether this process's registration (its incarnation,
// not an earlier one's replayed from the log) is in state and unfenced:
// only then does it lead or follow partitions.
func (m *membership) active(state *metadata.State) bool {
	b, ok := state.Broker(m.s.cfg.NodeID)
	return ok && b.IncarnationID == m.incarnation && !b.Fenced
}

// ready reports whether this broker is registered, unfenced, leads every
// partition waiting for it (an offline partition whose in-sync replica it
// is), and serves every leadership the state gives it: its open replica
// leads at the state's leader epoch. Until the partitions have caught up
// with the election that follows a restart, a consumer that learned the
// new epoch from Metadata would be answered NOT_LEADER_OR_FOLLOWER or
// UNKNOWN_LEADER_EPOCH and fetch again (a replica not open, e.g. for want
// of file descriptors, is reported by the partition manager, not waited
// for here).
func (m *membership) ready() bool {
	state := m.s.cfg.Metadata.State()
	b, ok := state.Broker(m.s.cfg.NodeID)
	if !ok || b.Fenced || b.Epoch != m.epoch.Load() {
		return false
	}
	waiting := false
	state.EachTopic(func(t metadata.Topic) bool {
		for _, p := range t.Partitions {
			if p.Leader == -1 && slices.Contains(p.ISR, m.s.cfg.NodeID) {
				waiting = true
				return false
			}
			if p.Leader == m.s.cfg.NodeID {
				if local := m.s.partitions.get(t, p.Index); local != nil && (!local.Leading() || local.LeaderEpoch() != p.LeaderEpoch) {
					waiting = true
					return false
				}
			}
		}
		return true
	})
	return !waiting
}

// controlledShutdown asks the controller to move this broker's leaderships
// and waits, at most timeout, until it leads nothing.
func (m *membership) controlledShutdown(timeout time.Duration) {
	if m.epoch.Load() == 0 {
		return
	}
	m.stopping.Store(true)
	store := m.s.cfg.Metadata
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		err := store.Heartbeat(ctx, m.heartbeat(true))
		cancel()
		if err == nil && !store.State().LeadsAny(m.s.cfg.NodeID) {
			m.s.log.Info("controlled shutdown: leaderships moved")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.s.log.Warn("controlled shutdown: leaderships not all moved in time; stopping anyway", "timeout", timeout)
}

// liveBrokers returns the registered, unfenced brokers in id order.
func liveBrokers(state *metadata.State) []metadata.Broker {
	var out []metadata.Broker
	for _, b := range state.Brokers() {
		if !b.Fenced {
			out = append(out, b)
		}
	}
	return out
}

// placeNew assigns replicas to partitions new partitions across the live
// brokers, as Kafka does without racks: partition i starts at a random
// broker plus i, and its followers follow in id order, so leaders and
// replicas spread evenly. With racks, consecutive replicas of a partition
// go to different racks where there are enough.
func placeNew(live []metadata.Broker, partitions int32, replicationFactor int) [][]int32 {
	ordered := rackAlternating(live)
	start := rand.IntN(len(ordered))
	out := make([][]int32, partitions)
	for i := range out {
		replicas := make([]int32, 0, replicationFactor)
		for r := range replicationFactor {
			replicas = append(replicas, ordered[(start+i+r)%len(ordered)].ID)
		}
		out[i] = replicas
	}
	return out
}

// rackAlternating orders brokers so that consecutive ones are on different
// racks where possible (Kafka's rack-alternated broker list).
func rackAlternating(brokers []metadata.Broker) []metadata.Broker {
	byRack := map[string][]metadata.Broker{}
	var racks []string
	for _, b := range brokers {
		if _, ok := byRack[b.Rack]; !ok {
			racks = append(racks, b.Rack)
		}
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	if len(racks) <= 1 {
		return brokers
	}
	slices.Sort(racks)
	out := make([]metadata.Broker, 0, len(brokers))
	for i := 0; len(out) < len(brokers); i++ {
		for _, rack := range racks {
			if i < len(byRack[rack]) {
				out = append(out, byRack[rack][i])
			}
		}
	}
	return out
}

// PlaceReplicasAcross is Strata's placement of new partitions (placeNew)
// over the given brokers: what `strata partitions reassign --generate`
// proposes for the topics it moves.
func PlaceReplicasAcross(brokers []metadata.Broker, partitions int32, replicationFactor int) [][]int32 {
	return placeNew(brokers, partitions, replicationFactor)
}
