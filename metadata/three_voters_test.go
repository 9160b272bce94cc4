package metadata

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// TestThreeVoterCluster runs three Stores that reach each other by hostname
// through the handshaking stream layer, and checks that a topic created on
// the leader reaches every node.
func TestThreeVoterCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	runThreeVoterCluster(t, func(int32, *Config) {})
}

// runThreeVoterCluster is TestThreeVoterCluster with each node's Config
// changed by configure before it opens.
func runThreeVoterCluster(t *testing.T, configure func(id int32, config *Config)) {
	voters := map[int32]string{}
	listens := map[int32]string{}
	for id := int32(1); id <= 3; id++ {
		listens[id] = freeAddress(t)
		_, port, _ := net.SplitHostPort(listens[id])
		voters[id] = net.JoinHostPort("localhost", port)
	}
	stores := map[int32]*Store{}
	for id := int32(1); id <= 3; id++ {
		dir := t.TempDir()
		if err := Format(dir, "three", id, voters); err != nil {
			t.Fatal(err)
		}
		config := testConfig(dir, listens[id])
		config.NodeID = id
		if testing.Verbose() && os.Getenv("METADATA_TEST_LOG") != "" {
			config.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		config.ControllerAdvertise = voters[id]
		// Slower than the single-node tests: elections among three nodes
		// on two busy cores should not flap.
		config.HeartbeatTimeout = 300 * time.Millisecond
		config.ElectionTimeout = 300 * time.Millisecond
		config.LeaderLeaseTimeout = 150 * time.Millisecond
		configure(id, &config)
		store, err := Open(config)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		stores[id] = store
	}

	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	var created Topic
	for attempt := 0; ; attempt++ {
		for _, store := range stores {
			if err := store.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
		}
		leaderID, ok := stores[1].Leader()
		if !ok {
			continue
		}
		// The replicas must be registered brokers; registering the same
		// incarnation again after a failed attempt is a retry.
		var err error
		for id := int32(1); id <= 3 && err == nil; id++ {
			_, err = stores[leaderID].RegisterBroker(ctx, testRegistration(id))
		}
		if err == nil {
			created, err = stores[leaderID].CreateTopic(ctx, TopicSpec{Name: "replicated", Assignments: [][]int32{{1, 2, 3}}})
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create topic on node %d: %v", leaderID, err)
		}
	}
	for id, store := range stores {
		t.Run(fmt.Sprintf("node-%d", id), func(t *testing.T) {
			for {
				state, changed := store.Watch()
				if topic, ok := state.Topic("replicated"); ok {
					if topic.ID != created.ID {
						t.Fatalf("topic id %x, want %x", topic.ID, created.ID)
					}
					if state.ClusterID() != "three" {
						t.Fatalf("cluster id %q", state.ClusterID())
					}
					return
				}
				select {
				case <-changed:
				case <-ctx.Done():
					t.Fatal("topic never replicated")
				}
			}
		})
	}
}
