package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The leader leaving during PreparingRebalance, once the others have
// rejoined, ends the join phase at once: the first member that rejoined
// leads the new generation.
func TestLeaderLeavesWhilePreparingRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 3)
	b := h.join(joinReq(g1, ms[1].id, proto("range", "new-subscription"))) // a rebalance
	c := h.join(joinReq(g1, ms[2].id))
	b.mustWait()
	res := h.c.Leave(g1, []LeaveMember{{MemberID: ms[0].id}})
	if res.Members[0].Err != nil {
		t.Fatalf("leave = %+v", res)
	}
	rb, rc := b.result(), c.result()
	if rb.Err != nil || rb.GenerationID != 2 || rb.LeaderID != ms[1].id || len(rb.Members) != 2 || rc.LeaderID != ms[1].id {
		t.Fatalf("joins = %+v / %+v, want generation 2 of two members led by %s", rb, rc, ms[1].id)
	}
	h.syncAll(g1, []JoinResult{rb, rc})
}

// The leader leaving during CompletingRebalance, before its SyncGroup:
// the followers' waiting syncs are told to rejoin, and the next
// generation is led by one of them.
func TestLeaderLeavesWhileCompletingRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	a := h.join(joinReq(g1, ms[0].id))
	b := h.join(joinReq(g1, ms[1].id))
	a.result()
	rb := b.result()
	h.wantState(g1, StateCompletingRebalance)
	wantErr(t, "heartbeat while completing", h.heartbeat(g1, ms[1].id, 2), nil)
	sb := h.sync(SyncRequest{GroupID: g1, GenerationID: rb.GenerationID, MemberID: rb.MemberID})
	sb.mustWait()
	h.c.Leave(g1, []LeaveMember{{MemberID: ms[0].id}})
	wantErr(t, "waiting sync", sb.result().Err, kerr.RebalanceInProgress)
	wantErr(t, "heartbeat while preparing", h.heartbeat(g1, ms[1].id, 2), kerr.RebalanceInProgress)
	r := h.join(joinReq(g1, ms[1].id)).result()
	if r.Err != nil || r.GenerationID != 3 || r.LeaderID != ms[1].id || len(r.Members) != 1 {
		t.Fatalf("join = %+v, want generation 3 led by %s", r, ms[1].id)
	}
	h.syncAll(g1, []JoinResult{r})
}
