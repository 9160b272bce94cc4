package replica

import (
	"context"
	"errors"
	"log/slog"
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
