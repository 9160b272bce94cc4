package metadata

import (
	"fmt"
	"testing"
)

// TestClusterDemoteLeader: taking the leader's vote away elects another
// leader among the voters; proposals work again from every node, the
// demoted node keeps following, and it can vote again.
func TestClusterDemoteLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	leaderID, leader := c.leader()
	registerTestBrokers(t, ctx, leader, 1)
	if err := leader.RemoveVoter(ctx, leaderID); err != nil {
		t.Fatalf("demote the leader: %v", err)
	}
	for id, s := range c.stores {
		if _, err := s.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("after-demotion-%d", id), Assignments: [][]int32{{1}}}); err != nil {
			t.Fatalf("create on node %d after demoting leader %d: %v", id, leaderID, err)
		}
	}
	waitState(t, c.stores[leaderID], "the demoted node following", func(s *State) bool {
		for id := range c.stores {
			if _, ok := s.Topic(fmt.Sprintf("after-demotion-%d", id)); !ok {
				return false
			}
		}
		return true
	})
	_, newLeader := c.leader()
	if err := newLeader.AddVoter(ctx, leaderID, c.configs[leaderID].ControllerListen); err != nil {
		t.Fatalf("promote back: %v", err)
	}
}
