package group

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock fires timers only when a test advances it, in deadline order,
// on the advancing goroutine.
type fakeClock struct {
	mu     sync.Mutex // guards every field
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	clock   *fakeClock
	at      time.Time
	seq     int
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{clock: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock forward by d, firing every timer due on the way
// (including timers armed by the ones it fires).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t.stopped })
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.at.After(target) && (next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.seq < next.seq)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
}

// armed is the number of timers that have neither fired nor been stopped.
func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

var _ Clock = (*fakeClock)(nil)

const (
	testSession   = 10 * time.Second
	testRebalance = 30 * time.Second
)

type harness struct {
	t     *testing.T
	c     *Coordinator
	clock *fakeClock
	store *fakeStore
}

// newHarness returns a coordinator on a fake clock, with Kafka's defaults
// unless cfg says otherwise.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	clock := newFakeClock()
	store := &fakeStore{}
	cfg.Clock = clock
	if cfg.Store == nil {
		cfg.Store = store
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	var ids int
	var idsMu sync.Mutex
	cfg.NewMemberID = func(prefix string) string {
		idsMu.Lock()
		defer idsMu.Unlock()
		ids++
		return fmt.Sprintf("%s-%d", prefix, ids)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return &harness{t: t, c: c, clock: clock, store: store}
}

// fakeStore records stored groups; with hold set it keeps the callbacks
// for the test to complete, and fail makes every store fail.
type fakeStore struct {
	mu      sync.Mutex // guards every field
	records []Record
	hold    bool
	held    []func(error)
	fail    error
	// deletes is, for every DeleteGroupData, the group and how many
	// records had been stored before it (the log order of its tombstones).
	deletes []storeDelete
}

type storeDelete struct {
	groupID string
	after   int
}

func (s *fakeStore) StoreGroup(rec Record, done func(error)) {
	s.mu.Lock()
	s.records = append(s.records, rec)
	if s.hold {
		s.held = append(s.held, done)
		s.mu.Unlock()
		return
	}
	fail := s.fail
	s.mu.Unlock()
	done(fail)
}

func (s *fakeStore) DeleteGroupData(groupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, storeDelete{groupID: groupID, after: len(s.records)})
	return nil
}

func (s *fakeStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *fakeStore) setHold(hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = hold
}

// release completes the held stores with err.
func (s *fakeStore) release(err error) int {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, done := range held {
		done(err)
	}
	return len(held)
}

func (s *fakeStore) last() Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		return Record{}
	}
	return s.records[len(s.records)-1]
}

// call collects the answers to one asynchronous request.
type call[R any] struct {
	t       *testing.T
	mu      sync.Mutex // guards answers
	answers []R
}

func (c *call[R]) done(r R) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers = append(c.answers, r)
}

// result returns the answer, failing unless there is exactly one.
func (c *call[R]) result() R {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) != 1 {
		c.t.Fatalf("got %d answers, want 1: %+v", len(c.answers), c.answers)
	}
	return c.answers[0]
}

func (c *call[R]) waiting() bool {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) > 1 {
		c.t.Fatalf("answered %d times: %+v", len(c.answers), c.answers)
	}
	return len(c.answers) == 0
}

func (c *call[R]) mustWait() {
	c.t.Helper()
	if !c.waiting() {
		c.t.Fatalf("answered early: %+v", c.answers)
	}
}

func (h *harness) join(req JoinRequest) *call[JoinResult] {
	c := &call[JoinResult]{t: h.t}
	h.c.Join(req, c.done)
	return c
}

func (h *harness) sync(req SyncRequest) *call[SyncResult] {
	c := &call[SyncResult]{t: h.t}
	h.c.Sync(req, c.done)
	return c
}

// joinReq is a consumer's JoinGroup with the test timeouts.
func joinReq(groupID, memberID string, protocols ...Protocol) JoinRequest {
	if len(protocols) == 0 {
		protocols = []Protocol{{Name: "range", Metadata: []byte("sub")}}
	}
	return JoinRequest{
		GroupID:          groupID,
		MemberID:         memberID,
		ClientID:         "client",
		ClientHost:       "/127.0.0.1",
		ProtocolType:     "consumer",
		Protocols:        protocols,
		SessionTimeout:   testSession,
		RebalanceTimeout: testRebalance,
	}
}

func staticJoinReq(groupID, memberID, instanceID string, protocols ...Protocol) JoinRequest {
	r := joinReq(groupID, memberID, protocols...)
	r.GroupInstanceID = instanceID
	return r
}

func proto(name, metadata string) Protocol { return Protocol{Name: name, Metadata: []byte(metadata)} }

// wantErr fails unless err is want (both may be nil).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || (want == nil && err != nil) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func (h *harness) state(groupID string) State {
	h.t.Helper()
	d, _ := h.c.Describe(groupID)
	return d.State
}

func (h *harness) wantState(groupID string, want State) {
	h.t.Helper()
	if got := h.state(groupID); got != want {
		h.t.Fatalf("group %s is %v, want %v", groupID, got, want)
	}
}

func (h *harness) heartbeat(groupID, memberID string, generation int32) error {
	return h.c.Heartbeat(HeartbeatRequest{GroupID: groupID, MemberID: memberID, GenerationID: generation})
}

// stableMember is a member of a group the tests made stable.
type stableMember struct {
	id         string
	instanceID string
	generation int32
	assignment []byte
}

// stableGroup joins n members (static when instanceIDs are given), lets the
// join phase end, has the leader assign "assignment-<i>" to member i and
// syncs everyone. The first member is the leader.
func (h *harness) stableGroup(groupID string, n int, instanceIDs ...string) []stableMember {
	h.t.Helper()
	var joins []*call[JoinResult]
	for i := range n {
		req := joinReq(groupID, "")
		if i < len(instanceIDs) {
			req.GroupInstanceID = instanceIDs[i]
		}
		joins = append(joins, h.join(req))
	}
	if h.c.cfg.InitialRebalanceDelay == 0 && n > 1 {
		h.t.Fatal("stableGroup needs an initial rebalance delay to gather its members")
	}
	h.clock.Advance(3 * h.c.cfg.InitialRebalanceDelay)
	results := make([]JoinResult, n)
	for i, j := range joins {
		results[i] = j.result()
		wantErr(h.t, "join", results[i].Err, nil)
	}
	members := h.syncAll(groupID, results)
	for i := range members {
		if i < len(instanceIDs) {
			members[i].instanceID = instanceIDs[i]
		}
	}
	return members
}

// syncAll syncs every member of one generation, the leader last.
func (h *harness) syncAll(groupID string, results []JoinResult) []stableMember {
	h.t.Helper()
	var leader JoinResult
	var assignments []MemberAssignment
	syncs := make([]*call[SyncResult], len(results))
	out := make([]stableMember, len(results))
	for i, r := range results {
		out[i] = stableMember{id: r.MemberID, generation: r.GenerationID, assignment: fmt.Appendf(nil, "assignment-%d", i)}
		assignments = append(assignments, MemberAssignment{MemberID: r.MemberID, Assignment: out[i].assignment})
		if r.MemberID == r.LeaderID {
			leader = r
		}
	}
	if leader.MemberID == "" {
		h.t.Fatalf("no leader among %+v", results)
	}
	for i, r := range results {
		if r.MemberID != leader.MemberID {
			syncs[i] = h.sync(SyncRequest{GroupID: groupID, GenerationID: r.GenerationID, MemberID: r.MemberID})
			syncs[i].mustWait()
		}
	}
	for i, r := range results {
		if r.MemberID == leader.MemberID {
			syncs[i] = h.sync(SyncRequest{GroupID: groupID, GenerationID: r.GenerationID, MemberID: r.MemberID, Assignments: assignments})
		}
	}
	for i, s := range syncs {
		res := s.result()
		wantErr(h.t, "sync", res.Err, nil)
		if string(res.Assignment) != string(out[i].assignment) {
			h.t.Fatalf("member %s got assignment %q, want %q", out[i].id, res.Assignment, out[i].assignment)
		}
	}
	h.wantState(groupID, StateStable)
	return out
}

// standalone is who commits offsets outside group membership (a consumer
// that assigns itself its partitions): generation -1 and no member id,
// accepted for an Empty group (created if there is none).
func standalone(groupID string) OffsetCommitRequest {
	return OffsetCommitRequest{GroupID: groupID, GenerationID: -1}
}
