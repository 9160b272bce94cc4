package broker_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/group"
)

// TestOffsetCommitOfOldGenerationDoesNotOverwriteNewOwner: a member's
// OffsetCommit of partition t-0 has been checked against the group's
// generation when the group rebalances: t-0 goes to another member, which
// commits further. Kafka checks a commit's member and generation and
// writes it in one step under the group's lock, so the late commit is
// refused (ILLEGAL_GENERATION when its sender rejoined in the new
// generation, UNKNOWN_MEMBER_ID when it left). Strata checked first and
// wrote later without checking again: the late commit was written over
// the new owner's, the group's committed offset went backwards, and the
// records in between were consumed again (on the new owner's next start
// or rebalance).
//
// The interleaving is forced with the server's hook between the commit's
// checks and its write: the group rebalances and the new owner commits
// there.
func TestOffsetCommitOfOldGenerationDoesNotOverwriteNewOwner(t *testing.T) {
	for _, test := range []struct {
		name string
		// rebalance moves the group past member a's generation, giving
		// t-0 to member b, and returns b's member id and generation.
		rebalance func(t *testing.T, n *brokertest.Node, a string) (string, int32)
		want      *kerr.Error
	}{
		{"rejoined", rejoinWithNewMember, kerr.IllegalGeneration},
		{"left", func(t *testing.T, n *brokertest.Node, a string) (string, int32) {
			cl := n.Client()
			leave := kmsg.NewPtrLeaveGroupRequest()
			leave.Group = "g"
			leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: a}}
			if r := request[*kmsg.LeaveGroupResponse](t, cl, leave); r.ErrorCode != 0 {
				t.Fatalf("leave: %+v", r)
			}
			return joinAndSync(t, n.Client(), "g", "t")
		}, kerr.UnknownMemberID},
	} {
		t.Run(test.name, func(t *testing.T) {
			n := brokertest.Start(t)
			cl := n.Client(offsetsByName())
			createTopic(t, cl, "t", 2, nil)
			a, generation := joinAndSync(t, cl, "g", "t")
			commitOffset(t, cl, "g", generation, a, "t", 0, 10)

			reached, proceed := make(chan struct{}), make(chan struct{})
			var fired atomic.Bool
			n.Server.BeforeOffsetCommit(func(groupID string) {
				if groupID == "g" && fired.CompareAndSwap(false, true) {
					close(reached)
					<-proceed
				}
			})
			defer n.Server.BeforeOffsetCommit(nil)
			late := make(chan *kmsg.OffsetCommitResponse, 1)
			lateClient := n.Client(offsetsByName())
			go func() {
				req := kmsg.NewPtrOffsetCommitRequest()
				req.Group, req.Generation, req.MemberID = "g", generation, a
				req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 50, LeaderEpoch: -1}}}}
				resp, err := lateClient.Request(t.Context(), req)
				if err != nil {
					t.Errorf("late commit: %v", err)
					late <- nil
					return
				}
				late <- resp.(*kmsg.OffsetCommitResponse)
			}()
			<-reached
			b, newGeneration := test.rebalance(t, n, a)
			commitOffset(t, n.Client(offsetsByName()), "g", newGeneration, b, "t", 0, 100)
			close(proceed)
			resp := <-late
			if resp == nil {
				t.FailNow()
			}

			if code := resp.Topics[0].Partitions[0].ErrorCode; code != test.want.Code {
				t.Errorf("late commit of generation %d answered %v, want %v", generation, kerr.ErrorForCode(code), test.want)
			}
			if got := fetchOffset(t, cl, "g", "t", 0); got != 100 {
				t.Errorf("t-0: committed offset %d, want the new owner's 100", got)
			}
		})
	}
}

// rejoinWithNewMember makes member b join group g, which rebalances:
// member a rejoins, the leader gives t-0 to b, and both sync in the new
// generation. It returns b's member id and generation.
func rejoinWithNewMember(t *testing.T, n *brokertest.Node, a string) (string, int32) {
	t.Helper()
	sh, kerrCode := n.Server.Groups().ShardFor("g")
	if kerrCode != nil {
		t.Fatalf("coordinator: %v", kerrCode)
	}
	subscription := kmsg.NewConsumerMemberMetadata()
	subscription.Topics = []string{"t"}
	joined := make(chan group.JoinResult, 1)
	// b's join opens the rebalance (the group waits for a to rejoin).
	sh.Coordinator().Join(group.JoinRequest{GroupID: "g", ClientID: "b", ProtocolType: "consumer",
		Protocols: []group.Protocol{{Name: "range", Metadata: subscription.AppendTo(nil)}}, SessionTimeout: 30 * time.Second, RebalanceTimeout: 30 * time.Second},
		func(r group.JoinResult) { joined <- r })
	cl := n.Client()
	if state := describeGroup(t, cl, "g").State; state != "PreparingRebalance" {
		t.Fatalf("group %s after a new member joined, want PreparingRebalance", state)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.MemberID, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", a, "consumer", 30000, 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: subscription.AppendTo(nil)}}
	ja := request[*kmsg.JoinGroupResponse](t, cl, join)
	jb := <-joined
	if ja.ErrorCode != 0 || jb.Err != nil || ja.LeaderID != a || ja.Generation != jb.GenerationID {
		t.Fatalf("rebalance: a %+v, b %+v", ja, jb)
	}
	assignment := func(partition int32) []byte {
		as := kmsg.NewConsumerMemberAssignment()
		as.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{partition}}}
		return as.AppendTo(nil)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = "g", ja.Generation, a
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: a, MemberAssignment: assignment(1)}, {MemberID: jb.MemberID, MemberAssignment: assignment(0)}}
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 {
		t.Fatalf("leader's sync: %+v", r)
	}
	sync.MemberID, sync.GroupAssignment = jb.MemberID, nil
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 {
		t.Fatalf("b's sync: %+v", r)
	}
	return jb.MemberID, jb.GenerationID
}
