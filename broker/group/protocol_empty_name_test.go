package group

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Kafka accepts any protocol name in a JoinGroup, "" included (it only
// refuses an empty protocol type or an empty protocol list of a member
// joining an empty group, INCONSISTENT_GROUP_PROTOCOL): the name is only
// matched between members, voted on and stored. These tests hold Strata
// to that.

// TestEmptyProtocolNameWinsTheVote: "" is a protocol like any other in the
// vote for the group's protocol. selectProtocolLocked took "" for "nothing
// chosen yet", so a candidate counted after "" replaced it whatever the
// votes: which protocol won depended on map order. The selection is
// repeated so that every order shows up (a wrong choice passes 64
// selections with probability 2^-64).
func TestEmptyProtocolNameWinsTheVote(t *testing.T) {
	for _, test := range []struct {
		name    string
		members [][]Protocol // the first is the leader
	}{
		{"most votes", [][]Protocol{
			{proto("", "a"), proto("range", "a")},
			{proto("", "b"), proto("range", "b")},
			{proto("range", "c"), proto("", "c")},
		}},
		{"tie, the leader's preference", [][]Protocol{
			{proto("", "a"), proto("range", "a")},
			{proto("range", "b"), proto("", "b")},
		}},
	} {
		t.Run(test.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var joins []*call[JoinResult]
			for _, ps := range test.members {
				joins = append(joins, h.join(joinReq(g1, "", ps...)))
			}
			h.clock.Advance(3 * h.c.cfg.InitialRebalanceDelay)
			for i, j := range joins {
				r := j.result()
				wantErr(t, "join", r.Err, nil)
				if r.ProtocolName != "" {
					t.Fatalf("member %d: protocol %q, want \"\"", i, r.ProtocolName)
				}
			}
			g, _ := h.c.lookup(g1)
			g.mu.Lock()
			defer g.mu.Unlock()
			for range 64 {
				if got := g.selectProtocolLocked(); got != "" {
					t.Fatalf("selected %q, want \"\"", got)
				}
			}
		})
	}
}

// TestEmptyProtocolNameGroupSurvivesReload: a Stable group whose protocol
// is "" was stored with a null protocol (the record writer took "" for
// "none"), and the record, members without a protocol, was refused on the
// next load: after a coordinator failover the group was gone (its members
// fenced with UNKNOWN_MEMBER_ID) and, the offsets-only restore being
// skipped for a group with a record, its committed offsets belonged to no
// group: served, but never expired and not deletable (GROUP_ID_NOT_FOUND).
func TestEmptyProtocolNameGroupSurvivesReload(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	j := &call[JoinResult]{t: t}
	c.Join(joinReq("g", "", proto("", "sub")), j.done)
	jr := j.result()
	wantErr(t, "join", jr.Err, nil)
	s := &call[SyncResult]{t: t}
	c.Sync(SyncRequest{GroupID: "g", GenerationID: jr.GenerationID, MemberID: jr.MemberID,
		Assignments: []MemberAssignment{{MemberID: jr.MemberID, Assignment: []byte("a")}}}, s.done)
	wantErr(t, "sync", s.result().Err, nil)
	member := OffsetCommitRequest{GroupID: "g", GenerationID: jr.GenerationID, MemberID: jr.MemberID}
	wantErr(t, "commit", c.ValidateOffsetCommit(member), nil)
	if err := sh.CommitOffsets(member, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 9, LeaderEpoch: -1, Timestamp: clock.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}

	again := loadedShard(t, log, clock)
	d, err := again.Coordinator().Describe("g")
	if err != nil || d.State != StateStable || d.Protocol != "" || len(d.Members) != 1 || string(d.Members[0].Metadata) != "sub" || string(d.Members[0].Assignment) != "a" {
		t.Fatalf("after a reload: %+v %v, want Stable with its member, protocol \"\"", d, err)
	}
	wantErr(t, "heartbeat after a reload", again.Coordinator().Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: jr.MemberID, GenerationID: jr.GenerationID}), nil)
	wantOffset(t, again, "g", tp("t", 0), 9)
}

// TestUnrestorableGroupRecordKeepsItsOffsets: a group whose record cannot
// be restored (here: two members with one id) still comes back Empty with
// its committed offsets, as a group known only by its offsets does, so
// that they expire and DeleteGroups removes them; it was left out
// altogether.
func TestUnrestorableGroupRecordKeepsItsOffsets(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 3, LeaderEpoch: -1, Timestamp: clock.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	stored := make(chan error, 1)
	m := RecordMember{MemberID: "m", SessionTimeout: testSession, RebalanceTimeout: testRebalance}
	sh.StoreGroup(Record{GroupID: "g", ProtocolType: "consumer", GenerationID: 2, Protocol: "range", LeaderID: "m", Members: []RecordMember{m, m}}, func(err error) { stored <- err })
	if err := <-stored; err != nil {
		t.Fatal(err)
	}

	again := loadedShard(t, log, clock)
	if d, err := again.Coordinator().Describe("g"); err != nil || d.State != StateEmpty {
		t.Fatalf("after a reload: %+v %v, want Empty", d, err)
	}
	wantOffset(t, again, "g", tp("t", 0), 3)
	clock.Advance(2 * time.Hour)
	if _, groups, err := again.ExpireOffsets(clock.Now(), time.Hour, func(TopicPartition) bool { return true }); err != nil || groups != 1 {
		t.Fatalf("expiry: %d groups deleted, %v; want 1", groups, err)
	}
	wantOffset(t, again, "g", tp("t", 0), -1)
	if _, err := again.Coordinator().Describe("g"); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatalf("after expiry: %v, want the group deleted", err)
	}
}
