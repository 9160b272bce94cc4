package broker_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// TestConcurrentConfigChangesAreNotLost: a topic (or dynamic broker)
// config change (IncrementalAlterConfigs, AlterConfigs) is computed from
// the configs the broker read; another change committed between that read and the
// proposal (an admin client on another broker) is not overwritten: the
// store refuses the stale proposal and the broker computes the change
// again from the new configs. Before, the second change was silently
// lost. A topic deleted and created again meanwhile gets the change
// computed for the new topic, not the old one's configs.
func TestConcurrentConfigChangesAreNotLost(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "cfg", 1, map[string]string{"retention.ms": "86400000"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	incremental := func(name, value string) int16 {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg",
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: name, Value: kmsg.StringPtr(value)}}}}
		return request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode
	}

	t.Run("another change came first", func(t *testing.T) {
		first := true
		n.Server.BeforeConfigsStored(func(topic string) {
			if !first {
				return
			}
			first = false
			// Another broker's change commits after this one read the
			// configs.
			current, _ := n.Store.State().Topic(topic)
			other := maps.Clone(current.Configs)
			other["segment.ms"] = "3600000"
			if err := n.Store.SetTopicConfigs(ctx, current, other); err != nil {
				t.Errorf("the other change: %v", err)
			}
		})
		defer n.Server.BeforeConfigsStored(nil)
		if code := incremental("max.message.bytes", "2097152"); code != 0 {
			t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
		}
		got, _ := n.Store.State().Topic("cfg")
		want := map[string]string{"retention.ms": "86400000", "segment.ms": "3600000", "max.message.bytes": "2097152"}
		if !maps.Equal(got.Configs, want) {
			t.Fatalf("configs %v, want %v (both changes)", got.Configs, want)
		}
	})

	t.Run("broker configs: another change came first", func(t *testing.T) {
		first := true
		n.Server.BeforeConfigsStored(func(string) {
			if !first {
				return
			}
			first = false
			// Another broker's change of the cluster-wide defaults commits
			// after this one read them.
			current := n.Store.State().BrokerConfigs(-1)
			other := maps.Clone(current)
			if other == nil {
				other = map[string]string{}
			}
			other["follower.replication.throttled.rate"] = "1048576"
			if err := n.Store.SetBrokerConfigs(ctx, -1, current, other); err != nil {
				t.Errorf("the other change: %v", err)
			}
		})
		defer n.Server.BeforeConfigsStored(nil)
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "",
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "leader.replication.throttled.rate", Value: kmsg.StringPtr("2097152")}}}}
		if code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode; code != 0 {
			t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
		}
		got := n.Store.State().BrokerConfigs(-1)
		want := map[string]string{"leader.replication.throttled.rate": "2097152", "follower.replication.throttled.rate": "1048576"}
		if !maps.Equal(got, want) {
			t.Fatalf("cluster-wide broker configs %v, want %v (both changes)", got, want)
		}
	})

	t.Run("deleted and created again", func(t *testing.T) {
		first := true
		n.Server.BeforeConfigsStored(func(topic string) {
			if !first {
				return
			}
			first = false
			if _, err := n.Store.DeleteTopic(ctx, topic); err != nil {
				t.Errorf("delete: %v", err)
			}
			createTopic(t, cl, topic, 1, map[string]string{"cleanup.policy": "compact"})
		})
		defer n.Server.BeforeConfigsStored(nil)
		if code := incremental("segment.bytes", "1048576"); code != 0 {
			t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
		}
		got, _ := n.Store.State().Topic("cfg")
		want := map[string]string{"cleanup.policy": "compact", "segment.bytes": "1048576"}
		if !maps.Equal(got.Configs, want) {
			t.Fatalf("configs %v, want %v (the change applied to the new topic's configs)", got.Configs, want)
		}
	})
}
