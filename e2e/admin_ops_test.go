//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceEach writes n records to each of the topic's partitions.
func produceEach(t *testing.T, cl *kgo.Client, topic string, partitions int32, n int) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	var records []*kgo.Record
	for p := range partitions {
		for i := range n {
			records = append(records, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestAdminOpsFranzGo: franz-go's kadm deletes records (the low watermark
// is the new log start; ListOffsets EARLIEST and a consumer from the start
// follow it), describes the log dirs (local sizes), and the raw
// DescribeCluster and DescribeTopicPartitions answer as Kafka's; `strata
// partitions delete-records` purges to the high watermark as Kafka
// Streams purges repartition topics.
func TestAdminOpsFranzGo(t *testing.T) {
	b := sharedBroker(t)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 2, nil)
	cl := newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	produceEach(t, cl, topic, 2, 10)
	ctx := testContext(t, 30*time.Second)

	offsets := kadm.Offsets{}
	offsets.AddOffset(topic, 0, 4, -1)
	deleted, err := adm.DeleteRecords(ctx, offsets)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := deleted.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("DeleteRecords before 4: low watermark %d, %v", r.LowWatermark, r.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Err != nil || o.Offset != 4 {
		t.Fatalf("earliest offset of partition 0: %d, %v; want 4", o.Offset, o.Err)
	}
	consumer := newClient(t, b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	fetches := consumer.PollRecords(ctx, 1)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if r := fetches.Records(); len(r) == 0 || r[0].Offset != 4 || string(r[0].Value) != "0-4" {
		t.Fatalf("consumer from the start got %+v, want offset 4 first", r)
	}

	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int32]int64{}
	dirs.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			t.Fatalf("log dir %s: %v", d.Dir, d.Err)
		}
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				sizes[p.Partition] = p.Size
			}
		})
	})
	if len(sizes) != 2 || sizes[1] == 0 {
		t.Fatalf("log dirs of %s: sizes %v, want both partitions with bytes", topic, sizes)
	}

	cluster, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if cluster.ErrorCode != 0 || cluster.ClusterID == "" || len(cluster.Brokers) != 1 || cluster.Brokers[0].NodeID != cluster.ControllerID {
		t.Fatalf("DescribeCluster: %+v", cluster)
	}
	dtp := kmsg.NewPtrDescribeTopicPartitionsRequest()
	dtp.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: topic}}
	dtp.ResponsePartitionLimit = 1
	described, err := dtp.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(described.Topics) != 1 || len(described.Topics[0].Partitions) != 1 || described.NextCursor == nil ||
		described.NextCursor.Topic != topic || described.NextCursor.Partition != 1 {
		t.Fatalf("DescribeTopicPartitions limit 1: %+v (cursor %+v)", described.Topics, described.NextCursor)
	}

	out := strataCLI(t, 0, "partitions", "delete-records", "--bootstrap-server", b.addr, "--topic", topic, "--partition", "1", "--offset", "-1", "--output", "json")
	var purged []struct {
		Partition    int32  `json:"partition"`
		LowWatermark int64  `json:"low_watermark"`
		Error        string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &purged); err != nil || len(purged) != 1 || purged[0].LowWatermark != 10 || purged[0].Error != "" {
		t.Fatalf("strata partitions delete-records: %v\n%s", err, out)
	}
	strataCLI(t, 1, "partitions", "delete-records", "--bootstrap-server", b.addr, "--topic", topic, "--partition", "1", "--offset", "11")
}

// TestAdminOpsSarama: sarama's ClusterAdmin deletes records and describes
// the log dirs.
func TestAdminOpsSarama(t *testing.T) {
	b := sharedBroker(t)
	useSaramaLog(t)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceEach(t, newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner())), topic, 1, 6)
	ctx := testContext(t, 60*time.Second)
	var admin sarama.ClusterAdmin
	within(t, ctx, "sarama NewClusterAdmin", func() (err error) {
		admin, err = sarama.NewClusterAdmin([]string{b.addr}, saramaConfig(sarama.V3_6_0_0))
		return err
	})
	defer admin.Close()
	within(t, ctx, "DeleteRecords", func() error {
		return admin.DeleteRecords(topic, map[int32]int64{0: 5})
	})
	var dirs map[int32][]sarama.DescribeLogDirsResponseDirMetadata
	within(t, ctx, "DescribeLogDirs", func() (err error) {
		dirs, err = admin.DescribeLogDirs([]int32{1})
		return err
	})
	found := false
	for _, brokerDirs := range dirs {
		for _, d := range brokerDirs {
			for _, tp := range d.Topics {
				if tp.Topic == topic && len(tp.Partitions) == 1 && tp.Partitions[0].Size > 0 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("DescribeLogDirs does not list %s-0 with its size: %+v", topic, dirs)
	}
	starts, err := kadm.NewClient(newClient(t, b.addr)).ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Offset != 5 {
		t.Fatalf("earliest offset %d after sarama's DeleteRecords, want 5", o.Offset)
	}
}

// adminOpsPython: kafka-python's describe_cluster, and confluent-kafka's
// watermarks (ListOffsets earliest and latest) after DeleteRecords. The
// Debian packages (confluent-kafka 1.7, kafka-python 2.0.2) predate
// AdminClient.describe_cluster/list_offsets/delete_records.
const adminOpsPython = `
import json, sys
from kafka import KafkaAdminClient
from confluent_kafka import Consumer, TopicPartition
addr, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=addr, api_version=(2, 5, 0))
cluster = admin.describe_cluster()
admin.close()
c = Consumer({"bootstrap.servers": addr, "group.id": "admin-ops"})
low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
c.close()
print(json.dumps({"cluster_id": cluster["cluster_id"], "brokers": len(cluster["brokers"]), "low": low, "high": high}))
`

func TestAdminOpsPython(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	b := sharedBroker(t)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	cl := newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceEach(t, cl, topic, 1, 8)
	offsets := kadm.Offsets{}
	offsets.AddOffset(topic, 0, 3, -1)
	if _, err := kadm.NewClient(cl).DeleteRecords(testContext(t, 30*time.Second), offsets); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin_ops.py")
	if err := os.WriteFile(path, []byte(adminOpsPython), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runCmd(t, nil, 60*time.Second, "/usr/bin/python3", path, b.addr, topic)
	var got struct {
		ClusterID string `json:"cluster_id"`
		Brokers   int    `json:"brokers"`
		Low       int64  `json:"low"`
		High      int64  `json:"high"`
	}
	if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	if got.ClusterID == "" || got.Brokers != 1 || got.Low != 3 || got.High != 8 {
		t.Fatalf("python clients saw %+v; want a cluster of 1 broker and watermarks 3..8", got)
	}
}

// TestAdminOpsCluster: on a three-node cluster, DeleteRecords on a
// partition with three replicas answers once the followers have moved
// their log start too, and after its leader is killed the new leader's
// earliest offset is still the one DeleteRecords set. DescribeCluster lists
// the three brokers; DescribeQuorum, asked of every broker (the others ask
// the metadata leader), lists the three voters with their log end offsets.
func TestAdminOpsCluster(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testContext(t, 2*time.Minute)
	adm := c.admin()
	topic := legalTopic(t)
	created, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"segment.bytes": kadm.StringPtr("1024")}, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, created.Err)
	}
	cl := c.client(t, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()))
	produceEach(t, cl, topic, 1, 20)

	offsets := kadm.Offsets{}
	offsets.AddOffset(topic, 0, 15, -1)
	deleted, err := adm.DeleteRecords(ctx, offsets)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := deleted.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 15 {
		t.Fatalf("DeleteRecords before 15: low watermark %d, %v", r.LowWatermark, r.Err)
	}

	cluster, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil || cluster.ErrorCode != 0 || len(cluster.Brokers) != 3 {
		t.Fatalf("DescribeCluster: %+v, %v", cluster, err)
	}
	quorumReq := kmsg.NewPtrDescribeQuorumRequest()
	quorumReq.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
	for id, node := range c.nodes {
		quorum, err := quorumReq.RequestWith(ctx, newClient(t, node.addr))
		if err != nil {
			t.Fatal(err)
		}
		p := quorum.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.LeaderID != cluster.ControllerID || len(p.CurrentVoters) != 3 {
			t.Fatalf("DescribeQuorum asked of node %d: %+v", id, p)
		}
		for _, v := range p.CurrentVoters {
			if v.LogEndOffset <= 0 {
				t.Errorf("node %d: voter %d: log end offset %d", id, v.ReplicaID, v.LogEndOffset)
			}
		}
	}

	m, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := m.Topics[topic].Partitions[0].Leader
	c.nodes[leader].kill()
	survivors := c.admin(leader)
	eventually(t, 60*time.Second, "a new leader with the log start DeleteRecords set", func() error {
		starts, err := survivors.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, _ := starts.Lookup(topic, 0)
		if o.Err != nil {
			return o.Err
		}
		if o.Offset != 15 {
			t.Fatalf("earliest offset %d on the new leader, want 15", o.Offset)
		}
		return nil
	})
}
