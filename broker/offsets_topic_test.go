package broker_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestOffsetsTopicWaitsForItsReplicationFactor: with
// offsets.topic.replication.factor 3 and two brokers registered,
// __consumer_offsets is not created with fewer replicas: FindCoordinator
// and JoinGroup answer COORDINATOR_NOT_AVAILABLE. Once a third broker
// registers the next lookup creates it with three replicas per partition.
func TestOffsetsTopicWaitsForItsReplicationFactor(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.OffsetsTopicReplicationFactor = 3 })
	metadatatest.RegisterBroker(t, n.Store, 2)
	cl := n.Client()

	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorKey = "g"
	if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != kerr.CoordinatorNotAvailable.Code || r.NodeID != -1 {
		t.Fatalf("FindCoordinator with 2 of 3 brokers: error %v, node %d; want COORDINATOR_NOT_AVAILABLE, -1", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", "consumer", 30000, 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("sub")}}
	// Straight to the broker: the client would look the coordinator up
	// again and again.
	resp, err := cl.Broker(int(metadatatest.NodeID)).Request(context.Background(), join)
	if err != nil {
		t.Fatalf("JoinGroup: %v", err)
	}
	if code := resp.(*kmsg.JoinGroupResponse).ErrorCode; code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("JoinGroup with 2 of 3 brokers: %v, want COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(code))
	}
	if topic, ok := n.Store.State().Topic(group.OffsetsTopic); ok {
		t.Fatalf("offsets topic created with 2 of 3 brokers: %+v", topic.Partitions)
	}

	metadatatest.RegisterBroker(t, n.Store, 3)
	if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != 0 || r.NodeID < 1 || r.NodeID > 3 {
		t.Fatalf("FindCoordinator with 3 brokers: error %v, node %d", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	requireOffsetsTopicReplicas(t, n.Store.State(), 3)
}

// TestOffsetsTopicOnOneNode: a one-node cluster (one voter, no other broker
// registered) creates __consumer_offsets with one replica under the
// default replication factor of 3, so plain `strata` serves groups.
func TestOffsetsTopicOnOneNode(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorKey = "g"
	if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != 0 || r.NodeID != metadatatest.NodeID {
		t.Fatalf("FindCoordinator: error %v, node %d", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	requireOffsetsTopicReplicas(t, n.Store.State(), 1)
}

// requireOffsetsTopicReplicas checks that __consumer_offsets exists in
// state with replicas replicas in every partition.
func requireOffsetsTopicReplicas(t *testing.T, state *metadata.State, replicas int) {
	t.Helper()
	topic, ok := state.Topic(group.OffsetsTopic)
	if !ok {
		t.Fatalf("offsets topic not created (want %d replicas)", replicas)
	}
	for i, p := range topic.Partitions {
		if len(p.Replicas) != replicas {
			t.Errorf("offsets partition %d: replicas %v, want %d", i, p.Replicas, replicas)
		}
	}
}

// TestTransactionStateTopicWaitsForItsReplicationFactor: the same rule for
// __transaction_state (transaction.state.log.replication.factor): with two
// of three brokers up, transaction coordinator lookups and transactional
// InitProducerId answer COORDINATOR_NOT_AVAILABLE and the topic does not
// exist; with three it is created with three replicas per partition and
// min.insync.replicas 2.
func TestTransactionStateTopicWaitsForItsReplicationFactor(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.TransactionStateLogReplicationFactor = 3 })
	metadatatest.RegisterBroker(t, n.Store, 2)
	cl := n.Client()

	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorType, find.CoordinatorKey = 1, "tx"
	if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != kerr.CoordinatorNotAvailable.Code || r.NodeID != -1 {
		t.Fatalf("FindCoordinator with 2 of 3 brokers: error %v, node %d; want COORDINATOR_NOT_AVAILABLE, -1", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr("tx"), 60000
	resp, err := cl.Broker(int(metadatatest.NodeID)).Request(context.Background(), init)
	if err != nil {
		t.Fatalf("InitProducerId: %v", err)
	}
	if code := resp.(*kmsg.InitProducerIDResponse).ErrorCode; code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("InitProducerId with 2 of 3 brokers: %v, want COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(code))
	}
	if topic, ok := n.Store.State().Topic(txn.TopicName); ok {
		t.Fatalf("transaction state topic created with 2 of 3 brokers: %+v", topic.Partitions)
	}

	metadatatest.RegisterBroker(t, n.Store, 3)
	if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != 0 || r.NodeID < 1 || r.NodeID > 3 {
		t.Fatalf("FindCoordinator with 3 brokers: error %v, node %d", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	topic, ok := n.Store.State().Topic(txn.TopicName)
	if !ok || !topic.Internal || topic.Configs[topicconfig.MinInsyncReplicas] != "2" {
		t.Fatalf("transaction state topic: %v %+v", ok, topic)
	}
	for i, p := range topic.Partitions {
		if len(p.Replicas) != 3 {
			t.Errorf("partition %d: replicas %v, want 3", i, p.Replicas)
		}
	}
}

// TestInternalTopicsCompressionProducer: as Kafka, __consumer_offsets and
// __transaction_state are created with compression.type=producer (and
// compacted), whatever the broker default: a default of zstd would have
// made the leader re-encode the coordinators' batches.
func TestInternalTopicsCompressionProducer(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.TopicDefaults = topicconfig.Defaults{topicconfig.CompressionType: "zstd"}
	})
	cl := n.Client()
	for _, tc := range []struct {
		coordinatorType int8
		topic           string
	}{{0, group.OffsetsTopic}, {1, txn.TopicName}} {
		find := kmsg.NewPtrFindCoordinatorRequest()
		find.CoordinatorType, find.CoordinatorKey = tc.coordinatorType, "key"
		if r := request[*kmsg.FindCoordinatorResponse](t, cl, find); r.ErrorCode != 0 {
			t.Fatalf("FindCoordinator for %s: %v", tc.topic, kerr.ErrorForCode(r.ErrorCode))
		}
		topic, ok := n.Store.State().Topic(tc.topic)
		if !ok || topic.Configs[topicconfig.CompressionType] != "producer" || topic.Configs[topicconfig.CleanupPolicy] != "compact" {
			t.Errorf("%s (exists: %v) configs %v, want compression.type=producer and cleanup.policy=compact", tc.topic, ok, topic.Configs)
		}
	}
}
