package broker_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// longNamed are requests of n elements named name: what a handler
// allocates per element may grow with the name (echoed in the response,
// quoted in an error message, in the encoding's growing buffer).
var longNamed = []struct {
	api string
	req func(n int, name string) kmsg.Request
}{
	{"DescribeGroups", func(n int, name string) kmsg.Request {
		return &kmsg.DescribeGroupsRequest{Version: 5, Groups: repeat(n, name)}
	}},
	{"DeleteGroups", func(n int, name string) kmsg.Request {
		return &kmsg.DeleteGroupsRequest{Version: 2, Groups: repeat(n, name)}
	}},
	{"DescribeTransactions", func(n int, name string) kmsg.Request {
		return &kmsg.DescribeTransactionsRequest{Version: 0, TransactionalIDs: repeat(n, name)}
	}},
	{"FindCoordinator", func(n int, name string) kmsg.Request {
		return &kmsg.FindCoordinatorRequest{Version: 4, CoordinatorKeys: repeat(n, name)}
	}},
	{"DeleteTopics", func(n int, name string) kmsg.Request {
		return &kmsg.DeleteTopicsRequest{Version: 4, TopicNames: repeat(n, name)}
	}},
	{"CreateTopics", func(n int, name string) kmsg.Request {
		ts := make([]kmsg.CreateTopicsRequestTopic, n)
		for i := range ts {
			ts[i].Topic, ts[i].NumPartitions, ts[i].ReplicationFactor = name, -1, -1
		}
		return &kmsg.CreateTopicsRequest{Version: 5, TimeoutMillis: 1000, Topics: ts}
	}},
	{"DescribeConfigs", func(n int, name string) kmsg.Request {
		rs := make([]kmsg.DescribeConfigsRequestResource, n)
		for i := range rs {
			rs[i].ResourceType, rs[i].ResourceName = kmsg.ConfigResourceTypeTopic, name
		}
		return &kmsg.DescribeConfigsRequest{Version: 4, Resources: rs}
	}},
	{"Metadata", func(n int, name string) kmsg.Request {
		ts := make([]kmsg.MetadataRequestTopic, n)
		for i := range ts {
			ts[i].Topic = &name
		}
		return &kmsg.MetadataRequest{Version: 12, Topics: ts}
	}},
	{"OffsetFetch", func(n int, name string) kmsg.Request {
		ts := make([]kmsg.OffsetFetchRequestTopic, n)
		for i := range ts {
			ts[i].Topic = name
		}
		return &kmsg.OffsetFetchRequest{Version: 7, Group: "g", Topics: ts}
	}},
	{"ListOffsets", func(n int, name string) kmsg.Request {
		ts := make([]kmsg.ListOffsetsRequestTopic, n)
		for i := range ts {
			ts[i].Topic = name
		}
		return &kmsg.ListOffsetsRequest{Version: 7, ReplicaID: -1, Topics: ts}
	}},
}

func repeat(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestRequestElementChargeWithLongNames: the charge covers what a request
// of long names allocates. Handlers copy a name several times (decoded,
// echoed in the response entry, in the encoding's growing buffer, quoted
// in errors): when the charge was the frame + RequestElementBytes per
// element, 249-byte names (the longest topic) allocated 1.6–4x it and
// 2,000-byte group ids 4.5–8.8x (DescribeConfigs ~12x its frame); the
// request's string bytes are now charged too.
func TestRequestElementChargeWithLongNames(t *testing.T) {
	n := brokertest.Start(t)
	const elements = 10_000
	for _, nameLen := range []int{249, 2000} {
		name := strings.Repeat("x", nameLen)
		for _, tc := range longNamed {
			if nameLen > 249 && strings.Contains(tc.api, "Topic") {
				continue
			}
			req := tc.req(elements, name)
			frame := requestFrame(req, 7)
			responseBytes, allocated := roundTrip(t, n.Addr, frame)
			charged := uint64(broker.RequestCharge(req, len(frame)))
			t.Logf("%s, %d names of %d bytes: %d-byte frame, %d-byte response, allocated %d, charged %d (%.2fx)",
				tc.api, elements, nameLen, len(frame), responseBytes, allocated, charged, float64(allocated)/float64(charged))
			if allocated > charged {
				t.Errorf("%s of %d names of %d bytes allocated %d bytes, more than the %d charged (%.2fx)",
					tc.api, elements, nameLen, allocated, charged, float64(allocated)/float64(charged))
			}
		}
	}
}
