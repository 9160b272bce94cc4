package metadata

import (
	"strings"
	"testing"
)

// TestAddVoterProbesTheNode replays the probe that stopped a one-voter
// quorum for good: adding a voter that never answers (here: an address
// nobody listens on, and a node holding another cluster secret). The
// leader refuses both, its voter set stays as it was and it keeps
// committing; a node of this cluster is added.
func TestAddVoterProbesTheNode(t *testing.T) {
	config := formatTestDir(t)
	leader := openReady(t, config)
	ctx := testContext(t)

	startNode2 := func(secret ClusterSecret) (address string) {
		t.Helper()
		dir := t.TempDir()
		address = freeAddress(t)
		if err := Format(dir, "test-cluster", 2, map[int32]string{1: config.ControllerListen}); err != nil {
			t.Fatal(err)
		}
		node2 := testConfig(dir, address)
		node2.NodeID = 2
		node2.Voters = map[int32]string{1: config.ControllerListen}
		node2.ClusterSecret = secret
		store, err := Open(node2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return address
	}
	requireVoters := func(want int) {
		t.Helper()
		voters, err := leader.Voters()
		if err != nil {
			t.Fatal(err)
		}
		voting := 0
		for _, v := range voters {
			if v.Voting {
				voting++
			}
		}
		if voting != want {
			t.Fatalf("%d voters %+v, want %d", voting, voters, want)
		}
		// The quorum still commits.
		if _, err := leader.AllocateProducerIDs(ctx, 1, 1); err != nil {
			t.Fatalf("the quorum no longer commits: %v", err)
		}
	}

	err := leader.AddVoter(ctx, 2, freeAddress(t))
	if err == nil || !strings.Contains(err.Error(), "--cluster-secret-file") {
		t.Fatalf("AddVoter of an address nobody listens on: %v, want a refusal telling what to do", err)
	}
	requireVoters(1)

	stranger := startNode2(mustParseSecret("a secret that is not this cluster's, 0123456789"))
	if err := leader.AddVoter(ctx, 2, stranger); err == nil {
		t.Fatal("AddVoter of a node without this cluster's secret succeeded")
	}
	requireVoters(1)

	member := startNode2(testSecret)
	if err := leader.AddVoter(ctx, 2, member); err != nil {
		t.Fatalf("AddVoter of a member: %v", err)
	}
	requireVoters(2)
}
