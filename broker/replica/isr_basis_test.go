package replica

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// controllerStore answers ChangePartition as the controller does for one
// partition: a change based on another partition epoch than the current
// one is refused (metadata.ErrStalePartitionEpoch); an accepted one moves
// the partition epoch on.
type controllerStore struct {
	mu      sync.Mutex // guards current
	current metadata.Partition
}

func (c *controllerStore) State() *metadata.State { return nil }

func (c *controllerStore) ChangePartition(_ context.Context, change metadata.PartitionChange) (metadata.Partition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if change.PartitionEpoch != c.current.PartitionEpoch {
		return metadata.Partition{}, fmt.Errorf("partition epoch %d, the change expects %d: %w", c.current.PartitionEpoch, change.PartitionEpoch, metadata.ErrStalePartitionEpoch)
	}
	next := c.current
	next.ISR, next.PartitionEpoch = slices.Clone(change.ISR), c.current.PartitionEpoch+1
	if change.Leader != metadata.NoLeaderChange {
		next.Leader = change.Leader
	}
	c.current = next
	return next, nil
}

// TestISRChangeProposedAgainstItsBasis (forced order): an ISR expansion
// computed by a leader is proposed against the partition epoch it was
// computed under, not the one the partition has when the proposal goes
// out. Here broker 1 leads at leader epoch 4 and finds follower 3 caught
// up with its log; before the proposal goes out (the ISR goroutine is
// behind, the controller unreachable, the broker paused), broker 1 is
// deposed: broker 2 leads at epoch 5 with the ISR [2], and follower 3 has
// none of epoch 5's records. Before, the proposal took the partition epoch
// of that newer state and the controller accepted it: follower 3 joined
// the ISR of a leader it had never fetched from, and could be elected
// while lacking committed records (the nemesis saw a node elected from
// such an ISR and replicas with different bytes below the high
// watermark). Now it is refused as stale, and the ISR stays [2].
func TestISRChangeProposedAgainstItsBasis(t *testing.T) {
	p := openReplica(t, 1)
	led := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9, ISR: []int32{1, 2}}
	p.ApplyAssignment(led, t0)
	end := appendRecords(t, p, 3)
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	expand, err := p.FollowerFetched(3, end, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("follower 3 caught up: %v %v", expand, err)
	}
	deposed := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 2, LeaderEpoch: 5, PartitionEpoch: 10, ISR: []int32{2}}
	store := &controllerStore{current: deposed}
	p.ApplyAssignment(deposed, t0)

	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{p} }, Logger: slog.New(slog.DiscardHandler)})
	m.Expand(p, expand)
	m.proposeQueued(context.Background())
	store.mu.Lock()
	defer store.mu.Unlock()
	if !slices.Equal(store.current.ISR, []int32{2}) || store.current.PartitionEpoch != 10 {
		t.Fatalf("the controller's partition after broker 1's late expansion: ISR %v at partition epoch %d; want [2] at 10 (the expansion refused)",
			store.current.ISR, store.current.PartitionEpoch)
	}
}
