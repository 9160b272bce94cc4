package broker_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// TestTopicConfigSegmentIndexBytesBelowATimeIndexEntry: every value a
// client may set for segment.index.bytes is one the partition can open
// with. A value the log cannot honor (below one 12-byte time index entry)
// must be refused with INVALID_CONFIG, never stored: stored, it fails the
// partition's config update and keeps the partition from opening after a
// restart (offline).
func TestTopicConfigSegmentIndexBytesBelowATimeIndexEntry(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "idx", 1, nil)

	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "idx",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "segment.index.bytes", Value: kmsg.StringPtr("8")}}}}
	code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode
	if code != 0 && code != kerr.InvalidConfig.Code {
		t.Fatalf("segment.index.bytes=8: %v", kerr.ErrorForCode(code))
	}

	// Whatever the answer, the partition must still work after a restart.
	n.Restart()
	cl = n.Client(kgo.DefaultProduceTopic("idx"), kgo.RecordRetries(3))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce after segment.index.bytes=8 (answered %v) and a restart: %v", kerr.ErrorForCode(code), err)
	}
}

// TestIncrementalAlterConfigsDeleteOfAnUnknownName: Kafka validates the
// configs a change leaves, so an IncrementalAlterConfigs DELETE of a name
// that is no topic config changes nothing and succeeds (the other
// operations of the request apply), while a SET of it is INVALID_CONFIG.
func TestIncrementalAlterConfigsDeleteOfAnUnknownName(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "cfg", 1, map[string]string{"retention.ms": "86400000"})
	alter := func(configs ...kmsg.IncrementalAlterConfigsRequestResourceConfig) int16 {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg", Configs: configs}}
		return request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode
	}
	if code := alter(kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "no.such.config", Op: kmsg.IncrementalAlterConfigOpDelete},
		kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "segment.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("3600000")}); code != 0 {
		t.Fatalf("DELETE of an unknown name with a SET: %v, want no error", kerr.ErrorForCode(code))
	}
	got, _ := n.Store.State().Topic("cfg")
	if want := map[string]string{"retention.ms": "86400000", "segment.ms": "3600000"}; !maps.Equal(got.Configs, want) {
		t.Fatalf("configs %v, want %v", got.Configs, want)
	}
	if code := alter(kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "no.such.config", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("1")}); code != kerr.InvalidConfig.Code {
		t.Fatalf("SET of an unknown name: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
}
