package metadata

import (
	"reflect"
	"testing"
	"time"
)

// TestQuorumDescriptionGolden pins the answer of controller RPC 9.
func TestQuorumDescriptionGolden(t *testing.T) {
	d := QuorumDescription{LeaderID: 2, LeaderEpoch: 7, HighWatermark: 1234,
		Voters: []QuorumReplica{
			{NodeID: 1, Voter: true, LogEndOffset: 1230, LastFetchMillis: goldenCreatedAt, LastCaughtUpMillis: -1, Address: "10.0.0.1:9093"},
			{NodeID: 2, Voter: true, LogEndOffset: 1240, LastFetchMillis: goldenCreatedAt, LastCaughtUpMillis: goldenCreatedAt, Address: "10.0.0.2:9093"},
		},
		Observers: []QuorumReplica{{NodeID: 4, LogEndOffset: -1, LastFetchMillis: -1, LastCaughtUpMillis: -1}},
	}
	checkGolden(t, "rpc-describe-quorum.bin", encodeQuorumDescription(d))
	decoded, err := decodeQuorumDescription(readGolden(t, "rpc-describe-quorum.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, d) {
		t.Fatalf("decoded %+v\nwant    %+v", decoded, d)
	}
	if _, err := decodeQuorumDescription(encodeQuorumDescription(d)[:20]); err == nil {
		t.Fatal("a truncated answer decoded")
	}
}

// TestDescribeQuorumFromAnyNode: the leader describes the three voters,
// its own position at the commit index or beyond, a registered broker's
// at what its heartbeat reported; a follower asks the leader and answers
// the same voters.
func TestDescribeQuorumFromAnyNode(t *testing.T) {
	c := newTestCluster(t, 3)
	leaderID, leader := c.leader()
	ctx := testContext(t)
	registerTestBrokers(t, ctx, leader, 1)
	epoch := leader.State().Brokers()[0].Epoch
	applied := leader.State().AppliedIndex()
	if err := leader.Heartbeat(ctx, BrokerHeartbeat{ID: 1, BrokerEpoch: epoch, AppliedIndex: applied}); err != nil {
		t.Fatal(err)
	}
	described, err := leader.DescribeQuorum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if described.LeaderID != leaderID || described.HighWatermark <= 0 || len(described.Voters) != 3 || len(described.Observers) != 0 {
		t.Fatalf("leader's description: %+v", described)
	}
	for _, v := range described.Voters {
		switch {
		case v.NodeID == leaderID && v.LogEndOffset < described.HighWatermark:
			t.Errorf("leader %d at %d, below the high watermark %d", v.NodeID, v.LogEndOffset, described.HighWatermark)
		case v.NodeID == 1 && v.NodeID != leaderID && v.LogEndOffset != int64(applied):
			t.Errorf("voter 1 at %d, its heartbeat reported %d", v.LogEndOffset, applied)
		case v.Address == "":
			t.Errorf("voter %d without an address", v.NodeID)
		}
	}
	_, follower := c.follower()
	forwarded, err := follower.DescribeQuorum(ctx)
	if err != nil {
		t.Fatalf("describe through a follower: %v", err)
	}
	if forwarded.LeaderID != leaderID || len(forwarded.Voters) != 3 {
		t.Fatalf("follower's description: %+v", forwarded)
	}
}

// TestDescribeQuorumCaughtUpPastBarriers: a member that has applied every
// committed command is caught up, although Raft committed entries after
// the last command that never reach the state machine (a barrier here;
// also each new term's no-op), so the applied index it reports stays
// below the commit index.
func TestDescribeQuorumCaughtUpPastBarriers(t *testing.T) {
	config := formatTestDir(t)
	config.BrokerSessionTimeout = time.Hour // no fencing command after the barrier
	store := openReady(t, config)
	ctx := testContext(t)
	registerTestBrokers(t, ctx, store, 2)
	if err := store.raft.Barrier(0).Error(); err != nil {
		t.Fatal(err)
	}
	state := store.State()
	if commit := store.raft.CommitIndex(); commit <= state.AppliedIndex() {
		t.Fatalf("commit index %d, applied index %d: the barrier should be committed past the last command", commit, state.AppliedIndex())
	}
	broker, _ := state.Broker(2)
	if err := store.Heartbeat(ctx, BrokerHeartbeat{ID: 2, BrokerEpoch: broker.Epoch, AppliedIndex: state.AppliedIndex()}); err != nil {
		t.Fatal(err)
	}
	described, err := store.DescribeQuorum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(described.Observers) != 1 {
		t.Fatalf("observers %+v, want broker 2", described.Observers)
	}
	if observer := described.Observers[0]; observer.LastFetchMillis < 0 || observer.LastCaughtUpMillis != observer.LastFetchMillis {
		t.Errorf("broker 2 reported every command applied (index %d, commit index %d) but is described as %+v: want caught up at its last heartbeat",
			state.AppliedIndex(), described.HighWatermark, observer)
	}
}
