package broker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// TestOffsetDeleteKeepsCommitOfConsumerThatJoined: an OffsetDelete of an
// Empty group's offsets is under way when a consumer subscribed to the
// topic joins the group (Stable again) and commits. Kafka decides which
// partitions to delete and deletes them in one step under the group's
// lock, so the consumer's commit either comes after the deletion or makes
// the deletion answer GROUP_SUBSCRIBED_TO_TOPIC. Strata's handler read
// the group's state first and had the offsets deleted later, without the
// group's lock: the consumer's fresh, acknowledged commit was deleted and
// OffsetDelete answered success (the consumer re-consumes from
// auto.offset.reset on its next start or rebalance).
//
// The interleaving is forced with the server's hook between the
// handler's checks of the request and the deletion: the consumer joins
// and commits there.
func TestOffsetDeleteKeepsCommitOfConsumerThatJoined(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 1, nil)
	createTopic(t, cl, "u", 1, nil)
	commitOffset(t, cl, "g", -1, "", "t", 0, 5)
	commitOffset(t, cl, "g", -1, "", "u", 0, 6)
	if state := describeGroup(t, cl, "g").State; state != "Empty" {
		t.Fatalf("group %s, want Empty", state)
	}

	reached, proceed := make(chan struct{}), make(chan struct{})
	n.Server.BeforeOffsetDelete(func(groupID string) {
		if groupID == "g" {
			close(reached)
			<-proceed
		}
	})
	defer n.Server.BeforeOffsetDelete(nil)
	admin := n.Client()
	deleted := make(chan *kmsg.OffsetDeleteResponse, 1)
	go func() {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = "g"
		req.Topics = []kmsg.OffsetDeleteRequestTopic{
			{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
			{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		}
		resp, err := admin.Request(t.Context(), req)
		if err != nil {
			t.Errorf("OffsetDelete: %v", err)
			deleted <- nil
			return
		}
		deleted <- resp.(*kmsg.OffsetDeleteResponse)
	}()
	<-reached
	member, generation := joinAndSync(t, cl, "g", "t")
	commitOffset(t, cl, "g", generation, member, "t", 0, 42)
	close(proceed)
	resp := <-deleted
	if resp == nil {
		t.FailNow()
	}

	codes := map[string]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			codes[rt.Topic] = rp.ErrorCode
		}
	}
	if resp.ErrorCode != 0 || codes["t"] != kerr.GroupSubscribedToTopic.Code || codes["u"] != 0 {
		t.Errorf("OffsetDelete answered %v, t-0 %v, u-0 %v; want t-0 GROUP_SUBSCRIBED_TO_TOPIC (the consumer subscribes to t), u-0 deleted",
			kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(codes["t"]), kerr.ErrorForCode(codes["u"]))
	}
	if got := fetchOffset(t, cl, "g", "t", 0); got != 42 {
		t.Errorf("t-0: committed offset %d, want the consumer's 42", got)
	}
	if got := fetchOffset(t, cl, "g", "u", 0); got != -1 {
		t.Errorf("u-0: committed offset %d, want none (deleted)", got)
	}
}
