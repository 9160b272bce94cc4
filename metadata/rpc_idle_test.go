package metadata

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestForwardAfterLeaderDroppedIdleConnections: when the leader has closed
// the connections a follower keeps idle (a restart at the same address,
// its connections cut), the next forwarded request is answered: the one
// retry is on a new connection. It retried on the next idle connection,
// dead as well, and the heartbeat failed.
func TestForwardAfterLeaderDroppedIdleConnections(t *testing.T) {
	c := newTestCluster(t, 2)
	_, leader := c.leader()
	_, follower := c.follower()
	ctx := testContext(t)
	epoch, err := follower.RegisterBroker(ctx, testRegistration(7))
	if err != nil {
		t.Fatal(err)
	}
	// Two idle connections: a heartbeat sent while the leader holds a
	// proposal takes a second one (TestForwardedRequestsDoNotQueue).
	held, release := make(chan struct{}), make(chan struct{})
	var holding sync.Once
	hook := func(kind uint8) {
		if kind == rpcPropose {
			holding.Do(func() {
				close(held)
				<-release
			})
		}
	}
	leader.beforeRPC.Store(&hook)
	proposed := make(chan error, 1)
	go func() {
		_, err := follower.AllocateProducerIDs(ctx, 7, 10)
		proposed <- err
	}()
	<-held
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 7, BrokerEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
	follower.rpc.mu.Lock()
	idle := len(follower.rpc.idle)
	follower.rpc.mu.Unlock()
	if idle != 2 {
		t.Fatalf("%d idle connections, want 2", idle)
	}
	// The leader cuts the connections it serves RPCs on.
	leader.layer.mutex.Lock()
	for conn := range leader.layer.handshaking {
		conn.Close()
	}
	leader.layer.mutex.Unlock()
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 7, BrokerEpoch: epoch}); err != nil {
		t.Fatalf("heartbeat after the leader dropped the idle connections: %v", err)
	}
}

// TestDialBoundedByItsTimeout: a dial ends by its timeout, the handshake
// included, so a forwarded request that needs a new connection ends by
// its own deadline. A leader that is paused (SIGSTOP) still accepts TCP
// connections (its kernel does) but never answers the handshake: the
// dial waited HandshakeTimeout (5 s by default) whatever the caller's
// deadline, and a broker's heartbeat loop (one heartbeat per interval,
// each with that interval as its deadline) stalled that long on a new
// connection to the paused leader.
func TestDialBoundedByItsTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := silent.Accept(); err == nil {
			accepted <- conn // accepted, never answered
		}
	}()
	defer func() {
		silent.Close()
		select {
		case conn := <-accepted:
			conn.Close()
		default:
		}
	}()
	layer, err := listenStreamLayer(streamLayerConfig{
		clusterID: "cluster-a", nodeID: 1, secret: testSecret, listen: "127.0.0.1:0",
		handshakeTimeout: time.Hour,
		resolve:          func(raft.ServerAddress) (int32, bool) { return 2, true },
		logger:           discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	dialed := make(chan error, 1)
	go func() {
		conn, err := layer.dial(raft.ServerAddress(silent.Addr().String()), 2, channelRPC, 50*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	select {
	case err := <-dialed:
		if err == nil {
			t.Fatal("a dial to a node that never answers the handshake succeeded")
		}
	case <-testContext(t).Done():
		t.Fatal("a dial with a 50 ms timeout still waits for the handshake after 30 s (bounded by HandshakeTimeout only)")
	}
}
