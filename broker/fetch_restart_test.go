package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestFetchErrorAnsweredAtOnce: a consumer's Fetch in which a partition is
// answered an error is answered at once, as Kafka does, not held to its
// max wait — even beside a partition that waits for data. A consumer that
// fetches from a restarted broker with the leader epoch it knew before
// (FENCED_LEADER_EPOCH: a restart bumps the epoch) learns of the new epoch
// only from this answer; held for franz-go's 5 s max wait, it stalled the
// replay for seconds after the broker was ready. The max wait here is an
// hour: the request returns only if it is answered at once.
func TestFetchErrorAnsweredAtOnce(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "waits", Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "restarted", Assignments: [][]int32{{metadatatest.NodeID}, {metadatatest.NodeID}}}); err != nil {
		t.Fatal(err)
	}
	leadingTopic(t, n, "waits")
	leadingTopic(t, n, "restarted")
	// A leader epoch above 0, so that a client can be behind it (as a
	// restart leaves the consumers of the broker).
	bumpLeaderEpoch(ctx, t, n, "restarted", n.Server.OpenPartition("restarted", 0))
	state := n.Store.State()
	waits, _ := state.Topic("waits")
	restarted, _ := state.Topic("restarted")
	epoch := restarted.Partitions[0].LeaderEpoch
	for _, c := range []struct {
		name   string
		part   func(*kmsg.FetchRequestTopicPartition)
		answer int16
	}{
		{"fenced leader epoch", func(p *kmsg.FetchRequestTopicPartition) { p.CurrentLeaderEpoch = epoch - 1 }, kerr.FencedLeaderEpoch.Code},
		{"unknown leader epoch", func(p *kmsg.FetchRequestTopicPartition) { p.CurrentLeaderEpoch = epoch + 1 }, kerr.UnknownLeaderEpoch.Code},
		{"offset past the log end", func(p *kmsg.FetchRequestTopicPartition) { p.CurrentLeaderEpoch, p.FetchOffset = -1, 10 }, kerr.OffsetOutOfRange.Code},
		{"unknown partition", func(p *kmsg.FetchRequestTopicPartition) { p.CurrentLeaderEpoch, p.Partition = -1, 7 }, kerr.UnknownTopicOrPartition.Code},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, 1<<20, 1, int32(time.Hour.Milliseconds())
			for _, topic := range []metadata.Topic{waits, restarted} {
				rt := kmsg.NewFetchRequestTopic()
				rt.Topic, rt.TopicID = topic.Name, topic.ID
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
				if topic.Name == "restarted" {
					c.part(&rp)
				}
				rt.Partitions = append(rt.Partitions, rp)
				req.Topics = append(req.Topics, rt)
			}
			resp := request[*kmsg.FetchResponse](t, n.Client(), req)
			if got := resp.Topics[1].Partitions[0].ErrorCode; got != c.answer {
				t.Fatalf("error %d, want %d", got, c.answer)
			}
			if got := resp.Topics[0].Partitions[0]; got.ErrorCode != 0 || len(got.RecordBatches) != 0 {
				t.Fatalf("the waiting partition: error %d with %d bytes, want neither", got.ErrorCode, len(got.RecordBatches))
			}
		})
	}
}

// TestReadyOnceLeadershipsServed: the broker is not ready while a
// leadership the metadata state gives it is not yet served by its open
// partition (the election after a restart, applied before the partitions
// follow it): a consumer that read the new leader epoch from Metadata would
// be refused. The partitions are held from following the state, so the
// window is forced, not raced.
func TestReadyOnceLeadershipsServed(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "led", Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
		t.Fatal(err)
	}
	p := leadingTopic(t, n, "led")
	for !n.Server.Ready() {
		if ctx.Err() != nil {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	release := n.Server.HoldReconcile()
	led, _ := n.Store.State().Topic("led")
	if _, err := n.Store.ChangePartition(ctx, metadata.PartitionChange{TopicID: led.ID, Partition: 0,
		PartitionEpoch: led.Partitions[0].PartitionEpoch, Leader: metadata.NoLeaderChange,
		ISR: led.Partitions[0].ISR, BumpLeaderEpoch: true}); err != nil {
		release()
		t.Fatal(err)
	}
	ready := n.Server.Ready()
	release()
	if ready {
		t.Fatalf("ready while the partition leads at epoch %d and the state says %d", p.LeaderEpoch(), led.Partitions[0].LeaderEpoch+1)
	}
	for !n.Server.Ready() {
		if ctx.Err() != nil {
			t.Fatalf("not ready again once the partition follows the state (leads at epoch %d)", p.LeaderEpoch())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
