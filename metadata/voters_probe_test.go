package metadata

import (
	"errors"
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
		// The quorum still commits. What must hold is that it commits,
		// not that node 1 keeps leading: once node 2 votes, a loaded
		// machine can delay its heartbeat answers past node 1's lease,
		// node 1 steps down mid-commit (ErrNotLeader: leadership lost)
		// and an election follows. So wait for a known leader (WaitReady)
		// and propose again, through node 1 (a follower forwards to the
		// leader), until the test's deadline; any other error fails.
		for {
			if err := leader.WaitReady(ctx); err != nil {
				t.Fatalf("no leader: %v", err)
			}
			_, err := leader.AllocateProducerIDs(ctx, 1, 1)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
				t.Fatalf("the quorum no longer commits: %v", err)
			}
			t.Logf("leadership changed while committing, retrying: %v", err)
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
