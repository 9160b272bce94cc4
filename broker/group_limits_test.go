package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestGroupLimits: the group coordinator's limits of broker.Config reach
// every coordinator shard, and DescribeConfigs of the broker reports them
// (STATIC_BROKER_CONFIG when the operator set them, as Kafka does). The
// session timeout bounds did not reach the shards: a broker configured
// with group.min.session.timeout.ms 10 s accepted a 6 s session; and
// group.max.size did not exist: a second member joined a group limited
// to one.
func TestGroupLimits(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.GroupMinSessionTimeout = 10 * time.Second
		c.GroupMaxSessionTimeout = 20 * time.Second
		c.GroupMaxSize = 1
		c.StaticConfigs = []string{"group.max.session.timeout.ms", "group.max.size", "group.min.session.timeout.ms"}
	})
	cl := n.Client()
	join := func(groupID, memberID string, session time.Duration) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = groupID, memberID, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = int32(session.Milliseconds()), 20000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("sub")}}
		return request[*kmsg.JoinGroupResponse](t, cl, req)
	}
	for _, tc := range []struct {
		session time.Duration
		want    *kerr.Error
	}{
		{6 * time.Second, kerr.InvalidSessionTimeout},  // Kafka's default minimum, below this broker's
		{30 * time.Second, kerr.InvalidSessionTimeout}, // below Kafka's default maximum, above this broker's
		{15 * time.Second, kerr.MemberIDRequired},      // within: KIP-394's first answer
	} {
		if r := join("g", "", tc.session); r.ErrorCode != tc.want.Code {
			t.Errorf("join with a %v session: %v, want %v", tc.session, kerr.ErrorForCode(r.ErrorCode), tc.want)
		}
	}

	first := join("full", "", 15*time.Second)
	if first.ErrorCode == kerr.MemberIDRequired.Code {
		first = join("full", first.MemberID, 15*time.Second)
	}
	if first.ErrorCode != 0 {
		t.Fatalf("first member's join: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	if r := join("full", "", 15*time.Second); r.ErrorCode != kerr.GroupMaxSizeReached.Code || r.MemberID != "" {
		t.Errorf("second member's join of a group limited to one: %v, member id %q; want GROUP_MAX_SIZE_REACHED and none", kerr.ErrorForCode(r.ErrorCode), r.MemberID)
	}

	want := map[string]string{
		"group.min.session.timeout.ms": "10000",
		"group.max.session.timeout.ms": "20000",
		"group.max.size":               "1",
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"}}
	r := request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]
	if r.ErrorCode != 0 {
		t.Fatalf("describe broker 1: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	for _, c := range r.Configs {
		v, ok := want[c.Name]
		if !ok {
			continue
		}
		delete(want, c.Name)
		if deref(c.Value) != v || c.Source != kmsg.ConfigSourceStaticBrokerConfig || !c.ReadOnly {
			t.Errorf("%s: %s %v read_only %v, want %s STATIC_BROKER_CONFIG read-only", c.Name, deref(c.Value), c.Source, c.ReadOnly, v)
		}
	}
	for name := range want {
		t.Errorf("DescribeConfigs of the broker lacks %s", name)
	}
}
