package group

import "testing"

// TestStaticReplacementSessionRestartsWhenAnswered: a static member
// replaced in a Stable group waits for the group record to be stored
// before its JoinGroup is answered; a member waiting so cannot heartbeat,
// and its session deadline passing meanwhile does not remove it. Its
// session must restart when it is answered: otherwise it had none at all,
// and if its process then died, it stayed in the group (and its
// partitions unconsumed) for ever.
func TestStaticReplacementSessionRestartsWhenAnswered(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2, "instance-a", "instance-b")
	h.store.setHold(true)
	j := h.join(staticJoinReq(g1, "", "instance-b"))
	// The store is slow: the session timeout passes while it waits.
	for range 3 {
		h.clock.Advance(testSession / 2)
		wantErr(t, "other member's heartbeat", h.heartbeat(g1, ms[0].id, ms[0].generation), nil)
	}
	h.store.release(nil)
	h.store.setHold(false)
	r := j.result()
	wantErr(t, "replacement", r.Err, nil)
	// The new process dies at once; the other member keeps heartbeating.
	for range 4 {
		h.clock.Advance(testSession / 2)
		h.heartbeat(g1, ms[0].id, ms[0].generation)
	}
	if d, _ := h.c.Describe(g1); d.State == StateStable && len(d.Members) == 2 {
		t.Fatalf("the replacement, silent for %v (session %v), is still a member: %+v", 2*testSession, testSession, d.Members)
	}
}
