package broker

import (
	"testing"

	"github.com/strata-log/strata/metadata"
)

// TestLeaderThrottleSparesInSyncAddingReplicas: a replica a reassignment
// adds is throttled while it catches up, but not once the leader has put
// it in the ISR (until the controller finishes the reassignment, which
// waits for every other adding replica): as in Kafka
// (ReplicaManager.shouldLeaderThrottle), an in-sync replica is never
// throttled. Throttled there, it held the high watermark — every acks=all
// produce — to the throttled rate, and fell out of the ISR for lag, so a
// reassignment adding two replicas could keep losing the first one.
func TestLeaderThrottleSparesInSyncAddingReplicas(t *testing.T) {
	// {1} moving to {1,2,3}: 2 caught up and joined the ISR, 3 has not.
	topic := metadata.Topic{Name: "t", Partitions: []metadata.Partition{{Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2},
		AddingReplicas: []int32{2, 3}}}}
	if leaderThrottled(topic, 0, 1, 2) {
		t.Error("the in-sync adding replica 2 is throttled")
	}
	if !leaderThrottled(topic, 0, 1, 3) {
		t.Error("the adding replica 3, not in sync, is not throttled")
	}
}
