package group

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// member is one member of a group.
type member struct {
	id           string // changes when a static member is replaced
	instanceID   string // "" for a dynamic member
	clientID     string
	clientHost   string
	protocolType string
	protocols    []Protocol // in the member's order of preference
	// sessionTimeout and rebalanceTimeout as the member last asked.
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	assignment       []byte // from the leader's last SyncGroup
	// joinDone and syncDone are the JoinGroup and SyncGroup waiting for
	// the group; nil when there is none.
	joinDone func(JoinResult)
	syncDone func(SyncResult)
	// isNew: the member has not yet completed a join, so it cannot
	// heartbeat, and its join is bounded by Config.NewMemberJoinTimeout.
	isNew     bool
	heartbeat *scheduled // session (or new-member join) deadline; nil when none
	seq       uint64     // join order: leader succession and listing order
}

func (m *member) awaitingRebalance() bool { return m.joinDone != nil || m.syncDone != nil }

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameProtocols reports whether ps is exactly m's protocol list: same
// names, metadata and order, as Kafka's MemberMetadata.matches.
func (m *member) sameProtocols(ps []Protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b Protocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
}

// group is one consumer (or connect, or any other protocol type) group.
type group struct {
	c  *Coordinator
	id string

	// writeMu serializes the group's offset commits with its deletion
	// and with offset expiry's and OffsetDelete's decisions
	// (Coordinator.withGroup, deleteWith, withDescription) without
	// holding mu while a commit awaits its replicas: heartbeats, joins
	// and timers go on.
	// Lock order: writeMu, then mu, then the shard's mu.
	writeMu sync.Mutex

	mu           sync.Mutex // guards every field below
	state        State
	stateTime    time.Time // when state was entered
	unloaded     bool      // Dead because the coordinator closed, not deleted
	protocolType string    // set by the first member of an empty group
	protocolName string    // selected at the end of each join phase
	generation   int32
	leaderID     string
	members      map[string]*member
	static       map[string]string     // group instance id -> member id
	pending      map[string]*scheduled // member ids given out with MEMBER_ID_REQUIRED -> expiry
	pendingSync  map[string]bool       // members of this generation that have not sent SyncGroup
	nextSeq      uint64
	// newMemberAdded: a member joined during the initial rebalance delay,
	// which extends it once more.
	newMemberAdded bool
	joinTimer      *scheduled // end of the join phase
	initialJoin    bool       // joinTimer is the initial delay: not ended early by a full group
	syncTimer      *scheduled // removes members that do not sync in time
	// subscribed is the topics the members of the current generation
	// subscribe to (subscriptionLocked), set when a generation begins or
	// is loaded, for OffsetDelete; nil if not known. Never modified: a
	// generation sets a new map.
	subscribed map[string]bool
	// stores are the group's records captured (storeLocked) and not yet
	// handed to the Store, in capture order; storing is set while a
	// goroutine hands them over (drainStores); unstored counts the records
	// handed over whose done the Store has not called yet.
	stores   []queuedStore
	storing  bool
	unstored int
}

// queuedStore is a record waiting to be handed to the Store, and what to
// call when it is stored.
type queuedStore struct {
	rec  Record
	done func(error)
}

func newGroup(c *Coordinator, id string) *group {
	return &group{
		c:           c,
		id:          id,
		state:       StateEmpty,
		stateTime:   c.cfg.Clock.Now(),
		members:     map[string]*member{},
		static:      map[string]string{},
		pending:     map[string]*scheduled{},
		pendingSync: map[string]bool{},
	}
}

func (g *group) setStateLocked(s State) {
	g.state = s
	g.stateTime = g.c.cfg.Clock.Now()
}

func (g *group) deadErrorLocked() error {
	if g.unloaded {
		return kerr.NotCoordinator
	}
	// A deleted group: the client looks the coordinator up again and
	// retries, finding no group.
	return kerr.CoordinatorNotAvailable
}

func (g *group) membersInOrderLocked() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return ms
}

func (g *group) logf(format string, args ...any) {
	g.c.cfg.Logger.Info(fmt.Sprintf(format, args...), "group", g.id)
}

// schedule arms a timer that calls fire with the group's lock held and runs
// the effects it collects afterwards.
func (g *group) scheduleLocked(d time.Duration, fire func(s *scheduled, fx *effects)) *scheduled {
	s := &scheduled{}
	s.timer = g.c.cfg.Clock.AfterFunc(d, func() {
		var fx effects
		g.mu.Lock()
		if g.state != StateDead {
			fire(s, &fx)
		}
		g.mu.Unlock()
		fx.run()
	})
	return s
}

// ---- answers ----

func (g *group) answerJoinLocked(m *member, res JoinResult, fx *effects) bool {
	done := m.joinDone
	if done == nil {
		return false
	}
	m.joinDone = nil
	fx.add(func() { done(res) })
	return true
}

func (g *group) answerSyncLocked(m *member, res SyncResult, fx *effects) bool {
	done := m.syncDone
	if done == nil {
		return false
	}
	m.syncDone = nil
	fx.add(func() { done(res) })
	return true
}

func (g *group) joinMembersLocked() []JoinMember {
	ms := g.membersInOrderLocked()
	out := make([]JoinMember, len(ms))
	for i, m := range ms {
		out[i] = JoinMember{MemberID: m.id, GroupInstanceID: m.instanceID, Metadata: m.metadataFor(g.protocolName)}
	}
	return out
}

func (g *group) joinResultLocked(m *member) JoinResult {
	res := JoinResult{
		MemberID:     m.id,
		GenerationID: g.generation,
		ProtocolType: g.protocolType,
		ProtocolName: g.protocolName,
		LeaderID:     g.leaderID,
	}
	if m.id == g.leaderID {
		res.Members = g.joinMembersLocked()
	}
	return res
}

// ---- membership ----

// validateMemberLocked checks that memberID is a member and, for a static
// member, that instanceID still maps to it (Kafka's validateCurrentMember).
func (g *group) validateMemberLocked(memberID, instanceID string) error {
	if instanceID != "" {
		current, ok := g.static[instanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID
		case current != memberID:
			return kerr.FencedInstanceID
		}
		return nil
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID
	}
	return nil
}

func (g *group) candidateProtocolsLocked() map[string]bool {
	counts := map[string]int{}
	for _, m := range g.members {
		seen := map[string]bool{}
		for _, p := range m.protocols {
			if !seen[p.Name] {
				seen[p.Name] = true
				counts[p.Name]++
			}
		}
	}
	out := map[string]bool{}
	for name, n := range counts {
		if n == len(g.members) {
			out[name] = true
		}
	}
	return out
}

// supportsProtocolsLocked reports whether a member with this protocol type
// and list may join: any non-empty one into a group without members, else
// the group's type and at least one protocol every member supports.
func (g *group) supportsProtocolsLocked(protocolType string, protocols []Protocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	candidates := g.candidateProtocolsLocked()
	for _, p := range protocols {
		if candidates[p.Name] {
			return true
		}
	}
	return false
}

// selectProtocolLocked picks the protocol for the next generation: every
// member votes for its most preferred protocol that all members support,
// and the most votes win. Kafka leaves ties to hash order; here they go to
// the leader's preference, so the choice is deterministic.
func (g *group) selectProtocolLocked() string {
	candidates := g.candidateProtocolsLocked()
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if candidates[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	var preference []Protocol
	if leader := g.members[g.leaderID]; leader != nil {
		preference = leader.protocols
	}
	rank := func(name string) int {
		if i := slices.IndexFunc(preference, func(p Protocol) bool { return p.Name == name }); i >= 0 {
			return i
		}
		return len(preference)
	}
	// "" is a protocol name like any other (Kafka accepts it): whether one
	// is chosen yet is found, not best == "".
	best, found := "", false
	for name, n := range votes {
		switch {
		case !found, n > votes[best]:
			found = true
			best = name
		case n == votes[best]:
			if r, rb := rank(name), rank(best); r < rb || (r == rb && name < best) {
				best = name
			}
		}
	}
	return best
}

func (g *group) rebalanceTimeoutLocked() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = maxDuration(d, m.rebalanceTimeout)
	}
	return d
}

func (g *group) addMemberLocked(m *member, done func(JoinResult)) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leaderID == "" {
		g.leaderID = m.id
	}
	m.seq = g.nextSeq
	g.nextSeq++
	g.members[m.id] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = m.id
	}
	m.joinDone = done
	if p, ok := g.pending[m.id]; ok {
		p.stop()
		delete(g.pending, m.id)
	}
}

// removeLocked removes m, answering its waiting requests with
// UNKNOWN_MEMBER_ID so that a live client joins again.
func (g *group) removeLocked(m *member, fx *effects) {
	g.answerJoinLocked(m, joinError("", kerr.UnknownMemberID), fx)
	g.answerSyncLocked(m, SyncResult{Err: kerr.UnknownMemberID}, fx)
	delete(g.members, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	g.dropPendingSyncLocked(m.id)
	m.heartbeat.stop()
	m.heartbeat = nil
	if g.leaderID == m.id {
		g.leaderID = ""
		if rest := g.membersInOrderLocked(); len(rest) > 0 {
			g.leaderID = rest[0].id
		}
	}
}

// removeAndUpdateLocked removes m and moves the group on: a rebalance for a
// settled group, possibly the end of the join phase for a rebalancing one.
func (g *group) removeAndUpdateLocked(m *member, reason string, fx *effects) {
	g.removeLocked(m, fx)
	switch g.state {
	case StateStable, StateCompletingRebalance:
		g.prepareRebalanceLocked(reason, fx)
	case StatePreparingRebalance:
		g.tryCompleteJoinLocked(fx)
	}
}

func (g *group) dropPendingSyncLocked(memberID string) {
	delete(g.pendingSync, memberID)
	if len(g.pendingSync) == 0 {
		g.syncTimer.stop()
		g.syncTimer = nil
	}
}

// scheduleHeartbeatLocked (re)starts m's session deadline.
func (g *group) scheduleHeartbeatLocked(m *member, d time.Duration) {
	m.heartbeat.stop()
	m.heartbeat = g.scheduleLocked(d, func(s *scheduled, fx *effects) {
		if g.members[m.id] != m || m.heartbeat != s {
			return
		}
		m.heartbeat = nil
		// A member waiting in a rebalance cannot heartbeat; its deadline
		// restarts when the rebalance answers it. A new member's deadline
		// is its join timeout, which waiting does not extend.
		if !m.isNew && m.awaitingRebalance() {
			return
		}
		g.logf("member %s expired (new: %v)", m.id, m.isNew)
		g.removeAndUpdateLocked(m, fmt.Sprintf("removing member %s on heartbeat expiration", m.id), fx)
	})
}

// ---- rebalance ----

func (g *group) maybePrepareRebalanceLocked(reason string, fx *effects) {
	switch g.state {
	case StateStable, StateCompletingRebalance, StateEmpty:
		g.prepareRebalanceLocked(reason, fx)
	}
}

// prepareRebalanceLocked starts a join phase: members must (re)join, within
// the rebalance timeout, or after the initial delay for an empty group.
func (g *group) prepareRebalanceLocked(reason string, fx *effects) {
	if g.state == StateCompletingRebalance {
		g.resetAndPropagateAssignmentErrorLocked(kerr.RebalanceInProgress, fx)
	}
	clear(g.pendingSync)
	g.syncTimer.stop()
	g.syncTimer = nil
	g.joinTimer.stop()
	g.newMemberAdded = false
	wasEmpty := g.state == StateEmpty
	g.logf("preparing to rebalance in state %v with old generation %d (reason: %s)", g.state, g.generation, reason)
	g.setStateLocked(StatePreparingRebalance)
	if delay := g.c.cfg.InitialRebalanceDelay; wasEmpty && delay > 0 {
		g.initialJoin = true
		g.joinTimer = g.initialJoinTimerLocked(delay, maxDuration(g.rebalanceTimeoutLocked()-delay, 0))
		return
	}
	g.initialJoin = false
	g.joinTimer = g.joinTimerLocked(g.rebalanceTimeoutLocked())
	g.tryCompleteJoinLocked(fx)
}

func (g *group) joinTimerLocked(d time.Duration) *scheduled {
	return g.scheduleLocked(d, func(s *scheduled, fx *effects) {
		if g.joinTimer == s {
			g.completeJoinLocked(fx)
		}
	})
}

// initialJoinTimerLocked waits delay; if a member joined meanwhile and
// remaining time is left, it waits once more.
func (g *group) initialJoinTimerLocked(delay, remaining time.Duration) *scheduled {
	return g.scheduleLocked(delay, func(s *scheduled, fx *effects) {
		if g.joinTimer != s {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			next := min(g.c.cfg.InitialRebalanceDelay, remaining)
			g.joinTimer = g.initialJoinTimerLocked(next, remaining-next)
			return
		}
		g.completeJoinLocked(fx)
	})
}

// fullLocked reports whether the group has no room for another member
// (group.max.size). Members still to rejoin a rebalance count: a new
// member does not take the place of one that is slow to rejoin. Kafka
// counts only the members that rejoined during a rebalance, so there an
// existing member can find its place taken and be refused.
func (g *group) fullLocked() bool { return len(g.members) >= g.c.cfg.MaxSize }

// awaitingJoinLocked is the number of members whose JoinGroup waits for
// the join phase to end.
func (g *group) awaitingJoinLocked() int {
	n := 0
	for _, m := range g.members {
		if m.joinDone != nil {
			n++
		}
	}
	return n
}

func (g *group) allJoinedLocked() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinDone == nil {
			return false
		}
	}
	return true
}

func (g *group) tryCompleteJoinLocked(fx *effects) {
	if g.state == StatePreparingRebalance && !g.initialJoin && g.allJoinedLocked() {
		g.completeJoinLocked(fx)
	}
}

// completeJoinLocked ends the join phase: dynamic members that did not
// rejoin are dropped, a new generation starts and every waiting member gets
// its JoinGroup answer (the leader with the member list).
func (g *group) completeJoinLocked(fx *effects) {
	g.joinTimer.stop()
	g.joinTimer = nil
	g.initialJoin = false
	for _, m := range g.membersInOrderLocked() {
		if m.joinDone == nil && m.instanceID == "" {
			g.logf("removing member %s: it did not rejoin in time", m.id)
			g.removeLocked(m, fx)
		}
	}
	if !g.electJoinedLeaderLocked() && len(g.members) > 0 {
		// Only static members that have not rejoined are left: wait again,
		// until they rejoin or their sessions expire.
		g.logf("no member rejoined; waiting another rebalance timeout")
		g.joinTimer = g.joinTimerLocked(g.rebalanceTimeoutLocked())
		return
	}
	g.generation++
	clear(g.pendingSync)
	if len(g.members) == 0 {
		g.protocolName = ""
		g.subscribed = g.subscriptionLocked()
		g.setStateLocked(StateEmpty)
		g.logf("generation %d is empty", g.generation)
		rec := g.recordLocked(nil)
		g.storeLocked(rec, func(err error) {
			if err != nil {
				// As in Kafka: harmless, an empty generation has nobody to fence.
				g.logf("storing empty generation %d failed: %v", rec.GenerationID, err)
			}
		}, fx)
		return
	}
	g.protocolName = g.selectProtocolLocked()
	g.subscribed = g.subscriptionLocked()
	g.setStateLocked(StateCompletingRebalance)
	g.logf("generation %d with %d members, protocol %q, leader %s", g.generation, len(g.members), g.protocolName, g.leaderID)
	for _, m := range g.membersInOrderLocked() {
		g.answerJoinLocked(m, g.joinResultLocked(m), fx)
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	generation := g.generation
	g.syncTimer = g.scheduleLocked(g.rebalanceTimeoutLocked(), func(s *scheduled, fx *effects) {
		if g.syncTimer != s || g.generation != generation {
			return
		}
		g.syncTimer = nil
		if (g.state != StateCompletingRebalance && g.state != StateStable) || len(g.pendingSync) == 0 {
			return
		}
		var ids []string
		for id := range g.pendingSync {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if m := g.members[id]; m != nil {
				g.removeLocked(m, fx)
			}
		}
		g.prepareRebalanceLocked(fmt.Sprintf("removing %v: no SyncGroup within the rebalance timeout", ids), fx)
	})
}

// electJoinedLeaderLocked keeps the leader if it rejoined, else makes the
// first member that rejoined the leader; false if nobody rejoined.
func (g *group) electJoinedLeaderLocked() bool {
	leader := g.members[g.leaderID]
	if leader == nil {
		return false
	}
	if leader.joinDone != nil {
		return true
	}
	for _, m := range g.membersInOrderLocked() {
		if m.joinDone != nil {
			g.leaderID = m.id
			return true
		}
	}
	return false
}

// propagateAssignmentLocked answers every waiting SyncGroup, with its
// assignment or with err, and restarts their session deadlines.
func (g *group) propagateAssignmentLocked(err error, fx *effects) {
	for _, m := range g.membersInOrderLocked() {
		res := SyncResult{Err: err}
		if err == nil {
			res = SyncResult{ProtocolType: g.protocolType, ProtocolName: g.protocolName, Assignment: m.assignment}
		}
		if g.answerSyncLocked(m, res, fx) {
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		}
	}
}

func (g *group) resetAndPropagateAssignmentErrorLocked(err error, fx *effects) {
	for _, m := range g.members {
		m.assignment = nil
	}
	g.propagateAssignmentLocked(err, fx)
}

// killLocked makes the group Dead (deleted or unloaded): timers stop and
// waiting requests are answered with err.
func (g *group) killLocked(err error, fx *effects) {
	for _, m := range g.membersInOrderLocked() {
		g.answerJoinLocked(m, joinError(m.id, err), fx)
		g.answerSyncLocked(m, SyncResult{Err: err}, fx)
		m.heartbeat.stop()
		m.heartbeat = nil
	}
	for id, p := range g.pending {
		p.stop()
		delete(g.pending, id)
	}
	g.joinTimer.stop()
	g.joinTimer = nil
	g.syncTimer.stop()
	g.syncTimer = nil
	g.setStateLocked(StateDead)
}

// storeLocked hands rec, the group as it is now (recordLocked), to the
// Store once the lock is released (with fx), after every record of the
// group captured before it: the Store appends them to the log in the
// order they are handed over, and the last one is what a coordinator
// taking over the partition restores, so they must go in the order the
// group changed. Kafka appends with the group's lock held; here the lock
// is released first (a Store may complete at once and its done call back
// into the coordinator, as may the answers run with fx), so a record
// captured later could otherwise be handed over first, e.g. by a request
// an earlier answer's callback makes: a failover would then restore
// members that already left, and reuse a generation number. done is
// called as Store.StoreGroup calls it.
func (g *group) storeLocked(rec Record, done func(error), fx *effects) {
	g.stores = append(g.stores, queuedStore{rec: rec, done: done})
	fx.add(g.drainStores)
}

// drainStores hands the group's queued records to the Store in order,
// unless another goroutine is doing so: that one hands over the records
// queued meanwhile too, including those queued from within the Store's
// callbacks it calls (which therefore never wait for it). The lock is
// not held while the Store is called.
func (g *group) drainStores() {
	g.mu.Lock()
	if g.storing {
		g.mu.Unlock()
		return
	}
	g.storing = true
	for len(g.stores) > 0 {
		s := g.stores[0]
		g.stores[0] = queuedStore{}
		g.stores = g.stores[1:]
		g.unstored++
		g.mu.Unlock()
		g.c.cfg.Store.StoreGroup(s.rec, func(err error) {
			g.mu.Lock()
			g.unstored--
			g.mu.Unlock()
			s.done(err)
		})
		g.mu.Lock()
	}
	g.stores = nil
	g.storing = false
	g.mu.Unlock()
}

// storesPendingLocked reports whether a record of the group is queued,
// being handed to the Store or not yet stored: the group's data must not
// be deleted meanwhile (deleteWith), or the record would follow the
// tombstones in the log and a coordinator taking over the partition would
// bring the group back.
func (g *group) storesPendingLocked() bool {
	return len(g.stores) > 0 || g.storing || g.unstored > 0
}

// recordLocked is the group as a Store persists it; assignments replace
// the members' current ones when not nil.
func (g *group) recordLocked(assignments map[string][]byte) Record {
	rec := Record{
		GroupID:        g.id,
		ProtocolType:   g.protocolType,
		GenerationID:   g.generation,
		Protocol:       g.protocolName,
		LeaderID:       g.leaderID,
		StateTimestamp: g.stateTime,
	}
	if len(g.members) == 0 {
		rec.LeaderID = ""
	}
	for _, m := range g.membersInOrderLocked() {
		assignment := m.assignment
		if assignments != nil {
			assignment = assignments[m.id]
		}
		rec.Members = append(rec.Members, RecordMember{
			MemberID:         m.id,
			GroupInstanceID:  m.instanceID,
			ClientID:         m.clientID,
			ClientHost:       m.clientHost,
			RebalanceTimeout: m.rebalanceTimeout,
			SessionTimeout:   m.sessionTimeout,
			Subscription:     m.metadataFor(g.protocolName),
			Assignment:       assignment,
		})
	}
	return rec
}

func restoredGroup(c *Coordinator, rec Record) (*group, error) {
	if rec.GroupID == "" {
		return nil, fmt.Errorf("%w: empty group id", ErrInvalidRecord)
	}
	g := newGroup(c, rec.GroupID)
	g.protocolType = rec.ProtocolType
	g.generation = rec.GenerationID
	if !rec.StateTimestamp.IsZero() {
		g.stateTime = rec.StateTimestamp
	}
	if len(rec.Members) == 0 {
		g.subscribed = g.subscriptionLocked()
		return g, nil
	}
	// A group with members has a selected protocol, whose name may be ""
	// (as in Kafka; older Strata versions stored that as null, which
	// reads as "" too), but not an empty protocol type.
	if rec.ProtocolType == "" {
		return nil, fmt.Errorf("%w: group %q has members but no protocol type", ErrInvalidRecord, rec.GroupID)
	}
	g.protocolName = rec.Protocol
	for _, rm := range rec.Members {
		if rm.MemberID == "" || g.members[rm.MemberID] != nil {
			return nil, fmt.Errorf("%w: group %q: empty or duplicate member id %q", ErrInvalidRecord, rec.GroupID, rm.MemberID)
		}
		if rm.GroupInstanceID != "" && g.static[rm.GroupInstanceID] != "" {
			return nil, fmt.Errorf("%w: group %q: duplicate instance id %q", ErrInvalidRecord, rec.GroupID, rm.GroupInstanceID)
		}
		m := &member{
			id:               rm.MemberID,
			instanceID:       rm.GroupInstanceID,
			clientID:         rm.ClientID,
			clientHost:       rm.ClientHost,
			protocolType:     rec.ProtocolType,
			protocols:        []Protocol{{Name: rec.Protocol, Metadata: slices.Clone(rm.Subscription)}},
			sessionTimeout:   rm.SessionTimeout,
			rebalanceTimeout: rm.RebalanceTimeout,
			assignment:       slices.Clone(rm.Assignment),
		}
		if m.sessionTimeout <= 0 {
			m.sessionTimeout = c.cfg.MinSessionTimeout
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.addMemberLocked(m, nil)
	}
	if g.members[rec.LeaderID] != nil {
		g.leaderID = rec.LeaderID
	}
	g.subscribed = g.subscriptionLocked()
	g.state = StateStable
	return g, nil
}

// subscriptionLocked returns the topics the group's members subscribe to
// with the selected protocol, as Kafka's computeSubscribedTopics: for a
// consumer group with members, the union of their subscriptions; nil,
// not known, without members (Kafka's None: a group then rebalancing from
// Empty keeps every offset), for another protocol type or when one does
// not decode.
func (g *group) subscriptionLocked() map[string]bool {
	if g.protocolType != "consumer" || len(g.members) == 0 {
		return nil
	}
	topics := map[string]bool{}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if meta.ReadFrom(m.metadataFor(g.protocolName)) != nil {
			return nil
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics
}
