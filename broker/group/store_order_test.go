package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestGroupRecordsStoredInCaptureOrder: a group's records must reach the
// Store in the order the group's state changed, as Kafka appends them under
// the group's lock; the last stored record is what a coordinator taking
// over the partition restores. Here the group's last two members leave
// together: the empty generation's record is captured, but before it is
// handed to the Store the first leaver's waiting JoinGroup is answered
// (UNKNOWN_MEMBER_ID) and its client, in that answer's callback, joins
// again as a new member and syncs, so the next generation's record is
// captured and stored meanwhile. Stored in that order, a failover would
// restore the empty generation 2 while clients run generation 3 (and the
// coordinator would hand out generation 3 again).
func TestGroupRecordsStoredInCaptureOrder(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	a := h.stableGroup(g1, 1)[0]
	// A new member makes the group rebalance; a has not rejoined yet.
	var rejoin *call[JoinResult]
	var resync *call[SyncResult]
	newcomer := &call[JoinResult]{t: t}
	h.c.Join(joinReq(g1, ""), func(r JoinResult) {
		newcomer.done(r)
		// Removed, the client starts over as a new member, at once.
		rejoin = h.join(joinReq(g1, ""))
		j := rejoin.result()
		wantErr(t, "rejoin", j.Err, nil)
		resync = h.sync(SyncRequest{GroupID: g1, GenerationID: j.GenerationID, MemberID: j.MemberID,
			Assignments: []MemberAssignment{{MemberID: j.MemberID, Assignment: []byte("assignment")}}})
	})
	newcomer.mustWait()
	d, _ := h.c.Describe(g1)
	if len(d.Members) != 2 {
		t.Fatalf("members %+v, want 2", d.Members)
	}
	newcomerID := d.Members[1].MemberID

	res := h.c.Leave(g1, []LeaveMember{{MemberID: newcomerID}, {MemberID: a.id}})
	for _, m := range res.Members {
		wantErr(t, "leave "+m.MemberID, m.Err, nil)
	}
	wantErr(t, "newcomer's join", newcomer.result().Err, kerr.UnknownMemberID)
	wantErr(t, "resync", resync.result().Err, nil)
	h.wantState(g1, StateStable)
	j := rejoin.result()

	h.store.mu.Lock()
	records := append([]Record(nil), h.store.records...)
	h.store.mu.Unlock()
	var gens []int32
	for _, r := range records {
		gens = append(gens, r.GenerationID)
	}
	last := records[len(records)-1]
	if last.GenerationID != j.GenerationID || len(last.Members) != 1 || last.Members[0].MemberID != j.MemberID {
		t.Fatalf("stored generations %v; last record %+v, want generation %d with member %s", gens, last, j.GenerationID, j.MemberID)
	}
	for i := 1; i < len(gens); i++ {
		if gens[i] < gens[i-1] {
			t.Fatalf("stored generations %v: out of order", gens)
		}
	}
}
