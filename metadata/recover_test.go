package metadata

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestRecoverQuorum replays issue 14's stalled quorum: a single voter adds
// a voter that never answers, so the configuration {1, 2} can never elect a
// leader again. RecoverQuorum on the stopped node with itself as the only
// voter brings it back as the leader with every topic it had, from the
// snapshot and from the log after it.
func TestRecoverQuorum(t *testing.T) {
	config := formatTestDir(t)
	store := openReady(t, config)
	registerTestBrokers(t, testContext(t), store, 1)
	mustCreateTopic(t, store, TopicSpec{Name: "in-snapshot", Assignments: [][]int32{{1}}})
	if err := store.snapshot(); err != nil {
		t.Fatal(err)
	}
	mustCreateTopic(t, store, TopicSpec{Name: "in-log", Assignments: [][]int32{{1}}})
	// A single voter commits the change on its own vote (hashicorp/raft
	// commits a configuration entry under the configuration before it), so
	// this succeeds, as the POST /v1/voters did. (AddVoter now
	// probes the node first and refuses; a voter that dies for good right
	// after joining leaves the same state, which Raft is asked for here.)
	store.raft.AddVoter(serverID(2), "127.0.0.1:1", 0, time.Second).Error()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	voters := map[int32]string{1: config.ControllerListen}
	t.Run("refused", func(t *testing.T) {
		running, err := Open(config)
		if err != nil {
			t.Fatal(err)
		}
		_, err = RecoverQuorum(config.DataDir, 1, voters, discardLogger())
		running.Close()
		if !errors.Is(err, ErrDataDirLocked) {
			t.Errorf("recovery while the node runs: %v, want ErrDataDirLocked", err)
		}
		if _, err := RecoverQuorum(config.DataDir, 2, map[int32]string{2: "127.0.0.1:2"}, discardLogger()); !errors.Is(err, ErrNodeIDMismatch) {
			t.Errorf("recovery as another node: %v, want ErrNodeIDMismatch", err)
		}
		if _, err := RecoverQuorum(config.DataDir, 1, map[int32]string{3: "127.0.0.1:3"}, discardLogger()); err == nil {
			t.Error("recovery that leaves this node out of the voters succeeded")
		}
		if _, err := RecoverQuorum(config.DataDir, 1, map[int32]string{1: "0.0.0.0:1"}, discardLogger()); err == nil {
			t.Error("recovery with an unspecified voter address succeeded")
		}
	})

	result, err := RecoverQuorum(config.DataDir, 1, voters, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	wantBefore := []Voter{{NodeID: 1, Address: config.ControllerListen, Voting: true}, {NodeID: 2, Address: "127.0.0.1:1", Voting: true}}
	if !reflect.DeepEqual(result.Before, wantBefore) {
		t.Errorf("before: %+v, want %+v", result.Before, wantBefore)
	}
	wantAfter := []Voter{{NodeID: 1, Address: config.ControllerListen, Voting: true}}
	if !reflect.DeepEqual(result.After, wantAfter) {
		t.Errorf("after: %+v, want %+v", result.After, wantAfter)
	}
	if result.LastIndex == 0 {
		t.Error("last index 0")
	}

	recovered := openReady(t, config)
	if leader, ok := recovered.Leader(); !ok || leader != 1 {
		t.Fatalf("leader %d, %t after recovery; want node 1", leader, ok)
	}
	got, err := recovered.Voters()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantAfter) {
		t.Errorf("voters after restart: %+v, want %+v", got, wantAfter)
	}
	for _, name := range []string{"in-snapshot", "in-log"} {
		if _, ok := recovered.State().Topic(name); !ok {
			t.Errorf("topic %s lost by the recovery", name)
		}
	}
	// The recovered quorum takes writes.
	mustCreateTopic(t, recovered, TopicSpec{Name: "after", Assignments: [][]int32{{1}}})
}
