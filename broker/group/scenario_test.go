package group

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

const g1 = "orders-app"

// gather is how long the default initial rebalance delay waits for members
// that all join at once: one delay, extended once.
const gather = 2 * DefaultInitialRebalanceDelay

func TestTwoMembersJoinSyncStable(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.join(joinReq(g1, ""))
	b := h.join(joinReq(g1, ""))
	h.wantState(g1, StatePreparingRebalance)
	h.clock.Advance(DefaultInitialRebalanceDelay)
	a.mustWait() // b joined during the delay: it is extended once
	h.clock.Advance(DefaultInitialRebalanceDelay)
	ra, rb := a.result(), b.result()
	wantErr(t, "join a", ra.Err, nil)
	wantErr(t, "join b", rb.Err, nil)
	if ra.GenerationID != 1 || rb.GenerationID != 1 {
		t.Fatalf("generations %d, %d, want 1", ra.GenerationID, rb.GenerationID)
	}
	if ra.LeaderID != ra.MemberID || rb.LeaderID != ra.MemberID {
		t.Fatalf("leader %q/%q, want the first joiner %q", ra.LeaderID, rb.LeaderID, ra.MemberID)
	}
	if ra.ProtocolType != "consumer" || ra.ProtocolName != "range" {
		t.Fatalf("protocol %q/%q", ra.ProtocolType, ra.ProtocolName)
	}
	if len(rb.Members) != 0 {
		t.Fatalf("follower got members %+v", rb.Members)
	}
	wantMembers := []JoinMember{{MemberID: ra.MemberID, Metadata: []byte("sub")}, {MemberID: rb.MemberID, Metadata: []byte("sub")}}
	if !slices.EqualFunc(ra.Members, wantMembers, sameJoinMember) {
		t.Fatalf("leader got members %+v, want %+v", ra.Members, wantMembers)
	}
	h.wantState(g1, StateCompletingRebalance)
	wantErr(t, "heartbeat while completing", h.heartbeat(g1, rb.MemberID, 1), nil)

	// The follower's sync waits for the leader's assignment.
	sb := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: rb.MemberID, ProtocolType: "consumer", ProtocolName: "range"})
	sb.mustWait()
	sa := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ra.MemberID, Assignments: []MemberAssignment{
		{MemberID: ra.MemberID, Assignment: []byte("p0,p1,p2")},
		{MemberID: rb.MemberID, Assignment: []byte("p3,p4,p5")},
		{MemberID: "somebody-else", Assignment: []byte("ignored")},
	}})
	if got := sa.result(); got.Err != nil || string(got.Assignment) != "p0,p1,p2" || got.ProtocolName != "range" || got.ProtocolType != "consumer" {
		t.Fatalf("leader sync = %+v", got)
	}
	if got := sb.result(); got.Err != nil || string(got.Assignment) != "p3,p4,p5" {
		t.Fatalf("follower sync = %+v", got)
	}
	h.wantState(g1, StateStable)
	rec := h.store.last()
	if rec.GenerationID != 1 || rec.Protocol != "range" || rec.LeaderID != ra.MemberID || len(rec.Members) != 2 || string(rec.Members[1].Assignment) != "p3,p4,p5" {
		t.Fatalf("stored %+v", rec)
	}

	// Stable: heartbeats keep both members as long as they like.
	for range 10 {
		h.clock.Advance(testSession / 2)
		wantErr(t, "heartbeat a", h.heartbeat(g1, ra.MemberID, 1), nil)
		wantErr(t, "heartbeat b", h.heartbeat(g1, rb.MemberID, 1), nil)
	}
	// A second sync in a stable group answers the current assignment.
	if got := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: rb.MemberID}).result(); string(got.Assignment) != "p3,p4,p5" {
		t.Fatalf("resync = %+v", got)
	}
	h.wantState(g1, StateStable)
}

func sameJoinMember(a, b JoinMember) bool {
	return a.MemberID == b.MemberID && a.GroupInstanceID == b.GroupInstanceID && bytes.Equal(a.Metadata, b.Metadata)
}

func TestThirdMemberTriggersRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	c := h.join(joinReq(g1, ""))
	c.mustWait()
	h.wantState(g1, StatePreparingRebalance)
	// The others learn of the rebalance from their heartbeats, and sync
	// is refused until they rejoin.
	wantErr(t, "heartbeat", h.heartbeat(g1, ms[1].id, 1), kerr.RebalanceInProgress)
	wantErr(t, "sync", h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id}).result().Err, kerr.RebalanceInProgress)
	a := h.join(joinReq(g1, ms[0].id))
	a.mustWait()
	b := h.join(joinReq(g1, ms[1].id))
	// Everybody has joined: the phase ends without waiting for the timeout.
	ra, rb, rc := a.result(), b.result(), c.result()
	for _, r := range []JoinResult{ra, rb, rc} {
		if r.Err != nil || r.GenerationID != 2 || r.LeaderID != ms[0].id {
			t.Fatalf("join = %+v, want generation 2 led by %s", r, ms[0].id)
		}
	}
	if len(ra.Members) != 3 {
		t.Fatalf("leader got %d members", len(ra.Members))
	}
	wantErr(t, "old generation heartbeat", h.heartbeat(g1, ms[1].id, 1), kerr.IllegalGeneration)
	h.syncAll(g1, []JoinResult{ra, rb, rc})
}

func TestLeaveTriggersRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 3)
	res := h.c.Leave(g1, []LeaveMember{{MemberID: ms[0].id}})
	if res.Err != nil || len(res.Members) != 1 || res.Members[0].Err != nil {
		t.Fatalf("leave = %+v", res)
	}
	h.wantState(g1, StatePreparingRebalance)
	b := h.join(joinReq(g1, ms[1].id))
	c := h.join(joinReq(g1, ms[2].id))
	rb, rc := b.result(), c.result()
	if rb.GenerationID != 2 || rb.LeaderID != ms[1].id || rc.LeaderID != ms[1].id {
		t.Fatalf("after the leader left: %+v %+v, want generation 2 led by %s", rb, rc, ms[1].id)
	}
	wantErr(t, "heartbeat of the member that left", h.heartbeat(g1, ms[0].id, 2), kerr.UnknownMemberID)
	h.syncAll(g1, []JoinResult{rb, rc})

	// The last members leaving (in one batch) empty the group.
	res = h.c.Leave(g1, []LeaveMember{{MemberID: ms[1].id}, {MemberID: ms[2].id}, {MemberID: "nobody"}})
	if res.Members[0].Err != nil || res.Members[1].Err != nil || res.Members[2].Err != kerr.UnknownMemberID {
		t.Fatalf("leave = %+v", res)
	}
	h.wantState(g1, StateEmpty)
	if rec := h.store.last(); rec.GenerationID != 3 || len(rec.Members) != 0 || rec.Protocol != "" {
		t.Fatalf("stored %+v, want empty generation 3", rec)
	}
	if h.clock.armed() != 0 {
		t.Fatalf("%d timers still armed for an empty group", h.clock.armed())
	}
}

func TestSessionExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	// Member b goes silent (frozen client); a keeps heartbeating.
	for range 2 {
		h.clock.Advance(testSession/2 - time.Millisecond)
		wantErr(t, "heartbeat", h.heartbeat(g1, ms[0].id, 1), nil)
	}
	h.wantState(g1, StateStable)
	h.clock.Advance(2 * time.Millisecond)
	h.wantState(g1, StatePreparingRebalance)
	wantErr(t, "heartbeat of the expired member", h.heartbeat(g1, ms[1].id, 1), kerr.UnknownMemberID)
	wantErr(t, "heartbeat", h.heartbeat(g1, ms[0].id, 1), kerr.RebalanceInProgress)
	ra := h.join(joinReq(g1, ms[0].id)).result()
	if ra.GenerationID != 2 || len(ra.Members) != 1 {
		t.Fatalf("rejoin = %+v", ra)
	}
	// The expired member comes back: it is told to start over.
	wantErr(t, "rejoin of the expired member", h.join(joinReq(g1, ms[1].id)).result().Err, kerr.UnknownMemberID)
}

func TestRebalanceTimeoutRemovesMembersThatDoNotRejoin(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	c := h.join(joinReq(g1, ""))
	a := h.join(joinReq(g1, ms[0].id))
	// b heartbeats (so its session holds) but never rejoins, like a
	// consumer stuck in a long poll loop.
	for range 5 {
		wantErr(t, "heartbeat", h.heartbeat(g1, ms[1].id, 1), kerr.RebalanceInProgress)
		h.clock.Advance(5 * time.Second)
		a.mustWait()
	}
	h.clock.Advance(5 * time.Second)
	ra, rc := a.result(), c.result()
	if ra.GenerationID != 2 || len(ra.Members) != 2 || rc.Err != nil {
		t.Fatalf("after the rebalance timeout: %+v / %+v", ra, rc)
	}
	for _, m := range ra.Members {
		if m.MemberID == ms[1].id {
			t.Fatalf("member %s did not rejoin but is in generation 2", m.MemberID)
		}
	}
	wantErr(t, "heartbeat of the removed member", h.heartbeat(g1, ms[1].id, 1), kerr.UnknownMemberID)
}

func TestSyncTimeoutRemovesMembersThatDoNotSync(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.join(joinReq(g1, ""))
	b := h.join(joinReq(g1, ""))
	h.clock.Advance(2 * DefaultInitialRebalanceDelay)
	ra, rb := a.result(), b.result()
	sa := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ra.MemberID})
	wantErr(t, "leader sync", sa.result().Err, nil)
	h.wantState(g1, StateStable)
	// b heartbeats but never syncs.
	for range 6 {
		wantErr(t, "heartbeat", h.heartbeat(g1, rb.MemberID, 1), nil)
		wantErr(t, "heartbeat", h.heartbeat(g1, ra.MemberID, 1), nil)
		h.clock.Advance(5 * time.Second)
	}
	h.wantState(g1, StatePreparingRebalance)
	wantErr(t, "heartbeat", h.heartbeat(g1, rb.MemberID, 1), kerr.UnknownMemberID)
}

func TestMemberIDRequired(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	req := joinReq(g1, "")
	req.RequireKnownMemberID = true
	first := h.join(req).result()
	if first.Err != kerr.MemberIDRequired || first.MemberID == "" || first.GenerationID != -1 {
		t.Fatalf("first join = %+v, want MEMBER_ID_REQUIRED with a member id", first)
	}
	h.wantState(g1, StateEmpty) // a pending member is no member
	if d, _ := h.c.Describe(g1); len(d.Members) != 0 {
		t.Fatalf("pending member listed: %+v", d)
	}
	req.MemberID = first.MemberID
	second := h.join(req).result()
	if second.Err != nil || second.MemberID != first.MemberID || second.GenerationID != 1 || second.LeaderID != first.MemberID {
		t.Fatalf("second join = %+v", second)
	}

	// A pending member that never comes back expires with its session
	// timeout, without disturbing the group.
	h.syncAll(g1, []JoinResult{second})
	req2 := joinReq(g1, "")
	req2.RequireKnownMemberID = true
	lost := h.join(req2).result()
	wantErr(t, "join", lost.Err, kerr.MemberIDRequired)
	h.wantState(g1, StateStable)
	h.clock.Advance(testSession / 2)
	wantErr(t, "heartbeat", h.heartbeat(g1, second.MemberID, 1), nil)
	h.clock.Advance(testSession / 2)
	req2.MemberID = lost.MemberID
	wantErr(t, "join after the pending id expired", h.join(req2).result().Err, kerr.UnknownMemberID)
	h.wantState(g1, StateStable)
}

func TestPendingMemberHoldsTheJoinPhase(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	ms := h.syncAll(g1, []JoinResult{h.join(joinReq(g1, "")).result()})
	// b is given a member id; c joins (old client, no KIP-394) and starts
	// a rebalance; a rejoins. The phase still waits for b, which is
	// expected back with its id.
	reqB := joinReq(g1, "")
	reqB.RequireKnownMemberID = true
	idB := h.join(reqB).result().MemberID
	c := h.join(joinReq(g1, ""))
	a := h.join(joinReq(g1, ms[0].id))
	a.mustWait()
	reqB.MemberID = idB
	b := h.join(reqB)
	for _, j := range []*call[JoinResult]{a, b, c} {
		if r := j.result(); r.Err != nil || r.GenerationID != 2 {
			t.Fatalf("join = %+v", r)
		}
	}
	// A pending member that leaves releases the phase too.
	h.syncAll(g1, []JoinResult{a.result(), b.result(), c.result()})
	reqD := joinReq(g1, "")
	reqD.RequireKnownMemberID = true
	idD := h.join(reqD).result().MemberID
	h.c.Leave(g1, []LeaveMember{{MemberID: ms[0].id}})
	b2 := h.join(joinReq(g1, idB))
	c2 := h.join(joinReq(g1, c.result().MemberID))
	b2.mustWait()
	if res := h.c.Leave(g1, []LeaveMember{{MemberID: idD}}); res.Members[0].Err != nil {
		t.Fatalf("pending leave = %+v", res)
	}
	if r := b2.result(); r.GenerationID != 3 || c2.result().GenerationID != 3 {
		t.Fatalf("join = %+v", r)
	}
}

func TestNewMemberJoinTimeout(t *testing.T) {
	h := newHarness(t, Config{NewMemberJoinTimeout: 5 * time.Second})
	ms := h.stableGroup(g1, 1)
	b := h.join(joinReq(g1, ""))
	// a heartbeats but does not rejoin: the phase lasts the rebalance
	// timeout, longer than a new member may wait.
	for range 2 {
		h.heartbeat(g1, ms[0].id, 1)
		h.clock.Advance(4 * time.Second)
	}
	if r := b.result(); r.Err != kerr.UnknownMemberID || r.MemberID != "" {
		t.Fatalf("new member's join = %+v, want UNKNOWN_MEMBER_ID and no member id", r)
	}
	h.clock.Advance(testRebalance)
	h.wantState(g1, StateEmpty)
}

func TestInitialRebalanceDelay(t *testing.T) {
	t.Run("single member waits one delay", func(t *testing.T) {
		h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
		a := h.join(joinReq(g1, ""))
		h.clock.Advance(3*time.Second - time.Millisecond)
		a.mustWait()
		h.clock.Advance(time.Millisecond)
		if r := a.result(); r.GenerationID != 1 {
			t.Fatalf("join = %+v", r)
		}
	})
	t.Run("each joiner extends the delay", func(t *testing.T) {
		h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
		a := h.join(joinReq(g1, ""))
		h.clock.Advance(2 * time.Second)
		b := h.join(joinReq(g1, ""))
		h.clock.Advance(1 * time.Second) // 3 s: b arrived, wait another delay
		a.mustWait()
		h.clock.Advance(2 * time.Second)
		c := h.join(joinReq(g1, ""))
		h.clock.Advance(1 * time.Second) // 6 s: c arrived, once more
		a.mustWait()
		h.clock.Advance(3 * time.Second) // 9 s: nobody new
		for _, j := range []*call[JoinResult]{a, b, c} {
			if r := j.result(); r.Err != nil || r.GenerationID != 1 {
				t.Fatalf("join = %+v", r)
			}
		}
		if n := len(a.result().Members); n != 3 {
			t.Fatalf("leader sees %d members", n)
		}
	})
	t.Run("bounded by the rebalance timeout", func(t *testing.T) {
		h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
		req := joinReq(g1, "")
		req.RebalanceTimeout = 5 * time.Second
		a := h.join(req)
		for range 4 {
			h.clock.Advance(time.Second)
			h.join(req)
		}
		h.clock.Advance(time.Second) // 5 s: 3 s delay + the 2 s left of the timeout
		if r := a.result(); r.GenerationID != 1 || len(r.Members) != 5 {
			t.Fatalf("join = %+v", r)
		}
	})
	t.Run("not for a rebalance of a non-empty group", func(t *testing.T) {
		h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
		ms := h.stableGroup(g1, 1)
		b := h.join(joinReq(g1, ""))
		a := h.join(joinReq(g1, ms[0].id))
		if a.result().GenerationID != 2 || b.result().GenerationID != 2 {
			t.Fatalf("rebalance waited: %+v", a.result())
		}
	})
}

func TestProtocolSelection(t *testing.T) {
	p := func(names ...string) []Protocol {
		var out []Protocol
		for _, n := range names {
			out = append(out, proto(n, "meta-"+n))
		}
		return out
	}
	tests := []struct {
		name    string
		members [][]Protocol // the first joins first and leads
		want    string
	}{
		{"same preference", [][]Protocol{p("range", "roundrobin"), p("range", "roundrobin")}, "range"},
		{"majority", [][]Protocol{p("range", "roundrobin"), p("roundrobin", "range"), p("roundrobin", "range")}, "roundrobin"},
		{"tie goes to the leader's preference", [][]Protocol{p("range", "roundrobin"), p("roundrobin", "range")}, "range"},
		{"tie goes to the leader's preference (reversed)", [][]Protocol{p("roundrobin", "range"), p("range", "roundrobin")}, "roundrobin"},
		{"only a common protocol", [][]Protocol{p("cooperative-sticky", "range"), p("range")}, "range"},
		{"votes skip protocols not everyone has", [][]Protocol{p("sticky", "range", "roundrobin"), p("roundrobin", "range"), p("range", "roundrobin", "sticky")}, "range"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var joins []*call[JoinResult]
			for _, ps := range test.members {
				joins = append(joins, h.join(joinReq(g1, "", ps...)))
			}
			h.clock.Advance(testRebalance)
			leader := joins[0].result()
			if leader.ProtocolName != test.want {
				t.Fatalf("selected %q, want %q", leader.ProtocolName, test.want)
			}
			for i, m := range leader.Members {
				if want := "meta-" + test.want; string(m.Metadata) != want {
					t.Fatalf("member %d metadata %q, want %q", i, m.Metadata, want)
				}
			}
		})
	}
	t.Run("a joiner without a common protocol is refused", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.join(joinReq(g1, "", p("range", "roundrobin")...))
		h.join(joinReq(g1, "", p("roundrobin")...))
		wantErr(t, "join", h.join(joinReq(g1, "", p("range", "sticky")...)).result().Err, kerr.InconsistentGroupProtocol)
		h.join(joinReq(g1, "", p("roundrobin", "sticky")...)).mustWait()
	})
}

func TestCooperativeRebalance(t *testing.T) {
	// Cooperative clients (KIP-429) put their owned partitions in the
	// metadata and rejoin after revoking; to the coordinator it is two
	// ordinary rebalances with opaque metadata.
	h := newHarness(t, Config{})
	coop := func(owned string) Protocol { return proto("cooperative-sticky", "topics=t;owned="+owned) }
	a := h.join(joinReq(g1, "", coop("")))
	b := h.join(joinReq(g1, "", coop("")))
	h.clock.Advance(gather)
	ra, rb := a.result(), b.result()
	h.syncAll(g1, []JoinResult{ra, rb})

	// c joins; a and b rejoin with what they own.
	c := h.join(joinReq(g1, "", coop("")))
	a = h.join(joinReq(g1, ra.MemberID, coop("t0,t1,t2")))
	b = h.join(joinReq(g1, rb.MemberID, coop("t3,t4,t5")))
	ra, rb, rc := a.result(), b.result(), c.result()
	if ra.GenerationID != 2 || ra.ProtocolName != "cooperative-sticky" {
		t.Fatalf("join = %+v", ra)
	}
	want := []JoinMember{
		{MemberID: ra.MemberID, Metadata: []byte("topics=t;owned=t0,t1,t2")},
		{MemberID: rb.MemberID, Metadata: []byte("topics=t;owned=t3,t4,t5")},
		{MemberID: rc.MemberID, Metadata: []byte("topics=t;owned=")},
	}
	if !slices.EqualFunc(ra.Members, want, sameJoinMember) {
		t.Fatalf("leader sees %+v, want %+v", ra.Members, want)
	}
	h.syncAll(g1, []JoinResult{ra, rb, rc})

	// b revoked t5 and rejoins with new metadata: a rebalance, in which
	// the others rejoin with theirs.
	b = h.join(joinReq(g1, rb.MemberID, coop("t3,t4")))
	h.wantState(g1, StatePreparingRebalance)
	a = h.join(joinReq(g1, ra.MemberID, coop("t0,t1,t2")))
	c = h.join(joinReq(g1, rc.MemberID, coop("")))
	if r := a.result(); r.GenerationID != 3 || string(r.Members[1].Metadata) != "topics=t;owned=t3,t4" {
		t.Fatalf("join = %+v", r)
	}
	h.syncAll(g1, []JoinResult{a.result(), b.result(), c.result()})
}

func TestRejoinWithoutChange(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	// A follower that rejoins a stable group with the same metadata gets
	// the current generation, and no rebalance starts.
	r := h.join(joinReq(g1, ms[1].id)).result()
	if r.Err != nil || r.GenerationID != 1 || r.LeaderID != ms[0].id || len(r.Members) != 0 {
		t.Fatalf("rejoin = %+v", r)
	}
	h.wantState(g1, StateStable)
	// The leader rejoining always rebalances (it may have seen a metadata
	// change the coordinator cannot see).
	a := h.join(joinReq(g1, ms[0].id))
	h.wantState(g1, StatePreparingRebalance)
	b := h.join(joinReq(g1, ms[1].id))
	ra, rb := a.result(), b.result()
	if ra.GenerationID != 2 {
		t.Fatalf("join = %+v", ra)
	}
	// In CompletingRebalance, a member that lost its join answer and
	// rejoins unchanged gets the same answer again.
	again := h.join(joinReq(g1, ms[1].id)).result()
	if again.GenerationID != 2 || again.MemberID != rb.MemberID {
		t.Fatalf("rejoin while completing = %+v", again)
	}
	h.wantState(g1, StateCompletingRebalance)
	// With new metadata, it forces another rebalance; the waiting sync is
	// told to rejoin.
	sa := h.sync(SyncRequest{GroupID: g1, GenerationID: 2, MemberID: ra.MemberID + "x"})
	wantErr(t, "sync of an unknown member", sa.result().Err, kerr.UnknownMemberID)
	sb := h.sync(SyncRequest{GroupID: g1, GenerationID: 2, MemberID: rb.MemberID})
	b = h.join(joinReq(g1, ms[1].id, proto("range", "new-subscription")))
	wantErr(t, "waiting sync", sb.result().Err, kerr.RebalanceInProgress)
	h.wantState(g1, StatePreparingRebalance)
	a = h.join(joinReq(g1, ms[0].id))
	if a.result().GenerationID != 3 || b.result().GenerationID != 3 {
		t.Fatalf("join = %+v", a.result())
	}
}

func TestRetriedJoinReplacesTheWaitingOne(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	h.join(joinReq(g1, "")) // starts a rebalance
	first := h.join(joinReq(g1, ms[0].id))
	second := h.join(joinReq(g1, ms[0].id))
	wantErr(t, "replaced join", first.result().Err, kerr.RebalanceInProgress)
	second.mustWait()
	h.join(joinReq(g1, ms[1].id))
	if r := second.result(); r.GenerationID != 2 {
		t.Fatalf("join = %+v", r)
	}
}

func TestStoreFailureOnSync(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.join(joinReq(g1, ""))
	b := h.join(joinReq(g1, ""))
	h.clock.Advance(gather)
	ra, rb := a.result(), b.result()
	h.store.setFail(kerr.NotCoordinator)
	sb := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: rb.MemberID})
	sa := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ra.MemberID, Assignments: []MemberAssignment{{MemberID: rb.MemberID, Assignment: []byte("x")}}})
	wantErr(t, "leader sync", sa.result().Err, kerr.NotCoordinator)
	wantErr(t, "follower sync", sb.result().Err, kerr.NotCoordinator)
	h.wantState(g1, StatePreparingRebalance)
}

func TestAsyncStore(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.join(joinReq(g1, ""))
	h.clock.Advance(gather)
	ra := a.result()
	h.store.setHold(true)
	sa := h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ra.MemberID, Assignments: []MemberAssignment{{MemberID: ra.MemberID, Assignment: []byte("all")}}})
	sa.mustWait()
	h.wantState(g1, StateCompletingRebalance)
	if n := h.store.release(nil); n != 1 {
		t.Fatalf("released %d stores", n)
	}
	if r := sa.result(); string(r.Assignment) != "all" {
		t.Fatalf("sync = %+v", r)
	}
	h.wantState(g1, StateStable)

	// A store that completes after the group moved on changes nothing.
	b := h.join(joinReq(g1, ""))
	a = h.join(joinReq(g1, ra.MemberID))
	ra, rb := a.result(), b.result()
	sb := h.sync(SyncRequest{GroupID: g1, GenerationID: 2, MemberID: rb.MemberID})
	sa = h.sync(SyncRequest{GroupID: g1, GenerationID: 2, MemberID: ra.MemberID, Assignments: []MemberAssignment{{MemberID: ra.MemberID, Assignment: []byte("half")}}})
	sa.mustWait()
	c := h.join(joinReq(g1, "")) // a rebalance starts while the store is in flight
	wantErr(t, "leader sync", sa.result().Err, kerr.RebalanceInProgress)
	wantErr(t, "follower sync", sb.result().Err, kerr.RebalanceInProgress)
	h.store.release(nil)
	h.wantState(g1, StatePreparingRebalance)
	h.store.setHold(false)
	a = h.join(joinReq(g1, ra.MemberID))
	b = h.join(joinReq(g1, rb.MemberID))
	if r := c.result(); r.GenerationID != 3 {
		t.Fatalf("join = %+v", r)
	}
	h.syncAll(g1, []JoinResult{a.result(), b.result(), c.result()})
}

func TestCloseAnswersNotCoordinator(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	a := h.join(joinReq(g1, ms[0].id))
	h.join(joinReq("other", ""))
	pendingOther := h.join(joinReq("other", ""))
	h.c.Close()
	wantErr(t, "waiting join", a.result().Err, kerr.NotCoordinator)
	wantErr(t, "waiting join", pendingOther.result().Err, kerr.NotCoordinator)
	if h.clock.armed() != 0 {
		t.Fatalf("%d timers armed after Close", h.clock.armed())
	}
	wantErr(t, "join", h.join(joinReq(g1, "")).result().Err, kerr.NotCoordinator)
	wantErr(t, "sync", h.sync(SyncRequest{GroupID: g1, MemberID: ms[0].id, GenerationID: 1}).result().Err, kerr.NotCoordinator)
	wantErr(t, "heartbeat", h.heartbeat(g1, ms[0].id, 1), kerr.NotCoordinator)
	wantErr(t, "leave", h.c.Leave(g1, []LeaveMember{{MemberID: ms[0].id}}).Err, kerr.NotCoordinator)
	if _, err := h.c.Describe(g1); err != kerr.NotCoordinator {
		t.Fatalf("describe: %v", err)
	}
	wantErr(t, "delete", h.c.Delete(g1), kerr.NotCoordinator)
	wantErr(t, "commit", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: -1}), kerr.NotCoordinator)
	if l := h.c.List(); len(l) != 0 {
		t.Fatalf("list after close = %+v", l)
	}
	h.clock.Advance(time.Hour) // nothing left to fire
}

func TestRestore(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "", "instance-b")
	rec := h.store.last()
	h.c.Close()

	h2 := newHarness(t, Config{})
	if err := h2.c.Restore(rec); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := h2.c.Restore(rec); err == nil {
		t.Fatal("restoring a loaded group succeeded")
	}
	d, err := h2.c.Describe(g1)
	if err != nil || d.State != StateStable || d.Protocol != "range" || len(d.Members) != 2 || d.Members[1].GroupInstanceID != "instance-b" {
		t.Fatalf("restored %+v, %v", d, err)
	}
	if r := h2.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id, GroupInstanceID: "instance-b"}).result(); string(r.Assignment) != string(ms[1].assignment) {
		t.Fatalf("sync after restore = %+v", r)
	}
	// Sessions start at the restore: a member that does not come back
	// expires, as after a coordinator failover in Kafka.
	h2.clock.Advance(testSession / 2)
	wantErr(t, "heartbeat", h2.heartbeat(g1, ms[1].id, 1), nil)
	h2.wantState(g1, StateStable)
	h2.clock.Advance(testSession / 2)
	h2.wantState(g1, StatePreparingRebalance)
	wantErr(t, "expired", h2.heartbeat(g1, ms[0].id, 1), kerr.UnknownMemberID)

	for _, bad := range []Record{
		{},
		{GroupID: "x", Members: []RecordMember{{MemberID: "m"}}},
		{GroupID: "x", ProtocolType: "consumer", Protocol: "range", Members: []RecordMember{{MemberID: "m"}, {MemberID: "m"}}},
		{GroupID: "x", ProtocolType: "consumer", Protocol: "range", Members: []RecordMember{{MemberID: "m", GroupInstanceID: "i"}, {MemberID: "n", GroupInstanceID: "i"}}},
	} {
		if err := h2.c.Restore(bad); err == nil {
			t.Fatalf("Restore(%+v) succeeded", bad)
		}
	}
	if err := h2.c.Restore(Record{GroupID: "empty", ProtocolType: "consumer", GenerationID: 7}); err != nil || h2.state("empty") != StateEmpty {
		t.Fatalf("restoring an empty group: %v", err)
	}
	if r := h2.join(joinReq("empty", "")); r.waiting() {
		h2.clock.Advance(testRebalance)
		if res := r.result(); res.GenerationID != 8 {
			t.Fatalf("first generation after restore = %+v", res)
		}
	}
}
