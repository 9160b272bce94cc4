package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestFetchNamesTheLeader (KIP-951, Fetch v16+): a consumer's Fetch sent to
// a broker that does not lead the partition is answered
// NOT_LEADER_OR_FOLLOWER with the leader's id and epoch and its address;
// one at a stale leader epoch of a partition this broker leads is answered
// FENCED_LEADER_EPOCH naming this broker at its epoch; Fetch v15 has no
// room for them. Fetch v18 (Kafka 4.2's newest) is what franz-go sends.
func TestFetchNamesTheLeader(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "other.example", Port: 9192, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "elsewhere", Assignments: [][]int32{{2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "here", Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
		t.Fatal(err)
	}
	p := leadingTopic(t, n, "here")
	// A leader epoch above 0, so that a client can be behind it.
	bumpLeaderEpoch(ctx, t, n, "here", p)
	state := n.Store.State()
	elsewhere, _ := state.Topic("elsewhere")
	here, _ := state.Topic("here")
	for _, version := range []int16{15, 16, 18} {
		max := kversion.Stable()
		max.SetMaxKeyVersion(kmsg.Fetch.Int16(), version)
		cl := n.Client(kgo.MaxVersions(max))
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes = -1, 1<<20
		for _, topic := range []metadata.Topic{elsewhere, here} {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = topic.Name, topic.ID
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			if topic.Name == "here" {
				rp.CurrentLeaderEpoch = topic.Partitions[0].LeaderEpoch - 1
			}
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp := request[*kmsg.FetchResponse](t, cl.SeedBrokers()[0], req)
		if resp.Version != version {
			t.Fatalf("Fetch sent as v%d, want v%d", resp.Version, version)
		}
		other, fenced := resp.Topics[0].Partitions[0], resp.Topics[1].Partitions[0]
		if other.ErrorCode != kerr.NotLeaderForPartition.Code || fenced.ErrorCode != kerr.FencedLeaderEpoch.Code {
			t.Fatalf("v%d: %v and %v, want NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH", version,
				kerr.ErrorForCode(other.ErrorCode), kerr.ErrorForCode(fenced.ErrorCode))
		}
		if version < 16 {
			continue
		}
		if other.CurrentLeader.LeaderID != 2 || other.CurrentLeader.LeaderEpoch != elsewhere.Partitions[0].LeaderEpoch ||
			fenced.CurrentLeader.LeaderID != metadatatest.NodeID || fenced.CurrentLeader.LeaderEpoch != here.Partitions[0].LeaderEpoch {
			t.Fatalf("v%d current leaders %+v and %+v", version, other.CurrentLeader, fenced.CurrentLeader)
		}
		addresses := map[int32]string{}
		for _, b := range resp.Brokers {
			addresses[b.NodeID] = b.Host
		}
		if len(resp.Brokers) != 2 || addresses[2] != "other.example" {
			t.Fatalf("v%d brokers %+v", version, resp.Brokers)
		}
	}
}
