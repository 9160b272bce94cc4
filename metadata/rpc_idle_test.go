package metadata

import (
	"sync"
	"testing"
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
