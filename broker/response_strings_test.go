package broker_test

import (
	"math"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestLongNameErrorMessagesFitNonFlexibleVersions: an error message
// quoting a name of 32,767 bytes (the longest a non-flexible request
// holds) is longer than a non-flexible response's int16 string length;
// it was encoded with its length wrapped, and the client read garbage.
// It is cut to fit, and the error code stays. (roundTrip checks that the
// response decodes at the request's version.)
func TestLongNameErrorMessagesFitNonFlexibleVersions(t *testing.T) {
	hf := startHandlerFuzzer(t)
	long := strings.Repeat("x", math.MaxInt16)

	alter := kmsg.NewPtrAlterConfigsRequest()
	alter.SetVersion(1)
	alter.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t", Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: long}}}}
	r := hf.mustRoundTrip(alter).(*kmsg.AlterConfigsResponse).Resources[0]
	if r.ErrorCode == 0 || r.ErrorMessage == nil || len(*r.ErrorMessage) > math.MaxInt16 {
		t.Fatalf("AlterConfigs of a config named with 32,767 bytes: %+v", r)
	}

	create := kmsg.NewPtrCreatePartitionsRequest()
	create.SetVersion(0)
	create.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: long, Count: 2}}
	p := hf.mustRoundTrip(create).(*kmsg.CreatePartitionsResponse).Topics[0]
	if p.ErrorCode != kerr.UnknownTopicOrPartition.Code || p.ErrorMessage == nil || len(*p.ErrorMessage) > math.MaxInt16 {
		t.Fatalf("CreatePartitions of a topic named with 32,767 bytes: %+v", p)
	}
}

// TestLongStoredNameAtNonFlexibleVersionClosesTheConnection: a group id
// of 40,000 bytes, committed to with a flexible OffsetCommit, cannot be
// listed by ListGroups v2 (non-flexible): it was sent with its length
// wrapped; now the connection is closed, as Kafka fails to serialize the
// response. A flexible ListGroups lists it.
func TestLongStoredNameAtNonFlexibleVersionClosesTheConnection(t *testing.T) {
	hf := startHandlerFuzzer(t)
	group := strings.Repeat("g", 40000)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = group, -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	if c := hf.mustRoundTrip(commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0]; c.ErrorCode != 0 {
		t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(c.ErrorCode))
	}
	list := kmsg.NewPtrListGroupsRequest()
	list.SetVersion(2)
	if resp, ok := hf.roundTrip(list); ok {
		t.Fatalf("ListGroups v2 answered %+v, want the connection closed", resp)
	}
	list.SetVersion(3)
	found := false
	for _, g := range hf.mustRoundTrip(list).(*kmsg.ListGroupsResponse).Groups {
		found = found || g.Group == group
	}
	if !found {
		t.Fatal("ListGroups v3 does not list the group")
	}
}
