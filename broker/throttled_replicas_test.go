package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// TestThrottledReplicasTopicConfigs: set the way kafka-reassign-partitions
// --throttle sets them — leader/follower.replication.throttled.replicas on
// the topic and leader.replication.throttled.rate on the broker, with
// IncrementalAlterConfigs — the leader throttles what it sends the
// out-of-sync replica of the partition its leader list names (here 1 byte/s:
// the first batch puts it over), and not that of an unlisted partition;
// DescribeConfigs shows the lists, and a list not in Kafka's format is
// refused with INVALID_CONFIG.
func TestThrottledReplicasTopicConfigs(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Broker 2 (registered, never started) is an out-of-sync replica of
	// both partitions.
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: [16]byte{2},
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	topic, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}, {1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	// Broker 2 stays fenced (it never heartbeats): the controller takes it
	// out of both ISRs.
	for {
		state, changed := n.Store.Watch()
		tp, _ := state.TopicByID(topic.ID)
		if len(tp.Partitions[0].ISR) == 1 && len(tp.Partitions[1].ISR) == 1 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("broker 2, fenced, still in the ISRs: %+v", tp.Partitions)
		}
	}
	client := n.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 10 {
		if err := client.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: int32(i % 2), Value: make([]byte, 1000)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := client.SeedBrokers()[0]
	alter := func(resource kmsg.ConfigResourceType, name, config, value string) int16 {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: resource, ResourceName: name,
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: config, Value: kmsg.StringPtr(value)}}}}
		return request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode
	}
	if code := alter(kmsg.ConfigResourceTypeTopic, "t", "leader.replication.throttled.replicas", "0:1,1:3"); code != 0 {
		t.Fatalf("set the leader list: %v", kerr.ErrorForCode(code))
	}
	if code := alter(kmsg.ConfigResourceTypeTopic, "t", "follower.replication.throttled.replicas", "0:2"); code != 0 {
		t.Fatalf("set the follower list: %v", kerr.ErrorForCode(code))
	}
	if code := alter(kmsg.ConfigResourceTypeTopic, "t", "follower.replication.throttled.replicas", "0:2,all"); code != kerr.InvalidConfig.Code {
		t.Fatalf("a list not in Kafka's format: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
	if code := alter(kmsg.ConfigResourceTypeBroker, "1", "leader.replication.throttled.rate", "1"); code != 0 {
		t.Fatalf("set the rate: %v", kerr.ErrorForCode(code))
	}

	describe := kmsg.NewPtrDescribeConfigsRequest()
	describe.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t",
		ConfigNames: []string{"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}}}
	described := map[string]string{}
	for _, c := range request[*kmsg.DescribeConfigsResponse](t, cl, describe).Resources[0].Configs {
		described[c.Name] = *c.Value
		if c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s: source %v, want the topic's", c.Name, c.Source)
		}
	}
	if described["leader.replication.throttled.replicas"] != "0:1,1:3" || described["follower.replication.throttled.replicas"] != "0:2" {
		t.Fatalf("described %v", described)
	}

	fetch := func(partition int32, offset int64) []byte {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.ReplicaState.ID, req.ReplicaState.Epoch = 2, 2, epoch
		req.MaxBytes, req.SessionEpoch = 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "t", topic.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LastFetchedEpoch = partition, offset, 1, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := request[*kmsg.FetchResponse](t, cl, req).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch of %d at %d: %v", partition, offset, kerr.ErrorForCode(p.ErrorCode))
		}
		return p.RecordBatches
	}
	// Offsets below the log end (5): the replica stays out of the ISR.
	if first := fetch(0, 0); len(first) == 0 {
		t.Fatal("the first fetch of the listed replica got nothing: a second's worth (1 byte) is allowed to start")
	}
	if next := fetch(0, 1); len(next) != 0 {
		t.Fatalf("the listed replica over the rate got %d bytes", len(next))
	}
	for offset := range int64(3) {
		if got := fetch(1, offset); len(got) == 0 {
			t.Fatalf("partition 1 (its leader 1 not listed) at %d got nothing", offset)
		}
	}
}
