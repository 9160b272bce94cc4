package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// kafka42Keys are the API keys a Kafka 4.2 broker serves on its client
// listeners (the Kafka protocol guide's list; the controller-only keys —
// Vote, BeginQuorumEpoch, EndQuorumEpoch, Envelope, FetchSnapshot,
// AlterPartition, BrokerRegistration, BrokerHeartbeat,
// AllocateProducerIds, ControllerRegistration, AssignReplicasToDirs,
// UpdateRaftVoter — are not).
var kafka42Keys = map[int16]string{
	0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
	10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
	15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics",
	20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
	24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
	28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls", 32: "DescribeConfigs",
	33: "AlterConfigs", 34: "AlterReplicaLogDirs", 35: "DescribeLogDirs", 36: "SaslAuthenticate",
	37: "CreatePartitions", 38: "CreateDelegationToken", 39: "RenewDelegationToken",
	40: "ExpireDelegationToken", 41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
	44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments", 46: "ListPartitionReassignments",
	47: "OffsetDelete", 48: "DescribeClientQuotas", 49: "AlterClientQuotas",
	50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials", 55: "DescribeQuorum",
	57: "UpdateFeatures", 60: "DescribeCluster", 61: "DescribeProducers", 64: "UnregisterBroker",
	65: "DescribeTransactions", 66: "ListTransactions", 68: "ConsumerGroupHeartbeat",
	69: "ConsumerGroupDescribe", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
	74: "ListConfigResources", 75: "DescribeTopicPartitions", 76: "ShareGroupHeartbeat",
	77: "ShareGroupDescribe", 78: "ShareFetch", 79: "ShareAcknowledge", 80: "AddRaftVoter",
	81: "RemoveRaftVoter", 83: "InitializeShareGroupState", 84: "ReadShareGroupState",
	85: "WriteShareGroupState", 86: "DeleteShareGroupState", 87: "ReadShareGroupStateSummary",
	88: "StreamsGroupHeartbeat", 89: "StreamsGroupDescribe", 90: "DescribeShareGroupOffsets",
	91: "AlterShareGroupOffsets", 92: "DeleteShareGroupOffsets",
}

// notServed is what Strata does not serve of kafka42Keys, as README.md
// lists it ("API keys not served"). Keep both true as keys are added.
var notServed = []int16{
	34, 38, 39, 40, 41, 57, 64, 68, 69, 71, 72, 74,
	76, 77, 78, 79, 80, 81, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92,
}

// TestApiVersionsListsKafka42Keys: ApiVersions advertises every key of
// Kafka 4.2 but notServed, and nothing Kafka 4.2 does not serve; the
// README states the same list.
func TestApiVersionsListsKafka42Keys(t *testing.T) {
	n := brokertest.Start(t)
	resp := request[*kmsg.ApiVersionsResponse](t, n.Client(), kmsg.NewPtrApiVersionsRequest())
	advertised := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		advertised[k.ApiKey] = true
		if _, ok := kafka42Keys[k.ApiKey]; !ok {
			t.Errorf("advertises key %d (%s), which Kafka 4.2 brokers do not serve", k.ApiKey, kmsg.NameForKey(k.ApiKey))
		}
	}
	missing := map[int16]bool{}
	for _, key := range notServed {
		missing[key] = true
	}
	for key, name := range kafka42Keys {
		if advertised[key] == missing[key] {
			t.Errorf("%s (key %d): advertised %t, listed as not served %t", name, key, advertised[key], missing[key])
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "API keys Kafka 4.2 serves that Strata does not")
	section, _, _ = strings.Cut(section, "\n\n")
	for _, key := range notServed {
		if !strings.Contains(section, kafka42Keys[key]+" (") {
			t.Errorf("README.md does not list %s (key %d) among the keys not served", kafka42Keys[key], key)
		}
	}
}

// rawFrame is a request frame (header v1, non-flexible) for key at version
// with body.
func rawFrame(key, version int16, body []byte) []byte {
	frame := make([]byte, 4, 64)
	frame = binary.BigEndian.AppendUint16(frame, uint16(key))
	frame = binary.BigEndian.AppendUint16(frame, uint16(version))
	frame = binary.BigEndian.AppendUint32(frame, 7) // correlation id
	frame = binary.BigEndian.AppendUint16(frame, 4)
	frame = append(frame, "test"...)
	frame = append(frame, body...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

// TestUnknownKeysCloseTheConnection pins Kafka's behaviour: a request for
// a key the broker does not serve, or a served key at a version it does
// not, closes the connection without an answer; only ApiVersions answers
// an unknown version (UNSUPPORTED_VERSION, KIP-511).
func TestUnknownKeysCloseTheConnection(t *testing.T) {
	n := brokertest.Start(t)
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"AlterReplicaLogDirs (not served)", rawFrame(34, 1, (&kmsg.AlterReplicaLogDirsRequest{Version: 1}).AppendTo(nil))},
		{"key 9999", rawFrame(9999, 0, nil)},
		{"Metadata v99", rawFrame(3, 99, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := conn.Write(c.frame); err != nil {
				t.Fatal(err)
			}
			if read, err := io.ReadAll(conn); err != nil || len(read) != 0 {
				t.Fatalf("answered %d bytes (%v); want the connection closed", len(read), err)
			}
		})
	}
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(rawFrame(18, 99, nil)); err != nil {
		t.Fatal(err)
	}
	var header [10]byte // size, correlation id, error code
	if _, err := io.ReadFull(conn, header[:]); err != nil {
		t.Fatal(err)
	}
	if code := int16(binary.BigEndian.Uint16(header[8:])); !errors.Is(kerr.ErrorForCode(code), kerr.UnsupportedVersion) {
		t.Fatalf("ApiVersions v99 answered %v, want UNSUPPORTED_VERSION", kerr.ErrorForCode(code))
	}
}
