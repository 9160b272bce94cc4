package group

import (
	"strings"
	"testing"
)

// A static member's id starts with its group instance id, a dynamic
// member's with its client id, as Kafka makes them (clientId-UUID,
// instanceId-UUID): DescribeGroups and the tools show which instance a
// member id is.
func TestStaticMemberIDNamesTheInstance(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	a := h.join(staticJoinReq(g1, "", "instance-a")).result()
	if a.Err != nil || !strings.HasPrefix(a.MemberID, "instance-a-") {
		t.Fatalf("static join = %+v, want a member id starting with the instance id", a)
	}
	h.syncAll(g1, []JoinResult{a})
	// Its restart (a replacement) gets such an id too.
	again := h.join(staticJoinReq(g1, "", "instance-a")).result()
	if again.Err != nil || again.MemberID == a.MemberID || !strings.HasPrefix(again.MemberID, "instance-a-") {
		t.Fatalf("static rejoin = %+v, want a new member id starting with the instance id", again)
	}
	req := joinReq(g1, "")
	req.RequireKnownMemberID = true
	if d := h.join(req).result(); !strings.HasPrefix(d.MemberID, "client-") {
		t.Fatalf("dynamic join = %+v, want a member id starting with the client id", d)
	}
}
