package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
)

// requester sends a request: a client (to the broker the request is for)
// or one broker (kgo.Client.SeedBrokers, Broker).
type requester interface {
	Request(context.Context, kmsg.Request) (kmsg.Response, error)
}

// request sends req through cl and returns its response, failing the test
// on an error.
func request[R kmsg.Response](t *testing.T, cl requester, req kmsg.Request) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

// TestGroupStateReplayedAfterRestart: group metadata, offsets and
// tombstones written to __consumer_offsets are replayed when the broker
// opens the partition again: a stable group comes back with its member and
// assignment, a deleted group stays deleted.
func TestGroupStateReplayedAfterRestart(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 2, nil)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g1", "consumer", 30000, 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("sub")}}
	jr := request[*kmsg.JoinGroupResponse](t, cl, join)
	if jr.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = jr.MemberID
		jr = request[*kmsg.JoinGroupResponse](t, cl, join)
	}
	if jr.ErrorCode != 0 {
		t.Fatalf("join: %+v", jr)
	}
	member, gen := jr.MemberID, jr.Generation
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = "g1", gen, member
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte("a1")}}
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 {
		t.Fatalf("sync: %+v", r)
	}
	commit := func(groupID string, generation int32, memberID string, offset int64) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation, req.MemberID = groupID, generation, memberID
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: offset, LeaderEpoch: -1}}}}
		if r := request[*kmsg.OffsetCommitResponse](t, cl, req); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("commit %s: %+v", groupID, r)
		}
	}
	commit("g1", gen, member, 41)
	commit("g1", gen, member, 42) // the later commit wins on replay
	commit("g2", -1, "", 7)
	commit("g3", -1, "", 9)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g2"}
	if r := request[*kmsg.DeleteGroupsResponse](t, cl, del); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete: %+v", r)
	}
	cl.Close()

	n.Restart()
	cl = n.Client(offsetsByName())

	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Groups = []string{"g1", "g2", "g3"}
	var dr *kmsg.DescribeGroupsResponse
	deadline := time.Now().Add(20 * time.Second)
	for {
		dr = request[*kmsg.DescribeGroupsResponse](t, cl, desc)
		if dr.Groups[0].ErrorCode == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	g1, g2, g3 := dr.Groups[0], dr.Groups[1], dr.Groups[2]
	if g1.ErrorCode != 0 || g1.State != "Stable" || g1.Protocol != "range" || len(g1.Members) != 1 || g1.Members[0].MemberID != member || string(g1.Members[0].MemberAssignment) != "a1" || string(g1.Members[0].ProtocolMetadata) != "sub" {
		t.Fatalf("g1 after restart: %+v", g1)
	}
	if g2.State != "Dead" {
		t.Fatalf("deleted g2 after restart: %+v", g2)
	}
	if g3.ErrorCode != 0 || g3.State != "Empty" {
		t.Fatalf("offsets-only g3 after restart: %+v", g3)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.Generation, hb.MemberID = "g1", gen, member
	if r := request[*kmsg.HeartbeatResponse](t, cl, hb); r.ErrorCode != 0 {
		t.Fatalf("heartbeat of the restored member: %+v", r)
	}
	for groupID, want := range map[string]int64{"g1": 42, "g2": -1, "g3": 9} {
		fetch := kmsg.NewPtrOffsetFetchRequest()
		fetch.Group = groupID
		fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{1}}}
		r := request[*kmsg.OffsetFetchResponse](t, cl, fetch)
		var got int64 = -2
		if len(r.Groups) > 0 {
			got = r.Groups[0].Topics[0].Partitions[0].Offset
		} else if len(r.Topics) > 0 {
			got = r.Topics[0].Partitions[0].Offset
		}
		if got != want {
			t.Fatalf("%s offset after restart: %d, want %d (%+v)", groupID, got, want, r)
		}
	}
	// The shards cover every partition of the offsets topic.
	if shards, all := n.Server.Groups().Shards(); !all || len(shards) != 4 {
		t.Fatalf("%d shards loaded (all %v), want 4", len(shards), all)
	}
	if p := coordinator.Partition("g1", 4); n.Server.OpenPartition(group.OffsetsTopic, p) == nil {
		t.Fatalf("partition %d of %s is not open", p, group.OffsetsTopic)
	}
}
