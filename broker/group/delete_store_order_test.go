package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// wantNoRecordAfterDelete fails if a record of groupID reached the Store
// after the group's data was deleted: in the log it would follow the
// tombstones, and a coordinator taking over the partition would bring the
// deleted group back.
func wantNoRecordAfterDelete(t *testing.T, s *fakeStore, groupID string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.deletes) != 1 || s.deletes[0].groupID != groupID {
		t.Fatalf("deletes %+v, want one of %s", s.deletes, groupID)
	}
	for i := s.deletes[0].after; i < len(s.records); i++ {
		if s.records[i].GroupID == groupID {
			t.Fatalf("record %+v of %s stored after its tombstones (%d records before them)", s.records[i], groupID, s.deletes[0].after)
		}
	}
}

// TestDeleteGroupWaitsForQueuedStore: the group's last member leaves from
// within the answer to its SyncGroup, which the Store's callback makes
// while the group's queue is being drained, so the empty generation's
// record is queued, not yet handed to the Store, when a DeleteGroups for
// the now Empty group arrives (from the same callback, deterministically).
// The deletion must not write its tombstones before that record: it is
// refused (retriable) until the record is stored, then succeeds.
func TestDeleteGroupWaitsForQueuedStore(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	j := h.join(joinReq(g1, "")).result()
	wantErr(t, "join", j.Err, nil)
	var deleteErr error
	answered := false
	h.c.Sync(SyncRequest{GroupID: g1, GenerationID: j.GenerationID, MemberID: j.MemberID,
		Assignments: []MemberAssignment{{MemberID: j.MemberID, Assignment: []byte("a")}}}, func(r SyncResult) {
		answered = true
		wantErr(t, "sync", r.Err, nil)
		res := h.c.Leave(g1, []LeaveMember{{MemberID: j.MemberID}})
		wantErr(t, "leave", res.Members[0].Err, nil)
		if d, _ := h.c.Describe(g1); d.State != StateEmpty {
			t.Errorf("group is %v after its last member left, want Empty", d.State)
		}
		deleteErr = h.c.Delete(g1)
	})
	if !answered {
		t.Fatal("sync not answered")
	}
	wantErr(t, "delete while the empty generation is queued", deleteErr, kerr.CoordinatorLoadInProgress)
	h.wantState(g1, StateEmpty)
	if last := h.store.last(); last.GenerationID != 2 || len(last.Members) != 0 {
		t.Fatalf("last record %+v, want the empty generation 2", last)
	}
	wantErr(t, "delete once stored", h.c.Delete(g1), nil)
	wantNoRecordAfterDelete(t, h.store, g1)
}

// TestDeleteGroupWaitsForStoreInFlight: the empty generation's record has
// been handed to the Store, which has not yet said it is durable; the
// deletion is refused (retriable) until it has.
func TestDeleteGroupWaitsForStoreInFlight(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	m := h.stableGroup(g1, 1)[0]
	h.store.setHold(true)
	res := h.c.Leave(g1, []LeaveMember{{MemberID: m.id}})
	wantErr(t, "leave", res.Members[0].Err, nil)
	h.wantState(g1, StateEmpty)
	wantErr(t, "delete while the empty generation is being stored", h.c.Delete(g1), kerr.CoordinatorLoadInProgress)
	h.wantState(g1, StateEmpty)
	if n := h.store.release(nil); n != 1 {
		t.Fatalf("released %d stores, want 1", n)
	}
	wantErr(t, "delete once stored", h.c.Delete(g1), nil)
	wantNoRecordAfterDelete(t, h.store, g1)
	wantErr(t, "delete again", h.c.Delete(g1), kerr.GroupIDNotFound)
}
