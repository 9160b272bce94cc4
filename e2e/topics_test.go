//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCreateTopicsKafkaRefusals: cases Kafka refuses that are easy to get
// wrong — names colliding on '.' vs '_', and null config values.
func TestCreateTopicsKafkaRefusals(t *testing.T) {
	b := sharedBroker(t)
	base := uniqueTopic(t)
	createTopic(t, b.addr, base+"_x.y", 1, nil)
	c := dialRaw(t, b.addr)
	create := func(name string, configs ...kmsg.CreateTopicsRequestTopicConfig) (int16, string) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 5
		req.TimeoutMillis = 10000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = name
		rt.NumPartitions = 1
		rt.ReplicationFactor = 1
		rt.Configs = configs
		req.Topics = append(req.Topics, rt)
		resp := c.roundTrip(req).(*kmsg.CreateTopicsResponse)
		msg := ""
		if resp.Topics[0].ErrorMessage != nil {
			msg = *resp.Topics[0].ErrorMessage
		}
		return resp.Topics[0].ErrorCode, msg
	}
	for _, name := range []string{base + ".x_y", base + "_x_y", base + ".x.y"} {
		if code, msg := create(name); code != kerr.InvalidTopicException.Code {
			t.Errorf("%s next to %s_x.y: error %d (%s), want INVALID_TOPIC_EXCEPTION", name, base, code, msg)
		}
	}
	if code, msg := create(base+"-nullcfg", kmsg.CreateTopicsRequestTopicConfig{Name: "retention.ms"}); code != kerr.InvalidConfig.Code {
		t.Errorf("null config value: error %d (%s), want INVALID_CONFIG", code, msg)
	}
	if code, msg := create(base + "-ok"); code != 0 {
		t.Errorf("plain create: error %d (%s)", code, msg)
	}
}

// TestInternalTopicIsProtected: clients cannot write to or delete
// __consumer_offsets.
func TestInternalTopicIsProtected(t *testing.T) {
	b := sharedBroker(t)
	c := dialRaw(t, b.addr)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "protect-" + uniqueTopic(t)
	if resp := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != 0 {
		t.Fatalf("FindCoordinator: error %d", resp.ErrorCode)
	}
	code, _ := produceCode(t, c, "__consumer_offsets", buildBatch(time.Now().UnixMilli(), "x"))
	if code != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to __consumer_offsets: error %d, want INVALID_TOPIC_EXCEPTION", code)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Version = 4
	del.TimeoutMillis = 10000
	del.TopicNames = []string{"__consumer_offsets"}
	if resp := c.roundTrip(del).(*kmsg.DeleteTopicsResponse); resp.Topics[0].ErrorCode == 0 {
		t.Fatal("deleting __consumer_offsets succeeded")
	}
}
