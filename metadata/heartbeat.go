package metadata

import (
	"sync"

	"github.com/hashicorp/raft"
)

// gatedTransport is Raft's network transport with its heartbeat fast path
// behind a gate that Store.Close shuts before it closes the Raft log.
// hashicorp/raft runs a heartbeat (processHeartbeat) on the transport's
// connection goroutine, not on its own: a heartbeat that passed Raft's
// shutdown check just before Shutdown still saves the leader's term to
// the stable store, and Raft panics if that store was closed meanwhile
// ("failed to save current term: database not open"). The transport's
// Close does not wait for its connection goroutines, so the gate does:
// stopHeartbeats waits for the heartbeats in progress, and answers later
// ones with ErrTransportShutdown, without calling Raft.
type gatedTransport struct {
	*raft.NetworkTransport
	mu      sync.RWMutex // held for reading by each heartbeat in progress
	stopped bool
}

// SetHeartbeatHandler installs cb (Raft's processHeartbeat) behind the
// gate.
func (g *gatedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(g.gate(cb))
}

// gate returns cb run only while the gate is open.
func (g *gatedTransport) gate(cb func(rpc raft.RPC)) func(rpc raft.RPC) {
	return func(rpc raft.RPC) {
		g.mu.RLock()
		defer g.mu.RUnlock()
		if g.stopped {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		cb(rpc)
	}
}

// stopHeartbeats shuts the gate: it returns once no heartbeat is in
// progress, and none reaches Raft after it.
func (g *gatedTransport) stopHeartbeats() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}
