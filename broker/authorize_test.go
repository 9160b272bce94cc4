package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// startACL starts a broker with the ACL authorizer (options adjust its
// Config further) and returns it with grant, which adds ACL bindings.
func startACL(t *testing.T, options ...func(*broker.Config)) (*brokertest.Node, func(...authz.Binding)) {
	t.Helper()
	n := brokertest.Start(t, append([]func(*broker.Config){func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} }}, options...)...)
	return n, func(bindings ...authz.Binding) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Store.CreateACLs(ctx, bindings); err != nil {
			t.Fatal(err)
		}
	}
}

// commitOffsets commits offset for partition 0 of each topic in group
// (a simple commit, generation -1) and returns each topic's error code,
// asking again while the group's coordinator is not available or loading.
func commitOffsets(t *testing.T, cl requester, group string, offset int64, topics ...string) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	for _, topic := range topics {
		req.Topics = append(req.Topics, kmsg.OffsetCommitRequestTopic{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset}}})
	}
	for {
		codes := map[string]int16{}
		loading := false
		for _, rt := range request[*kmsg.OffsetCommitResponse](t, cl, req).Topics {
			code := rt.Partitions[0].ErrorCode
			codes[rt.Topic] = code
			loading = loading || code == kerr.CoordinatorNotAvailable.Code || code == kerr.CoordinatorLoadInProgress.Code
		}
		if !loading {
			return codes
		}
		time.Sleep(50 * time.Millisecond) // __consumer_offsets is being created or loaded
	}
}

// anonymousACL is a binding of User:ANONYMOUS from every host on the
// resource named literally.
func anonymousACL(op authz.Operation, perm authz.Permission, rt authz.ResourceType, name string) authz.Binding {
	return authz.Binding{
		Pattern: authz.Pattern{Type: rt, Name: name, PatternType: authz.PatternLiteral},
		Entry:   authz.Entry{Principal: authz.Anonymous, Host: "*", Operation: op, Permission: perm},
	}
}

func metadataTopics(t *testing.T, cl *kgo.Client, topics ...string) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		for _, name := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp := request[*kmsg.MetadataResponse](t, cl, req)
	out := map[string]int16{}
	for _, topic := range resp.Topics {
		if topic.Topic != nil && (topics != nil || topic.ErrorCode == 0) {
			out[*topic.Topic] = topic.ErrorCode
		}
	}
	return out
}

// TestAuthorizerACL: with an ACL authorizer, an unauthenticated client
// (User:ANONYMOUS) gets Kafka's authorization errors: Metadata lists only
// the topics it may DESCRIBE and does not tell whether others exist;
// Produce, Fetch (consumer and replica), CreateTopics, DeleteTopics and the
// ACL APIs are refused without their ACL; DENY wins over ALLOW.
func TestAuthorizerACL(t *testing.T) {
	n, grant := startACL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := n.Client()

	create := kmsg.NewPtrCreateTopicsRequest()
	create.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "visible", NumPartitions: 1, ReplicationFactor: 1}}
	if r := request[*kmsg.CreateTopicsResponse](t, cl, create); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("CreateTopics without CREATE: error %d", r.Topics[0].ErrorCode)
	}
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	createTopic(t, cl, "visible", 1, nil)
	createTopic(t, cl, "hidden", 1, nil)

	if got := metadataTopics(t, cl); len(got) != 0 {
		t.Fatalf("Metadata lists %v without DESCRIBE", got)
	}
	grant(anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "visible"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "visible"))
	if got := metadataTopics(t, cl); len(got) != 1 || got["visible"] != 0 {
		t.Fatalf("Metadata lists %v, want visible only (WRITE implies DESCRIBE)", got)
	}
	if got := metadataTopics(t, cl, "hidden", "no-such-topic"); got["hidden"] != kerr.TopicAuthorizationFailed.Code || got["no-such-topic"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("Metadata of named topics: %v, want TOPIC_AUTHORIZATION_FAILED for both", got)
	}

	producer := n.Client(kgo.RecordRetries(1))
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "visible", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to visible: %v", err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "hidden", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to hidden: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	fetch := func(topic string, replica int32) int16 {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = replica
		req.ReplicaState.ID = replica
		ft := kmsg.NewFetchRequestTopic()
		ft.TopicID = n.Store.State().Topics()[0].ID
		for _, topicState := range n.Store.State().Topics() {
			if topicState.Name == topic {
				ft.TopicID = topicState.ID
			}
		}
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		return request[*kmsg.FetchResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := fetch("visible", -1); code != 0 {
		t.Fatalf("fetch visible: error %d", code)
	}
	if code := fetch("hidden", -1); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("fetch hidden: error %d", code)
	}
	if code := fetch("visible", 7); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("replica fetch without CLUSTER_ACTION: error %d", code)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"hidden"}
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("hidden")}}
	del.TimeoutMillis = 10000
	if r := request[*kmsg.DeleteTopicsResponse](t, cl, del); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("DeleteTopics without DELETE: error %d", r.Topics[0].ErrorCode)
	}
	if _, ok := n.Store.State().Topic("hidden"); !ok {
		t.Fatal("hidden was deleted")
	}

	createACL := kmsg.NewPtrCreateACLsRequest()
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.Principal, c.Host = kmsg.ACLResourceTypeTopic, "hidden", authz.Anonymous, "*"
	c.Operation, c.PermissionType = kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
	createACL.Creations = []kmsg.CreateACLsRequestCreation{c}
	if r := request[*kmsg.CreateACLsResponse](t, cl, createACL); r.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("CreateAcls without ALTER CLUSTER: error %d", r.Results[0].ErrorCode)
	}
	describe := kmsg.NewPtrDescribeACLsRequest()
	describe.ResourceType, describe.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	describe.Operation, describe.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	if r := request[*kmsg.DescribeACLsResponse](t, cl, describe); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code || len(r.Resources) != 0 {
		t.Fatalf("DescribeAcls without DESCRIBE CLUSTER: error %d, %d resources", r.ErrorCode, len(r.Resources))
	}

	// DENY wins over the ALLOW of WRITE.
	grant(anonymousACL(authz.OpWrite, authz.PermissionDeny, authz.ResourceTopic, "visible"))
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "visible", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce with a DENY: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// TestAuthorizerACLGroups: with an ACL authorizer, FindCoordinator needs
// DESCRIBE on the group or transactional id, and the group membership APIs
// READ on the group (GROUP_AUTHORIZATION_FAILED); READ on a prefix
// admits every group under it.
func TestAuthorizerACLGroups(t *testing.T) {
	n, grant := startACL(t)
	// Straight to the node: the client would look the coordinator up first.
	cl := n.Client().SeedBrokers()[0]
	find := func(typ int8, key string) int16 {
		t.Helper()
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = typ, key, []string{key}
		resp := request[*kmsg.FindCoordinatorResponse](t, cl, req)
		if resp.Version >= 4 {
			return resp.Coordinators[0].ErrorCode
		}
		return resp.ErrorCode
	}
	join := func(group string) int16 {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
		return request[*kmsg.JoinGroupResponse](t, cl, req).ErrorCode
	}
	if code := find(0, "app-1"); code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("FindCoordinator group without DESCRIBE: %d", code)
	}
	if code := find(1, "tx-1"); code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("FindCoordinator transaction without DESCRIBE: %d", code)
	}
	if code := join("app-1"); code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("JoinGroup without READ: %d", code)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID = "app-1", "m"
	if code := request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("Heartbeat without READ: %d", code)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID = "app-1", "m"
	if code := request[*kmsg.SyncGroupResponse](t, cl, sync).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("SyncGroup without READ: %d", code)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "app-1", "m"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
	if code := request[*kmsg.LeaveGroupResponse](t, cl, leave).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("LeaveGroup without READ: %d", code)
	}

	prefixed := anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "app-")
	prefixed.Pattern.PatternType = authz.PatternPrefixed
	grant(prefixed)
	// READ implies DESCRIBE: the coordinator is found; it may answer
	// COORDINATOR_NOT_AVAILABLE while __consumer_offsets is created.
	for code := find(0, "app-1"); code != 0; code = find(0, "app-1") {
		if code != kerr.CoordinatorNotAvailable.Code {
			t.Fatalf("FindCoordinator with READ on app-*: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := join("app-1"); code == kerr.GroupAuthorizationFailed.Code {
		t.Fatal("JoinGroup with READ on app-* refused")
	}
	if code := join("other"); code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("JoinGroup of a group outside the prefix: %d", code)
	}
}

// TestAuthorizerACLOffsetCommit: OffsetCommit needs READ on the group
// (else GROUP_AUTHORIZATION_FAILED for every partition) and READ on each
// topic (else TOPIC_AUTHORIZATION_FAILED for its partitions, the others
// committed).
func TestAuthorizerACLOffsetCommit(t *testing.T) {
	n, grant := startACL(t)
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	createTopic(t, n.Client(), "readable", 1, nil)
	createTopic(t, n.Client(), "unreadable", 1, nil)
	cl := n.Client(offsetsByName()).SeedBrokers()[0] // straight to the node (its only coordinator)
	commit := func() map[string]int16 { return commitOffsets(t, cl, "g", 5, "readable", "unreadable") }
	if got := commit(); got["readable"] != kerr.GroupAuthorizationFailed.Code || got["unreadable"] != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("without READ on the group: %v", got)
	}
	grant(anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "g"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "readable"))
	if got := commit(); got["readable"] != 0 || got["unreadable"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("with READ on the group and on readable: %v", got)
	}
}

// TestAuthorizerACLAdminAPIs: ListOffsets (DESCRIBE topic),
// CreatePartitions (ALTER topic), DescribeConfigs/IncrementalAlterConfigs
// (DESCRIBE_CONFIGS/ALTER_CONFIGS on the topic or the cluster),
// DescribeGroups/DeleteGroups (DESCRIBE/DELETE group) and ListGroups (the
// groups the client may DESCRIBE) under an ACL authorizer.
func TestAuthorizerACLAdminAPIs(t *testing.T) {
	n, grant := startACL(t)
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	createTopic(t, n.Client(), "t", 1, nil)
	cl := n.Client(offsetsByName()).SeedBrokers()[0]

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}
	if code := request[*kmsg.ListOffsetsResponse](t, cl, lo).Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("ListOffsets without DESCRIBE: %d", code)
	}
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.TimeoutMillis = 10000
	cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "t", Count: 2}}
	if code := request[*kmsg.CreatePartitionsResponse](t, cl, cp).Topics[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("CreatePartitions without ALTER: %d", code)
	}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{
		{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"},
		{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"},
	}
	if r := request[*kmsg.DescribeConfigsResponse](t, cl, dc); r.Resources[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || r.Resources[1].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("DescribeConfigs without DESCRIBE_CONFIGS: %d, %d", r.Resources[0].ErrorCode, r.Resources[1].ErrorCode)
	}
	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ia.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("60000")}}}}
	if code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, ia).Resources[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("IncrementalAlterConfigs without ALTER_CONFIGS: %d", code)
	}
	grant(anonymousACL(authz.OpAlterConfigs, authz.PermissionAllow, authz.ResourceTopic, "t"))
	if code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, ia).Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs with ALTER_CONFIGS: %d", code)
	}
	if code := request[*kmsg.DescribeConfigsResponse](t, cl, dc).Resources[0].ErrorCode; code != 0 {
		t.Fatalf("DescribeConfigs with ALTER_CONFIGS (implies DESCRIBE_CONFIGS): %d", code)
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g"}
	if code := request[*kmsg.DescribeGroupsResponse](t, cl, dg).Groups[0].ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("DescribeGroups without DESCRIBE: %d", code)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	if code := request[*kmsg.DeleteGroupsResponse](t, cl, del).Groups[0].ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("DeleteGroups without DELETE: %d", code)
	}

	// Two groups with committed offsets; DESCRIBE denied on one.
	grant(anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "t"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "g"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "h"))
	for _, g := range []string{"g", "h"} {
		if code := commitOffsets(t, cl, g, 1, "t")["t"]; code != 0 {
			t.Fatalf("commit for %s: %v", g, kerr.ErrorForCode(code))
		}
	}
	grant(anonymousACL(authz.OpDescribe, authz.PermissionDeny, authz.ResourceGroup, "h"))
	lg := request[*kmsg.ListGroupsResponse](t, cl, kmsg.NewPtrListGroupsRequest())
	if len(lg.Groups) != 1 || lg.Groups[0].Group != "g" {
		t.Fatalf("ListGroups: %+v, want g only", lg.Groups)
	}
}

// TestAuthorizerACLOffsetFetch: OffsetFetch needs DESCRIBE on the group
// (GROUP_AUTHORIZATION_FAILED) and on each topic: named topics answer
// TOPIC_AUTHORIZATION_FAILED, a fetch of all topics leaves them out.
func TestAuthorizerACLOffsetFetch(t *testing.T) {
	n, grant := startACL(t)
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	createTopic(t, n.Client(), "seen", 1, nil)
	createTopic(t, n.Client(), "unseen", 1, nil)
	// v7: one group, top-level error (v8+ batches groups the same way).
	v7 := kversion.Stable()
	v7.SetMaxKeyVersion(kmsg.OffsetFetch.Int16(), 7)
	v7.SetMaxKeyVersion(kmsg.OffsetCommit.Int16(), 8) // topics by name
	cl := n.Client(kgo.MaxVersions(v7)).SeedBrokers()[0]
	fetch := func(topics ...string) *kmsg.OffsetFetchResponse {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = "g"
		for _, topic := range topics {
			req.Topics = append(req.Topics, kmsg.OffsetFetchRequestTopic{Topic: topic, Partitions: []int32{0}})
		}
		return request[*kmsg.OffsetFetchResponse](t, cl, req)
	}
	if code := fetch("seen").ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("without DESCRIBE on the group: %d", code)
	}
	grant(anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "g"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "seen"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "unseen"))
	if codes := commitOffsets(t, cl, "g", 3, "seen", "unseen"); codes["seen"] != 0 || codes["unseen"] != 0 {
		t.Fatalf("commit: %v", codes)
	}
	grant(anonymousACL(authz.OpDescribe, authz.PermissionDeny, authz.ResourceTopic, "unseen"))
	named := fetch("seen", "unseen")
	codes := map[string]int16{}
	offsets := map[string]int64{}
	for _, topic := range named.Topics {
		codes[topic.Topic], offsets[topic.Topic] = topic.Partitions[0].ErrorCode, topic.Partitions[0].Offset
	}
	if named.ErrorCode != 0 || codes["seen"] != 0 || offsets["seen"] != 3 || codes["unseen"] != kerr.TopicAuthorizationFailed.Code || offsets["unseen"] != -1 {
		t.Fatalf("named topics: error %d, codes %v, offsets %v", named.ErrorCode, codes, offsets)
	}
	all := fetch()
	if all.ErrorCode != 0 || len(all.Topics) != 1 || all.Topics[0].Topic != "seen" {
		t.Fatalf("all topics: %+v", all.Topics)
	}
}

// TestAuthorizerACLTransactions: a transactional producer (Transactions
// V1 and V2) needs WRITE on its transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on the topic; with both it
// commits.
func TestAuthorizerACLTransactions(t *testing.T) {
	for _, version := range []int16{1, 2} {
		t.Run(fmt.Sprint("transaction version ", version), func(t *testing.T) {
			n, grant := startACL(t, func(c *broker.Config) { c.TransactionVersion = version })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
				anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "t"))
			createTopic(t, n.Client(), "t", 1, nil)
			produce := func() error {
				cl := n.Client(kgo.TransactionalID("tx-a"), kgo.RecordRetries(2), kgo.RequestRetries(2))
				if err := cl.BeginTransaction(); err != nil {
					return err
				}
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
					return err
				}
				return cl.EndTransaction(ctx, kgo.TryCommit)
			}
			if err := produce(); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
				t.Fatalf("without WRITE on tx-a: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
			}
			grant(anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTransactionalID, "tx-a"))
			if err := produce(); err != nil {
				t.Fatalf("with WRITE on tx-a and t: %v", err)
			}
		})
	}
}

// TestAuthorizerACLMoreAPIs: DescribeProducers (READ topic),
// OffsetForLeaderEpoch (DESCRIBE topic; CLUSTER_ACTION for a replica),
// DescribeTransactions/ListTransactions (DESCRIBE transactional id) and
// OffsetDelete (DELETE group) under an ACL authorizer.
func TestAuthorizerACLMoreAPIs(t *testing.T) {
	n, grant := startACL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "t"),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTransactionalID, "tx-a"),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTransactionalID, "tx-b"))
	createTopic(t, n.Client(), "t", 1, nil)
	for _, id := range []string{"tx-a", "tx-b"} {
		cl := n.Client(kgo.TransactionalID(id))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	grant(anonymousACL(authz.OpDescribe, authz.PermissionDeny, authz.ResourceTransactionalID, "tx-b"))
	cl := n.Client().SeedBrokers()[0]

	dp := kmsg.NewPtrDescribeProducersRequest()
	dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if code := request[*kmsg.DescribeProducersResponse](t, cl, dp).Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("DescribeProducers without READ: %d", code)
	}
	ofe := func(replica int32) int16 {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = replica
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
		return request[*kmsg.OffsetForLeaderEpochResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := ofe(-1); code != 0 {
		t.Fatalf("OffsetForLeaderEpoch with WRITE (implies DESCRIBE): %d", code)
	}
	if code := ofe(2); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("OffsetForLeaderEpoch as a replica without CLUSTER_ACTION: %d", code)
	}
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"tx-a", "tx-b"}
	states := request[*kmsg.DescribeTransactionsResponse](t, cl, dt).TransactionStates
	if states[0].ErrorCode != 0 || states[1].ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("DescribeTransactions: %d, %d", states[0].ErrorCode, states[1].ErrorCode)
	}
	listed := request[*kmsg.ListTransactionsResponse](t, cl, kmsg.NewPtrListTransactionsRequest()).TransactionStates
	if len(listed) != 1 || listed[0].TransactionalID != "tx-a" {
		t.Fatalf("ListTransactions: %+v, want tx-a only", listed)
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	if code := request[*kmsg.OffsetDeleteResponse](t, cl, od).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("OffsetDelete without DELETE: %d", code)
	}
}

// TestAuthorizerACLScramCredentials: with an authorizer, SCRAM credentials
// are described only with DESCRIBE and changed only with ALTER on the
// cluster (KIP-554's rule); without them nothing is stored.
func TestAuthorizerACLScramCredentials(t *testing.T) {
	n, grant := startACL(t)
	cl := n.Client()
	alter := func() int16 {
		t.Helper()
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations = "mallory", 2, 8192
		up.Salt, up.SaltedPassword = []byte("0123456789abcdef"), make([]byte, 64)
		req.Upsertions = append(req.Upsertions, up)
		return request[*kmsg.AlterUserSCRAMCredentialsResponse](t, cl, req).Results[0].ErrorCode
	}
	describe := func() int16 {
		t.Helper()
		return request[*kmsg.DescribeUserSCRAMCredentialsResponse](t, cl, kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()).ErrorCode
	}
	if code := alter(); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("AlterUserScramCredentials without ALTER: error %d, want CLUSTER_AUTHORIZATION_FAILED", code)
	}
	if creds := n.Store.State().ScramCredentials(); len(creds) != 0 {
		t.Fatalf("an unauthorized AlterUserScramCredentials stored %v", creds)
	}
	if code := describe(); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("DescribeUserScramCredentials without DESCRIBE: error %d, want CLUSTER_AUTHORIZATION_FAILED", code)
	}
	grant(anonymousACL(authz.OpAlter, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	if code := alter(); code != 0 {
		t.Fatalf("AlterUserScramCredentials with ALTER: error %d", code)
	}
	if code := describe(); code != 0 {
		t.Fatalf("DescribeUserScramCredentials with ALTER (which implies DESCRIBE): error %d", code)
	}
}

// TestAuthorizerACLIdempotentAndMarkers: an idempotent InitProducerId
// needs IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (KIP-679),
// else CLUSTER_AUTHORIZATION_FAILED; WriteTxnMarkers (brokers, and admins
// aborting a hanging transaction, KIP-664) needs CLUSTER_ACTION, else
// every partition is CLUSTER_AUTHORIZATION_FAILED and no marker is
// written.
func TestAuthorizerACLIdempotentAndMarkers(t *testing.T) {
	prefixedWrite := anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "orders-")
	prefixedWrite.Pattern.PatternType = authz.PatternPrefixed
	initProducerID := func(t *testing.T, n *brokertest.Node) int16 {
		return request[*kmsg.InitProducerIDResponse](t, n.Client(), kmsg.NewPtrInitProducerIDRequest()).ErrorCode
	}
	// A commit marker for producer 5 on t-0; the partition's log end
	// offset must stay 0 when it is refused.
	writeMarker := func(t *testing.T, n *brokertest.Node) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = 5, 0, true
		m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "t", Partitions: []int32{0}}}
		req.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
		code := request[*kmsg.WriteTxnMarkersResponse](t, n.Client().SeedBrokers()[0], req).Markers[0].Topics[0].Partitions[0].ErrorCode
		for deadline := time.Now().Add(10 * time.Second); code == kerr.NotLeaderForPartition.Code && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond) // the new topic's leadership is taking effect
			code = request[*kmsg.WriteTxnMarkersResponse](t, n.Client().SeedBrokers()[0], req).Markers[0].Topics[0].Partitions[0].ErrorCode
		}
		if code == kerr.ClusterAuthorizationFailed.Code {
			lo := kmsg.NewPtrListOffsetsRequest()
			lo.ReplicaID = -1
			lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}
			p := request[*kmsg.ListOffsetsResponse](t, n.Client().SeedBrokers()[0], lo).Topics[0].Partitions[0]
			for deadline := time.Now().Add(10 * time.Second); p.ErrorCode != 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond) // the new topic's leadership is taking effect
				p = request[*kmsg.ListOffsetsResponse](t, n.Client().SeedBrokers()[0], lo).Topics[0].Partitions[0]
			}
			if p.ErrorCode != 0 || p.Offset != 0 {
				t.Fatalf("after a refused marker: log end offset %d (%v), want 0", p.Offset, kerr.ErrorForCode(p.ErrorCode))
			}
		}
		return code
	}
	tests := []struct {
		name string
		acls []authz.Binding
		call func(*testing.T, *brokertest.Node) int16
		want int16
	}{
		{"InitProducerId without ACLs", nil, initProducerID, kerr.ClusterAuthorizationFailed.Code},
		{"InitProducerId with IDEMPOTENT_WRITE", []authz.Binding{anonymousACL(authz.OpIdempotentWrite, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName)}, initProducerID, 0},
		{"InitProducerId with WRITE on a topic", []authz.Binding{anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "t")}, initProducerID, 0},
		{"InitProducerId with WRITE on a prefix", []authz.Binding{prefixedWrite}, initProducerID, 0},
		{"InitProducerId with READ on a topic", []authz.Binding{anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "t")}, initProducerID, kerr.ClusterAuthorizationFailed.Code},
		{"InitProducerId with WRITE denied", []authz.Binding{anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "t"), anonymousACL(authz.OpWrite, authz.PermissionDeny, authz.ResourceTopic, "t")},
			initProducerID, kerr.ClusterAuthorizationFailed.Code},
		{"WriteTxnMarkers without CLUSTER_ACTION", []authz.Binding{anonymousACL(authz.OpAll, authz.PermissionAllow, authz.ResourceTopic, "t")}, writeMarker, kerr.ClusterAuthorizationFailed.Code},
		{"WriteTxnMarkers with CLUSTER_ACTION", []authz.Binding{anonymousACL(authz.OpClusterAction, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName)}, writeMarker, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, grant := startACL(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID}}}); err != nil {
				t.Fatal(err)
			}
			if len(tt.acls) > 0 {
				grant(tt.acls...)
			}
			if got := tt.call(t, n); got != tt.want {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(tt.want))
			}
		})
	}
}

// TestAuthorizerAllowEveryoneIdempotentProducer: under
// allow.everyone.if.no.acl.found a topic no ACL applies to is open to
// everyone, and so is IDEMPOTENT_WRITE: Kafka's authorizeByResourceType
// (KIP-679) first asks about a topic no binding names ("hardcode"), which
// the no-ACL rule allows, however many other topics have ACLs. So an
// idempotent producer (kgo's default) produces to such a topic even when
// the cluster and other topics have ACLs of their own.
func TestAuthorizerAllowEveryoneIdempotentProducer(t *testing.T) {
	n, grant := startACL(t, func(c *broker.Config) { c.Authorizer = &authz.Authorizer{AllowEveryoneIfNoACLFound: true} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	createTopic(t, n.Client(), "open", 1, nil)
	bob := func(op authz.Operation, rt authz.ResourceType, name string) authz.Binding {
		b := anonymousACL(op, authz.PermissionAllow, rt, name)
		b.Entry.Principal = "User:bob"
		return b
	}
	// The cluster and the topic "private" have ACLs (for someone else);
	// "open" has none.
	grant(bob(authz.OpAlter, authz.ResourceCluster, authz.ClusterName), bob(authz.OpWrite, authz.ResourceTopic, "private"))
	if code := request[*kmsg.InitProducerIDResponse](t, n.Client(), kmsg.NewPtrInitProducerIDRequest()).ErrorCode; code != 0 {
		t.Errorf("idempotent InitProducerId: %v, want allowed (WRITE on a topic no ACL applies to)", kerr.ErrorForCode(code))
	}
	producer := n.Client(kgo.RecordRetries(2), kgo.RequestRetries(2))
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "open", Value: []byte("v")}).FirstErr(); err != nil {
		t.Errorf("idempotent produce to a topic without ACLs: %v", err)
	}
}

// TestAddPartitionsToTxnRefusesInternalTopics: a client's
// AddPartitionsToTxn (v0-v3) may not put a partition of an internal topic
// (__consumer_offsets, __transaction_state) in its transaction, whatever
// its ACLs and with no authorizer at all: Kafka leaves internal topics out
// of the authorized ones (TOPIC_AUTHORIZATION_FAILED, the other partitions
// OPERATION_NOT_ATTEMPTED). Offsets join a transaction through
// AddOffsetsToTxn, which checks READ on the group.
func TestAddPartitionsToTxnRefusesInternalTopics(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 1, nil)
	init := initProducer(t, cl, "tx", 60_000) // creates __transaction_state
	if init.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx", init.ProducerID, init.ProducerEpoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}, {Topic: "__transaction_state", Partitions: []int32{0}}}
	got := map[string]int16{}
	for _, rt := range request[*kmsg.AddPartitionsToTxnResponse](t, cl, req).Topics {
		got[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if got["__transaction_state"] != kerr.TopicAuthorizationFailed.Code || got["t"] != kerr.OperationNotAttempted.Code {
		t.Fatalf("AddPartitionsToTxn of __transaction_state-0 and t-0: %v, want TOPIC_AUTHORIZATION_FAILED (%d) and OPERATION_NOT_ATTEMPTED (%d)",
			got, kerr.TopicAuthorizationFailed.Code, kerr.OperationNotAttempted.Code)
	}
	if st := describeTxn(t, cl, "tx"); len(st.Topics) != 0 {
		t.Fatalf("the transaction holds %+v, want nothing", st.Topics)
	}
}

// TestAddPartitionsToTxnBrokerFormRefusesInternalTopics: the broker form
// (v4+) from a principal without CLUSTER_ACTION is authorized per
// transaction as v3 is, internal topics included: WRITE on every topic
// ("*") does not let a client put __transaction_state in its transaction.
// The group coordinator's own request for a TxnOffsetCommit v5 (the
// group's __consumer_offsets partition, asked as User:ANONYMOUS over the
// PLAINTEXT inter-broker listener) still passes.
func TestAddPartitionsToTxnBrokerFormRefusesInternalTopics(t *testing.T) {
	n, grant := startACL(t)
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, authz.Wildcard),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceTopic, "t"),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTransactionalID, "tx"),
		anonymousACL(authz.OpRead, authz.PermissionAllow, authz.ResourceGroup, "g"))
	cl := n.Client()
	createTopic(t, cl, "t", 1, nil)
	init := initProducer(t, cl, "tx", 60_000) // creates __transaction_state
	if init.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	for _, version := range []int16{4, 5} {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version = version
		req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: "tx", ProducerID: init.ProducerID, ProducerEpoch: init.ProducerEpoch,
			Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0}}, {Topic: "__transaction_state", Partitions: []int32{0}}}}}
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(kmsg.AddPartitionsToTxn.Int16(), version)
		got := map[string]int16{}
		// To the broker itself: kgo sends one transaction's add as v3.
		broker := n.Client(kgo.MaxVersions(vs)).Broker(int(metadatatest.NodeID))
		for _, tx := range request[*kmsg.AddPartitionsToTxnResponse](t, broker, req).Transactions {
			for _, rt := range tx.Topics {
				got[rt.Topic] = rt.Partitions[0].ErrorCode
			}
		}
		if got["__transaction_state"] != kerr.TopicAuthorizationFailed.Code || got["t"] != kerr.OperationNotAttempted.Code {
			t.Fatalf("AddPartitionsToTxn v%d of __transaction_state-0 and t-0: %v, want TOPIC_AUTHORIZATION_FAILED (%d) and OPERATION_NOT_ATTEMPTED (%d)",
				version, got, kerr.TopicAuthorizationFailed.Code, kerr.OperationNotAttempted.Code)
		}
		if st := describeTxn(t, cl, "tx"); len(st.Topics) != 0 {
			t.Fatalf("after v%d the transaction holds %+v, want nothing", version, st.Topics)
		}
	}

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.Version = 5
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = "tx", "g", init.ProducerID, init.ProducerEpoch
	commit.Generation = -1
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, 1
	commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
	r := untilServed(t, cl, commit, func(r *kmsg.TxnOffsetCommitResponse) int16 { return r.Topics[0].Partitions[0].ErrorCode })
	if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("TxnOffsetCommit v5 (the group coordinator adds __consumer_offsets): %v", kerr.ErrorForCode(code))
	}
	if st := describeTxn(t, cl, "tx"); len(st.Topics) != 1 || st.Topics[0].Topic != "__consumer_offsets" {
		t.Fatalf("after TxnOffsetCommit v5 the transaction holds %+v, want the group's __consumer_offsets partition", st.Topics)
	}
}

// TestAuthorizerDeleteTopicsWithDeleteOnCluster: DELETE on the cluster
// lets a client delete every topic, by name or by id, as Kafka's
// controller (KRaft ControllerApis.deleteTopics: hasClusterAuth makes
// every topic describable and deletable); without it, DELETE on the topic.
func TestAuthorizerDeleteTopicsWithDeleteOnCluster(t *testing.T) {
	n, grant := startACL(t)
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	cl := n.Client()
	createTopic(t, cl, "by-name", 1, nil)
	createTopic(t, cl, "by-id", 1, nil)
	byID, _ := n.Store.State().Topic("by-id")
	del := func() []kmsg.DeleteTopicsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis = 10000
		req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("by-name")}, {TopicID: byID.ID}}
		return request[*kmsg.DeleteTopicsResponse](t, cl.SeedBrokers()[0], req).Topics
	}
	for _, r := range del() {
		if r.ErrorCode != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("DeleteTopics without DELETE: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	}
	grant(anonymousACL(authz.OpDelete, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	for i, r := range del() {
		if r.ErrorCode != 0 {
			t.Errorf("DeleteTopics %d with DELETE on the cluster: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
	}
	for _, name := range []string{"by-name", "by-id"} {
		if _, ok := n.Store.State().Topic(name); ok {
			t.Errorf("%s was not deleted", name)
		}
	}
}

// TestCreateTopicsRefusesInternalTopicNames: the coordinators create their
// internal topics (__consumer_offsets, __transaction_state) themselves,
// marked internal, so that no client may produce to them, delete them or
// their records. A client's CreateTopics of either name, before it exists,
// is refused: created as an ordinary topic it would not be internal, and
// a client that may CREATE topics and WRITE to them could then forge any
// group's offsets or any transaction's state, which the coordinators load.
func TestCreateTopicsRefusesInternalTopicNames(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	for _, validateOnly := range []bool{true, false} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis, req.ValidateOnly = 10000, validateOnly
		for _, name := range []string{"__consumer_offsets", "__transaction_state"} {
			req.Topics = append(req.Topics, kmsg.CreateTopicsRequestTopic{Topic: name, NumPartitions: 1, ReplicationFactor: 1})
		}
		for _, rt := range request[*kmsg.CreateTopicsResponse](t, cl, req).Topics {
			if rt.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("CreateTopics %s (validate only: %v): %v, want INVALID_REQUEST", rt.Topic, validateOnly, kerr.ErrorForCode(rt.ErrorCode))
			}
			if topic, ok := n.Store.State().Topic(rt.Topic); ok && !topic.Internal {
				t.Errorf("CreateTopics created %s as an ordinary topic, not internal", rt.Topic)
			}
		}
	}
	// The coordinators still create theirs, internal.
	createTopic(t, cl, "t", 1, nil)
	if code := commitOffsets(t, cl, "g", 0, "t")["t"]; code != 0 {
		t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if topic, ok := n.Store.State().Topic("__consumer_offsets"); !ok || !topic.Internal {
		t.Fatalf("__consumer_offsets after a commit: exists %v, internal %v", ok, topic.Internal)
	}
}
