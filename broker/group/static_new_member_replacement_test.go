package group

import (
	"testing"
)

// TestStaticNewMemberReplacedWhileJoiningWaitsForTheJoinPhase: a static
// member whose first JoinGroup is still waiting (a new member) is replaced
// by a new process with its instance id (a restart, or the client resending
// its JoinGroup without a member id after losing the connection). The
// replacement waits in the join phase like any new member: bounded by
// NewMemberJoinTimeout, not by its session timeout, which a member waiting
// in a rebalance cannot keep alive (Kafka keeps such a member alive while
// latestHeartbeat + NewMemberJoinTimeoutMs has not passed). Removing it
// when the session timeout passes fails its join with UNKNOWN_MEMBER_ID and
// costs the group another rebalance when it joins again.
func TestStaticNewMemberReplacedWhileJoiningWaitsForTheJoinPhase(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 1)
	// A static member joins: the group rebalances, waiting for the
	// current member (up to the rebalance timeout, 30s).
	first := h.join(staticJoinReq(g1, "", "instance-s"))
	first.mustWait()
	h.wantState(g1, StatePreparingRebalance)
	// Its process restarts and joins again, without a member id.
	replaced := h.join(staticJoinReq(g1, "", "instance-s"))
	replaced.mustWait()
	// The join phase goes on longer than the session timeout (10s): the
	// existing member is slow to rejoin, though it heartbeats.
	for range 3 {
		h.clock.Advance(testSession / 2)
		h.heartbeat(g1, ms[0].id, ms[0].generation) // REBALANCE_IN_PROGRESS
	}
	if !replaced.waiting() {
		t.Fatalf("the replacing static member's join was answered while the join phase waited: %+v", replaced.result())
	}
	a := h.join(joinReq(g1, ms[0].id))
	ra, rs := a.result(), replaced.result()
	wantErr(t, "existing member's join", ra.Err, nil)
	wantErr(t, "replacing member's join", rs.Err, nil)
	if rs.GenerationID != ra.GenerationID || len(ra.Members) != 2 {
		t.Fatalf("generation %d with members %+v, want both members in generation %d", rs.GenerationID, ra.Members, ra.GenerationID)
	}
}
