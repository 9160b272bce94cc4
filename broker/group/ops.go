package group

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// joinLocked handles a JoinGroup on an existing group (Kafka's
// doNewMemberJoinGroup and doCurrentMemberJoinGroup).
func (g *group) joinLocked(req JoinRequest, done func(JoinResult), fx *effects) {
	answer := func(res JoinResult) { fx.add(func() { done(res) }) }
	switch {
	case g.state == StateDead:
		answer(joinError(req.MemberID, g.deadErrorLocked()))
		return
	case !g.supportsProtocolsLocked(req.ProtocolType, req.Protocols):
		answer(joinError(req.MemberID, kerr.InconsistentGroupProtocol))
		return
	}
	if req.MemberID == "" {
		g.joinNewMemberLocked(req, done, fx)
	} else {
		g.joinCurrentMemberLocked(req, done, fx)
	}
	// The join may have been the last one the phase waited for.
	g.tryCompleteJoinLocked(fx)
}

func (g *group) joinNewMemberLocked(req JoinRequest, done func(JoinResult), fx *effects) {
	// Kafka names a static member after its instance id, a dynamic one
	// after its client.
	prefix := req.ClientID
	if req.GroupInstanceID != "" {
		prefix = req.GroupInstanceID
	}
	oldID, replaces := g.static[req.GroupInstanceID]
	replaces = replaces && req.GroupInstanceID != ""
	if !replaces && g.fullLocked() {
		// Before a KIP-394 member id is handed out too, as Kafka does.
		g.logf("refused a new member of client %q: the group has %d members (group.max.size)", req.ClientID, len(g.members))
		fx.add(func() { done(joinError("", kerr.GroupMaxSizeReached)) })
		return
	}
	memberID := g.c.cfg.NewMemberID(prefix)
	switch {
	case replaces:
		g.replaceStaticMemberLocked(oldID, memberID, req, done, fx)
	case req.GroupInstanceID != "":
		g.addMemberAndRebalanceLocked(memberID, req, done, fx)
	case req.RequireKnownMemberID:
		// KIP-394: hand out the id and wait for the member to come back
		// with it, so that a client that never does leaves no member
		// behind, only this entry, which expires with the session timeout.
		id := memberID
		g.pending[id] = g.scheduleLocked(req.SessionTimeout, func(s *scheduled, fx *effects) {
			if g.pending[id] != s {
				return
			}
			delete(g.pending, id)
			g.logf("pending member %s expired", id)
			g.tryCompleteJoinLocked(fx)
		})
		fx.add(func() { done(joinError(id, kerr.MemberIDRequired)) })
	default:
		g.addMemberAndRebalanceLocked(memberID, req, done, fx)
	}
}

func (g *group) joinCurrentMemberLocked(req JoinRequest, done func(JoinResult), fx *effects) {
	answer := func(res JoinResult) { fx.add(func() { done(res) }) }
	if _, ok := g.pending[req.MemberID]; ok {
		// The second join of KIP-394. A pending id is never static; a
		// client that now names an instance id claims it like a new one.
		if _, taken := g.static[req.GroupInstanceID]; req.GroupInstanceID != "" && taken {
			answer(joinError(req.MemberID, kerr.FencedInstanceID))
			return
		}
		if g.fullLocked() {
			// Others joined since the id was handed out.
			g.pending[req.MemberID].stop()
			delete(g.pending, req.MemberID)
			g.logf("refused pending member %s: the group has %d members (group.max.size)", req.MemberID, len(g.members))
			answer(joinError("", kerr.GroupMaxSizeReached))
			return
		}
		g.addMemberAndRebalanceLocked(req.MemberID, req, done, fx)
		return
	}
	if req.GroupInstanceID != "" {
		if owner, ok := g.static[req.GroupInstanceID]; ok && owner != req.MemberID {
			// Another process took over this instance id: this one must stop.
			answer(joinError(req.MemberID, kerr.FencedInstanceID))
			return
		} else if !ok {
			answer(joinError(req.MemberID, kerr.UnknownMemberID))
			return
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		answer(joinError(req.MemberID, kerr.UnknownMemberID))
		return
	}
	switch g.state {
	case StatePreparingRebalance:
		if m.joinDone == nil && g.awaitingJoinLocked() >= g.c.cfg.MaxSize {
			// The group has more members than group.max.size (it was
			// lowered, and the group restored over it), and MaxSize of
			// them have rejoined already: this one is shed, as in
			// Kafka's acceptJoiningMember. A group within the limit
			// never gets here: new members take no place of one still
			// to rejoin (fullLocked).
			g.logf("removing member %s: %d members rejoined already (group.max.size)", m.id, g.c.cfg.MaxSize)
			g.removeLocked(m, fx)
			answer(joinError("", kerr.GroupMaxSizeReached))
			return
		}
		// Already rebalancing: the member waits with the others.
		g.updateMemberLocked(m, req, done, fx)
	case StateCompletingRebalance:
		if m.sameProtocols(req.Protocols) {
			// The member lost the answer to its previous join: answer again.
			answer(g.joinResultLocked(m))
			return
		}
		g.updateMemberLocked(m, req, done, fx)
		g.prepareRebalanceLocked(fmt.Sprintf("member %s rejoined with new metadata during CompletingRebalance", m.id), fx)
	case StateStable:
		switch {
		case m.id == g.leaderID:
			// The leader rejoins when it sees a change the coordinator
			// cannot (for consumers, topic metadata), or to finish a
			// cooperative rebalance.
			g.updateMemberLocked(m, req, done, fx)
			g.prepareRebalanceLocked(fmt.Sprintf("leader %s rejoined", m.id), fx)
		case !m.sameProtocols(req.Protocols):
			g.updateMemberLocked(m, req, done, fx)
			g.prepareRebalanceLocked(fmt.Sprintf("member %s rejoined with new metadata", m.id), fx)
		default:
			// A follower with nothing new gets the current generation and
			// syncs again.
			answer(g.joinResultLocked(m))
		}
	default:
		// Empty with a member cannot happen; make the client start over.
		answer(joinError(req.MemberID, kerr.UnknownMemberID))
	}
}

func (g *group) addMemberAndRebalanceLocked(memberID string, req JoinRequest, done func(JoinResult), fx *effects) {
	m := &member{
		id:               memberID,
		instanceID:       req.GroupInstanceID,
		clientID:         req.ClientID,
		clientHost:       req.ClientHost,
		protocolType:     req.ProtocolType,
		protocols:        req.Protocols,
		sessionTimeout:   req.SessionTimeout,
		rebalanceTimeout: req.RebalanceTimeout,
		isNew:            true,
	}
	if g.state == StatePreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.addMemberLocked(m, done)
	// A new member cannot heartbeat until its join completes; bound the
	// wait instead, in case its client gave up and will retry as another.
	g.scheduleHeartbeatLocked(m, g.c.cfg.NewMemberJoinTimeout)
	g.maybePrepareRebalanceLocked(fmt.Sprintf("adding member %s", memberID), fx)
}

// updateMemberLocked records a rejoin: new protocols and timeouts, and the
// join to answer. A join it replaces (a client that retried) is answered
// with REBALANCE_IN_PROGRESS, which makes a live client join again.
func (g *group) updateMemberLocked(m *member, req JoinRequest, done func(JoinResult), fx *effects) {
	m.protocols = req.Protocols
	m.sessionTimeout = req.SessionTimeout
	m.rebalanceTimeout = req.RebalanceTimeout
	if req.ClientID != "" || req.ClientHost != "" {
		m.clientID, m.clientHost = req.ClientID, req.ClientHost
	}
	g.answerJoinLocked(m, joinError(m.id, kerr.RebalanceInProgress), fx)
	m.joinDone = done
}

// replaceStaticMemberLocked gives a static member's place to a new process
// with the same instance id (KIP-345): the old member id is fenced, and a
// stable group keeps its generation and assignment when the selected
// protocol would not change.
func (g *group) replaceStaticMemberLocked(oldID, newID string, req JoinRequest, done func(JoinResult), fx *effects) {
	m := g.members[oldID]
	previousLeader := g.leaderID
	g.answerJoinLocked(m, joinError(oldID, kerr.FencedInstanceID), fx)
	g.answerSyncLocked(m, SyncResult{Err: kerr.FencedInstanceID}, fx)
	g.renameMemberLocked(m, newID)
	old := *m
	g.updateMemberLocked(m, req, done, fx)
	if m.isNew {
		// Still in its first join phase, which it waits for like any new
		// member: its session cannot be kept alive meanwhile.
		g.scheduleHeartbeatLocked(m, g.c.cfg.NewMemberJoinTimeout)
	} else {
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
	}
	g.logf("static member %s replaced member %s with %s", m.instanceID, oldID, newID)
	switch g.state {
	case StateStable:
		if g.selectProtocolLocked() != g.protocolName {
			g.prepareRebalanceLocked(fmt.Sprintf("static member %s rejoined with protocols that change the selected one", m.instanceID), fx)
			return
		}
		generation := g.generation
		g.storeLocked(g.recordLocked(nil), func(err error) {
			var fx effects
			g.mu.Lock()
			g.staticReplacementStoredLocked(m, &old, oldID, newID, previousLeader, generation, err, req.SupportsSkipAssignment, &fx)
			g.mu.Unlock()
			fx.run()
		}, fx)
	case StateCompletingRebalance:
		// The leader may already have assigned to the old member id.
		g.prepareRebalanceLocked(fmt.Sprintf("static member %s rejoined during CompletingRebalance", m.instanceID), fx)
	}
	// PreparingRebalance: the member now waits in the join phase like the
	// others.
}

func (g *group) renameMemberLocked(m *member, newID string) {
	oldID := m.id
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	if g.leaderID == oldID {
		g.leaderID = newID
	}
	if m.instanceID != "" {
		g.static[m.instanceID] = newID
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = true
	}
}

// staticReplacementStoredLocked answers the join of a static member that
// replaced another in a stable group, once the group is stored; on a store
// failure the replacement is undone.
func (g *group) staticReplacementStoredLocked(m *member, old *member, oldID, newID, previousLeader string, generation int32, err error, skipAssignment bool, fx *effects) {
	if g.state != StateStable || g.generation != generation || m.id != newID || g.members[m.id] != m || m.joinDone == nil {
		// A rebalance or another replacement took over and answers (or
		// answered) the join: another replacement's join is answered on
		// its own record, not on this one, which names newID.
		return
	}
	if err != nil {
		g.logf("storing static member %s failed, reverting to %s: %v", m.id, oldID, err)
		done := m.joinDone
		m.joinDone = nil
		m.protocols, m.sessionTimeout, m.rebalanceTimeout = old.protocols, old.sessionTimeout, old.rebalanceTimeout
		m.clientID, m.clientHost = old.clientID, old.clientHost
		g.renameMemberLocked(m, oldID)
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		res := joinError("", storeError(err))
		fx.add(func() { done(res) })
		return
	}
	res := JoinResult{
		MemberID:     m.id,
		GenerationID: g.generation,
		ProtocolType: g.protocolType,
		ProtocolName: g.protocolName,
		LeaderID:     g.leaderID,
	}
	if skipAssignment {
		// JoinGroup v9+: the leader learns it leads, with the members, but
		// keeps the current assignment.
		if m.id == g.leaderID {
			res.Members = g.joinMembersLocked()
			res.SkipAssignment = true
		}
	} else {
		// Older clients would run the assignor if they saw themselves as
		// leader, for an assignment a stable group ignores: name the
		// leader as it was before the replacement, which they cannot match.
		res.LeaderID = previousLeader
	}
	g.answerJoinLocked(m, res, fx)
	// Its session deadline may have passed while it waited, unable to
	// heartbeat: it starts now.
	g.scheduleHeartbeatLocked(m, m.sessionTimeout)
}

// syncLocked handles a SyncGroup (Kafka's doSyncGroup).
func (g *group) syncLocked(req SyncRequest, assignments map[string][]byte, done func(SyncResult), fx *effects) {
	answer := func(res SyncResult) { fx.add(func() { done(res) }) }
	if g.state == StateDead {
		answer(SyncResult{Err: g.deadErrorLocked()})
		return
	}
	if err := g.validateMemberLocked(req.MemberID, req.GroupInstanceID); err != nil {
		answer(SyncResult{Err: err})
		return
	}
	switch {
	case req.GenerationID != g.generation:
		answer(SyncResult{Err: kerr.IllegalGeneration})
		return
	case req.ProtocolType != "" && req.ProtocolType != g.protocolType,
		req.ProtocolName != "" && req.ProtocolName != g.protocolName:
		answer(SyncResult{Err: kerr.InconsistentGroupProtocol})
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case StatePreparingRebalance:
		answer(SyncResult{Err: kerr.RebalanceInProgress})
	case StateCompletingRebalance:
		g.answerSyncLocked(m, SyncResult{Err: kerr.RebalanceInProgress}, fx) // a retried sync replaces the old one
		m.syncDone = done
		g.dropPendingSyncLocked(m.id)
		if m.id != g.leaderID {
			return
		}
		for id := range g.members {
			if _, ok := assignments[id]; !ok {
				assignments[id] = []byte{}
			}
		}
		generation := g.generation
		g.logf("assignment received from leader %s for generation %d", m.id, generation)
		g.storeLocked(g.recordLocked(assignments), func(err error) {
			var fx effects
			g.mu.Lock()
			g.assignmentStoredLocked(generation, assignments, err, &fx)
			g.mu.Unlock()
			fx.run()
		}, fx)
	case StateStable:
		g.dropPendingSyncLocked(m.id)
		answer(SyncResult{ProtocolType: g.protocolType, ProtocolName: g.protocolName, Assignment: m.assignment})
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
	default: // Empty: no members, so validateMemberLocked failed already
		answer(SyncResult{Err: kerr.UnknownMemberID})
	}
}

// assignmentStoredLocked makes the group Stable once the leader's
// assignment is stored, and hands it out.
func (g *group) assignmentStoredLocked(generation int32, assignments map[string][]byte, err error, fx *effects) {
	if g.state != StateCompletingRebalance || g.generation != generation {
		return // another rebalance began meanwhile; its members were told
	}
	if err != nil {
		g.logf("storing the assignment of generation %d failed: %v", generation, err)
		g.resetAndPropagateAssignmentErrorLocked(storeError(err), fx)
		g.prepareRebalanceLocked("storing the assignment failed", fx)
		return
	}
	for id, m := range g.members {
		m.assignment = assignments[id]
	}
	g.propagateAssignmentLocked(nil, fx)
	g.setStateLocked(StateStable)
}

func (g *group) heartbeatLocked(req HeartbeatRequest) error {
	if g.state == StateDead {
		return g.deadErrorLocked()
	}
	if err := g.validateMemberLocked(req.MemberID, req.GroupInstanceID); err != nil {
		return err
	}
	if req.GenerationID != g.generation {
		return kerr.IllegalGeneration
	}
	m := g.members[req.MemberID]
	switch g.state {
	case StateCompletingRebalance, StateStable:
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		return nil
	case StatePreparingRebalance:
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		return kerr.RebalanceInProgress
	}
	return kerr.UnknownMemberID
}

func (g *group) leaveLocked(leaving []LeaveMember, fx *effects) LeaveResult {
	if g.state == StateDead {
		return LeaveResult{Err: g.deadErrorLocked()}
	}
	res := LeaveResult{Members: make([]LeaveMemberResult, len(leaving))}
	for i, l := range leaving {
		r := LeaveMemberResult{MemberID: l.MemberID, GroupInstanceID: l.GroupInstanceID}
		switch {
		case l.MemberID == "":
			// An administrator removing a static member by instance id.
			if id, ok := g.static[l.GroupInstanceID]; ok && l.GroupInstanceID != "" {
				g.removeAndUpdateLocked(g.members[id], fmt.Sprintf("static member %s removed by LeaveGroup", l.GroupInstanceID), fx)
			} else {
				r.Err = kerr.UnknownMemberID
			}
		case g.pending[l.MemberID] != nil:
			g.pending[l.MemberID].stop()
			delete(g.pending, l.MemberID)
			g.tryCompleteJoinLocked(fx)
		default:
			if err := g.validateMemberLocked(l.MemberID, l.GroupInstanceID); err != nil {
				r.Err = err
				break
			}
			g.removeAndUpdateLocked(g.members[l.MemberID], fmt.Sprintf("member %s left", l.MemberID), fx)
		}
		res.Members[i] = r
	}
	return res
}

func (g *group) describeLocked() Description {
	d := Description{GroupID: g.id, State: g.state, ProtocolType: g.protocolType, StateTimestamp: g.stateTime, subscribed: g.subscribed}
	stable := g.state == StateStable
	if stable {
		d.Protocol = g.protocolName
	}
	for _, m := range g.membersInOrderLocked() {
		md := MemberDescription{MemberID: m.id, GroupInstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost}
		if stable {
			md.Metadata = m.metadataFor(g.protocolName)
			md.Assignment = m.assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

func (g *group) validateOffsetCommitLocked(req OffsetCommitRequest) error {
	if g.state == StateDead {
		return g.deadErrorLocked()
	}
	if req.GenerationID >= 0 || req.MemberID != "" || req.GroupInstanceID != "" {
		if err := g.validateMemberLocked(req.MemberID, req.GroupInstanceID); err != nil {
			return err
		}
		if req.GenerationID != g.generation {
			return kerr.IllegalGeneration
		}
	} else if g.state != StateEmpty && !req.Transactional {
		// Only members commit to a group that has them.
		return kerr.UnknownMemberID
	}
	if req.Transactional {
		// Not a heartbeat (Kafka's TxnOffsetCommit is not one either).
		return nil
	}
	switch g.state {
	case StateCompletingRebalance:
		// The member has its new generation but not yet its assignment.
		return kerr.RebalanceInProgress
	case StateStable, StatePreparingRebalance:
		if m := g.members[req.MemberID]; m != nil {
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		}
	}
	return nil
}
