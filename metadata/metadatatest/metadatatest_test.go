package metadatatest

import (
	"context"
	"testing"

	"github.com/strata-log/strata/metadata"
)

func TestOpenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	store := Open(t, dir)
	if store.State().ClusterID() != ClusterID || !store.IsLeader() {
		t.Fatalf("cluster id %q, leader %t", store.State().ClusterID(), store.IsLeader())
	}
	RegisterBroker(t, store, NodeID)
	created, err := store.CreateTopic(context.Background(), metadata.TopicSpec{Name: "orders", Assignments: [][]int32{{NodeID}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := Open(t, dir)
	topic, ok := reopened.State().Topic("orders")
	if !ok || topic.ID != created.ID {
		t.Fatalf("topic after restart: %+v, %t", topic, ok)
	}
}
