package replica

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// lossyStore loses the first ChangePartition it is asked (answered with a
// timeout, never sent: an unknown outcome to the proposer) and passes the
// others to the controller.
type lossyStore struct {
	*metadata.Store
	lost bool
}

func (s *lossyStore) ChangePartition(ctx context.Context, change metadata.PartitionChange) (metadata.Partition, error) {
	if !s.lost {
		s.lost = true
		return metadata.Partition{}, context.DeadlineExceeded
	}
	return s.Store.ChangePartition(ctx, change)
}

// TestISRExpansionOfAnEarlierIncarnationIsNotRetriedUnchecked (forced
// order, real controller): follower 2 catches up as one incarnation
// (broker epoch E1) and the leader proposes it into the ISR naming E1
// (KIP-903). Broker 2 then restarts with an empty disk: a new
// registration E2, unclean, unfenced once it heartbeats. Whether the
// controller refused the expansion (ErrIneligibleReplica: it got there
// after the new registration) or its outcome is unknown (lost before it
// got there), the new incarnation must not join the ISR on its
// predecessor's fetch. Before, ErrIneligibleReplica was taken for an
// unknown outcome, and the lag check proposed an unknown-outcome
// expansion again without its broker epochs: the controller accepted it,
// and the empty new incarnation joined the ISR (electable while lacking
// every committed record).
func TestISRExpansionOfAnEarlierIncarnationIsNotRetriedUnchecked(t *testing.T) {
	for _, lost := range []bool{false, true} {
		name := "refused"
		if lost {
			name = "outcome unknown"
		}
		t.Run(name, func(t *testing.T) { testISRExpansionOfAnEarlierIncarnation(t, lost) })
	}
}

// caughtUpExpansion starts a metadata store with brokers 1 and 2
// registered (followerEpoch is broker 2's broker epoch) and topic orders:
// one partition on [1 2] led by broker 1 with the ISR [1] (follower 2 fell
// out of it earlier). It opens the partition as broker 1's, applies the
// store's state at t0, appends 3 records and has follower 2 fetch up to
// their end (caughtUp): expand is the expansion to [1 2] that proposes.
func caughtUpExpansion(t *testing.T, ctx context.Context) (store *metadata.Store, p *partition.Partition, followerEpoch, caughtUp int64, expand []int32) {
	t.Helper()
	store = metadatatest.Start(t)
	metadatatest.RegisterBroker(t, store, 1)
	followerEpoch = metadatatest.RegisterBroker(t, store, 2)
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "orders", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	a := topic.Partitions[0]
	if a.Leader != 1 {
		t.Fatalf("leader %d, want 1", a.Leader)
	}
	// Follower 2 fell out of the ISR earlier.
	if _, err = store.ChangePartition(ctx, metadata.PartitionChange{TopicID: topic.ID, PartitionEpoch: a.PartitionEpoch,
		Leader: metadata.NoLeaderChange, ISR: []int32{1}}); err != nil {
		t.Fatal(err)
	}

	p, err = partition.Open(partition.Config{Dir: t.TempDir(), Topic: topic.Name, TopicID: topic.ID, Self: 1,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	applyState(p, store, t0)
	caughtUp = appendRecords(t, p, 3)
	expand, _, err = p.FollowerFetchedAt(2, partition.FetchPosition{Offset: caughtUp, LastFetchedEpoch: -1}, followerEpoch, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 2}) {
		t.Fatalf("follower 2 caught up: expansion %v, %v; want [1 2]", expand, err)
	}
	return store, p, followerEpoch, caughtUp, expand
}

// applyState is the partition manager applying store's state of orders
// partition 0 to p at now.
func applyState(p *partition.Partition, store *metadata.Store, now time.Time) {
	state := store.State()
	topic, _ := state.Topic("orders")
	p.ObserveRegistrations(topic.Partitions[0].Replicas, state)
	p.ApplyAssignment(topic.Partitions[0], now)
}

func testISRExpansionOfAnEarlierIncarnation(t *testing.T, lost bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, p, firstEpoch, end, expand := caughtUpExpansion(t, ctx)
	m := NewISR(ISRConfig{Store: &lossyStore{Store: store, lost: !lost}, Partitions: func() []*partition.Partition { return []*partition.Partition{p} },
		ReplicaLagTimeMax: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	m.Expand(p, expand)
	if lost {
		m.proposeQueued(ctx)
	}

	// Broker 2 restarts on an empty disk.
	secondEpoch, err := store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetBrokerFenced(ctx, 2, secondEpoch, false); err != nil {
		t.Fatal(err)
	}
	applyState(p, store, t0)

	m.proposeQueued(ctx)
	// The lag check runs (twice, as Run's ticker would).
	m.CheckLagging(ctx, t0)
	m.CheckLagging(ctx, t0)

	topic, _ := store.State().Topic("orders")
	if isr := topic.Partitions[0].ISR; slices.Contains(isr, 2) {
		t.Fatalf("ISR %v: broker 2's new incarnation (epoch %d, empty disk, never fetched) joined it on its earlier incarnation's (epoch %d) fetch",
			isr, secondEpoch, firstEpoch)
	}
	// Nothing is left in flight or to retry: the new incarnation joins
	// once its own fetches catch it up.
	if again, err := p.FollowerFetched(2, end, t0); err != nil || !slices.Equal(again, []int32{1, 2}) {
		t.Fatalf("a fetch of the new incarnation: expansion %v, %v; want [1 2]", again, err)
	}
}
