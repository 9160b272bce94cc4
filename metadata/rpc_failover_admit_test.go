package metadata

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestForwardedRegistrationRetriedAsLeaderIsAdmissionChecked (forced
// order): a node forwards a broker registration to the leader; the leader
// refuses it before appending (leadership moved meanwhile, to the
// forwarding node itself), and the forwarding node, now the leader,
// proposes it locally. That local proposal must be checked as every
// registration is (controller.admit): here a second process on another
// data directory claims broker 1, whose registration has a live session,
// and must be refused with ErrDuplicateBroker. Before, the fallback to a
// local proposal skipped the check and registered the second process over
// the live one (which the controller then fenced and took out of every
// ISR and leadership).
func TestForwardedRegistrationRetriedAsLeaderIsAdmissionChecked(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, leader := c.leader()
	followerID, follower := c.follower()
	_, epoch := registerOnDirectory(t, ctx, follower, 1, 0xd1)
	if err := follower.SetBrokerFenced(ctx, 1, epoch, false); err != nil {
		t.Fatal(err)
	}
	beating, stop := context.WithCancel(ctx)
	var beats sync.WaitGroup
	beats.Go(func() { heartbeats(beating, follower, 1, epoch) })
	defer func() { stop(); beats.Wait() }()

	var once sync.Once
	var transferErr error
	hook := func(kind uint8) {
		if kind != rpcPropose {
			return
		}
		once.Do(func() {
			// Leadership moves to the forwarding node before this
			// (former) leader looks at the request.
			future := leader.raft.LeadershipTransferToServer(raft.ServerID(fmt.Sprint(followerID)), raft.ServerAddress(c.configs[followerID].ControllerListen))
			if transferErr = future.Error(); transferErr != nil {
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for !leadingController(follower) || leader.IsLeader() {
				if time.Now().After(deadline) {
					transferErr = errors.New("the follower did not take over")
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	leader.beforeRPC.Store(&hook)

	other := testRegistration(1)
	other.IncarnationID[0]++
	other.DirectoryID = [16]byte{0xd2}
	_, err := follower.RegisterBroker(ctx, other)
	if transferErr != nil {
		t.Fatalf("moving leadership to node %d: %v", followerID, transferErr)
	}
	if !follower.IsLeader() {
		t.Skip("leadership moved again meanwhile; the interleaving did not happen")
	}
	if !errors.Is(err, ErrDuplicateBroker) {
		t.Errorf("a second process on another directory, registered through a node that became leader meanwhile: %v, want ErrDuplicateBroker", err)
	}
	if b, _ := follower.State().Broker(1); b.Epoch != epoch {
		t.Errorf("broker 1 at epoch %d, want %d (the live registration kept)", b.Epoch, epoch)
	}
}

// leadingController reports whether s leads and its controller has taken
// over (it counts the sessions of brokers it has not heard from from
// then).
func leadingController(s *Store) bool {
	if !s.IsLeader() {
		return false
	}
	s.controller.mu.Lock()
	defer s.controller.mu.Unlock()
	return s.controller.stop != nil
}

// TestRegistrationBeforeTheControllerTakesOverIsNotAdmittedUnchecked
// (forced order): between Raft making a node leader and its controller
// taking over (setLeading, on the leadership observer's goroutine) the
// node answers proposals, but the controller knows no session: it has not
// started counting them (controller.since is zero). A registration of a
// second process, on another data directory, for a broker id whose
// registration has a live session must not be admitted in that window (a
// process that is refused retries every 200 ms, so it hits any failover).
// Before, admit took "no session start" for "no live session" and
// registered the second process over the live one.
func TestRegistrationBeforeTheControllerTakesOverIsNotAdmittedUnchecked(t *testing.T) {
	c := newTestCluster(t, 1)
	ctx := testContext(t)
	_, leader := c.leader()
	_, epoch := registerOnDirectory(t, ctx, leader, 1, 0xd1)
	if err := leader.SetBrokerFenced(ctx, 1, epoch, false); err != nil {
		t.Fatal(err)
	}
	if err := leader.Heartbeat(ctx, BrokerHeartbeat{ID: 1, BrokerEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	// The window: Raft leads, the controller has not taken over (as
	// after an election, before the observer's setLeading) and has heard
	// from nobody (a node that did not lead before).
	leader.controller.setLeading(false)
	leader.controller.mu.Lock()
	leader.controller.lastSeen, leader.controller.seenEpoch = nil, nil
	leader.controller.mu.Unlock()
	other := testRegistration(1)
	other.IncarnationID[0]++
	other.DirectoryID = [16]byte{0xd2}
	_, err := leader.RegisterBroker(ctx, other)
	leader.controller.setLeading(true)
	if err == nil {
		t.Error("a second process on another directory was registered over a live broker before the controller took over")
	}
	if b, _ := leader.State().Broker(1); b.Epoch != epoch {
		t.Errorf("broker 1 at epoch %d, want %d (the live registration kept)", b.Epoch, epoch)
	}
	// Once the controller has taken over, the same registration is refused
	// as a duplicate.
	if _, err := leader.RegisterBroker(ctx, other); !errors.Is(err, ErrDuplicateBroker) {
		t.Errorf("after the controller took over: %v, want ErrDuplicateBroker", err)
	}
}
