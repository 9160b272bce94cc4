package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// heldStore holds the first ChangePartition it is asked, unsent (a request
// stuck on its way to the controller: the proposer times out, and the
// outcome is unknown to it), and passes the others to the controller. The
// test delivers the held change later.
type heldStore struct {
	*metadata.Store
	held    *metadata.PartitionChange
	lastErr error // the controller's answer to the last change passed on
}

func (s *heldStore) ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error) {
	if s.held == nil {
		s.held = &change
		return metadata.Partition{}, context.DeadlineExceeded
	}
	committed, err := s.Store.ChangePartition(ctx, change)
	s.lastErr = err
	return committed, err
}

// TestUnknownExpansionOfAFencedFollowerDoesNotHoldTheHighWatermark (forced
// order, real controller): broker 1 leads with the ISR [1]; follower 2
// catches up and broker 1 proposes [1 2]. The proposal is stuck on its
// way to the controller: broker 1 times out (the outcome is unknown, and
// follower 2 keeps counting for the high watermark). Broker 2's session
// ends and the controller fences it — which changes nothing of the
// partition, whose ISR broker 2 is not in — and the retry of the
// expansion is refused as ineligible. Broker 2 does not come back. Broker 1
// appends records (acks=all produces) and runs its lag check, again and
// again past replica.lag.time.max.ms. Before, follower 2 counted for the
// high watermark until the partition epoch moved for another reason, and
// nothing moved it: the high watermark stayed at follower 2's last fetch
// and every acks=all produce to the partition timed out, indefinitely.
// Now the lag check, finding only members of unapplied proposals lagging
// while one of them may still commit, bumps the leader epoch with the ISR
// as it is: the partition epoch moves past the stuck proposal's, so it can
// never commit, and follower 2 stops counting once that is applied. When
// broker 2 then comes back (unfenced, the same incarnation) and the stuck
// first try reaches the controller, it is refused: broker 2 never joins
// the ISR below the high watermark.
func TestUnknownExpansionOfAFencedFollowerDoesNotHoldTheHighWatermark(t *testing.T) {
	const lag = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, p, followerEpoch, caughtUp, expand := caughtUpExpansion(t, ctx)
	current := func() metadata.Partition {
		topic, _ := store.State().Topic("orders")
		return topic.Partitions[0]
	}
	held := &heldStore{Store: store}
	m := NewISR(ISRConfig{Store: held, Partitions: func() []*partition.Partition { return []*partition.Partition{p} },
		ReplicaLagTimeMax: lag, Logger: slog.New(slog.DiscardHandler)})
	m.Expand(p, expand)
	m.proposeQueued(ctx) // stuck: broker 1 times out
	if held.held == nil {
		t.Fatal("the expansion was not proposed")
	}

	// Broker 2's session ends; it never comes back during the produces.
	if err := store.SetBrokerFenced(ctx, 2, followerEpoch, true); err != nil {
		t.Fatal(err)
	}
	applyState(p, store, t0)
	m.CheckLagging(ctx, t0) // the retry
	if !errors.Is(held.lastErr, metadata.ErrIneligibleReplica) {
		t.Fatalf("the retry with broker 2 fenced: %v, want %v", held.lastErr, metadata.ErrIneligibleReplica)
	}

	// acks=all produces, with broker 2 gone, and the lag check running as
	// Run's ticker would, well past replica.lag.time.max.ms.
	acknowledged := appendRecords(t, p, 2)
	for tick := 1; tick <= 10; tick++ {
		now := t0.Add(time.Duration(tick) * lag)
		m.CheckLagging(ctx, now)
		applyState(p, store, now)
	}
	if hw := p.HighWatermark(); hw != acknowledged {
		t.Fatalf("high watermark %d, want %d: broker 2 (fenced, gone, ending at %d) still counts for it through an expansion that was refused as ineligible on retry, and acks=all produces to the partition (ISR %v at partition epoch %d) wait for it forever",
			hw, acknowledged, caughtUp, current().ISR, current().PartitionEpoch)
	}

	// Broker 2 comes back as the same incarnation, and the stuck first try
	// reaches the controller.
	if err := store.SetBrokerFenced(ctx, 2, followerEpoch, false); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ChangePartition(ctx, *held.held); !errors.Is(err, metadata.ErrStalePartitionEpoch) {
		t.Fatalf("the stuck expansion reached the controller: %v, want %v", err, metadata.ErrStalePartitionEpoch)
	}
	applyState(p, store, t0.Add(11*lag))
	logEnd := map[int32]int64{1: p.LogEndOffset(), 2: caughtUp}
	for _, r := range current().ISR {
		if logEnd[r] < p.HighWatermark() {
			t.Fatalf("broker %d is in the ISR %v with its log ending at %d, below the high watermark %d: electing it loses acknowledged offsets %d..%d",
				r, current().ISR, logEnd[r], p.HighWatermark(), logEnd[r], p.HighWatermark()-1)
		}
	}
}

// fencedLeaderStore is a controllerStore that, while fenced is set,
// refuses a change keeping the current leader as the metadata state
// machine does once that leader is fenced (ChangePartition v4), and
// counts the changes it is asked.
type fencedLeaderStore struct {
	controllerStore
	fenced bool // guarded by mu
	asked  int  // guarded by mu
}

func (s *fencedLeaderStore) ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error) {
	s.mu.Lock()
	s.asked++
	leader := s.current.Leader
	refuse := s.fenced && change.PartitionEpoch == s.current.PartitionEpoch && (change.Leader == metadata.NoLeaderChange || change.Leader == leader)
	s.mu.Unlock()
	if refuse {
		return metadata.Partition{}, fmt.Errorf("leader %d is fenced and cannot change the ISR or its leader epoch: %w", leader, metadata.ErrIneligibleReplica)
	}
	return s.controllerStore.ChangePartition(ctx, change)
}

// TestISRShrinkOfAFencedLeaderRefused (forced order): broker 1 leads with
// the ISR [1 2]; it is paused, and its session ends (fenced, the
// partition untouched until the controller's election). It resumes
// before it sees the fence: follower 2 looks lagging, and the lag check
// proposes the ISR [1], which the controller refuses (the leader is
// fenced). The refusal is benign: nothing counts as committed, so the high
// watermark stays held by follower 2, the committed ISR member; the next
// check proposes the shrink again (refused again: one proposal per check,
// no more); and once the controller's election is applied broker 1
// proposes nothing more.
func TestISRShrinkOfAFencedLeaderRefused(t *testing.T) {
	const lag = 30 * time.Second
	ctx := context.Background()
	p := openReplica(t, 1)
	led := metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 2}}
	p.ApplyAssignment(led, t0)
	end := appendRecords(t, p, 3)
	if _, err := p.FollowerFetched(2, end-1, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end-1 {
		t.Fatalf("high watermark %d, want follower 2's end %d", hw, end-1)
	}
	store := &fencedLeaderStore{controllerStore: controllerStore{current: led}, fenced: true}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{p} },
		ReplicaLagTimeMax: lag, Logger: slog.New(slog.DiscardHandler)})

	for tick := 2; tick <= 3; tick++ {
		m.CheckLagging(ctx, t0.Add(time.Duration(tick)*lag))
		store.mu.Lock()
		asked, current := store.asked, store.current
		store.mu.Unlock()
		if asked != tick-1 || !slices.Equal(current.ISR, []int32{1, 2}) || current.PartitionEpoch != 9 {
			t.Fatalf("lag check %d: %d changes asked, controller's ISR %v at partition epoch %d; want %d asked, [1 2] at 9 (the shrink refused)",
				tick-1, asked, current.ISR, current.PartitionEpoch, tick-1)
		}
		if hw := p.HighWatermark(); hw != end-1 {
			t.Fatalf("high watermark %d after the refused shrink, want %d: follower 2 is in the committed ISR", hw, end-1)
		}
	}

	// The controller's election: broker 2 leads; broker 1 applies it.
	elected, err := store.controllerStore.ChangePartition(ctx, metadata.PartitionChange{PartitionEpoch: 9, Leader: 2, ISR: []int32{2}})
	if err != nil {
		t.Fatal(err)
	}
	elected.LeaderEpoch++
	p.ApplyAssignment(elected, t0.Add(4*lag))
	m.CheckLagging(ctx, t0.Add(5*lag))
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.asked != 2 {
		t.Fatalf("%d changes asked after broker 1 was deposed, want the 2 refused shrinks", store.asked)
	}
}
