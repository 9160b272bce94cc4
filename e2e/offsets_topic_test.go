//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOffsetsTopicWaitsForThreeBrokers: in a 3-node cluster with one node
// down at the first group lookup, __consumer_offsets is not created with
// two replicas (what min(3, brokers) did): FindCoordinator answers
// COORDINATOR_NOT_AVAILABLE. Once the node is back, a consumer group
// commits, and every offsets partition has three replicas.
func TestOffsetsTopicWaitsForThreeBrokers(t *testing.T) {
	c := startCluster(t, 3)
	c.nodes[3].kill()
	c.waitLiveBrokers(2)

	cl := newClient(t, c.nodes[1].addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorKey = "g"
	raw, err := cl.Request(ctx, find)
	if err != nil {
		t.Fatal(err)
	}
	resp := raw.(*kmsg.FindCoordinatorResponse)
	if resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("FindCoordinator with 2 of 3 brokers: %v (node %d), want COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(resp.ErrorCode), resp.NodeID)
	}
	if topics, err := c.admin(3).ListTopicsWithInternal(ctx); err != nil || topics.Has("__consumer_offsets") {
		t.Fatalf("offsets topic with 2 of 3 brokers up: %v %v", topics.Names(), err)
	}

	c.nodes[3].restart(t)
	c.waitLiveBrokers(3)
	group := c.client(t, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.AllowAutoTopicCreation(), kgo.DisableAutoCommit())
	if err := group.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetches := group.PollRecords(ctx, 1)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if err := group.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	topics, err := c.admin().ListTopicsWithInternal(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	detail, ok := topics["__consumer_offsets"]
	if !ok || len(detail.Partitions) == 0 {
		t.Fatalf("no offsets topic after a commit: %+v", topics)
	}
	for _, p := range detail.Partitions {
		if len(p.Replicas) != 3 {
			t.Errorf("offsets partition %d: replicas %v, want 3", p.Partition, p.Replicas)
		}
	}
}
