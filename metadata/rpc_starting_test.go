package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRPCWhileRaftStarts: the controller listener is up before Raft has
// started (NewRaft replays the log and snapshot first, which takes a while
// on a big state), and a peer's RPC can arrive in that window — after a
// restart every other node dials the node at once. Before, the RPC handler
// read the Raft node that did not exist yet and the process died of a nil
// pointer dereference at start-up (the nemesis's finding (C): a node that
// exited at restart with a goroutine dump from handleRPC). Now a node
// still starting answers that it is not the leader, before appending
// anything, which the sender retries.
func TestRPCWhileRaftStarts(t *testing.T) {
	config := formatTestDir(t)
	var (
		response rpcResponse
		err      error
	)
	config.raftStarting = func(s *Store) {
		conn, dialErr := s.layer.dial(context.Background(), raft.ServerAddress(s.layer.Addr().String()), 1, channelRPC, time.Second)
		if dialErr != nil {
			err = dialErr
			return
		}
		defer conn.Close()
		response, err = exchange(context.Background(), conn, append([]byte{rpcPropose}, encodeCommand(&unregisterBrokerCommand{id: 2, epoch: AnyBrokerEpoch})...), time.Now().Add(5*time.Second))
	}
	store := openReady(t, config)
	if err != nil {
		t.Fatalf("an RPC while Raft starts: %v", err)
	}
	if response.status != rpcNotLeader || response.index != 0 {
		t.Fatalf("an RPC while Raft starts answered %+v, want not leader, refused before appending (index 0)", response)
	}
	if _, ok := store.State().Broker(2); ok {
		t.Fatal("broker 2 registered")
	}
}
