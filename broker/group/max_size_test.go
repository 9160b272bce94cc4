package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestMaxSizeRefusesNewMembers: a group holding Config.MaxSize members
// (group.max.size) answers a new member's JoinGroup with
// GROUP_MAX_SIZE_REACHED, with no member id and without rebalancing:
// a dynamic member, a KIP-394 one (no member id is handed out) and a new
// static instance alike. Its members still rejoin, and during the
// rebalance a new member does not take the place of one still to rejoin.
// Before group.max.size every one of these joins was taken in.
func TestMaxSizeRefusesNewMembers(t *testing.T) {
	h := newHarness(t, Config{MaxSize: 2})
	ms := h.stableGroup(g1, 2)
	required := joinReq(g1, "")
	required.RequireKnownMemberID = true
	for name, req := range map[string]JoinRequest{
		"dynamic": joinReq(g1, ""),
		"KIP-394": required,
		"static":  staticJoinReq(g1, "", "instance-new"),
	} {
		res := h.join(req).result()
		wantErr(t, name+" join of a full group", res.Err, kerr.GroupMaxSizeReached)
		if res.MemberID != "" {
			t.Errorf("%s: refused join got member id %q", name, res.MemberID)
		}
		h.wantState(g1, StateStable)
	}

	// The leader rejoins: a rebalance, in which the follower still has
	// its place.
	leader := h.join(joinReq(g1, ms[0].id))
	h.wantState(g1, StatePreparingRebalance)
	wantErr(t, "new member during the rebalance", h.join(joinReq(g1, "")).result().Err, kerr.GroupMaxSizeReached)
	follower := h.join(joinReq(g1, ms[1].id))
	for name, j := range map[string]*call[JoinResult]{"leader": leader, "follower": follower} {
		if res := j.result(); res.Err != nil || res.GenerationID != 2 {
			t.Fatalf("%s's rejoin: %+v", name, res)
		}
	}
}

// TestMaxSizeStaticReplacement: a static member restarting (its instance
// id, no member id) replaces its previous member in a full group: the
// group does not grow, so it is not refused. (Kafka's
// acceptJoiningMember counts it as new, and refuses it.)
func TestMaxSizeStaticReplacement(t *testing.T) {
	h := newHarness(t, Config{MaxSize: 2})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	res := h.join(staticJoinReq(g1, "", "instance-b")).result()
	if res.Err != nil || res.MemberID == "" || res.MemberID == ms[1].id {
		t.Fatalf("static replacement in a full group: %+v", res)
	}
	h.wantState(g1, StateStable)
	if d, _ := h.c.Describe(g1); len(d.Members) != 2 {
		t.Fatalf("members after the replacement: %+v", d.Members)
	}
}

// TestMaxSizePendingMember: a KIP-394 member that got its member id while
// the group had room is refused when it comes back with it to a group
// that filled up meanwhile, and the join phase no longer waits for it.
func TestMaxSizePendingMember(t *testing.T) {
	h := newHarness(t, Config{MaxSize: 2})
	ms := h.stableGroup(g1, 1)
	required := joinReq(g1, "")
	required.RequireKnownMemberID = true
	pending := h.join(required).result()
	wantErr(t, "first KIP-394 join", pending.Err, kerr.MemberIDRequired)

	other := h.join(joinReq(g1, "")) // fills the group, and starts a rebalance
	leader := h.join(joinReq(g1, ms[0].id))
	leader.mustWait() // the join phase waits for the pending member
	res := h.join(joinReq(g1, pending.MemberID)).result()
	wantErr(t, "second KIP-394 join to a full group", res.Err, kerr.GroupMaxSizeReached)
	for name, j := range map[string]*call[JoinResult]{"leader": leader, "other": other} {
		if r := j.result(); r.Err != nil || r.GenerationID != 2 {
			t.Fatalf("%s's join: %+v", name, r)
		}
	}
}

// TestMaxSizeOverCapacityRestore: a group restored with more members than
// group.max.size (it was lowered, or a coordinator with a lower one took
// over) rebalances at once, as Kafka's onGroupLoaded does; the members
// that rejoin after the first MaxSize are removed with
// GROUP_MAX_SIZE_REACHED, and the next generation has MaxSize members.
// Before, the restored group stayed Stable with all of them.
func TestMaxSizeOverCapacityRestore(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 3)
	rec := h.store.last()
	h.c.Close()

	h2 := newHarness(t, Config{MaxSize: 2})
	if err := h2.c.Restore(rec); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	h2.wantState(g1, StatePreparingRebalance)
	first := h2.join(joinReq(g1, ms[2].id))
	second := h2.join(joinReq(g1, ms[0].id))
	shed := h2.join(joinReq(g1, ms[1].id)).result()
	wantErr(t, "third rejoin", shed.Err, kerr.GroupMaxSizeReached)
	for name, j := range map[string]*call[JoinResult]{"first": first, "second": second} {
		if r := j.result(); r.Err != nil || r.GenerationID != 2 {
			t.Fatalf("%s rejoin: %+v", name, r)
		}
	}
	if d, _ := h2.c.Describe(g1); len(d.Members) != 2 {
		t.Fatalf("members after the rebalance: %+v", d.Members)
	}
	wantErr(t, "shed member's heartbeat", h2.heartbeat(g1, ms[1].id, 2), kerr.UnknownMemberID)
}
