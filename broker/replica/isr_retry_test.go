package replica

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// stalledStore is a controllerStore whose first ChangePartition never
// reaches a decision the proposer hears of: meanwhile runs (the controller
// moves the partition on, and the leader applies that), then the call
// times out.
type stalledStore struct {
	*controllerStore
	meanwhile func()
	calls     int
}

func (s *stalledStore) ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error) {
	s.calls++
	if s.calls == 1 {
		s.meanwhile()
		return metadata.Partition{}, context.DeadlineExceeded
	}
	return s.controllerStore.ChangePartition(ctx, change)
}

// TestUnknownExpansionNotRetriedAfterThePartitionMovedOn (forced order):
// broker 1 leads at partition epoch 9 with the ISR [1 3]; follower 2
// catches up and broker 1 proposes [1 3 2]. The proposal hangs (broker 1
// paused, the controller unreachable): meanwhile leadership moves to
// broker 3 and back to broker 1 (partition epochs 10 and 11, ISR [1 3]),
// which broker 1 applies; then its proposal times out. The expansion,
// based on epoch 9, can no longer commit, and in the new term follower 2
// counts for nothing: broker 1 appends records, follower 3 fetches them,
// and they are acknowledged (high watermark past them) while follower 2
// still ends where it was. Before, the timed-out expansion was kept as an
// "unknown outcome" and proposed again on the next lag check — against
// the current partition epoch, 11, which the controller accepted: follower
// 2 joined the ISR lacking acknowledged records, and, elected after broker
// 1 failed, would have lost them. Now a change whose basis is no longer
// the applied assignment is not proposed again: the controller decided it
// against that basis.
func TestUnknownExpansionNotRetriedAfterThePartitionMovedOn(t *testing.T) {
	p := openReplica(t, 1)
	replicas := []int32{1, 2, 3}
	p.ApplyAssignment(metadata.Partition{Replicas: replicas, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 3}}, t0)
	end := appendRecords(t, p, 3)
	if _, err := p.FollowerFetched(3, end, t0); err != nil {
		t.Fatal(err)
	}
	expand, err := p.FollowerFetched(2, end, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 3, 2}) {
		t.Fatalf("follower 2 caught up: proposal %v (%v), want [1 3 2]", expand, err)
	}

	deposed := metadata.Partition{Replicas: replicas, Leader: 3, LeaderEpoch: 5, PartitionEpoch: 10, ISR: []int32{1, 3}}
	back := metadata.Partition{Replicas: replicas, Leader: 1, LeaderEpoch: 6, PartitionEpoch: 11, ISR: []int32{1, 3}}
	store := &stalledStore{controllerStore: &controllerStore{current: metadata.Partition{Replicas: replicas, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 3}}}}
	store.meanwhile = func() {
		for _, a := range []metadata.Partition{deposed, back} {
			store.controllerStore.current = a
			p.ApplyAssignment(a, t0)
		}
	}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{p} }, Logger: slog.New(slog.DiscardHandler)})
	m.Expand(p, expand)
	m.proposeQueued(context.Background())

	// Broker 1's new term: records follower 3 has and follower 2 has not.
	acknowledged := appendRecords(t, p, 2)
	if _, err := p.FollowerFetched(3, acknowledged, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != acknowledged {
		t.Fatalf("high watermark %d, want %d (the ISR [1 3] has every record)", hw, acknowledged)
	}
	logEnd := map[int32]int64{1: p.LogEndOffset(), 2: end, 3: acknowledged}

	m.CheckLagging(context.Background(), t0)
	if store.current.PartitionEpoch != back.PartitionEpoch {
		p.ApplyAssignment(store.current, t0)
	}
	for _, r := range store.current.ISR {
		if logEnd[r] < p.HighWatermark() {
			t.Fatalf("broker %d is in the ISR %v at partition epoch %d with its log ending at %d, below the high watermark %d: electing it loses acknowledged offsets %d..%d",
				r, store.current.ISR, store.current.PartitionEpoch, logEnd[r], p.HighWatermark(), logEnd[r], p.HighWatermark()-1)
		}
	}
}
