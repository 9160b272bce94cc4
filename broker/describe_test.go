package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestDescribeCluster: the cluster id, this broker as controller and
// broker; controller endpoints are refused as Kafka's brokers refuse them.
func TestDescribeCluster(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.IncludeClusterAuthorizedOperations = true
	resp := request[*kmsg.DescribeClusterResponse](t, cl, req)
	if resp.ErrorCode != 0 || resp.ClusterID != n.Store.State().ClusterID() || resp.ControllerID != metadatatest.NodeID ||
		len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != metadatatest.NodeID || resp.EndpointType != 1 {
		t.Fatalf("DescribeCluster: %+v", resp)
	}
	if resp.ClusterAuthorizedOperations <= 0 {
		t.Fatalf("authorized operations %d: without an authorizer every cluster operation is allowed", resp.ClusterAuthorizedOperations)
	}
	req.EndpointType = 2
	if resp := request[*kmsg.DescribeClusterResponse](t, cl, req); resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controller endpoints: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestDescribeTopicPartitionsPaginates: 5 partitions of "a" and 2 of "b"
// at 3 per response come back in three pages whose cursors continue where
// the previous page stopped; an unknown named topic answers
// UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeTopicPartitionsPaginates(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "a", 5, nil)
	createTopic(t, cl, "b", 2, nil)
	var got []string
	var cursor *kmsg.DescribeTopicPartitionsRequestCursor
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages: %v", got)
		}
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		req.ResponsePartitionLimit = 3
		req.Cursor = cursor
		resp := request[*kmsg.DescribeTopicPartitionsResponse](t, cl, req)
		count := 0
		for _, topic := range resp.Topics {
			if topic.ErrorCode != 0 {
				t.Fatalf("%s: %v", *topic.Topic, kerr.ErrorForCode(topic.ErrorCode))
			}
			for _, p := range topic.Partitions {
				got = append(got, *topic.Topic+"-"+string(rune('0'+p.Partition)))
				count++
				if p.EligibleLeaderReplicas == nil || p.LastKnownELR == nil {
					t.Fatalf("%s-%d: null ELR lists (the Java admin client expects lists)", *topic.Topic, p.Partition)
				}
			}
		}
		if count > 3 {
			t.Fatalf("page of %d partitions, limit 3", count)
		}
		if resp.NextCursor == nil {
			break
		}
		cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	want := []string{"a-0", "a-1", "a-2", "a-3", "a-4", "b-0", "b-1"}
	if len(got) != len(want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("partitions %v, want %v", got, want)
		}
	}
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "missing"}, {Topic: "b"}}
	resp := request[*kmsg.DescribeTopicPartitionsResponse](t, cl, req)
	if len(resp.Topics) != 2 || *resp.Topics[0].Topic != "b" || len(resp.Topics[0].Partitions) != 2 ||
		resp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("named topics: %+v", resp.Topics)
	}
}

// TestDescribeTopicPartitionsCursorOutsideTheList: a cursor naming a topic
// the request's list does not name answers INVALID_REQUEST on every listed
// topic, as Kafka does; a cursor naming a listed topic pages from there.
func TestDescribeTopicPartitionsCursorOutsideTheList(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "a", 2, nil)
	createTopic(t, cl, "b", 2, nil)
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "a"}, {Topic: "b"}}
	req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "c", Partition: 0}
	resp := request[*kmsg.DescribeTopicPartitionsResponse](t, cl, req)
	if len(resp.Topics) != 2 || resp.NextCursor != nil {
		t.Fatalf("cursor outside the list: %+v", resp)
	}
	for _, topic := range resp.Topics {
		if topic.ErrorCode != kerr.InvalidRequest.Code || len(topic.Partitions) != 0 {
			t.Fatalf("%s: %v with %d partitions, want INVALID_REQUEST", *topic.Topic, kerr.ErrorForCode(topic.ErrorCode), len(topic.Partitions))
		}
	}
	req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "b", Partition: 1}
	resp = request[*kmsg.DescribeTopicPartitionsResponse](t, cl, req)
	if len(resp.Topics) != 1 || *resp.Topics[0].Topic != "b" || resp.Topics[0].ErrorCode != 0 ||
		len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Partition != 1 {
		t.Fatalf("cursor b-1 in the list: %+v", resp.Topics)
	}
}

// TestDescribeLogDirsAndQuorum: kadm's DescribeAllLogDirs lists the data
// dir with each partition's local size; DescribeQuorum names this node
// leader and voter with the Raft commit index as high watermark.
func TestDescribeLogDirsAndQuorum(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "sized", 2, nil)
	produceValues(t, cl, "sized", 5)
	dirs, err := kadm.NewClient(cl).DescribeAllLogDirs(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	partitions := 0
	dirs.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			t.Fatalf("log dir %s: %v", d.Dir, d.Err)
		}
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == "sized" {
				size += p.Size
				partitions++
			}
		})
	})
	if partitions != 2 || size == 0 {
		t.Fatalf("sized: %d partitions of %d bytes; want 2 with the 5 records", partitions, size)
	}

	req := kmsg.NewPtrDescribeQuorumRequest()
	req.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
	resp := request[*kmsg.DescribeQuorumResponse](t, cl, req)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.LeaderID != metadatatest.NodeID || p.HighWatermark <= 0 ||
		len(p.CurrentVoters) != 1 || p.CurrentVoters[0].ReplicaID != metadatatest.NodeID || p.CurrentVoters[0].LogEndOffset < p.HighWatermark {
		t.Fatalf("DescribeQuorum: %+v", p)
	}
}

// TestDescribeAPIsAuthorized: with an ACL authorizer, DescribeTopicPartitions
// follows Metadata's rules (all topics: only those the client may DESCRIBE;
// a named one it may not: TOPIC_AUTHORIZATION_FAILED, whether it exists or
// not), DescribeLogDirs and DescribeQuorum need DESCRIBE on the cluster,
// and DeleteRecords DELETE on the topic. DescribeCluster, like Metadata,
// answers everyone, as Kafka's brokers do (its controllers want ALTER):
// DESCRIBE on the cluster only lets it tell the cluster's authorized
// operations (0 without).
func TestDescribeAPIsAuthorized(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	grant := func(bindings ...authz.Binding) {
		t.Helper()
		if err := n.Store.CreateACLs(ctx, bindings); err != nil {
			t.Fatal(err)
		}
	}
	cl := n.Client()
	grant(anonymousACL(authz.OpCreate, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName),
		anonymousACL(authz.OpDescribe, authz.PermissionAllow, authz.ResourceTopic, "visible"))
	createTopic(t, cl, "visible", 1, nil)
	createTopic(t, cl, "hidden", 1, nil)

	all := request[*kmsg.DescribeTopicPartitionsResponse](t, cl, kmsg.NewPtrDescribeTopicPartitionsRequest())
	if len(all.Topics) != 1 || *all.Topics[0].Topic != "visible" || all.Topics[0].ErrorCode != 0 {
		t.Fatalf("all topics: %+v, want only visible", all.Topics)
	}
	named := kmsg.NewPtrDescribeTopicPartitionsRequest()
	named.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "hidden"}, {Topic: "missing"}}
	for _, topic := range request[*kmsg.DescribeTopicPartitionsResponse](t, cl, named).Topics {
		if topic.ErrorCode != kerr.TopicAuthorizationFailed.Code || len(topic.Partitions) != 0 {
			t.Errorf("%s: %v with %d partitions, want TOPIC_AUTHORIZATION_FAILED", *topic.Topic, kerr.ErrorForCode(topic.ErrorCode), len(topic.Partitions))
		}
	}

	clusterDescribed := func() []int16 {
		t.Helper()
		quorum := kmsg.NewPtrDescribeQuorumRequest()
		quorum.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
		return []int16{
			// Straight to the broker: the client merges the brokers'
			// answers and keeps no top-level error.
			request[*kmsg.DescribeLogDirsResponse](t, cl.SeedBrokers()[0], kmsg.NewPtrDescribeLogDirsRequest()).ErrorCode,
			request[*kmsg.DescribeQuorumResponse](t, cl, quorum).ErrorCode,
		}
	}
	describeCluster := func() *kmsg.DescribeClusterResponse {
		t.Helper()
		req := kmsg.NewPtrDescribeClusterRequest()
		req.IncludeClusterAuthorizedOperations = true
		return request[*kmsg.DescribeClusterResponse](t, cl, req)
	}
	for _, code := range clusterDescribed() {
		if code != kerr.ClusterAuthorizationFailed.Code {
			t.Errorf("without DESCRIBE on the cluster: %v", kerr.ErrorForCode(code))
		}
	}
	if r := describeCluster(); r.ErrorCode != 0 || len(r.Brokers) != 1 || r.ClusterAuthorizedOperations != 0 {
		t.Errorf("DescribeCluster without DESCRIBE on the cluster: %v, %d brokers, authorized operations %#x; want the brokers and 0",
			kerr.ErrorForCode(r.ErrorCode), len(r.Brokers), r.ClusterAuthorizedOperations)
	}
	grant(anonymousACL(authz.OpDescribe, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName))
	for _, code := range clusterDescribed() {
		if code != 0 {
			t.Errorf("with DESCRIBE on the cluster: %v", kerr.ErrorForCode(code))
		}
	}
	// CREATE (granted above) and DESCRIBE.
	if r := describeCluster(); r.ErrorCode != 0 || r.ClusterAuthorizedOperations != 1<<authz.OpCreate|1<<authz.OpDescribe {
		t.Errorf("DescribeCluster with DESCRIBE on the cluster: %v, authorized operations %#x", kerr.ErrorForCode(r.ErrorCode), r.ClusterAuthorizedOperations)
	}
	dirs := request[*kmsg.DescribeLogDirsResponse](t, cl.SeedBrokers()[0], kmsg.NewPtrDescribeLogDirsRequest())
	if len(dirs.Dirs) != 1 || dirs.Dirs[0].TotalBytes <= 0 || dirs.Dirs[0].UsableBytes < 0 || len(dirs.Dirs[0].Topics) != 2 {
		t.Fatalf("DescribeLogDirs v%d: %+v", dirs.Version, dirs.Dirs)
	}

	adm := kadm.NewClient(cl)
	if _, err := deleteRecords(t, adm, "visible", 0); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("DeleteRecords without DELETE: %v", err)
	}
	grant(anonymousACL(authz.OpDelete, authz.PermissionAllow, authz.ResourceTopic, "visible"))
	if _, err := deleteRecords(t, adm, "visible", 0); err != nil {
		t.Fatalf("DeleteRecords with DELETE: %v", err)
	}
}
