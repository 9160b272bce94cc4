package broker_test

import (
	"context"
	"testing"

	"github.com/strata-log/strata/broker/brokertest"
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
