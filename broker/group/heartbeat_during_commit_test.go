package group

import (
	"testing"
	"time"
)

// TestHeartbeatNotBlockedByCommitAwaitingReplicas: an offset commit is
// written under the group's lock (Coordinator.withGroup), and its write
// returns only once every in-sync replica has the batch (Log.Append,
// acks=all) — up to replica.lag.time.max.ms with a slow follower. Every
// Heartbeat, JoinGroup, SyncGroup and session-expiry timer of the group
// waited for it meanwhile: a member's heartbeats stalled behind another
// member's commit (and its session timer, queued on the same lock, could
// win it first). Kafka appends a commit under the group lock but waits for
// the replicas outside it (a delayed produce with a callback).
func TestHeartbeatNotBlockedByCommitAwaitingReplicas(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	joined := make(chan JoinResult, 1)
	c.Join(joinReq("g", ""), func(r JoinResult) { joined <- r })
	jr := <-joined
	if jr.Err != nil {
		t.Fatal(jr.Err)
	}
	synced := make(chan SyncResult, 1)
	c.Sync(SyncRequest{GroupID: "g", GenerationID: jr.GenerationID, MemberID: jr.MemberID,
		Assignments: []MemberAssignment{{MemberID: jr.MemberID, Assignment: []byte("a")}}}, func(r SyncResult) { synced <- r })
	if err := (<-synced).Err; err != nil {
		t.Fatal(err)
	}

	// A transactional commit of the group, appended, awaiting its replicas.
	w := holdTxnWrite(t, sh, log, true, "g", 7, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 5, LeaderEpoch: -1}})
	defer func() {
		close(w.release)
		if err := <-w.done; err != nil {
			t.Errorf("commit: %v", err)
		}
	}()
	beat := make(chan error, 1)
	go func() {
		beat <- c.Heartbeat(HeartbeatRequest{GroupID: "g", GenerationID: jr.GenerationID, MemberID: jr.MemberID})
	}()
	select {
	case err := <-beat:
		if err != nil {
			t.Errorf("heartbeat: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a heartbeat waits for another write's replication: the commit holds the group's lock while awaiting the in-sync replicas")
	}
}
