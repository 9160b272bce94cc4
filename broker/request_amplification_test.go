package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// manyTinyElements are requests whose arrays hold n elements of (nearly)
// one byte each — empty names, empty lists — each answered with a
// response entry of its own: the requests that amplify memory most.
var manyTinyElements = []struct {
	name string
	req  func(n int) kmsg.Request
}{
	{"DescribeTransactions", func(n int) kmsg.Request {
		return &kmsg.DescribeTransactionsRequest{Version: 0, TransactionalIDs: make([]string, n)}
	}},
	{"DescribeGroups", func(n int) kmsg.Request {
		return &kmsg.DescribeGroupsRequest{Version: 5, Groups: make([]string, n)}
	}},
	{"FindCoordinator", func(n int) kmsg.Request {
		return &kmsg.FindCoordinatorRequest{Version: 4, CoordinatorKeys: make([]string, n)}
	}},
	{"DeleteTopics", func(n int) kmsg.Request {
		return &kmsg.DeleteTopicsRequest{Version: 4, TopicNames: make([]string, n)}
	}},
	{"DeleteGroups", func(n int) kmsg.Request {
		return &kmsg.DeleteGroupsRequest{Version: 2, Groups: make([]string, n)}
	}},
	{"AlterClientQuotas", func(n int) kmsg.Request {
		return &kmsg.AlterClientQuotasRequest{Version: 1, Entries: make([]kmsg.AlterClientQuotasRequestEntry, n)}
	}},
	{"IncrementalAlterConfigs", func(n int) kmsg.Request {
		rs := make([]kmsg.IncrementalAlterConfigsRequestResource, n)
		for i := range rs {
			rs[i].ResourceType = kmsg.ConfigResourceTypeTopic
		}
		return &kmsg.IncrementalAlterConfigsRequest{Version: 1, Resources: rs}
	}},
	{"DescribeConfigs", func(n int) kmsg.Request {
		rs := make([]kmsg.DescribeConfigsRequestResource, n)
		for i := range rs {
			rs[i].ResourceType = kmsg.ConfigResourceTypeTopic
		}
		return &kmsg.DescribeConfigsRequest{Version: 4, Resources: rs}
	}},
	{"OffsetFetch", func(n int) kmsg.Request {
		return &kmsg.OffsetFetchRequest{Version: 7, Group: "g", Topics: make([]kmsg.OffsetFetchRequestTopic, n)}
	}},
	{"Produce", func(n int) kmsg.Request {
		return &kmsg.ProduceRequest{Version: 9, Acks: 1, TimeoutMillis: 1000,
			Topics: []kmsg.ProduceRequestTopic{{Partitions: make([]kmsg.ProduceRequestTopicPartition, n-1)}}}
	}},
	{"ElectLeaders", func(n int) kmsg.Request {
		return &kmsg.ElectLeadersRequest{Version: 2, TimeoutMillis: 1000, Topics: make([]kmsg.ElectLeadersRequestTopic, n)}
	}},
	{"CreateTopics", func(n int) kmsg.Request {
		ts := make([]kmsg.CreateTopicsRequestTopic, n)
		for i := range ts {
			ts[i].NumPartitions, ts[i].ReplicationFactor = -1, -1
		}
		return &kmsg.CreateTopicsRequest{Version: 5, TimeoutMillis: 1000, Topics: ts}
	}},
	{"Metadata", func(n int) kmsg.Request {
		ts := make([]kmsg.MetadataRequestTopic, n)
		empty := ""
		for i := range ts {
			ts[i].Topic = &empty
		}
		return &kmsg.MetadataRequest{Version: 12, Topics: ts}
	}},
	{"ListOffsets", func(n int) kmsg.Request {
		return &kmsg.ListOffsetsRequest{Version: 7, ReplicaID: -1, Topics: make([]kmsg.ListOffsetsRequestTopic, n)}
	}},
	{"OffsetCommit", func(n int) kmsg.Request {
		return &kmsg.OffsetCommitRequest{Version: 8, Group: "g", Generation: -1, Topics: make([]kmsg.OffsetCommitRequestTopic, n)}
	}},
	{"OffsetDelete", func(n int) kmsg.Request {
		return &kmsg.OffsetDeleteRequest{Version: 0, Group: "g", Topics: make([]kmsg.OffsetDeleteRequestTopic, n)}
	}},
	{"DeleteRecords", func(n int) kmsg.Request {
		return &kmsg.DeleteRecordsRequest{Version: 2, TimeoutMillis: 1000, Topics: make([]kmsg.DeleteRecordsRequestTopic, n)}
	}},
	{"OffsetForLeaderEpoch", func(n int) kmsg.Request {
		return &kmsg.OffsetForLeaderEpochRequest{Version: 4, ReplicaID: -1, Topics: make([]kmsg.OffsetForLeaderEpochRequestTopic, n)}
	}},
	{"CreatePartitions", func(n int) kmsg.Request {
		return &kmsg.CreatePartitionsRequest{Version: 3, TimeoutMillis: 1000, Topics: make([]kmsg.CreatePartitionsRequestTopic, n)}
	}},
	{"DescribeProducers", func(n int) kmsg.Request {
		return &kmsg.DescribeProducersRequest{Version: 0, Topics: make([]kmsg.DescribeProducersRequestTopic, n)}
	}},
	{"DescribeLogDirs", func(n int) kmsg.Request {
		return &kmsg.DescribeLogDirsRequest{Version: 4, Topics: make([]kmsg.DescribeLogDirsRequestTopic, n)}
	}},
	{"ListPartitionReassignments", func(n int) kmsg.Request {
		return &kmsg.ListPartitionReassignmentsRequest{Version: 0, TimeoutMillis: 1000, Topics: make([]kmsg.ListPartitionReassignmentsRequestTopic, n)}
	}},
	{"AlterPartitionAssignments", func(n int) kmsg.Request {
		return &kmsg.AlterPartitionAssignmentsRequest{Version: 0, TimeoutMillis: 1000, Topics: make([]kmsg.AlterPartitionAssignmentsRequestTopic, n)}
	}},
	{"DescribeUserSCRAMCredentials", func(n int) kmsg.Request {
		return &kmsg.DescribeUserSCRAMCredentialsRequest{Version: 0, Users: make([]kmsg.DescribeUserSCRAMCredentialsRequestUser, n)}
	}},
	{"AlterUserSCRAMCredentials", func(n int) kmsg.Request {
		return &kmsg.AlterUserSCRAMCredentialsRequest{Version: 0, Deletions: make([]kmsg.AlterUserSCRAMCredentialsRequestDeletion, n)}
	}},
	{"DescribeTopicPartitions", func(n int) kmsg.Request {
		return &kmsg.DescribeTopicPartitionsRequest{Version: 0, ResponsePartitionLimit: 2000, Topics: make([]kmsg.DescribeTopicPartitionsRequestTopic, n)}
	}},
}

// roundTrip sends frame on a new connection and reads the response; it
// returns the response's size, or -1 when the broker closes the
// connection instead, and the bytes the process allocated meanwhile.
func roundTrip(t *testing.T, addr string, frame []byte) (responseBytes int64, allocated uint64) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		if !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		responseBytes = -1
	} else if responseBytes, err = io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return responseBytes, after.TotalAlloc - before.TotalAlloc
}

// TestRequestsOfManyTinyElementsDoNotAmplifyMemory: a request is bounded
// by socket.request.max.bytes and queued.max.request.bytes so that what a
// client sends bounds what the broker holds. A request whose array holds
// many one-byte elements (empty names) is answered one response element
// per request element, and each costs the broker hundreds of bytes: a
// 1 MiB DescribeTransactions of empty ids allocated ~840 MB and peaked at
// ~400 MiB of live heap, a 32 MiB one at ~12.6 GiB — within the default
// 100 MiB frame limit one anonymous request took tens of GiB. A request
// of more than broker.MaxRequestElements elements now closes the
// connection unanswered, having cost little more than its decoding (at
// most 64 times its frame).
func TestRequestsOfManyTinyElementsDoNotAmplifyMemory(t *testing.T) {
	const maxAmplification = 64
	n := brokertest.Start(t)
	for _, tc := range manyTinyElements {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req(broker.MaxRequestElements + 1)
			if got := broker.RequestElements(req); got <= broker.MaxRequestElements {
				t.Fatalf("the request holds %d elements, want over %d", got, broker.MaxRequestElements)
			}
			frame := requestFrame(req, 7)
			responseBytes, allocated := roundTrip(t, n.Addr, frame)
			t.Logf("%d-byte frame: %d-byte response, %d bytes allocated (%.0fx the frame)", len(frame), responseBytes, allocated, float64(allocated)/float64(len(frame)))
			if responseBytes >= 0 {
				t.Errorf("a %s request of %d elements (more than %d) was answered (%d bytes); want the connection closed",
					tc.name, broker.RequestElements(req), broker.MaxRequestElements, responseBytes)
			}
			if allocated > maxAmplification*uint64(len(frame)) {
				t.Errorf("a %d-byte %s frame of %d elements made the broker allocate %d bytes, %.0f times the frame (want at most %dx): request memory does not bound what a request costs",
					len(frame), tc.name, broker.RequestElements(req), allocated, float64(allocated)/float64(len(frame)), maxAmplification)
			}
		})
	}
}

// TestRequestElementCostIsCharged: a request of broker.MaxRequestElements
// tiny elements is answered, and its handling allocates no more than what
// it is charged in request memory — its frame plus
// broker.RequestElementBytes per element — so that
// queued.max.request.bytes bounds what concurrent requests cost. This is
// where RequestElementBytes is measured: the ratios it logs are the
// handlers' bytes per element.
func TestRequestElementCostIsCharged(t *testing.T) {
	n := brokertest.Start(t)
	worst := 0.0
	for _, tc := range manyTinyElements {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req(broker.MaxRequestElements)
			elements := broker.RequestElements(req)
			if elements > broker.MaxRequestElements {
				t.Fatalf("the request holds %d elements, want at most %d", elements, broker.MaxRequestElements)
			}
			frame := requestFrame(req, 7)
			responseBytes, allocated := roundTrip(t, n.Addr, frame)
			charged := uint64(broker.RequestCharge(req, len(frame)))
			perElement := float64(allocated-min(allocated, uint64(len(frame)))) / float64(elements)
			worst = max(worst, perElement)
			t.Logf("%d-byte frame of %d elements: %d-byte response, %d bytes allocated (%.0fx the frame, %.0f bytes per element beyond the frame); charged %d",
				len(frame), elements, responseBytes, allocated, float64(allocated)/float64(len(frame)), perElement, charged)
			if responseBytes < 0 {
				t.Fatalf("a %s request of %d elements (the limit) was refused", tc.name, elements)
			}
			if allocated > charged {
				t.Errorf("a %s request of %d elements allocated %d bytes, more than the %d it is charged in request memory (%.0f bytes per element, charged %d)",
					tc.name, elements, allocated, charged, perElement, broker.RequestElementBytes)
			}
		})
	}
	t.Logf("most bytes per element: %.0f (charged %d)", worst, broker.RequestElementBytes)
}

// TestRequestOfManyElementsWaitsForRequestMemory: a request's charge for
// its elements is taken from queued.max.request.bytes before it is
// handled. With the pool held but for room for the frame, a
// DescribeGroups of broker.MaxRequestElements empty names is read but not
// handled until the pool has room for its charge; then it is answered.
func TestRequestOfManyElementsWaitsForRequestMemory(t *testing.T) {
	const pool = 32 << 20
	n := brokertest.Start(t, func(c *broker.Config) {
		c.MaxRequestBytes = 1 << 20
		c.QueuedMaxRequestBytes = pool
	})
	req := &kmsg.DescribeGroupsRequest{Version: 5, Groups: make([]string, broker.MaxRequestElements)}
	frame := requestFrame(req, 7)
	release := n.Server.HoldRequestMemory(pool - 2*int64(len(frame)))
	defer release()
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitsBefore := n.Server.RequestMemoryWaits()
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); n.Server.RequestMemoryWaits() == waitsBefore; {
		if time.Now().After(deadline) {
			t.Fatal("the request never waited for request memory: its elements are not charged")
		}
		time.Sleep(time.Millisecond)
	}
	// Waiting for its charge, it is not answered.
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err == nil {
		t.Fatal("the request was answered while request memory had no room for its charge")
	}
	release()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("no answer once request memory had room: %v", err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, resp); err != nil {
		t.Fatal(err)
	}
	got := kmsg.NewDescribeGroupsResponse()
	got.Version = 5
	if err := got.ReadFrom(resp[5:]); err != nil { // correlation id, header tags
		t.Fatal(err)
	}
	if len(got.Groups) != broker.MaxRequestElements {
		t.Fatalf("%d groups described, want %d", len(got.Groups), broker.MaxRequestElements)
	}
}
