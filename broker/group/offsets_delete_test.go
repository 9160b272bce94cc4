package group

import (
	"strings"
	"testing"
	"time"

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

// TestDeleteOffsetsDecidesFromGroupState: as Kafka's
// GroupCoordinator.handleDeleteOffsets (KIP-496), OffsetDelete deletes an
// Empty group's offsets; a consumer group with members, Stable or in the
// middle of a rebalance (PreparingRebalance, CompletingRebalance), keeps
// those of the topics its generation subscribes to
// (GROUP_SUBSCRIBED_TO_TOPIC) and loses the others'; one whose
// subscriptions do not decode keeps all; a group of another protocol type
// with members refuses the whole request with NON_EMPTY_GROUP; a group
// the coordinator does not have answers GROUP_ID_NOT_FOUND. Live and
// after a reload. Strata refused every partition of a rebalancing
// consumer group, and answered a connect group's partitions
// GROUP_SUBSCRIBED_TO_TOPIC one by one.
func TestDeleteOffsetsDecidesFromGroupState(t *testing.T) {
	subscribedToT := map[TopicPartition]error{tp("t", 0): kerr.GroupSubscribedToTopic}
	keptAll := map[TopicPartition]error{tp("t", 0): kerr.GroupSubscribedToTopic, tp("u", 0): kerr.GroupSubscribedToTopic}
	// rebalance makes a second member join a Stable group: it prepares a
	// rebalance, waiting for the first member to rejoin.
	rebalance := func(t *testing.T, sh *Shard, groupID, protocolType string) {
		t.Helper()
		req := joinReq(groupID, "", Protocol{Name: "range", Metadata: subscription("t")})
		req.ProtocolType = protocolType
		sh.Coordinator().Join(req, nil)
		if d, err := sh.Coordinator().Describe(groupID); err != nil || d.State != StatePreparingRebalance {
			t.Fatalf("group: %+v %v, want PreparingRebalance", d, err)
		}
	}
	for _, test := range []struct {
		name    string
		form    func(t *testing.T, sh *Shard, groupID string)
		refused map[TopicPartition]error
		err     error // for the whole request: nothing deleted
	}{
		{"Empty", func(*testing.T, *Shard, string) {}, nil, nil},
		{"Stable consumer", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", subscription("t"))
		}, subscribedToT, nil},
		{"Stable, another protocol type", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "connect", subscription("t"))
		}, nil, kerr.NonEmptyGroup},
		{"Stable, undecodable subscription", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", []byte("sub"))
		}, keptAll, nil},
		{"PreparingRebalance consumer", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "consumer", subscription("t"))
			rebalance(t, sh, groupID, "consumer")
		}, subscribedToT, nil},
		{"CompletingRebalance consumer", func(t *testing.T, sh *Shard, groupID string) {
			first := stableMemberOf(t, sh, groupID, "consumer", subscription("t"))
			rebalance(t, sh, groupID, "consumer")
			// The first member rejoins: the join phase ends, the group
			// awaits the leader's SyncGroup.
			sh.Coordinator().Join(joinReq(groupID, first.MemberID, Protocol{Name: "range", Metadata: subscription("t")}), nil)
			if d, err := sh.Coordinator().Describe(groupID); err != nil || d.State != StateCompletingRebalance {
				t.Fatalf("group: %+v %v, want CompletingRebalance", d, err)
			}
		}, subscribedToT, nil},
		{"PreparingRebalance of a group that was Empty", func(t *testing.T, sh *Shard, groupID string) {
			// A first member joins an Empty group and waits out
			// group.initial.rebalance.delay.ms: no generation with members
			// yet, so no subscription is known (Kafka's subscribedTopics
			// is None) and every offset is kept.
			sh.Coordinator().Join(joinReq(groupID, "", Protocol{Name: "range", Metadata: subscription("t")}), nil)
			if d, err := sh.Coordinator().Describe(groupID); err != nil || d.State != StatePreparingRebalance {
				t.Fatalf("group: %+v %v, want PreparingRebalance", d, err)
			}
		}, keptAll, nil},
		{"PreparingRebalance, another protocol type", func(t *testing.T, sh *Shard, groupID string) {
			stableMemberOf(t, sh, groupID, "connect", subscription("t"))
			rebalance(t, sh, groupID, "connect")
		}, nil, kerr.NonEmptyGroup},
	} {
		t.Run(test.name, func(t *testing.T) {
			log, clock := newMemLog(), newFakeClock()
			sh := loadedShard(t, log, clock)
			if strings.HasSuffix(test.name, "was Empty") {
				sh = delayedShard(t, log, clock)
			}
			if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 1, LeaderEpoch: -1}, tp("u", 0): {Offset: 2, LeaderEpoch: -1}}); err != nil {
				t.Fatalf("commit: %v", err)
			}
			test.form(t, sh, "g")
			refused, err := sh.DeleteOffsets("g", []TopicPartition{tp("t", 0), tp("u", 0)})
			wantErr(t, "DeleteOffsets", err, test.err)
			if len(refused) != len(test.refused) {
				t.Fatalf("refused %v, want %v", refused, test.refused)
			}
			for k, want := range test.refused {
				wantErr(t, "refused "+k.Topic, refused[k], want)
			}
			for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
				for k, want := range map[TopicPartition]int64{tp("t", 0): 1, tp("u", 0): 2} {
					if test.err == nil && test.refused[k] == nil {
						want = -1
					}
					wantOffset(t, s, "g", k, want)
				}
			}
		})
	}
	t.Run("PreparingRebalance after an Empty generation", func(t *testing.T) {
		// The group's last generation ended with no members (its only
		// member left: Empty), then, loaded by another coordinator, a
		// new member joins and waits out the initial rebalance delay.
		// That generation subscribed to nothing known (Kafka's
		// subscribedTopics is None for a generation without members), so
		// every offset is kept. Before, its subscriptions counted as
		// none and both offsets were deleted under the joining member.
		log, clock := newMemLog(), newFakeClock()
		sh := loadedShard(t, log, clock)
		if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 1, LeaderEpoch: -1}, tp("u", 0): {Offset: 2, LeaderEpoch: -1}}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		m := stableMemberOf(t, sh, "g", "consumer", subscription("t"))
		if res := sh.Coordinator().Leave("g", []LeaveMember{{MemberID: m.MemberID}}); res.Err != nil {
			t.Fatalf("leave: %v", res.Err)
		}
		sh.Close()
		sh = delayedShard(t, log, clock)
		sh.Coordinator().Join(joinReq("g", "", Protocol{Name: "range", Metadata: subscription("t")}), nil)
		if d, err := sh.Coordinator().Describe("g"); err != nil || d.State != StatePreparingRebalance {
			t.Fatalf("group: %+v %v, want PreparingRebalance", d, err)
		}
		refused, err := sh.DeleteOffsets("g", []TopicPartition{tp("t", 0), tp("u", 0)})
		if err != nil || len(refused) != 2 {
			t.Fatalf("DeleteOffsets: refused %v, err %v; want both kept (GROUP_SUBSCRIBED_TO_TOPIC)", refused, err)
		}
		wantOffset(t, sh, "g", tp("u", 0), 2)
	})
	t.Run("unknown group", func(t *testing.T) {
		sh := loadedShard(t, newMemLog(), newFakeClock())
		refused, err := sh.DeleteOffsets("nope", []TopicPartition{tp("t", 0)})
		if refused != nil {
			t.Errorf("refused %v, want none", refused)
		}
		wantErr(t, "DeleteOffsets", err, kerr.GroupIDNotFound)
	})
}

// delayedShard is loadedShard with an initial rebalance delay the fake
// clock never reaches: a first member's join stays in PreparingRebalance.
func delayedShard(t *testing.T, log Log, clock Clock) *Shard {
	t.Helper()
	sh, err := NewShard(ShardConfig{Partition: 3, Log: log, Coordinator: Config{Clock: clock, InitialRebalanceDelay: time.Hour}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.Close)
	sh.Load()
	return sh
}
