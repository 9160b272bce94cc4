package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

func reassignRequest(topic string, partition int32, replicas []int32) *kmsg.AlterPartitionAssignmentsRequest {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.TimeoutMillis = 10000
	req.AllowReplicationFactorChange = true
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = partition, replicas
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func electRequest(electionType int8, topic string, partitions ...int32) *kmsg.ElectLeadersRequest {
	req := kmsg.NewPtrElectLeadersRequest()
	req.ElectionType, req.TimeoutMillis = electionType, 10000
	rt := kmsg.NewElectLeadersRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	req.Topics = append(req.Topics, rt)
	return req
}

// TestReassignmentAndElectionAPIs: AlterPartitionReassignments,
// ListPartitionReassignments and ElectLeaders need ALTER / DESCRIBE on the
// cluster, and answer Kafka's error codes for what cannot be done.
func TestReassignmentAndElectionAPIs(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	grant := func(bindings ...authz.Binding) {
		t.Helper()
		if err := n.Store.CreateACLs(ctx, bindings); err != nil {
			t.Fatal(err)
		}
	}
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	createTopic(t, n.Client(), "t", 1, nil)
	cl := n.Client().SeedBrokers()[0]

	// Without ACLs: CLUSTER_AUTHORIZATION_FAILED.
	if r := request[*kmsg.AlterPartitionAssignmentsResponse](t, cl, reassignRequest("t", 0, []int32{1})); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code ||
		r.Topics[0].Partitions[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("AlterPartitionReassignments without ALTER: %+v", r)
	}
	list := kmsg.NewPtrListPartitionReassignmentsRequest()
	if r := request[*kmsg.ListPartitionReassignmentsResponse](t, cl, list); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("ListPartitionReassignments without DESCRIBE: %d", r.ErrorCode)
	}
	if r := request[*kmsg.ElectLeadersResponse](t, cl, electRequest(0, "t", 0)); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code ||
		r.Topics[0].Partitions[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("ElectLeaders without ALTER: %+v", r)
	}
	grant(anonymousACL(authz.OpAlter, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))

	for _, c := range []struct {
		name      string
		topic     string
		partition int32
		replicas  []int32
		keepRF    bool
		want      int16
	}{
		{"unregistered broker", "t", 0, []int32{9}, false, kerr.InvalidReplicaAssignment.Code},
		{"duplicate broker", "t", 0, []int32{1, 1}, false, kerr.InvalidReplicaAssignment.Code},
		{"empty", "t", 0, []int32{}, false, kerr.InvalidReplicaAssignment.Code},
		{"unknown topic", "nope", 0, []int32{1}, false, kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", "t", 3, []int32{1}, false, kerr.UnknownTopicOrPartition.Code},
		{"cancel with none in progress", "t", 0, nil, false, kerr.NoReassignmentInProgress.Code},
		{"replication factor change refused (v1)", "t", 0, []int32{1, 2}, true, kerr.InvalidReplicationFactor.Code},
		{"the same replicas", "t", 0, []int32{1}, false, 0},
	} {
		req := reassignRequest(c.topic, c.partition, c.replicas)
		req.AllowReplicationFactorChange = !c.keepRF
		r := request[*kmsg.AlterPartitionAssignmentsResponse](t, cl, req)
		if got := r.Topics[0].Partitions[0].ErrorCode; r.ErrorCode != 0 || got != c.want {
			t.Errorf("%s: error %d (top-level %d), want %d", c.name, got, r.ErrorCode, c.want)
		}
	}
	// DESCRIBE on the cluster lists (nothing is in progress).
	grant(anonymousACL(authz.OpDescribe, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	if r := request[*kmsg.ListPartitionReassignmentsResponse](t, cl, list); r.ErrorCode != 0 || len(r.Topics) != 0 {
		t.Fatalf("ListPartitionReassignments: %+v", r)
	}

	for _, c := range []struct {
		name         string
		electionType int8
		topic        string
		want         int16
	}{
		{"preferred: the preferred replica leads", 0, "t", kerr.ElectionNotNeeded.Code},
		{"unclean: the leader is alive", 1, "t", kerr.ElectionNotNeeded.Code},
		{"unknown topic", 0, "nope", kerr.UnknownTopicOrPartition.Code},
	} {
		r := request[*kmsg.ElectLeadersResponse](t, cl, electRequest(c.electionType, c.topic, 0))
		if got := r.Topics[0].Partitions[0].ErrorCode; r.ErrorCode != 0 || got != c.want {
			t.Errorf("%s: error %d (top-level %d), want %d", c.name, got, r.ErrorCode, c.want)
		}
	}
	if r := request[*kmsg.ElectLeadersResponse](t, cl, electRequest(5, "t", 0)); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("unknown election type: top-level %d", r.ErrorCode)
	}
}

// TestDynamicBrokerConfigs: the replication throttles are dynamic broker
// configs, per broker or for every broker (the empty name), described with
// Kafka's sources; other broker configs stay static, and bad values or
// names are refused.
func TestDynamicBrokerConfigs(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client().SeedBrokers()[0]
	alter := func(name string, configs ...kmsg.IncrementalAlterConfigsRequestResourceConfig) (int16, string) {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: name, Configs: configs}}
		r := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0]
		message := ""
		if r.ErrorMessage != nil {
			message = *r.ErrorMessage
		}
		return r.ErrorCode, message
	}
	set := func(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		return kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: name, Value: kmsg.StringPtr(value)}
	}
	describe := func(name string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: name,
			ConfigNames: []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"}}}
		r := request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]
		if r.ErrorCode != 0 {
			t.Fatalf("describe broker %q: %d", name, r.ErrorCode)
		}
		out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
		for _, c := range r.Configs {
			out[c.Name] = c
		}
		return out
	}
	if code, msg := alter("", set("follower.replication.throttled.rate", "2048")); code != 0 {
		t.Fatalf("set the cluster default: %d %s", code, msg)
	}
	if code, msg := alter("1", set("leader.replication.throttled.rate", "1024")); code != 0 {
		t.Fatalf("set broker 1's: %d %s", code, msg)
	}
	got := describe("1")
	if c := got["leader.replication.throttled.rate"]; *c.Value != "1024" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig {
		t.Errorf("broker 1's own: %s %v", *c.Value, c.Source)
	}
	if c := got["follower.replication.throttled.rate"]; *c.Value != "2048" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Errorf("broker 1's default: %s %v", *c.Value, c.Source)
	}
	if c := describe("")["leader.replication.throttled.rate"]; *c.Value != "9223372036854775807" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("unset cluster default: %s %v", *c.Value, c.Source)
	}
	// DELETE removes broker 1's own value.
	if code, msg := alter("1", kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "leader.replication.throttled.rate", Op: kmsg.IncrementalAlterConfigOpDelete}); code != 0 {
		t.Fatalf("delete: %d %s", code, msg)
	}
	if c := describe("1")["leader.replication.throttled.rate"]; c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("after delete: %s %v", *c.Value, c.Source)
	}
	for _, c := range []struct {
		name     string
		resource string
		config   kmsg.IncrementalAlterConfigsRequestResourceConfig
		want     int16
	}{
		{"a static broker config", "1", set("num.partitions", "3"), kerr.InvalidRequest.Code},
		{"a negative rate", "1", set("leader.replication.throttled.rate", "-5"), kerr.InvalidConfig.Code},
		{"not a number", "", set("follower.replication.throttled.rate", "fast"), kerr.InvalidConfig.Code},
		{"not a broker id", "one", set("leader.replication.throttled.rate", "1"), kerr.InvalidRequest.Code},
	} {
		if code, _ := alter(c.resource, c.config); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
}

// TestLeaderThrottleHoldsAddingReplicas: with leader.replication.throttled.rate
// set, the leader answers a replica that a reassignment adds without
// records once that replica's traffic is over the rate (here 1 byte/s, so
// the first batch puts it over for the rest of the test), while a consumer
// of the same partition is served as usual.
func TestLeaderThrottleHoldsAddingReplicas(t *testing.T) {
	registry := prometheus.NewRegistry()
	n := brokertest.Start(t, func(c *broker.Config) { c.Registerer = registry })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	createTopic(t, n.Client(), "t", 1, nil)
	client := n.Client()
	for i := range 5 {
		if err := client.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: make([]byte, 1000+i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Broker 2 (registered, never started) is added to the partition.
	registration := metadata.BrokerRegistration{ID: 2, IncarnationID: [16]byte{2},
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}}
	epoch, err := n.Store.RegisterBroker(ctx, registration)
	if err != nil {
		t.Fatal(err)
	}
	topic, _ := n.Store.State().Topic("t")
	if _, err := n.Store.StartReassignment(ctx, topic.ID, 0, []int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	cl := client.SeedBrokers()[0]
	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ia.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "leader.replication.throttled.rate", Value: kmsg.StringPtr("1")}}}}
	if code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, ia).Resources[0].ErrorCode; code != 0 {
		t.Fatalf("set the throttle: %d", code)
	}
	fetch := func(replica int32, offset int64) []byte {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.ReplicaState.ID, req.ReplicaState.Epoch = replica, replica, -1
		if replica >= 0 {
			req.ReplicaState.Epoch = epoch
		}
		req.MaxBytes, req.SessionEpoch = 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "t", topic.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LastFetchedEpoch = offset, 1, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := request[*kmsg.FetchResponse](t, cl, req).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch by %d at %d: %v", replica, offset, kerr.ErrorForCode(p.ErrorCode))
		}
		return p.RecordBatches
	}
	if first := fetch(2, 0); len(first) == 0 {
		t.Fatal("the first fetch of the adding replica got nothing: a second's worth (1 byte) is allowed to start")
	}
	if next := fetch(2, 1); len(next) != 0 {
		t.Fatalf("the adding replica over the rate got %d bytes", len(next))
	}
	if consumed := fetch(-1, 1); len(consumed) == 0 {
		t.Fatal("a consumer got nothing: only adding replicas are throttled")
	}
	// What an operator watches: the move in progress and the rate.
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, family := range families {
		for _, m := range family.GetMetric() {
			name := family.GetName()
			for _, label := range m.GetLabel() {
				name += "{" + label.GetValue() + "}"
			}
			values[name] = m.GetGauge().GetValue()
		}
	}
	if values["strata_reassigning_partitions"] != 1 || values["strata_replication_throttled_rate_bytes{leader}"] != 1 || values["strata_replication_throttled_rate_bytes{follower}"] != 0 {
		t.Fatalf("metrics: reassigning %v, leader rate %v, follower rate %v", values["strata_reassigning_partitions"],
			values["strata_replication_throttled_rate_bytes{leader}"], values["strata_replication_throttled_rate_bytes{follower}"])
	}
}

// TestUncleanElection: UNCLEAN elects a live replica outside the ISR of a
// partition whose in-sync replicas are all down (Kafka's semantics: what
// only they had is lost), answers ELIGIBLE_LEADERS_NOT_AVAILABLE when no
// replica is alive, and is refused with INVALID_REQUEST on a tiered topic,
// whose remote data an out-of-sync leader would splice its history into.
// PREFERRED answers PREFERRED_LEADER_NOT_AVAILABLE when the first replica
// is down.
func TestUncleanElection(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.RemoteReader = noRemote{}
		c.ObjectStoreNodeLocal = false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Broker 2 registers and never heartbeats: it stays fenced.
	epoch2, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: [16]byte{2},
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	cl := n.Client().SeedBrokers()[0]
	// Created through the store: CreateTopics places replicas on live
	// brokers only.
	create := func(name string, replicas []int32, configs map[string]string) metadata.Topic {
		t.Helper()
		topic, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: name, Assignments: [][]int32{replicas}, Configs: configs})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return topic
	}
	// Only broker 2 is in sync, and then goes down (fenced); broker 1 is
	// an out-of-sync replica. (A fenced broker cannot join an ISR: it is
	// unfenced while it does.)
	outOfSync := func(topic metadata.Topic) {
		t.Helper()
		for {
			if err := n.Store.SetBrokerFenced(ctx, 2, epoch2, false); err != nil {
				t.Fatal(err)
			}
			current, _ := n.Store.State().TopicByID(topic.ID)
			p := current.Partitions[0]
			_, err := n.Store.ChangePartition(ctx, metadata.PartitionChange{TopicID: topic.ID, PartitionEpoch: p.PartitionEpoch, Leader: -1, ISR: []int32{2}})
			if err := n.Store.SetBrokerFenced(ctx, 2, epoch2, true); err != nil {
				t.Fatal(err)
			}
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
		}
	}
	elect := func(electionType int8, name string) int16 {
		return request[*kmsg.ElectLeadersResponse](t, cl, electRequest(electionType, name, 0)).Topics[0].Partitions[0].ErrorCode
	}
	plain := create("plain", []int32{2, 1}, nil)
	outOfSync(plain)
	if code := elect(0, "plain"); code != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("preferred with the preferred replica down: %v", kerr.ErrorForCode(code))
	}
	if code := elect(1, "plain"); code != 0 {
		t.Fatalf("unclean: %v", kerr.ErrorForCode(code))
	}
	if p := mustTopic(t, n, "plain").Partitions[0]; p.Leader != 1 || len(p.ISR) != 1 || p.ISR[0] != 1 {
		t.Fatalf("after the unclean election: %+v", p)
	}

	tiered := create("tiered", []int32{2, 1}, map[string]string{"remote.storage.enable": "true"})
	outOfSync(tiered)
	if code := elect(1, "tiered"); code != kerr.InvalidRequest.Code {
		t.Fatalf("unclean on a tiered topic: %v", kerr.ErrorForCode(code))
	}
	if p := mustTopic(t, n, "tiered").Partitions[0]; p.Leader != -1 {
		t.Fatalf("tiered partition after the refused election: %+v", p)
	}

	down := create("down", []int32{2}, nil)
	outOfSync(down)
	if code := elect(1, "down"); code != kerr.EligibleLeadersNotAvailable.Code {
		t.Fatalf("unclean with no live replica: %v", kerr.ErrorForCode(code))
	}
}

func mustTopic(t *testing.T, n *brokertest.Node, name string) metadata.Topic {
	t.Helper()
	topic, ok := n.Store.State().Topic(name)
	if !ok {
		t.Fatalf("topic %s is gone", name)
	}
	return topic
}
