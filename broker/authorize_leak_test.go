package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestAuthorizerLeaks: Kafka's rules for what a client learns about
// resources it may not DESCRIBE, API by API. The client may CREATE topics
// (on the cluster), WRITE (so DESCRIBE) the topic "open", DESCRIBE the
// transactional id and one of two groups; nothing on the topic
// "secret.plans", which a super user filled with an ongoing transaction and
// committed offsets of both groups before the client's ACLs were set.
func TestAuthorizerLeaks(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setACLs := func(bindings ...authz.Binding) {
		t.Helper()
		all := authz.Filter{ResourceType: authz.ResourceAny, PatternType: authz.PatternAny, Operation: authz.OpAny, Permission: authz.PermissionAny}
		if _, err := n.Store.DeleteACLs(ctx, []authz.Filter{all}); err != nil {
			t.Fatal(err)
		}
		if err := n.Store.CreateACLs(ctx, bindings); err != nil {
			t.Fatal(err)
		}
	}
	const secret, open, txnID = "secret.plans", "open", "leak-txn"
	// Set-up with everything allowed.
	setACLs(anonymousACL(authz.OpAll, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
		anonymousACL(authz.OpAll, authz.PermissionAllow, authz.ResourceTopic, authz.Wildcard),
		anonymousACL(authz.OpAll, authz.PermissionAllow, authz.ResourceGroup, authz.Wildcard),
		anonymousACL(authz.OpAll, authz.PermissionAllow, authz.ResourceTransactionalID, authz.Wildcard))
	cl := n.Client(offsetsByName())
	createTopic(t, cl, secret, 1, nil)
	createTopic(t, cl, open, 1, nil)
	for _, group := range []string{"visible-group", "hidden-group"} {
		commitOffset(t, cl, group, -1, "", secret, 0, 1)
		commitOffset(t, cl, group, -1, "", open, 0, 1)
	}
	producer := n.Client(kgo.TransactionalID(txnID))
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{secret, open} {
		if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("transactional produce to %s: %v", topic, err)
		}
	}
	var secretID [16]byte
	for _, topic := range n.Store.State().Topics() {
		if topic.Name == secret {
			secretID = topic.ID
		}
	}

	setACLs(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
		anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, open),
		anonymousACL(authz.OpDescribe, authz.PermissionAllow, authz.ResourceTransactionalID, txnID),
		anonymousACL(authz.OpDescribe, authz.PermissionAllow, authz.ResourceGroup, "visible-group"))

	// Requests go to the broker as they are (kgo would shard some and
	// turn their errors into its own).
	direct := n.Client(offsetsByName()).SeedBrokers()[0]
	createTopics := func(names ...string) []kmsg.CreateTopicsResponseTopic {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		for _, name := range names {
			req.Topics = append(req.Topics, kmsg.CreateTopicsRequestTopic{Topic: name, NumPartitions: 1, ReplicationFactor: 1})
		}
		return request[*kmsg.CreateTopicsResponse](t, cl, req).Topics
	}
	for _, tc := range []struct {
		name  string
		check func(t *testing.T)
	}{
		{"CreateTopics of an existing topic: TOPIC_AUTHORIZATION_FAILED unless the client may DESCRIBE it", func(t *testing.T) {
			got := createTopics(secret, open)
			if got[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || got[1].ErrorCode != kerr.TopicAlreadyExists.Code {
				t.Fatalf("CreateTopics %s: error %d, %s: error %d; want TOPIC_AUTHORIZATION_FAILED, TOPIC_ALREADY_EXISTS", secret, got[0].ErrorCode, open, got[1].ErrorCode)
			}
		}},
		{"CreateTopics colliding with a topic the client may not DESCRIBE does not name it", func(t *testing.T) {
			got := createTopics("secret_plans")[0]
			if got.ErrorCode != kerr.InvalidTopicException.Code || got.ErrorMessage == nil || strings.Contains(*got.ErrorMessage, secret) {
				t.Fatalf("CreateTopics secret_plans: error %d, message %v; want INVALID_TOPIC_EXCEPTION without the other topic's name", got.ErrorCode, got.ErrorMessage)
			}
		}},
		{"CreateTopics without DESCRIBE_CONFIGS: created, configs not told", func(t *testing.T) {
			got := createTopics("fresh")[0]
			if got.ErrorCode != 0 || got.ConfigErrorCode != kerr.TopicAuthorizationFailed.Code || len(got.Configs) != 0 || got.NumPartitions != -1 || got.ReplicationFactor != -1 {
				t.Fatalf("CreateTopics fresh: %+v; want created, TOPIC_AUTHORIZATION_FAILED for its configs and none told", got)
			}
			if _, ok := n.Store.State().Topic("fresh"); !ok {
				t.Fatal("fresh was not created")
			}
		}},
		{"Metadata lists only describable topics; named ones answer TOPIC_AUTHORIZATION_FAILED, existing or not", func(t *testing.T) {
			if got := metadataTopics(t, cl); len(got) != 1 || got[open] != 0 {
				t.Fatalf("Metadata of all topics: %v, want %s only", got, open)
			}
			got := metadataTopics(t, cl, secret, "no-such-topic")
			if got[secret] != kerr.TopicAuthorizationFailed.Code || got["no-such-topic"] != kerr.TopicAuthorizationFailed.Code {
				t.Fatalf("Metadata of named topics: %v", got)
			}
		}},
		{"Metadata by topic id answers TOPIC_AUTHORIZATION_FAILED without the name", func(t *testing.T) {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.TopicID = secretID
			req.Topics = []kmsg.MetadataRequestTopic{rt}
			got := request[*kmsg.MetadataResponse](t, cl, req).Topics[0]
			if got.ErrorCode != kerr.TopicAuthorizationFailed.Code || got.Topic != nil || len(got.Partitions) != 0 {
				t.Fatalf("Metadata by id: error %d, name %v, %d partitions", got.ErrorCode, got.Topic, len(got.Partitions))
			}
		}},
		{"DescribeTopicPartitions of every topic: the next cursor names no topic the client may not DESCRIBE", func(t *testing.T) {
			// One partition per page: the page of "open" (the only
			// describable topic) is full, and Kafka's cursor is the next
			// describable topic, of which there is none.
			req := kmsg.NewPtrDescribeTopicPartitionsRequest()
			req.ResponsePartitionLimit = 1
			resp := request[*kmsg.DescribeTopicPartitionsResponse](t, direct, req)
			if len(resp.Topics) != 1 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != open {
				t.Fatalf("DescribeTopicPartitions of every topic: %+v, want %s only", resp.Topics, open)
			}
			if resp.NextCursor != nil {
				t.Fatalf("DescribeTopicPartitions' next cursor names %q (partition %d), want none: %s is the last topic the client may DESCRIBE",
					resp.NextCursor.Topic, resp.NextCursor.Partition, open)
			}
		}},
		{"DescribeTransactions lists only the partitions of describable topics", func(t *testing.T) {
			req := kmsg.NewPtrDescribeTransactionsRequest()
			req.TransactionalIDs = []string{txnID}
			st := request[*kmsg.DescribeTransactionsResponse](t, direct, req).TransactionStates[0]
			if st.ErrorCode != 0 || len(st.Topics) != 1 || st.Topics[0].Topic != open {
				t.Fatalf("DescribeTransactions: error %d, topics %+v; want %s only", st.ErrorCode, st.Topics, open)
			}
		}},
		{"ListOffsets: TOPIC_AUTHORIZATION_FAILED, existing or not", func(t *testing.T) {
			req := kmsg.NewPtrListOffsetsRequest()
			req.ReplicaID = -1
			for _, topic := range []string{secret, "no-such-topic"} {
				req.Topics = append(req.Topics, kmsg.ListOffsetsRequestTopic{Topic: topic,
					Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}})
			}
			for _, topic := range request[*kmsg.ListOffsetsResponse](t, direct, req).Topics {
				if p := topic.Partitions[0]; p.ErrorCode != kerr.TopicAuthorizationFailed.Code || p.Offset != -1 {
					t.Fatalf("ListOffsets %s: error %d, offset %d", topic.Topic, p.ErrorCode, p.Offset)
				}
			}
		}},
		{"DescribeConfigs: TOPIC_AUTHORIZATION_FAILED, existing or not", func(t *testing.T) {
			req := kmsg.NewPtrDescribeConfigsRequest()
			for _, topic := range []string{secret, "no-such-topic"} {
				r := kmsg.NewDescribeConfigsRequestResource()
				r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
				req.Resources = append(req.Resources, r)
			}
			for _, r := range request[*kmsg.DescribeConfigsResponse](t, direct, req).Resources {
				if r.ErrorCode != kerr.TopicAuthorizationFailed.Code || len(r.Configs) != 0 {
					t.Fatalf("DescribeConfigs %s: error %d, %d configs", r.ResourceName, r.ErrorCode, len(r.Configs))
				}
			}
		}},
		{"DeleteTopics: TOPIC_AUTHORIZATION_FAILED by name, existing or not; by id without the name", func(t *testing.T) {
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.TimeoutMillis = 10000
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr(secret)}, {Topic: kmsg.StringPtr("no-such-topic")}, {TopicID: secretID}}
			got := request[*kmsg.DeleteTopicsResponse](t, direct, req).Topics
			for i, r := range got {
				if r.ErrorCode != kerr.TopicAuthorizationFailed.Code {
					t.Fatalf("DeleteTopics %d: error %d", i, r.ErrorCode)
				}
			}
			if got[2].Topic != nil {
				t.Fatalf("DeleteTopics by id named the topic %q", *got[2].Topic)
			}
		}},
		{"OffsetFetch of every topic lists only describable ones; named ones answer TOPIC_AUTHORIZATION_FAILED", func(t *testing.T) {
			fetch := func(group string, topics ...kmsg.OffsetFetchRequestGroupTopic) kmsg.OffsetFetchResponseGroup {
				t.Helper()
				req := kmsg.NewPtrOffsetFetchRequest()
				req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: topics}}
				return request[*kmsg.OffsetFetchResponse](t, direct, req).Groups[0]
			}
			if g := fetch("visible-group"); g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Topic != open {
				t.Fatalf("OffsetFetch of every topic: error %d, topics %+v; want %s only", g.ErrorCode, g.Topics, open)
			}
			g := fetch("visible-group", kmsg.OffsetFetchRequestGroupTopic{Topic: secret, Partitions: []int32{0}})
			if p := g.Topics[0].Partitions[0]; p.ErrorCode != kerr.TopicAuthorizationFailed.Code || p.Offset != -1 {
				t.Fatalf("OffsetFetch of %s: error %d, offset %d", secret, p.ErrorCode, p.Offset)
			}
			if g := fetch("hidden-group"); g.ErrorCode != kerr.GroupAuthorizationFailed.Code || len(g.Topics) != 0 {
				t.Fatalf("OffsetFetch of a group without DESCRIBE: error %d, topics %+v", g.ErrorCode, g.Topics)
			}
		}},
		{"ListGroups lists only describable groups", func(t *testing.T) {
			resp := request[*kmsg.ListGroupsResponse](t, direct, kmsg.NewPtrListGroupsRequest())
			if len(resp.Groups) != 1 || resp.Groups[0].Group != "visible-group" {
				t.Fatalf("ListGroups: %+v, want visible-group only", resp.Groups)
			}
		}},
		{"DescribeGroups: GROUP_AUTHORIZATION_FAILED without DESCRIBE, existing or not", func(t *testing.T) {
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups = []string{"hidden-group", "no-such-group"}
			for _, g := range request[*kmsg.DescribeGroupsResponse](t, direct, req).Groups {
				if g.ErrorCode != kerr.GroupAuthorizationFailed.Code || g.State != "" || len(g.Members) != 0 {
					t.Fatalf("DescribeGroups %s: error %d, state %q", g.Group, g.ErrorCode, g.State)
				}
			}
		}},
	} {
		t.Run(tc.name, tc.check)
	}
}
