package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestOffsetsOfTopicDeletedElsewhereRemoved: a topic deleted through
// another broker reaches this one as a metadata change only (no
// DeleteTopics request here); its group coordinators must still remove
// the committed offsets of it (Kafka's handleDeletedPartitions, run on
// every broker from the metadata), so that a consumer of the topic
// re-created under the same name does not start from the old topic's
// offset.
func TestOffsetsOfTopicDeletedElsewhereRemoved(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 1, nil)
	createTopic(t, cl, "kept", 1, nil)
	commitOffset(t, cl, "g", -1, "", "t", 0, 42)
	commitOffset(t, cl, "g", -1, "", "kept", 0, 7)

	// What a DeleteTopics handled by another broker commits.
	if _, err := n.Store.DeleteTopic(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	createTopic(t, cl, "t", 1, nil)
	if got := fetchOffset(t, cl, "g", "t", 0); got != -1 {
		t.Fatalf("committed offset of the re-created topic: %d (the deleted topic's), want -1", got)
	}
	if got := fetchOffset(t, cl, "g", "kept", 0); got != 7 {
		t.Fatalf("offset of the other topic: %d, want 7", got)
	}
}

// TestRemovedPartitionWritesNothingIntoItsSuccessorsDirectory: the
// maintenance loop works on the partitions it listed before a concurrent
// DeleteTopics and CreateTopics of the same name removed one and opened
// its successor in the same directory <topic>-<n>; the removed partition
// must not write its producer snapshot or high watermark checkpoint there,
// where the new topic's log takes them for its own: here the old log's
// snapshot replaces the new log's at the same offset, and after a restart
// the new topic knows the old topic's producer instead of its own.
func TestRemovedPartitionWritesNothingIntoItsSuccessorsDirectory(t *testing.T) {
	n := brokertest.Start(t)
	oldProducer := n.Client() // idempotent: the logs have producer state
	createTopic(t, oldProducer, "t", 1, nil)
	produceValues(t, oldProducer, "t", 5)
	old := n.Server.OpenPartition("t", 0)

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"t"}
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("t")}}
	if r := request[*kmsg.DeleteTopicsResponse](t, oldProducer, del); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete topic: %+v", r)
	}
	createTopic(t, oldProducer, "t", 1, nil)
	newProducer := n.Client()
	produceValues(t, newProducer, "t", 5)
	producers := func(cl *kgo.Client) []kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
		dp := kmsg.NewPtrDescribeProducersRequest()
		dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		p := request[*kmsg.DescribeProducersResponse](t, cl, dp).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("describe producers: %+v", p)
		}
		return p.ActiveProducers
	}
	want := producers(newProducer)
	if len(want) != 1 {
		t.Fatalf("producers of the re-created topic: %+v", want)
	}
	maintain := partition.Maintenance{ProducerIDExpiration: time.Hour, Retention: true, Snapshot: true, CheckpointHighWatermark: true}
	n.Server.OpenPartition("t", 0).Maintain(time.Now(), maintain) // its snapshot at 5
	// The old partition's turn of a maintenance round that listed it
	// before the delete.
	old.Maintain(time.Now(), maintain)
	newProducer.Close()
	oldProducer.Close()
	n.Restart()
	if got := producers(n.Client()); len(got) != 1 || got[0].ProducerID != want[0].ProducerID {
		t.Fatalf("producers of the re-created topic after a restart: %+v, want %+v", got, want)
	}
}

// TestOffsetsOfTopicReplacedWhileCoordinatorDownRemoved: a topic deleted
// and re-created under the same name while the broker leading the group's
// offsets partition is down reaches it, when it is back, as a topic that
// exists under a new id; no pass of its own saw the old topic gone (the
// first pass after a start has no previous state to compare with). The
// group's committed offsets of the old topic must not be served for the
// new one: a consumer would resume from the old topic's offset and skip
// the new topic's first records.
func TestOffsetsOfTopicReplacedWhileCoordinatorDownRemoved(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 1, nil)
	createTopic(t, cl, "gone", 1, nil)
	createTopic(t, cl, "kept", 1, nil)
	commitOffset(t, cl, "g", -1, "", "t", 0, 42)
	commitOffset(t, cl, "g", -1, "", "gone", 0, 5)
	commitOffset(t, cl, "g", -1, "", "kept", 0, 7)

	// What the other brokers commit meanwhile.
	n.RestartAfter(func(store *metadata.Store) {
		ctx := context.Background()
		for _, name := range []string{"t", "gone"} {
			if _, err := store.DeleteTopic(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
			t.Fatal(err)
		}
	})
	cl = n.Client(offsetsByName())
	if got := fetchOffset(t, cl, "g", "t", 0); got != -1 {
		t.Fatalf("committed offset of the re-created topic: %d (the deleted topic's), want -1", got)
	}
	// Deleted while down and re-created once back.
	createTopic(t, cl, "gone", 1, nil)
	if got := fetchOffset(t, cl, "g", "gone", 0); got != -1 {
		t.Fatalf("committed offset of the topic re-created after the restart: %d (the deleted topic's), want -1", got)
	}
	if got := fetchOffset(t, cl, "g", "kept", 0); got != 7 {
		t.Fatalf("offset of the other topic: %d, want 7", got)
	}
}
