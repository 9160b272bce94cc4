package broker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// TestUncleanElectionOfReplicaFencedMeanwhile: an unclean election whose
// chosen replica is fenced between the decision and the proposal is
// refused by the controller as ineligible; the operator gets Kafka's
// ELIGIBLE_LEADERS_NOT_AVAILABLE (no replica can lead), not
// REQUEST_TIMED_OUT (which tells them to retry the same thing), and the
// partition stays without a leader.
func TestUncleanElectionOfReplicaFencedMeanwhile(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.RemoteReader = noRemote{}
		c.ObjectStoreNodeLocal = false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register := func(id int32) int64 {
		t.Helper()
		epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: id, IncarnationID: [16]byte{byte(id)},
			Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}})
		if err != nil {
			t.Fatal(err)
		}
		return epoch
	}
	epoch2, epoch3 := register(2), register(3)
	topic, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	// Only broker 2 is in sync, and it is down (fenced); broker 3 is a
	// live out-of-sync replica.
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch2, false); err != nil {
		t.Fatal(err)
	}
	// The controller may change the partition meanwhile (it elects
	// broker 2, just unfenced): the change is made on the partition as
	// it is then.
	for {
		p := mustTopic(t, n, "t").Partitions[0]
		_, err := n.Store.ChangePartition(ctx, metadata.PartitionChange{TopicID: topic.ID, PartitionEpoch: p.PartitionEpoch, Leader: -1, ISR: []int32{2}})
		if err == nil {
			break
		}
		if !errors.Is(err, metadata.ErrStalePartitionEpoch) {
			t.Fatal(err)
		}
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch2, true); err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 3, epoch3, false); err != nil {
		t.Fatal(err)
	}

	var hookCalls atomic.Int32 // the hook runs on the connection's goroutine
	n.Server.BeforeElectionProposed(func(string, int32) {
		hookCalls.Add(1)
		if err := n.Store.SetBrokerFenced(ctx, 3, epoch3, true); err != nil {
			t.Error(err)
		}
	})
	r := request[*kmsg.ElectLeadersResponse](t, n.Client().SeedBrokers()[0], electRequest(1, "t", 0))
	if calls := hookCalls.Load(); calls != 1 {
		t.Fatalf("the election was decided %d times, want once (broker 3 chosen, then fenced)", calls)
	}
	if got := r.Topics[0].Partitions[0].ErrorCode; r.ErrorCode != 0 || got != kerr.EligibleLeadersNotAvailable.Code {
		t.Fatalf("unclean election of a replica fenced meanwhile: %v (top-level %v), want ELIGIBLE_LEADERS_NOT_AVAILABLE",
			kerr.ErrorForCode(got), kerr.ErrorForCode(r.ErrorCode))
	}
	if p := mustTopic(t, n, "t").Partitions[0]; p.Leader != -1 {
		t.Fatalf("partition after the refused election: %+v", p)
	}
}
