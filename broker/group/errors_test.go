package group

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestErrors checks every error code the coordinator answers, each in the
// situation Kafka answers it in. Each case gets a stable group g1 of two
// dynamic members (ms[0] leads) and one of a static member "static".
func TestErrors(t *testing.T) {
	type env struct {
		h      *harness
		ms     []stableMember
		static []stableMember
	}
	joinErr := func(req JoinRequest) func(e env) error {
		return func(e env) error { return e.h.join(req).result().Err }
	}
	tooShort := joinReq(g1, "")
	tooShort.SessionTimeout = DefaultMinSessionTimeout - time.Millisecond
	tooLong := joinReq(g1, "")
	tooLong.SessionTimeout = DefaultMaxSessionTimeout + time.Millisecond
	noType := joinReq("new-group", "")
	noType.ProtocolType = ""
	noProtocols := joinReq("new-group", "")
	noProtocols.Protocols = nil
	otherType := joinReq(g1, "")
	otherType.ProtocolType = "connect"
	required := joinReq(g1, "")
	required.RequireKnownMemberID = true

	tests := []struct {
		name string
		run  func(e env) error
		want error
	}{
		{"join: empty group id", joinErr(joinReq("", "")), kerr.InvalidGroupID},
		{"join: session timeout below the minimum", joinErr(tooShort), kerr.InvalidSessionTimeout},
		{"join: session timeout above the maximum", joinErr(tooLong), kerr.InvalidSessionTimeout},
		{"join: new group without protocol type", joinErr(noType), kerr.InconsistentGroupProtocol},
		{"join: new group without protocols", joinErr(noProtocols), kerr.InconsistentGroupProtocol},
		{"join: other protocol type", joinErr(otherType), kerr.InconsistentGroupProtocol},
		{"join: no common protocol", joinErr(joinReq(g1, "", proto("roundrobin", ""))), kerr.InconsistentGroupProtocol},
		{"join: v4+ without member id", joinErr(required), kerr.MemberIDRequired},
		{"join: unknown member id", joinErr(joinReq(g1, "made-up")), kerr.UnknownMemberID},
		{"join: member id for a group that does not exist", joinErr(joinReq("no-such-group", "made-up")), kerr.UnknownMemberID},
		{"join: unknown instance id with a member id", joinErr(staticJoinReq(g1, "made-up", "instance-x")), kerr.UnknownMemberID},
		{"join: instance id of another member of the group", func(e env) error {
			// A member id of the group with someone else's instance id.
			req := staticJoinReq("static", "made-up", "instance-s")
			return e.h.join(req).result().Err
		}, kerr.FencedInstanceID},
		{"sync: empty group id", func(e env) error { return e.h.sync(SyncRequest{}).result().Err }, kerr.InvalidGroupID},
		{"sync: group does not exist", func(e env) error {
			return e.h.sync(SyncRequest{GroupID: "no-such-group", MemberID: "m"}).result().Err
		}, kerr.UnknownMemberID},
		{"sync: unknown member", func(e env) error {
			return e.h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: "made-up"}).result().Err
		}, kerr.UnknownMemberID},
		{"sync: old generation", func(e env) error {
			return e.h.sync(SyncRequest{GroupID: g1, GenerationID: 0, MemberID: e.ms[1].id}).result().Err
		}, kerr.IllegalGeneration},
		{"sync: other protocol type", func(e env) error {
			return e.h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: e.ms[1].id, ProtocolType: "connect"}).result().Err
		}, kerr.InconsistentGroupProtocol},
		{"sync: other protocol name", func(e env) error {
			return e.h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: e.ms[1].id, ProtocolName: "roundrobin"}).result().Err
		}, kerr.InconsistentGroupProtocol},
		{"sync: during a rebalance", func(e env) error {
			e.h.join(joinReq(g1, ""))
			return e.h.sync(SyncRequest{GroupID: g1, GenerationID: 1, MemberID: e.ms[1].id}).result().Err
		}, kerr.RebalanceInProgress},
		{"sync: fenced static member", func(e env) error {
			e.h.join(staticJoinReq("static", "", "instance-s"))
			return e.h.sync(SyncRequest{GroupID: "static", GenerationID: 1, MemberID: e.static[0].id, GroupInstanceID: "instance-s"}).result().Err
		}, kerr.FencedInstanceID},
		{"heartbeat: empty group id", func(e env) error { return e.h.heartbeat("", "m", 1) }, kerr.InvalidGroupID},
		{"heartbeat: group does not exist", func(e env) error { return e.h.heartbeat("no-such-group", "m", 1) }, kerr.UnknownMemberID},
		{"heartbeat: unknown member", func(e env) error { return e.h.heartbeat(g1, "made-up", 1) }, kerr.UnknownMemberID},
		{"heartbeat: old generation", func(e env) error { return e.h.heartbeat(g1, e.ms[0].id, 0) }, kerr.IllegalGeneration},
		{"heartbeat: during a rebalance", func(e env) error {
			e.h.join(joinReq(g1, ""))
			return e.h.heartbeat(g1, e.ms[0].id, 1)
		}, kerr.RebalanceInProgress},
		{"heartbeat: unknown instance id", func(e env) error {
			return e.h.c.Heartbeat(HeartbeatRequest{GroupID: "static", GenerationID: 1, MemberID: e.static[0].id, GroupInstanceID: "instance-x"})
		}, kerr.UnknownMemberID},
		{"heartbeat: fenced static member", func(e env) error {
			e.h.join(staticJoinReq("static", "", "instance-s"))
			return e.h.c.Heartbeat(HeartbeatRequest{GroupID: "static", GenerationID: 1, MemberID: e.static[0].id, GroupInstanceID: "instance-s"})
		}, kerr.FencedInstanceID},
		{"leave: empty group id", func(e env) error { return e.h.c.Leave("", []LeaveMember{{MemberID: "m"}}).Err }, kerr.InvalidGroupID},
		{"leave: group does not exist", func(e env) error {
			return e.h.c.Leave("no-such-group", []LeaveMember{{MemberID: "m"}}).Members[0].Err
		}, kerr.UnknownMemberID},
		{"leave: unknown member", func(e env) error { return e.h.c.Leave(g1, []LeaveMember{{MemberID: "made-up"}}).Members[0].Err }, kerr.UnknownMemberID},
		{"describe: group does not exist", func(e env) error { _, err := e.h.c.Describe("no-such-group"); return err }, kerr.GroupIDNotFound},
		{"delete: group does not exist", func(e env) error { return e.h.c.Delete("no-such-group") }, kerr.GroupIDNotFound},
		{"delete: group with members", func(e env) error { return e.h.c.Delete(g1) }, kerr.NonEmptyGroup},
		{"delete: empty group", func(e env) error {
			e.h.c.Leave("static", []LeaveMember{{GroupInstanceID: "instance-s"}})
			return e.h.c.Delete("static")
		}, nil},
		{"join: deleted group (stale lookup)", func(e env) error {
			// A request that found the group just before it was deleted.
			e.h.c.Leave("static", []LeaveMember{{GroupInstanceID: "instance-s"}})
			g, _ := e.h.c.lookup("static")
			e.h.c.Delete("static")
			c := &call[JoinResult]{t: e.h.t}
			var fx effects
			g.mu.Lock()
			g.joinLocked(joinReq("static", ""), c.done, &fx)
			g.mu.Unlock()
			fx.run()
			return c.result().Err
		}, kerr.CoordinatorNotAvailable},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			e := env{h: h, ms: h.stableGroup(g1, 2)}
			s := staticJoinReq("static", "", "instance-s")
			e.static = h.syncAll("static", []JoinResult{joinAfterDelay(h, s)})
			wantErr(t, test.name, test.run(e), test.want)
		})
	}
}

func joinAfterDelay(h *harness, req JoinRequest) JoinResult {
	h.t.Helper()
	j := h.join(req)
	h.clock.Advance(gather)
	return j.result()
}

func TestValidateOffsetCommit(t *testing.T) {
	h := newHarness(t, Config{})
	ms := h.stableGroup(g1, 2)
	tests := []struct {
		name string
		req  OffsetCommitRequest
		want error
	}{
		{"member of the generation", OffsetCommitRequest{GroupID: g1, GenerationID: 1, MemberID: ms[0].id}, nil},
		{"old generation", OffsetCommitRequest{GroupID: g1, GenerationID: 0, MemberID: ms[0].id}, kerr.IllegalGeneration},
		{"unknown member", OffsetCommitRequest{GroupID: g1, GenerationID: 1, MemberID: "made-up"}, kerr.UnknownMemberID},
		{"no member id, group has members", OffsetCommitRequest{GroupID: g1, GenerationID: -1}, kerr.UnknownMemberID},
		{"standalone consumer, new group", OffsetCommitRequest{GroupID: "standalone", GenerationID: -1}, nil},
		{"standalone consumer, again", OffsetCommitRequest{GroupID: "standalone", GenerationID: -1}, nil},
		{"generation for a group that does not exist", OffsetCommitRequest{GroupID: "gone", GenerationID: 3, MemberID: "m"}, kerr.IllegalGeneration},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			wantErr(t, "commit", h.c.ValidateOffsetCommit(test.req), test.want)
		})
	}
	if l := h.c.List(StateEmpty); len(l) != 1 || l[0].GroupID != "standalone" || l[0].ProtocolType != "" {
		t.Fatalf("list = %+v, want the standalone group", l)
	}
	// Commits count as heartbeats.
	for range 5 {
		h.clock.Advance(testSession / 2)
		wantErr(t, "commit", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: 1, MemberID: ms[0].id}), nil)
		wantErr(t, "heartbeat", h.heartbeat(g1, ms[1].id, 1), nil)
	}
	// After the join phase, before the assignment: REBALANCE_IN_PROGRESS.
	a := h.join(joinReq(g1, ms[0].id))
	wantErr(t, "commit while preparing", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: 1, MemberID: ms[1].id}), nil)
	h.join(joinReq(g1, ms[1].id))
	wantErr(t, "commit while completing", h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g1, GenerationID: a.result().GenerationID, MemberID: ms[1].id}), kerr.RebalanceInProgress)
}

func TestListAndDescribe(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup("stable", 2)
	h.join(joinReq("preparing", ""))
	h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "empty", GenerationID: -1})
	connect := joinReq("completing", "")
	connect.ProtocolType = "connect"
	connect.Protocols = []Protocol{proto("sessioned", "worker")}
	h.join(connect)
	h.clock.Advance(gather)          // "completing" and "preparing" end their join phase
	h.join(joinReq("preparing", "")) // ... and rebalance again

	all := h.c.List()
	want := []Listing{
		{GroupID: "completing", ProtocolType: "connect", State: StateCompletingRebalance},
		{GroupID: "empty", State: StateEmpty},
		{GroupID: "preparing", ProtocolType: "consumer", State: StatePreparingRebalance},
		{GroupID: "stable", ProtocolType: "consumer", State: StateStable},
	}
	if !slices.Equal(all, want) {
		t.Fatalf("List() = %+v, want %+v", all, want)
	}
	if got := h.c.List(StateStable, StateEmpty); len(got) != 2 || got[0].GroupID != "empty" || got[1].GroupID != "stable" {
		t.Fatalf("List(Stable, Empty) = %+v", got)
	}
	if got := h.c.List(StateDead); len(got) != 0 {
		t.Fatalf("List(Dead) = %+v", got)
	}

	d, err := h.c.Describe("stable")
	if err != nil || d.State != StateStable || d.Protocol != "range" || d.ProtocolType != "consumer" || len(d.Members) != 2 {
		t.Fatalf("Describe(stable) = %+v, %v", d, err)
	}
	if m := d.Members[1]; string(m.Metadata) != "sub" || string(m.Assignment) != "assignment-1" || m.ClientID != "client" || m.ClientHost != "/127.0.0.1" {
		t.Fatalf("stable member = %+v", m)
	}
	d, _ = h.c.Describe("completing")
	if d.State != StateCompletingRebalance || d.Protocol != "" || len(d.Members) != 1 || d.Members[0].Metadata != nil {
		t.Fatalf("Describe(completing) = %+v: metadata is only shown for stable groups", d)
	}
	d, err = h.c.Describe("missing")
	if err != kerr.GroupIDNotFound || d.State != StateDead || d.GroupID != "missing" {
		t.Fatalf("Describe(missing) = %+v, %v", d, err)
	}

	wantErr(t, "delete", h.c.Delete("empty"), nil)
	wantErr(t, "delete again", h.c.Delete("empty"), kerr.GroupIDNotFound)
	if got := h.c.List(StateEmpty); len(got) != 0 {
		t.Fatalf("deleted group listed: %+v", got)
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range []State{StateEmpty, StatePreparingRebalance, StateCompletingRebalance, StateStable, StateDead} {
		for _, name := range []string{s.String(), strings.ToLower(s.String()), strings.ToUpper(s.String())} {
			if got, ok := ParseState(name); !ok || got != s {
				t.Fatalf("ParseState(%q) = %v, %v", name, got, ok)
			}
		}
	}
	if _, ok := ParseState("Rebalancing"); ok {
		t.Fatal("ParseState accepted an unknown name")
	}
	if State(42).String() != "Unknown" {
		t.Fatal("unknown state name")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   Config
		valid bool
	}{
		{Config{}, true},
		{Config{MinSessionTimeout: time.Second, MaxSessionTimeout: time.Minute, InitialRebalanceDelay: -1}, true},
		{Config{MinSessionTimeout: -1}, false},
		{Config{MaxSessionTimeout: -1}, false},
		{Config{NewMemberJoinTimeout: -1}, false},
		{Config{MaxSize: 1}, true},
		{Config{MaxSize: -1}, false},
		{Config{MinSessionTimeout: time.Hour}, false}, // above the default maximum
	}
	for _, test := range tests {
		err := test.cfg.Validate()
		if (err == nil) != test.valid {
			t.Errorf("Validate(%+v) = %v, want valid = %v", test.cfg, err, test.valid)
		}
		if _, err := New(test.cfg); (err == nil) != test.valid {
			t.Errorf("New(%+v) = %v", test.cfg, err)
		}
	}
}

// TestRandomOperations drives many groups with random, often invalid,
// requests and time steps: nothing panics, no request is answered twice,
// and after Close none is left waiting.
func TestRandomOperations(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		h := newHarness(t, Config{MinSessionTimeout: time.Second, InitialRebalanceDelay: time.Duration(rng.IntN(3)-1) * time.Second})
		if rng.IntN(2) == 0 {
			h.store.setHold(true)
		}
		groups := []string{"a", "b", ""}
		var memberIDs []string
		pick := func() string {
			if len(memberIDs) == 0 || rng.IntN(5) == 0 {
				return []string{"", "bogus"}[rng.IntN(2)]
			}
			return memberIDs[rng.IntN(len(memberIDs))]
		}
		instances := []string{"", "", "i1", "i2"}
		protocols := [][]Protocol{{proto("range", "x")}, {proto("roundrobin", "y"), proto("range", "z")}, {proto("sticky", "")}, nil}
		var joins []*call[JoinResult]
		var syncs []*call[SyncResult]
		for range 400 {
			g := groups[rng.IntN(len(groups))]
			switch rng.IntN(8) {
			case 0, 1:
				req := joinReq(g, pick(), protocols[rng.IntN(len(protocols))]...)
				req.GroupInstanceID = instances[rng.IntN(len(instances))]
				req.RequireKnownMemberID = rng.IntN(2) == 0
				req.SupportsSkipAssignment = rng.IntN(2) == 0
				req.SessionTimeout = time.Duration(rng.IntN(40)) * time.Second
				req.RebalanceTimeout = time.Duration(rng.IntN(40)-5) * time.Second
				j := h.join(req)
				joins = append(joins, j)
				for _, r := range j.answers {
					if r.MemberID != "" {
						memberIDs = append(memberIDs, r.MemberID)
					}
				}
			case 2:
				var as []MemberAssignment
				for range rng.IntN(3) {
					as = append(as, MemberAssignment{MemberID: pick(), Assignment: []byte("a")})
				}
				syncs = append(syncs, h.sync(SyncRequest{GroupID: g, GenerationID: int32(rng.IntN(4) - 1), MemberID: pick(), GroupInstanceID: instances[rng.IntN(len(instances))], Assignments: as}))
			case 3:
				h.c.Heartbeat(HeartbeatRequest{GroupID: g, GenerationID: int32(rng.IntN(4) - 1), MemberID: pick(), GroupInstanceID: instances[rng.IntN(len(instances))]})
			case 4:
				h.c.Leave(g, []LeaveMember{{MemberID: pick(), GroupInstanceID: instances[rng.IntN(len(instances))]}})
			case 5:
				h.clock.Advance(time.Duration(rng.IntN(15000)) * time.Millisecond)
			case 6:
				h.c.Describe(g)
				h.c.List(StateStable)
				h.c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: g, GenerationID: int32(rng.IntN(3) - 1), MemberID: pick()})
				if rng.IntN(4) == 0 {
					h.c.Delete(g)
				}
			case 7:
				h.store.release([]error{nil, kerr.NotCoordinator}[rng.IntN(2)])
			}
			// Learn member ids from answered joins.
			for _, j := range joins {
				j.mu.Lock()
				for _, r := range j.answers {
					if r.MemberID != "" && !slices.Contains(memberIDs, r.MemberID) {
						memberIDs = append(memberIDs, r.MemberID)
					}
				}
				j.mu.Unlock()
			}
		}
		h.c.Close()
		h.store.release(nil)
		for _, j := range joins {
			j.result()
		}
		for _, s := range syncs {
			s.result()
		}
		if n := h.clock.armed(); n != 0 {
			t.Fatalf("seed %d: %d timers armed after Close", seed, n)
		}
	}
}

// TestConcurrentUse runs members on their own goroutines against one
// coordinator while the clock moves, for the race detector.
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: -1})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 6 {
		wg.Go(func() {
			groupID := []string{"x", "y"}[i%2]
			memberID := ""
			var generation int32
			for {
				select {
				case <-stop:
					return
				default:
				}
				res := make(chan JoinResult, 1)
				h.c.Join(joinReq(groupID, memberID), func(r JoinResult) { res <- r })
				var r JoinResult
				select {
				case r = <-res:
				case <-stop:
					return
				}
				if r.Err != nil {
					memberID = ""
					continue
				}
				memberID, generation = r.MemberID, r.GenerationID
				sres := make(chan SyncResult, 1)
				h.c.Sync(SyncRequest{GroupID: groupID, GenerationID: generation, MemberID: memberID}, func(r SyncResult) { sres <- r })
				select {
				case <-sres:
				case <-stop:
					return
				}
				for range 3 {
					if h.c.Heartbeat(HeartbeatRequest{GroupID: groupID, GenerationID: generation, MemberID: memberID}) != nil {
						break
					}
				}
				if i == 0 {
					h.c.Leave(groupID, []LeaveMember{{MemberID: memberID}})
					memberID = ""
				}
			}
		})
	}
	wg.Go(func() {
		for range 2000 {
			h.clock.Advance(50 * time.Millisecond)
			h.c.List()
		}
		close(stop)
	})
	wg.Wait()
	h.c.Close()
}
