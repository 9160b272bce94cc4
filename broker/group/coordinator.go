package group

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrInvalidRecord is returned by Restore for a record that cannot describe
// a group (duplicate members, members without a protocol, ...).
var ErrInvalidRecord = errors.New("group: invalid group record")

// errStoresPending is deleteWith's answer for a group with a record not
// yet stored: retriable, the record is stored shortly.
var errStoresPending = kerr.CoordinatorLoadInProgress

// ErrGroupExists is returned by Restore for a group that is already loaded.
var ErrGroupExists = errors.New("group: group already loaded")

// Coordinator runs the classic rebalance protocol for a set of groups: in
// the broker, the groups of one __consumer_offsets partition. See the
// package documentation for its threading contract.
type Coordinator struct {
	cfg Config // with defaults; read-only after New

	mu     sync.Mutex        // guards groups and closed; taken before a group's mu, never after
	groups map[string]*group // by group id; a Dead group only while Delete removes it
	closed bool              // Close was called: every call answers NOT_COORDINATOR
}

// New returns a Coordinator with no groups.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg.withDefaults(), groups: make(map[string]*group)}, nil
}

// effects are calls collected while a group's lock is held and made after
// it is released: answers to waiting requests and Store calls, which may
// call back into the coordinator.
type effects []func()

func (fx *effects) add(f func()) { *fx = append(*fx, f) }

func (fx effects) run() {
	for _, f := range fx {
		f()
	}
}

// lookup returns the group, nil if there is none, or NOT_COORDINATOR after
// Close.
func (c *Coordinator) lookup(groupID string) (*group, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, kerr.NotCoordinator
	}
	return c.groups[groupID], nil
}

// lookupOrCreate returns the group, creating it Empty if there is none.
func (c *Coordinator) lookupOrCreate(groupID string) (*group, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, kerr.NotCoordinator
	}
	g := c.groups[groupID]
	if g == nil {
		g = newGroup(c, groupID)
		c.groups[groupID] = g
	}
	return g, nil
}

// Join handles a JoinGroup. done is called exactly once, without locks
// held: at once for errors and some rejoins, else when the group's join
// phase ends (which can be minutes later, on another goroutine). done may
// be called before Join returns.
func (c *Coordinator) Join(req JoinRequest, done func(JoinResult)) {
	if done == nil {
		done = func(JoinResult) {}
	}
	req.Protocols = copyProtocols(req.Protocols)
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	switch {
	case req.GroupID == "":
		done(joinError(req.MemberID, kerr.InvalidGroupID))
		return
	case req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout:
		done(joinError(req.MemberID, kerr.InvalidSessionTimeout))
		return
	}
	var g *group
	var err error
	if req.MemberID == "" {
		g, err = c.lookup(req.GroupID)
		if err == nil && g == nil {
			// A group is only created for a join it would accept, so a
			// malformed first join leaves nothing behind.
			if req.ProtocolType == "" || len(req.Protocols) == 0 {
				err = kerr.InconsistentGroupProtocol
			} else {
				g, err = c.lookupOrCreate(req.GroupID)
			}
		}
	} else {
		g, err = c.lookup(req.GroupID)
		if err == nil && g == nil {
			err = kerr.UnknownMemberID
		}
	}
	if err != nil {
		done(joinError(req.MemberID, err))
		return
	}
	var fx effects
	g.mu.Lock()
	g.joinLocked(req, done, &fx)
	g.mu.Unlock()
	fx.run()
}

// Sync handles a SyncGroup. done is called exactly once, without locks
// held: at once, or for a rebalancing group when the leader's assignment
// is stored (or the rebalance is abandoned). done may be called before
// Sync returns.
func (c *Coordinator) Sync(req SyncRequest, done func(SyncResult)) {
	if done == nil {
		done = func(SyncResult) {}
	}
	if req.GroupID == "" {
		done(SyncResult{Err: kerr.InvalidGroupID})
		return
	}
	g, err := c.lookup(req.GroupID)
	if err == nil && g == nil {
		err = kerr.UnknownMemberID
	}
	if err != nil {
		done(SyncResult{Err: err})
		return
	}
	assignments := make(map[string][]byte, len(req.Assignments))
	for _, a := range req.Assignments {
		assignments[a.MemberID] = slices.Clone(a.Assignment)
	}
	var fx effects
	g.mu.Lock()
	g.syncLocked(req, assignments, done, &fx)
	g.mu.Unlock()
	fx.run()
}

// Heartbeat handles a Heartbeat: nil, or the error a member acts on
// (REBALANCE_IN_PROGRESS: rejoin; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID: rejoin or stop).
func (c *Coordinator) Heartbeat(req HeartbeatRequest) error {
	if req.GroupID == "" {
		return kerr.InvalidGroupID
	}
	g, err := c.lookup(req.GroupID)
	if err != nil {
		return err
	}
	if g == nil {
		return kerr.UnknownMemberID
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.heartbeatLocked(req)
}

// Leave handles a LeaveGroup for one or more members. Requests waiting for
// the group (other members' joins) may be answered from this call, without
// locks held, before it returns.
func (c *Coordinator) Leave(groupID string, members []LeaveMember) LeaveResult {
	if groupID == "" {
		return LeaveResult{Err: kerr.InvalidGroupID}
	}
	g, err := c.lookup(groupID)
	if err != nil {
		return LeaveResult{Err: err}
	}
	if g == nil {
		res := LeaveResult{Members: make([]LeaveMemberResult, len(members))}
		for i, m := range members {
			res.Members[i] = LeaveMemberResult{MemberID: m.MemberID, GroupInstanceID: m.GroupInstanceID, Err: kerr.UnknownMemberID}
		}
		return res
	}
	var fx effects
	g.mu.Lock()
	res := g.leaveLocked(members, &fx)
	g.mu.Unlock()
	fx.run()
	return res
}

// Describe describes a group. A group that does not exist is described as
// Dead with no members, and GROUP_ID_NOT_FOUND; Kafka answers that with no
// error before DescribeGroups v6, so the caller drops the error for older
// versions.
func (c *Coordinator) Describe(groupID string) (Description, error) {
	g, err := c.lookup(groupID)
	if err != nil {
		return Description{GroupID: groupID, State: StateDead}, err
	}
	if g == nil {
		return Description{GroupID: groupID, State: StateDead}, kerr.GroupIDNotFound
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == StateDead {
		return Description{GroupID: groupID, State: StateDead}, kerr.GroupIDNotFound
	}
	return g.describeLocked(), nil
}

// List lists the groups, sorted by id; with states, only groups in one of
// them. After Close it lists nothing.
func (c *Coordinator) List(states ...State) []Listing {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	var out []Listing
	for _, g := range groups {
		g.mu.Lock()
		l := Listing{GroupID: g.id, ProtocolType: g.protocolType, State: g.state}
		g.mu.Unlock()
		if l.State == StateDead || (len(states) > 0 && !slices.Contains(states, l.State)) {
			continue
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Listing) int {
		switch {
		case a.GroupID < b.GroupID:
			return -1
		case a.GroupID > b.GroupID:
			return 1
		}
		return 0
	})
	return out
}

// Delete deletes an Empty group (DeleteGroups) and its stored data
// (Store.DeleteGroupData: the tombstones of its offsets and metadata):
// GROUP_ID_NOT_FOUND if there is none, NON_EMPTY_GROUP if it has members,
// the Store's error if the data cannot be deleted (the group is then left
// as it was, Empty, for the client's retry). As in Kafka, the data is
// deleted under the group's lock: a JoinGroup or OffsetCommit arriving
// meanwhile waits, finds the group Dead and is answered
// COORDINATOR_NOT_AVAILABLE (its client retries and forms a new group),
// so it can neither be tombstoned nor leave offsets behind for a group
// the coordinator no longer has. An Empty group whose last record (e.g.
// its empty generation) is not yet stored is not deleted: Delete answers
// COORDINATOR_LOAD_IN_PROGRESS (retriable), as the record would otherwise
// reach the log after the tombstones and bring the group back on
// failover (Kafka appends a group's records under its lock, so a
// deletion never comes between).
func (c *Coordinator) Delete(groupID string) error {
	return c.deleteWith(groupID, func() error { return c.cfg.Store.DeleteGroupData(groupID) })
}

// deleteWith deletes an Empty group once deleteData, called with the
// group's lock held, has deleted its stored data; an error from deleteData
// leaves the group as it was. It refuses (errStoresPending) while a record
// of the group is queued for the Store or being stored, rather than
// waiting: a Store's done or an answer it makes may call it from the very
// goroutine that is handing the group's records to the Store.
func (c *Coordinator) deleteWith(groupID string, deleteData func() error) error {
	g, err := c.lookup(groupID)
	if err != nil {
		return err
	}
	if g == nil {
		return kerr.GroupIDNotFound
	}
	var fx effects
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	switch {
	case g.state == StateDead && g.unloaded:
		g.mu.Unlock()
		return kerr.NotCoordinator
	case g.state == StateDead:
		g.mu.Unlock()
		return kerr.GroupIDNotFound
	case g.state != StateEmpty:
		g.mu.Unlock()
		return kerr.NonEmptyGroup
	case g.storesPendingLocked():
		g.mu.Unlock()
		return errStoresPending
	}
	if err := deleteData(); err != nil {
		g.mu.Unlock()
		return err
	}
	g.killLocked(kerr.CoordinatorNotAvailable, &fx)
	g.mu.Unlock()
	fx.run()
	c.mu.Lock()
	if c.groups[groupID] == g {
		delete(c.groups, groupID)
	}
	c.mu.Unlock()
	return nil
}

// withGroup calls write, an offset commit's write, if the commit is
// valid (ValidateOffsetCommit's rules), deciding and writing with the
// group's writeMu held (not its lock: the write awaits the in-sync
// replicas, and heartbeats must not), as Kafka checks and stores a commit
// under the group's lock: a member's commit validated against a
// generation the group has since left behind (a rebalance gave its
// partitions to another member, which may have committed) is refused,
// never written over the new owner's. A commit is written for a group the
// coordinator has, never for one it deleted meanwhile (Delete): a
// standalone commit creates the group (Empty) if there is none; a group
// being deleted answers COORDINATOR_NOT_AVAILABLE (the client retries).
func (c *Coordinator) withGroup(req OffsetCommitRequest, write func() error) error {
	g, err := c.committedGroup(req)
	if err != nil {
		return err
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	err = g.validateOffsetCommitLocked(req)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	// The group's generation and members change under mu alone: a
	// rebalance may complete while this write awaits its replicas, but a
	// commit checked against the new generation takes writeMu after this
	// one and is written after it, so it wins. Only a deletion (which
	// takes writeMu first) makes the group Dead for a reason the write
	// must not outlive; the coordinator closing meanwhile fails the write
	// itself (NOT_COORDINATOR).
	return write()
}

// committedGroup is the group an offset commit is for: created (Empty)
// when there is none and the commit comes with generation -1 (a
// standalone consumer's, as Kafka creates it); ILLEGAL_GENERATION when
// there is none and the commit comes from a member of a generation (of a
// group this coordinator no longer has).
func (c *Coordinator) committedGroup(req OffsetCommitRequest) (*group, error) {
	g, err := c.lookup(req.GroupID)
	if err != nil || g != nil {
		return g, err
	}
	if req.GenerationID >= 0 {
		return nil, kerr.IllegalGeneration
	}
	return c.lookupOrCreate(req.GroupID)
}

// withDescription calls f with the group's description (known false: the
// coordinator has no such group, or it is Dead) and, when the coordinator
// has the group, its writeMu held, so that no offset commit of the group
// is written (withGroup) nor the group deleted (deleteWith) until f
// returns: offset expiry and OffsetDelete decide from the state a commit
// was made in. Not its lock: f may write, and heartbeats must not wait for
// that. For a group it does not have nothing is held (a standalone commit
// may create it meanwhile): f must then decide nothing a commit could
// invalidate (OffsetDelete refuses, expiry takes no offset for expired by
// age).
func (c *Coordinator) withDescription(groupID string, f func(d Description, known bool) error) error {
	g, err := c.lookup(groupID)
	if err != nil {
		return err
	}
	if g == nil {
		return f(Description{GroupID: groupID, State: StateDead}, false)
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	g.mu.Lock()
	d, known := g.describeLocked(), g.state != StateDead
	g.mu.Unlock()
	return f(d, known)
}

// ValidateOffsetCommit checks who may commit offsets to a group
// (OffsetCommit), as Kafka does: members of the current generation, and
// anyone while the group is Empty with generation -1 and no member id. A
// commit to a group that does not exist creates it (Empty) when it comes
// with generation -1. A member's commit counts as a heartbeat. A
// transactional commit (TxnOffsetCommit) is checked the same way, except
// as OffsetCommitRequest.Transactional says. It returns nil or the error
// for every partition of the commit. A handler checks a commit with it
// before looking at its partitions; Shard.CommitOffsets and
// CommitTxnOffsets check it again as they write (the group may have
// rebalanced meanwhile).
func (c *Coordinator) ValidateOffsetCommit(req OffsetCommitRequest) error {
	g, err := c.committedGroup(req)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.validateOffsetCommitLocked(req)
}

// Restore loads a group from its last stored record, when a coordinator
// takes over a __consumer_offsets partition: Stable with the record's
// members and assignments (each member's session timeout starts now), or
// Empty when it has none. A group with more members than
// Config.MaxSize rebalances at once.
func (c *Coordinator) Restore(rec Record) error {
	g, err := restoredGroup(c, rec)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return kerr.NotCoordinator
	}
	if c.groups[rec.GroupID] != nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrGroupExists, rec.GroupID)
	}
	var fx effects
	g.mu.Lock()
	if len(g.members) > c.cfg.MaxSize {
		// As Kafka's onGroupLoaded: the members are asked to rejoin at
		// once (giving them a chance to commit their offsets), and those
		// beyond group.max.size are removed as they rejoin
		// (joinCurrentMemberLocked) or when the join phase ends without
		// them.
		g.prepareRebalanceLocked(fmt.Sprintf("restored group has %d members, more than group.max.size %d", len(g.members), c.cfg.MaxSize), &fx)
	}
	for _, m := range g.membersInOrderLocked() {
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
	}
	g.mu.Unlock()
	c.groups[rec.GroupID] = g
	c.mu.Unlock()
	fx.run()
	return nil
}

// Close unloads every group, when this node stops coordinating them: their
// timers stop, waiting requests are answered with NOT_COORDINATOR (so
// clients look the coordinator up again), and every later call answers
// NOT_COORDINATOR. Answers are made from Close, without locks held. A
// Store callback that arrives after Close changes nothing.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	groups := c.groups
	c.groups = map[string]*group{}
	c.mu.Unlock()
	var fx effects
	for _, g := range groups {
		g.mu.Lock()
		g.killLocked(kerr.NotCoordinator, &fx)
		g.unloaded = true
		g.mu.Unlock()
	}
	fx.run()
}

func randomMemberID(prefix string) string { return prefix + "-" + uuid.NewString() }

func joinError(memberID string, err error) JoinResult {
	return JoinResult{Err: err, MemberID: memberID, GenerationID: -1}
}

// storeError is what members see when the Store fails.
func storeError(err error) error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	return kerr.CoordinatorNotAvailable
}

func copyProtocols(in []Protocol) []Protocol {
	out := make([]Protocol, len(in))
	for i, p := range in {
		out[i] = Protocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	return out
}

// scheduled is one armed timer. Timer callbacks compare their *scheduled
// with the one the group still holds, so a callback that lost the race with
// Stop does nothing.
type scheduled struct{ timer Timer }

func (s *scheduled) stop() {
	if s != nil {
		s.timer.Stop()
	}
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
