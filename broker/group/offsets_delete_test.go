package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stableMemberOf makes one member join groupID with the protocol type and
// subscription metadata given, and sync: the group is Stable with it.
func stableMemberOf(t *testing.T, sh *Shard, groupID, protocolType string, subscription []byte) JoinResult {
	t.Helper()
	req := joinReq(groupID, "", Protocol{Name: "range", Metadata: subscription})
	req.ProtocolType = protocolType
	joined := make(chan JoinResult, 1)
	sh.Coordinator().Join(req, func(r JoinResult) { joined <- r })
	jr := <-joined
	if jr.Err != nil {
		t.Fatalf("%s: join: %v", groupID, jr.Err)
	}
	synced := make(chan SyncResult, 1)
	sh.Coordinator().Sync(SyncRequest{GroupID: groupID, GenerationID: jr.GenerationID, MemberID: jr.MemberID,
		Assignments: []MemberAssignment{{MemberID: jr.MemberID, Assignment: []byte("a")}}}, func(r SyncResult) { synced <- r })
	if err := (<-synced).Err; err != nil {
		t.Fatalf("%s: sync: %v", groupID, err)
	}
	return jr
}

// subscription is a consumer's JoinGroup metadata subscribing to topics.
func subscription(topics ...string) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = topics
	return meta.AppendTo(nil)
}

// TestDeleteOffsetsDecidesFromGroupState: OffsetDelete deletes an Empty
// group's offsets; a Stable consumer group keeps those of the topics its
// members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC) and loses the others';
// a group whose subscriptions are not known (another protocol type, a
// rebalance under way, a subscription that does not decode) keeps all;
// a group the coordinator does not have answers GROUP_ID_NOT_FOUND. Live
// and after a reload.
func TestDeleteOffsetsDecidesFromGroupState(t *testing.T) {
	subscribedToT := map[TopicPartition]error{tp("t", 0): kerr.GroupSubscribedToTopic}
	keptAll := map[TopicPartition]error{tp("t", 0): kerr.GroupSubscribedToTopic, tp("u", 0): kerr.GroupSubscribedToTopic}
	for _, test := range []struct {
		name    string
		form    func(t *testing.T, sh *Shard, groupID string)
		refused map[TopicPartition]error
	}{
		{"Empty", func(*testing.T, *Shard, string) {}, nil},
		{"Stable consumer", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", subscription("t"))
		}, subscribedToT},
		{"Stable, another protocol type", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "connect", subscription("t"))
		}, keptAll},
		{"Stable, undecodable subscription", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", []byte("sub"))
		}, keptAll},
		{"rebalancing", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", subscription("t"))
			// A second member: the group prepares a rebalance, waiting
			// for the first to rejoin.
			sh.Coordinator().Join(joinReq(groupID, "", Protocol{Name: "range", Metadata: subscription("t")}), nil)
			if d, err := sh.Coordinator().Describe(groupID); err != nil || d.State != StatePreparingRebalance {
				t.Fatalf("group: %+v %v, want PreparingRebalance", d, err)
			}
		}, keptAll},
	} {
		t.Run(test.name, func(t *testing.T) {
			log, clock := newMemLog(), newFakeClock()
			sh := loadedShard(t, log, clock)
			if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 1, LeaderEpoch: -1}, tp("u", 0): {Offset: 2, LeaderEpoch: -1}}); err != nil {
				t.Fatalf("commit: %v", err)
			}
			test.form(t, sh, "g")
			refused, err := sh.DeleteOffsets("g", []TopicPartition{tp("t", 0), tp("u", 0)})
			if err != nil {
				t.Fatalf("DeleteOffsets: %v", err)
			}
			if len(refused) != len(test.refused) {
				t.Fatalf("refused %v, want %v", refused, test.refused)
			}
			for k, want := range test.refused {
				wantErr(t, "refused "+k.Topic, refused[k], want)
			}
			for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
				for k, want := range map[TopicPartition]int64{tp("t", 0): 1, tp("u", 0): 2} {
					if test.refused[k] == nil {
						want = -1
					}
					wantOffset(t, s, "g", k, want)
				}
			}
		})
	}
	t.Run("unknown group", func(t *testing.T) {
		sh := loadedShard(t, newMemLog(), newFakeClock())
		refused, err := sh.DeleteOffsets("nope", []TopicPartition{tp("t", 0)})
		if refused != nil {
			t.Errorf("refused %v, want none", refused)
		}
		wantErr(t, "DeleteOffsets", err, kerr.GroupIDNotFound)
	})
}
