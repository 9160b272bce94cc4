package metadata

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestWaitPropagated: a change waits until every live broker has reported
// applying it, through a follower (the RPC path) and on the leader; a
// fenced broker is not waited for; a report under a stale registration or
// from an unknown broker is refused; heartbeats carry the position too.
func TestWaitPropagated(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, leader := c.leader()
	_, follower := c.follower()
	epochs := map[int32]int64{}
	stopBeats := map[int32]context.CancelFunc{}
	for id := int32(1); id <= 3; id++ {
		epoch, err := follower.RegisterBroker(ctx, BrokerRegistration{ID: id, IncarnationID: uuid.New(),
			Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}})
		if err != nil {
			t.Fatal(err)
		}
		epochs[id] = epoch
		beatCtx, cancel := context.WithCancel(ctx)
		stopBeats[id] = cancel
		go heartbeats(beatCtx, follower, id, epoch)
	}
	waitState(t, follower, "three live brokers", func(s *State) bool {
		for id := int32(1); id <= 3; id++ {
			if b, ok := s.Broker(id); !ok || b.Fenced {
				return false
			}
		}
		return true
	})

	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "orders", Assignments: [][]int32{{1}, {2}, {3}}}); err != nil {
		t.Fatal(err)
	}
	index := follower.State().AppliedIndex()

	for _, store := range []*Store{follower, leader} {
		if err := waitPropagatedBriefly(ctx, store, index); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "brokers [1 2 3]") {
			t.Fatalf("no broker reported yet: %v, want a deadline naming brokers [1 2 3]", err)
		}
	}

	// Brokers 1 and 2 report; 3 reports an older position: it is named.
	for id := int32(1); id <= 2; id++ {
		if err := follower.ReportApplied(ctx, id, epochs[id], index); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.ReportApplied(ctx, 3, epochs[3], index-1); err != nil {
		t.Fatal(err)
	}
	if err := waitPropagatedBriefly(ctx, follower, index); err == nil || !strings.Contains(err.Error(), "brokers [3]") {
		t.Fatalf("broker 3 behind: %v, want it named", err)
	}

	// A waiter wakes when the last broker reports (on the leader: at once;
	// through the follower: at its next poll).
	done := make(chan error, 2)
	for _, store := range []*Store{follower, leader} {
		go func() { done <- store.WaitPropagated(ctx, index) }()
	}
	time.Sleep(50 * time.Millisecond)
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 3, BrokerEpoch: epochs[3], AppliedIndex: index}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("after every broker reported: %v", err)
		}
	}

	// A later change: broker 3 stops heartbeating and is fenced; the others
	// alone decide.
	stopBeats[3]()
	waitState(t, follower, "broker 3 fenced", func(s *State) bool {
		b, _ := s.Broker(3)
		return b.Fenced
	})
	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "later", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	later := follower.State().AppliedIndex()
	for id := int32(1); id <= 2; id++ {
		if err := follower.ReportApplied(ctx, id, epochs[id], later); err != nil {
			t.Fatal(err)
		}
	}
	if err := follower.WaitPropagated(ctx, later); err != nil {
		t.Fatalf("fenced broker 3 waited for: %v", err)
	}

	// Reports are checked against the registration.
	if err := leader.ReportApplied(ctx, 2, epochs[2]-1, later); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale epoch report: %v, want ErrStaleBrokerEpoch", err)
	}
	if err := follower.ReportApplied(ctx, 2, epochs[2]-1, later); err == nil {
		t.Fatal("stale epoch report accepted through a follower")
	}
	if err := leader.ReportApplied(ctx, 9, 1, later); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("unknown broker report: %v, want ErrUnknownBroker", err)
	}
}

// waitPropagatedBriefly waits a moment for index to propagate and returns
// the error that names who has not reported. Forwarding failures (a
// leadership change, a connection's handshake outlasting the moment on a
// loaded machine) are not what is tested: it tries again.
func waitPropagatedBriefly(ctx context.Context, store *Store, index uint64) error {
	var err error
	for range 20 {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err = store.WaitPropagated(short, index)
		cancel()
		if err == nil || strings.Contains(err.Error(), "brokers [") {
			return err
		}
	}
	return err
}
