package group

import (
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestStaticMemberReplacedWithoutRebalance(t *testing.T) {
	for _, skip := range []bool{false, true} {
		name := "JoinGroup v5-v8"
		if skip {
			name = "JoinGroup v9+"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
			leader := ms[0]
			// instance-a restarts: a new process, no member id, same protocols.
			req := staticJoinReq(g1, "", "instance-a")
			req.SupportsSkipAssignment = skip
			r := h.join(req).result()
			if r.Err != nil || r.MemberID == leader.id || r.GenerationID != 1 || r.ProtocolName != "range" {
				t.Fatalf("join = %+v", r)
			}
			if skip {
				if r.LeaderID != r.MemberID || !r.SkipAssignment || len(r.Members) != 2 {
					t.Fatalf("v9 static leader join = %+v, want itself as leader, SkipAssignment and the members", r)
				}
			} else if r.LeaderID != leader.id || r.SkipAssignment || len(r.Members) != 0 {
				t.Fatalf("old static leader join = %+v, want the old leader id so it does not assign", r)
			}
			h.wantState(g1, StateStable)
			// It gets its old assignment back, and the others notice nothing.
			s := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: r.MemberID, GroupInstanceID: "instance-a"}).result()
			if string(s.Assignment) != string(leader.assignment) {
				t.Fatalf("sync = %+v, want %q", s, leader.assignment)
			}
			wantErr(t, "other member", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id, GroupInstanceID: "instance-b"}), nil)
			// The old process is fenced everywhere.
			old := leader.id
			wantErr(t, "old heartbeat", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 1, MemberID: old, GroupInstanceID: "instance-a"}), kerr.FencedInstanceID)
			wantErr(t, "old sync", h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: old, GroupInstanceID: "instance-a"}).result().Err, kerr.FencedInstanceID)
			wantErr(t, "old join", h.join(staticJoinReq(g1, old, "instance-a")).result().Err, kerr.FencedInstanceID)
			wantErr(t, "old commit", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: 1, MemberID: old, GroupInstanceID: "instance-a"}), kerr.FencedInstanceID)
			if res := h.c.Leave(g1, []LeaveMember{{MemberID: old, GroupInstanceID: "instance-a"}}); res.Members[0].Err != kerr.FencedInstanceID {
				t.Fatalf("old leave = %+v", res)
			}
			h.wantState(g1, StateStable)
			if rec := h.store.last(); rec.Members[0].MemberID != r.MemberID || rec.LeaderID != r.MemberID {
				t.Fatalf("stored %+v, want the new member id", rec)
			}
		})
	}
}

func TestStaticMemberReplacementFencesWaitingRequests(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	h.join(joinReq(g1, "")) // rebalance
	oldJoin := h.join(staticJoinReq(g1, ms[1].id, "instance-b"))
	newJoin := h.join(staticJoinReq(g1, "", "instance-b"))
	wantErr(t, "old join", oldJoin.result().Err, kerr.FencedInstanceID)
	newJoin.mustWait()
	a := h.join(staticJoinReq(g1, ms[0].id, "instance-a"))
	if r := newJoin.result(); r.GenerationID != 2 || a.result().GenerationID != 2 {
		t.Fatalf("join = %+v", r)
	}
}

func TestStaticMemberWithNewProtocolsRebalances(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 1, "instance-a")
	// The restarted process prefers another assignor: the selected
	// protocol would change, so the group rebalances.
	j := h.join(staticJoinReq(g1, "", "instance-a", proto("roundrobin", "x"), proto("range", "sub")))
	if r := j.result(); r.Err != nil || r.GenerationID != 2 || r.ProtocolName != "roundrobin" {
		t.Fatalf("join = %+v", r)
	}
	wantErr(t, "old member", h.heartbeat(g1, ms[0].id, 1), kerr.UnknownMemberID)
}

func TestStaticMemberRejoinDuringCompletingRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	b := h.join(joinReq(g1, ""))
	a := h.join(staticJoinReq(g1, ms[0].id, "instance-a"))
	c := h.join(staticJoinReq(g1, ms[1].id, "instance-b"))
	ra, rc := a.result(), c.result()
	wantErr(t, "join", ra.Err, nil)
	h.wantState(g1, StateCompletingRebalance)
	// instance-b restarts before syncing: the leader may already have
	// assigned to the old member id, so the group rebalances again.
	sync := h.sync(SyncRequest{GroupID: g1, GenerationID: 2, MemberID: rc.MemberID, GroupInstanceID: "instance-b"})
	replaced := h.join(staticJoinReq(g1, "", "instance-b"))
	wantErr(t, "old member's sync", sync.result().Err, kerr.FencedInstanceID)
	h.wantState(g1, StatePreparingRebalance)
	replaced.mustWait()
	h.join(staticJoinReq(g1, ms[0].id, "instance-a"))
	h.join(joinReq(g1, b.result().MemberID))
	if r := replaced.result(); r.GenerationID != 3 {
		t.Fatalf("join = %+v", r)
	}
}

func TestStaticMemberKeptThroughRebalanceUntilSessionExpires(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	// instance-b is restarting (not heartbeating); a dynamic member joins.
	c := h.join(joinReq(g1, ""))
	a := h.join(staticJoinReq(g1, ms[0].id, "instance-a"))
	h.clock.Advance(testSession / 2)
	h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 1, MemberID: ms[0].id, GroupInstanceID: "instance-a"})
	a.mustWait()
	// b's session (10 s after its last sync) ends before the 30 s rebalance
	// timeout: only then does the phase stop waiting for it.
	h.clock.Advance(testSession / 2)
	ra := a.result()
	if ra.GenerationID != 2 || len(ra.Members) != 2 || c.result().GenerationID != 2 {
		t.Fatalf("join = %+v", ra)
	}
}

func TestStaticMemberNotRejoinedStaysInGeneration(t *testing.T) {
	h := newHarness(t, Config{})
	reqA := staticJoinReq(g1, "", "instance-a")
	reqA.SessionTimeout = 2 * testRebalance // outlives a rebalance
	a := h.join(reqA)
	b := h.join(joinReq(g1, ""))
	h.clock.Advance(gather)
	ra, rb := a.result(), b.result()
	h.syncAll(g1, []JoinResult{ra, rb})
	// instance-a is restarting when c joins: the phase ends at the
	// rebalance timeout without it, but it stays a member, and b (the
	// first that rejoined) takes over as leader.
	c := h.join(joinReq(g1, ""))
	b = h.join(joinReq(g1, rb.MemberID))
	h.clock.Advance(testRebalance)
	rb2, rc := b.result(), c.result()
	if rb2.GenerationID != 2 || rb2.LeaderID != rb.MemberID || len(rb2.Members) != 3 || rc.Err != nil {
		t.Fatalf("join = %+v", rb2)
	}
	// It comes back with its member id and unchanged protocols: it gets
	// the current generation at once.
	reqA.MemberID = ra.MemberID
	ra2 := h.join(reqA).result()
	if ra2.Err != nil || ra2.GenerationID != 2 || ra2.LeaderID != rb.MemberID {
		t.Fatalf("rejoin = %+v", ra2)
	}
	h.syncAll(g1, []JoinResult{ra2, rb2, rc})
}

func TestStaticMemberRemovedByInstanceID(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	res := h.c.Leave(g1, []LeaveMember{{GroupInstanceID: "instance-b"}, {GroupInstanceID: "instance-x"}, {}})
	if res.Members[0].Err != nil || res.Members[1].Err != kerr.UnknownMemberID || res.Members[2].Err != kerr.UnknownMemberID {
		t.Fatalf("leave = %+v", res)
	}
	h.wantState(g1, StatePreparingRebalance)
	wantErr(t, "removed member", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id, GroupInstanceID: "instance-b"}), kerr.UnknownMemberID)
}

func TestStaticReplacementStoreFailureReverts(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	h.store.setFail(kerr.CoordinatorNotAvailable)
	r := h.join(staticJoinReq(g1, "", "instance-b")).result()
	if r.Err != kerr.CoordinatorNotAvailable || r.MemberID != "" {
		t.Fatalf("join = %+v", r)
	}
	// The old member id is still the instance's.
	wantErr(t, "old member", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id, GroupInstanceID: "instance-b"}), nil)
	h.wantState(g1, StateStable)
	h.store.setFail(nil)
	r = h.join(staticJoinReq(g1, "", "instance-b")).result()
	if r.Err != nil || r.GenerationID != 1 {
		t.Fatalf("join = %+v", r)
	}
}

func TestPendingMemberIDWithInstanceID(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	ms := h.syncAll(g1, []JoinResult{h.join(staticJoinReq(g1, "", "instance-a")).result()})
	pending := func() string {
		req := joinReq(g1, "")
		req.RequireKnownMemberID = true
		return h.join(req).result().MemberID
	}
	// A client given an id as a dynamic member that comes back claiming
	// a taken instance id is fenced; with a free one it joins as static.
	fenced := pending()
	wantErr(t, "taken", h.join(staticJoinReq(g1, fenced, "instance-a")).result().Err, kerr.FencedInstanceID)
	h.c.Leave(g1, []LeaveMember{{MemberID: fenced}}) // else a join phase waits for it
	id := pending()
	j := h.join(staticJoinReq(g1, id, "instance-b"))
	h.join(staticJoinReq(g1, ms[0].id, "instance-a"))
	if r := j.result(); r.Err != nil || r.MemberID != id || r.GenerationID != 2 {
		t.Fatalf("join = %+v", r)
	}
	wantErr(t, "heartbeat", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: 2, MemberID: id, GroupInstanceID: "instance-b"}), nil)
}

func TestDefaults(t *testing.T) {
	// Real clock, in-memory store, random member ids; no delay so that
	// nothing waits on the clock.
	c, err := New(Config{InitialRebalanceDelay: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := make(chan JoinResult, 1)
	c.Join(joinReq(g1, ""), func(r JoinResult) { res <- r })
	r := <-res
	if r.Err != nil || len(r.MemberID) != len("client-")+36 || r.MemberID[:7] != "client-" {
		t.Fatalf("join = %+v", r)
	}
	sres := make(chan SyncResult, 1)
	c.Sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: r.MemberID, Assignments: []MemberAssignment{{MemberID: r.MemberID, Assignment: []byte("all")}}}, func(r SyncResult) { sres <- r })
	if s := <-sres; string(s.Assignment) != "all" {
		t.Fatalf("sync = %+v", s)
	}
	if d, _ := c.Describe(g1); d.State != StateStable {
		t.Fatalf("state %v", d.State)
	}
}
