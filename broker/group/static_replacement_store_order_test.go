package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// releaseFirst completes the oldest held store with err.
func (s *fakeStore) releaseFirst(err error) Record {
	s.mu.Lock()
	done := s.held[0]
	s.held = s.held[1:]
	rec := s.records[len(s.records)-len(s.held)-1]
	s.mu.Unlock()
	done(err)
	return rec
}

// TestStaticReplacementAnsweredOnlyOnceItsOwnRecordIsStored: a static
// instance is replaced twice in a Stable group while the first
// replacement's group record is still being written (a process restarting
// twice in quick succession, or a client resending its JoinGroup). The
// second process may only be told it joined once the record naming it is
// durable: answered on the first record, which names the first
// replacement, a coordinator failover before the second record is stored
// restores the first replacement as the instance's member, and the second
// process, the live one, is fenced (FENCED_INSTANCE_ID, fatal to a
// consumer).
func TestStaticReplacementAnsweredOnlyOnceItsOwnRecordIsStored(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup(g1, 2, "instance-a", "instance-b")
	h.store.setHold(true)
	first := h.join(staticJoinReq(g1, "", "instance-b"))
	second := h.join(staticJoinReq(g1, "", "instance-b"))
	wantErr(t, "first replacement", first.result().Err, kerr.FencedInstanceID)
	second.mustWait()

	rec := h.store.releaseFirst(nil)
	if !second.waiting() {
		t.Fatalf("second replacement answered %+v once the record %+v (naming the first replacement) was stored", second.result(), rec.Members)
	}
	// Its own record stored, it is answered.
	h.store.releaseFirst(nil)
	r := second.result()
	wantErr(t, "second replacement", r.Err, nil)
	if got := h.store.last(); got.Members[1].MemberID != r.MemberID {
		t.Fatalf("stored %+v, want member %s", got, r.MemberID)
	}
	wantErr(t, "heartbeat", h.c.Heartbeat(HeartbeatRequest{GroupID: g1, GenerationID: r.GenerationID, MemberID: r.MemberID, GroupInstanceID: "instance-b"}), nil)
}
