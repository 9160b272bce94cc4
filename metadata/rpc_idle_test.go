package metadata

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// TestForwardAfterLeaderDroppedIdleConnections: when the leader has closed
// the connections a follower keeps idle (a restart at the same address,
// its connections cut), the next forwarded request is answered: idle
// connections the peer closed are skipped for a new one. It once retried
// on the next idle connection, dead as well, and the heartbeat failed.
func TestForwardAfterLeaderDroppedIdleConnections(t *testing.T) {
	leader, follower, epoch := forwardingPair(t)
	ctx := testContext(t)
	// Two idle connections: a heartbeat sent while the leader holds a
	// proposal takes a second one (TestForwardedRequestsDoNotQueue).
	held, release := holdFirstProposal(t, leader)
	proposed := make(chan error, 1)
	go func() {
		_, err := follower.AllocateProducerIDs(ctx, 7, 10)
		proposed <- err
	}()
	<-held
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 7, BrokerEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
	follower.rpc.mu.Lock()
	idle := len(follower.rpc.idle)
	follower.rpc.mu.Unlock()
	if idle != 2 {
		t.Fatalf("%d idle connections, want 2", idle)
	}
	cutRPCConnections(leader)
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
	silent, _, layer := silentPeer(t)
	dialed := make(chan error, 1)
	go func() {
		conn, err := layer.dial(context.Background(), silent, 2, channelRPC, 50*time.Millisecond)
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

// TestForwardFailureAfterSendNotResent: a request whose connection breaks
// after the leader read it is not sent again, and its error does not say
// "not applied": the leader may have appended it. The leader here applies
// a producer ID allocation and cuts the connection before answering; the
// follower used to resend it on a new connection (the failure was on an
// idle connection, taken for one the leader had closed), allocating a
// second block.
func TestForwardFailureAfterSendNotResent(t *testing.T) {
	leader, follower, _ := forwardingPair(t) // its registration leaves an idle connection
	ctx := testContext(t)
	var proposals atomic.Int32
	hook := func(kind uint8) {
		if kind == rpcPropose && proposals.Add(1) == 1 {
			cutRPCConnections(leader) // handled after this returns: its answer finds the connection cut
		}
	}
	leader.beforeRPC.Store(&hook)
	_, err := follower.AllocateProducerIDs(ctx, 7, 10)
	if n := proposals.Load(); n != 1 {
		t.Fatalf("the leader was sent the proposal %d times, want once (err %v)", n, err)
	}
	if err == nil || errors.Is(err, errNotApplied) {
		t.Fatalf("error %v, want one that does not say the proposal was not applied", err)
	}
}

// TestIdleConnectionOpen: the check of an idle connection before a request
// is written, over plain TCP and TLS (TLS 1.3: the server's session ticket
// is read with the first answer, as an exchange does): open while idle;
// not open once the peer has closed it, or once it holds bytes no request
// asked for.
func TestIdleConnectionOpen(t *testing.T) {
	ca := authntest.NewCA(t, "idle CA")
	server := &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, pkix.Name{CommonName: "localhost"})}}
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	for _, secured := range []bool{false, true} {
		for _, end := range []string{"closed", "stray bytes"} {
			t.Run(fmt.Sprintf("tls=%v/%s", secured, end), func(t *testing.T) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					conn, err := ln.Accept()
					if err != nil {
						close(accepted)
						return
					}
					if secured {
						conn = tls.Server(conn, server)
					}
					accepted <- conn
				}()
				conn, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if secured {
					conn = tls.Client(conn, client)
				}
				peer := <-accepted
				defer peer.Close()
				// One exchange, as a request and its answer.
				go func() {
					var b [1]byte
					if _, err := io.ReadFull(peer, b[:]); err == nil {
						peer.Write(b[:])
					}
				}()
				var b [1]byte
				if _, err := conn.Write([]byte{1}); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conn, b[:]); err != nil {
					t.Fatal(err)
				}
				if !stillOpen(conn) {
					t.Fatal("an idle connection the peer keeps open was found closed")
				}
				if end == "closed" {
					peer.Close()
				} else if _, err := peer.Write([]byte{2}); err != nil {
					t.Fatal(err)
				}
				// The peer's close or bytes arrive over loopback soon, not
				// necessarily by the time Close or Write returns.
				deadline := time.Now().Add(10 * time.Second)
				for stillOpen(conn) {
					if time.Now().After(deadline) {
						t.Fatalf("still found open 10 s after the peer's %s", end)
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
}

// holdFirstProposal makes the leader hold the first proposal it is
// forwarded, unanswered, as a paused leader would: held is closed once it
// does, and release (idempotent, also run at cleanup) lets it go on.
func holdFirstProposal(t *testing.T, leader *Store) (held <-chan struct{}, release func()) {
	holding, let := make(chan struct{}), make(chan struct{})
	var once, releasing sync.Once
	release = func() { releasing.Do(func() { close(let) }) }
	t.Cleanup(release)
	hook := func(kind uint8) {
		if kind == rpcPropose {
			once.Do(func() {
				close(holding)
				<-let
			})
		}
	}
	leader.beforeRPC.Store(&hook)
	return holding, release
}

// cutRPCConnections closes the connections s serves controller RPCs on, as
// a restart at the same address does.
func cutRPCConnections(s *Store) {
	s.layer.mutex.Lock()
	defer s.layer.mutex.Unlock()
	for conn := range s.layer.handshaking {
		conn.Close()
	}
}

// forwardingPair starts a two-node quorum and registers broker 7 through
// the follower (which forwards it to the leader, leaving an idle
// connection); it returns both stores and the broker's epoch.
func forwardingPair(t *testing.T) (leader, follower *Store, epoch int64) {
	c := newTestCluster(t, 2)
	_, leader = c.leader()
	_, follower = c.follower()
	epoch, err := follower.RegisterBroker(testContext(t), testRegistration(7))
	if err != nil {
		t.Fatal(err)
	}
	return leader, follower, epoch
}

// silentPeer is a node 2 that accepts TCP connections and never answers
// a handshake (a paused leader: its kernel accepts), and a stream layer
// of node 1 to dial it with (a handshake timeout of an hour, so only the
// dial's own bounds end it): the address, the connections it accepted
// (the first; closed by the test's cleanup) and the layer.
func silentPeer(t *testing.T) (raft.ServerAddress, chan net.Conn, *streamLayer) {
	t.Helper()
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
	t.Cleanup(func() {
		silent.Close()
		select {
		case conn := <-accepted:
			conn.Close()
		default:
		}
	})
	layer, err := listenStreamLayer(streamLayerConfig{
		clusterID: "cluster-a", nodeID: 1, secret: testSecret, listen: "127.0.0.1:0",
		handshakeTimeout: time.Hour,
		resolve:          func(raft.ServerAddress) (int32, bool) { return 2, true },
		logger:           discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { layer.Close() })
	return raft.ServerAddress(silent.Addr().String()), accepted, layer
}
