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
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// TestProduceNotLeaderNamesTheLeader (KIP-951): a Produce v10+ sent to a
// broker that does not lead the partition is answered
// NOT_LEADER_OR_FOLLOWER with the leader's id and epoch, and the leader's
// address on the client's listener (v13 too, naming the topic by id); v9
// has no room for them.
func TestProduceNotLeaderNamesTheLeader(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(), Rack: "r2",
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
	var leaderEpoch int32
	var topicID [16]byte
	for {
		if topic, ok := n.Store.State().Topic("elsewhere"); ok && topic.Partitions[0].Leader == 2 {
			leaderEpoch, topicID = topic.Partitions[0].LeaderEpoch, topic.ID
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the topic has no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Value: []byte("v"), Timestamp: time.Now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []int16{9, 10, 12, 13} {
		max := kversion.Stable()
		max.SetMaxKeyVersion(kmsg.Produce.Int16(), version)
		broker := n.Client(kgo.MaxVersions(max))
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = "elsewhere", topicID // v13 names it by id
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = b
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.ProduceResponse](t, broker.SeedBrokers()[0], req)
		if resp.Version != version {
			t.Fatalf("Produce sent as v%d, want v%d", resp.Version, version)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("v%d: %v, want NOT_LEADER_OR_FOLLOWER", resp.Version, kerr.ErrorForCode(p.ErrorCode))
		}
		if resp.Version < 10 {
			continue
		}
		if p.CurrentLeader.LeaderID != 2 || p.CurrentLeader.LeaderEpoch != leaderEpoch {
			t.Fatalf("v%d current leader %+v, want 2 at epoch %d", resp.Version, p.CurrentLeader, leaderEpoch)
		}
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 2 || resp.Brokers[0].Host != "other.example" || resp.Brokers[0].Port != 9192 ||
			resp.Brokers[0].Rack == nil || *resp.Brokers[0].Rack != "r2" {
			t.Fatalf("v%d brokers %+v", resp.Version, resp.Brokers)
		}
	}
}
