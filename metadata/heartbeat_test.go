package metadata

import (
	"errors"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
)

// The heartbeat gate, with forced interleavings: stopHeartbeats does not
// return while a heartbeat is in Raft (which may still save the term to
// the log Store.Close closes next), and a heartbeat after it is answered
// with ErrTransportShutdown without reaching Raft. Before the gate, Close
// closed the log under such a heartbeat and Raft panicked ("failed to save
// current term: database not open", seen once in .ci/run).
func TestHeartbeatGateWaitsForHeartbeatsInRaft(t *testing.T) {
	g := &gatedTransport{}
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	heartbeat := g.gate(func(rpc raft.RPC) {
		calls++
		close(entered)
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	firstResp := make(chan raft.RPCResponse, 1)
	first := raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: firstResp}
	go heartbeat(first)
	<-entered // the heartbeat is in Raft

	stopped := make(chan struct{})
	go func() {
		g.stopHeartbeats()
		close(stopped)
	}()
	// Wait until stopHeartbeats waits for the gate (a pending writer makes
	// TryRLock fail), then check it has not returned.
	for {
		select {
		case <-stopped:
			t.Fatal("stopHeartbeats returned while a heartbeat was in Raft")
		default:
		}
		if !g.mu.TryRLock() {
			break
		}
		g.mu.RUnlock()
		runtime.Gosched()
	}
	select {
	case <-stopped:
		t.Fatal("stopHeartbeats returned while a heartbeat was in Raft")
	default:
	}
	close(release)
	<-stopped
	if resp := <-firstResp; resp.Error != nil {
		t.Fatalf("the heartbeat in progress: %v, want its answer", resp.Error)
	}

	secondResp := make(chan raft.RPCResponse, 1)
	heartbeat(raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: secondResp})
	if resp := <-secondResp; !errors.Is(resp.Error, raft.ErrTransportShutdown) {
		t.Fatalf("a heartbeat after the gate shut: %v, want ErrTransportShutdown", resp.Error)
	}
	if calls != 1 {
		t.Fatalf("Raft got %d heartbeats, want the one before the gate shut", calls)
	}
}
