//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMinInsyncReplicas: acks=all needs min.insync.replicas in-sync
// replicas; one node has one, so a topic asking for two refuses acks=all
// writes with NOT_ENOUGH_REPLICAS (and appends nothing) but takes acks=1.
func TestMinInsyncReplicas(t *testing.T) {
	b := sharedBroker(t)
	topic := createTopicWithConfig(t, b.addr, "min.insync.replicas", "2")
	c := dialRaw(t, b.addr)
	code, _ := produceCode(t, c, topic, buildBatch(time.Now().UnixMilli(), "x"))
	if code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 1 of 2 in-sync replicas: error %d, want NOT_ENOUGH_REPLICAS", code)
	}
	req := produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), "y"))
	req.Acks = 1
	resp := c.roundTrip(req).(*kmsg.ProduceResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("acks=1: error %d at offset %d, want success at 0 (nothing appended before)", p.ErrorCode, p.BaseOffset)
	}
}

// TestSurvivesFileDescriptorExhaustion: a connection storm beyond the
// process's file limit is refused connection by connection; the broker keeps
// running and serves clients again once the storm is over. max.connections
// is raised past the file limit so that the storm reaches it (by default
// it stops at a quarter of the limit: TestMaxConnectionsDefaultSparesDescriptors).
func TestSurvivesFileDescriptorExhaustion(t *testing.T) {
	b := startBrokerWithFileLimit(t, 256, "--max-connections", "10000")
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	var storm []net.Conn
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", b.addr, 2*time.Second)
		if err != nil {
			break
		}
		storm = append(storm, c)
	}
	time.Sleep(500 * time.Millisecond)
	for _, c := range storm {
		c.Close()
	}
	if !b.logContains("accepting a connection failed") {
		t.Fatalf("the storm of %d connections did not reach the file limit; the test proves nothing", len(storm))
	}
	select {
	case <-b.done:
		t.Fatal("the broker exited during the connection storm")
	default:
	}
	produceSync(t, newClient(t, b.addr, manualPartitioner(), kgo.RetryTimeout(30*time.Second)), topic, 0, "after the storm")
	if recs := consumeAll(t, b.addr, topic, 1); string(recs[0].Value) != "after the storm" {
		t.Fatalf("read %q", recs[0].Value)
	}
}

// TestShutdownWithUnreadResponses: a client that sends requests and never
// reads the responses cannot stop a graceful shutdown.
func TestShutdownWithUnreadResponses(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerBatchCompression(kgo.NoCompression()))
	big := make([]byte, 900<<10)
	for i := 0; i < 8; i++ {
		produceSync(t, cl, topic, 0, string(big))
	}
	cl.Close()
	c := dialRaw(t, b.addr)
	for i := 0; i < 20; i++ {
		c.send(fetchRequest(topic, 0, 1, 64<<20, map[int32]int64{0: 0}, 64<<20))
	}
	time.Sleep(300 * time.Millisecond)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if code := b.exitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestMaxConnectionsDefaultSparesDescriptors: by default max.connections
// is a quarter of the file limit, so a connection storm stops at it (the
// rest wait in the kernel backlog) and never makes the broker run out of
// file descriptors; clients are served once the storm is over.
func TestMaxConnectionsDefaultSparesDescriptors(t *testing.T) {
	b := startBrokerWithFileLimit(t, 256)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	var storm []net.Conn
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", b.addr, 2*time.Second)
		if err != nil {
			break
		}
		storm = append(storm, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !b.logContains("max.connections reached") {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections did not reach max.connections", len(storm))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range storm {
		c.Close()
	}
	if b.logContains("accepting a connection failed") {
		t.Fatal("the broker ran out of file descriptors accepting connections")
	}
	produceSync(t, newClient(t, b.addr, manualPartitioner(), kgo.RetryTimeout(30*time.Second)), topic, 0, "after the storm")
	if recs := consumeAll(t, b.addr, topic, 1); string(recs[0].Value) != "after the storm" {
		t.Fatalf("read %q", recs[0].Value)
	}
}

// TestCreateTopicsPartitionBudget: one request cannot make the node open an
// unbounded number of partitions, however they are asked for.
func TestCreateTopicsPartitionBudget(t *testing.T) {
	b := sharedBroker(t)
	c := dialRaw(t, b.addr)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 4
	req.TimeoutMillis = 10000
	manual := kmsg.NewCreateTopicsRequestTopic()
	manual.Topic = uniqueTopic(t) + "-manual"
	manual.NumPartitions, manual.ReplicationFactor = -1, -1
	for p := int32(0); p < 10001; p++ {
		manual.ReplicaAssignment = append(manual.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: p, Replicas: []int32{1}})
	}
	counted := kmsg.NewCreateTopicsRequestTopic()
	counted.Topic = uniqueTopic(t) + "-counted"
	counted.NumPartitions, counted.ReplicationFactor = 20000, 1
	req.Topics = append(req.Topics, manual, counted)
	resp := c.roundTrip(req).(*kmsg.CreateTopicsResponse)
	for _, topic := range resp.Topics {
		if topic.ErrorCode != kerr.InvalidPartitions.Code {
			t.Errorf("%s: error %d, want INVALID_PARTITIONS", topic.Topic, topic.ErrorCode)
		}
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 4
	for _, name := range []string{manual.Topic, counted.Topic} {
		name := name
		meta.Topics = append(meta.Topics, kmsg.MetadataRequestTopic{Topic: &name})
	}
	got := c.roundTrip(meta).(*kmsg.MetadataResponse)
	for _, topic := range got.Topics {
		if topic.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("%s exists after a refused create (error %d)", *topic.Topic, topic.ErrorCode)
		}
	}
	_ = fmt.Sprint
}

// TestCreateTopicsValidateOnlyBudget: validate-only topics count against
// the per-request partition budget as created ones do (each needs the
// same placement work): a validate-only request of 11 topics of 1,000
// partitions validates 10 and refuses the 11th, and creates nothing.
func TestCreateTopicsValidateOnlyBudget(t *testing.T) {
	b := sharedBroker(t)
	c := dialRaw(t, b.addr)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 4
	req.TimeoutMillis = 10000
	req.ValidateOnly = true
	for i := range 11 {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = fmt.Sprintf("%s-%02d", uniqueTopic(t), i)
		rt.NumPartitions, rt.ReplicationFactor = 1000, 1
		req.Topics = append(req.Topics, rt)
	}
	resp := c.roundTrip(req).(*kmsg.CreateTopicsResponse)
	if len(resp.Topics) != 11 {
		t.Fatalf("%d topics answered", len(resp.Topics))
	}
	for i, topic := range resp.Topics {
		want := int16(0)
		if i == 10 {
			want = kerr.InvalidPartitions.Code
		}
		if topic.ErrorCode != want {
			t.Errorf("topic %d (%s): error %d, want %d", i, topic.Topic, topic.ErrorCode, want)
		}
	}
	requireNoTopic(t, b.addr, req.Topics[0].Topic)
}
