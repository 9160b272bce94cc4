package metadata

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestForwardHonoursCancel: a forwarded proposal whose caller cancels its
// context while the leader holds it (a paused leader) returns
// context.Canceled at once, not at the request's deadline, and does not
// say "not applied" (it was sent: the leader may append it). Its
// connection is closed, not kept idle (the leader's answer may still
// arrive on it), and the proposal is not sent again: released, the leader
// applies it once. Before, the cancel was ignored: the call waited for
// rpcTimeout (10 s) and failed with an i/o timeout.
func TestForwardHonoursCancel(t *testing.T) {
	leader, follower, _ := forwardingPair(t)
	wait := testContext(t)
	next := follower.State().NextProducerID()
	held, release := holdFirstProposal(t, leader)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proposed := make(chan error, 1)
	go func() {
		_, err := follower.AllocateProducerIDs(ctx, 7, 10)
		proposed <- err
	}()
	<-held
	cancel()
	select {
	case err := <-proposed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled proposal: error %v, want context.Canceled", err)
		}
		if errors.Is(err, errNotApplied) {
			t.Fatalf("cancelled proposal: error %v says not applied, but it was sent", err)
		}
	case <-wait.Done():
		t.Fatal("a cancelled proposal still waits for the leader's answer after 30 s")
	}
	follower.rpc.mu.Lock()
	idle, busy := len(follower.rpc.idle), len(follower.rpc.busy)
	follower.rpc.mu.Unlock()
	if idle != 0 || busy != 0 {
		t.Errorf("%d idle and %d busy connections after the cancel, want none (the cancelled one closed)", idle, busy)
	}

	release()
	for {
		state, changed := follower.Watch()
		if state.NextProducerID() >= next+10 {
			break
		}
		select {
		case <-changed:
		case <-wait.Done():
			t.Fatal("the proposal the leader held was never applied")
		}
	}
	first, err := follower.AllocateProducerIDs(wait, 7, 10)
	if err != nil {
		t.Fatal(err)
	}
	if first != next+10 {
		t.Fatalf("next block starts at %d, want %d: the cancelled proposal was applied %d times, want once", first, next+10, (first-next)/10)
	}
}

// TestDialEndsWhenCancelled: a dial ends when its context does, during the
// handshake too (a paused leader's kernel accepts the connection, and the
// handshake is never answered), with the context's error; a forwarded
// request that needs a new connection returns at its caller's cancel.
func TestDialEndsWhenCancelled(t *testing.T) {
	silent, accepted, layer := silentPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dialed := make(chan error, 1)
	go func() {
		conn, err := layer.dial(ctx, silent, 2, channelRPC, time.Hour)
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	// Cancelled once the listener has read the start of the handshake
	// request: the dial is connected and waits for the answer.
	var conn net.Conn
	select {
	case conn = <-accepted:
		accepted <- conn // closed by the deferred cleanup
	case <-testContext(t).Done():
		t.Fatal("the dial never connected")
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatalf("no handshake request: %v", err)
	}
	cancel()
	select {
	case err := <-dialed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled dial: error %v, want context.Canceled", err)
		}
	case <-testContext(t).Done():
		t.Fatal("a cancelled dial still waits for the handshake after 30 s")
	}
}
