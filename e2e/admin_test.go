//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin API tests: CreateTopics, DeleteTopics, CreatePartitions,
// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and Metadata
// auto-creation, through kadm as a Kafka user would, and with raw kmsg
// requests where kadm hides the wire details (versions, duplicate entries,
// AllowAutoTopicCreation). Existence checks use raw Metadata requests on a
// fresh connection, never a client's cached metadata.

// Kafka's built-in topic-config defaults (what Strata documents in its
// README); the shared broker runs without topic-default flags.
var kafkaTopicDefaults = map[string]string{
	"cleanup.policy":         "delete",
	"compression.type":       "producer",
	"flush.messages":         "9223372036854775807",
	"flush.ms":               "9223372036854775807",
	"index.interval.bytes":   "4096",
	"max.message.bytes":      "1048588",
	"message.timestamp.type": "CreateTime",
	// Kafka 4's defaults (KIP-937; after.max.ms became 1 hour in 4.0).
	"message.timestamp.before.max.ms": "9223372036854775807",
	"message.timestamp.after.max.ms":  "3600000",
	"min.insync.replicas":             "1",
	"retention.bytes":                 "-1",
	"retention.ms":                    "604800000",
	"segment.bytes":                   "1073741824",
	"segment.index.bytes":             "10485760",
	"segment.ms":                      "604800000",
}

// legalTopic is uniqueTopic with every character Kafka does not allow in a
// topic name (subtest names bring parentheses, '=', …) replaced by '-'.
func legalTopic(tb testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, uniqueTopic(tb))
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

// createOne and deleteOne return the per-topic result (kadm's CreateTopic and
// DeleteTopic also return the topic's error as the call's error).
func createOne(tb testing.TB, adm *kadm.Client, partitions int32, rf int16, configs map[string]*string, topic string) kadm.CreateTopicResponse {
	tb.Helper()
	resps, err := adm.CreateTopics(testContext(tb, 30*time.Second), partitions, rf, configs, topic)
	if err != nil {
		tb.Fatalf("CreateTopics %s: %v", topic, err)
	}
	r, ok := resps[topic]
	if !ok {
		tb.Fatalf("CreateTopics %s: no result for the topic", topic)
	}
	return r
}

func deleteOne(tb testing.TB, adm *kadm.Client, topic string) kadm.DeleteTopicResponse {
	tb.Helper()
	resps, err := adm.DeleteTopics(testContext(tb, 30*time.Second), topic)
	if err != nil {
		tb.Fatalf("DeleteTopics %s: %v", topic, err)
	}
	r, ok := resps[topic]
	if !ok {
		tb.Fatalf("DeleteTopics %s: no result for the topic", topic)
	}
	return r
}

func newAdmin(tb testing.TB, addr string) *kadm.Client {
	tb.Helper()
	return kadm.NewClient(newClient(tb, addr))
}

// rawMetadata asks for one topic with a Metadata request of the given
// version on a fresh connection.
func rawMetadata(tb testing.TB, addr string, version int16, topic string, allowAutoCreate bool) kmsg.MetadataResponseTopic {
	tb.Helper()
	c := dialRaw(tb, addr)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = version
	req.AllowAutoTopicCreation = allowAutoCreate
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != topic {
		tb.Fatalf("Metadata v%d for %q: got %d topics, want exactly that one", version, topic, len(resp.Topics))
	}
	return resp.Topics[0]
}

// allTopics lists every topic (Metadata v12 with a null topic list), which
// can never auto-create anything.
func allTopics(tb testing.TB, addr string) map[string]kmsg.MetadataResponseTopic {
	tb.Helper()
	c := dialRaw(tb, addr)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = nil
	resp := c.roundTrip(req).(*kmsg.MetadataResponse)
	out := map[string]kmsg.MetadataResponseTopic{}
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out[*t.Topic] = t
		}
	}
	return out
}

func requireNoTopic(tb testing.TB, addr, topic string) {
	tb.Helper()
	if _, ok := allTopics(tb, addr)[topic]; ok {
		tb.Fatalf("topic %q exists, want it absent", topic)
	}
}

// requireTopicPartitions checks the topic exists with n partitions, each led
// by node 1 with replicas [1] and ISR [1].
func requireTopicPartitions(tb testing.TB, addr, topic string, n int) kmsg.MetadataResponseTopic {
	tb.Helper()
	mt, ok := allTopics(tb, addr)[topic]
	if !ok {
		tb.Fatalf("topic %q missing from Metadata", topic)
	}
	if mt.ErrorCode != 0 {
		tb.Fatalf("topic %q: metadata error %v", topic, kerr.ErrorForCode(mt.ErrorCode))
	}
	if len(mt.Partitions) != n {
		tb.Fatalf("topic %q has %d partitions, want %d", topic, len(mt.Partitions), n)
	}
	sort.Slice(mt.Partitions, func(i, j int) bool { return mt.Partitions[i].Partition < mt.Partitions[j].Partition })
	for i, p := range mt.Partitions {
		if p.Partition != int32(i) || p.ErrorCode != 0 || p.Leader != 1 ||
			fmt.Sprint(p.Replicas) != "[1]" || fmt.Sprint(p.ISR) != "[1]" {
			tb.Fatalf("topic %q partition %d: index %d error %v leader %d replicas %v isr %v; want index %d, no error, leader 1, replicas [1], isr [1]",
				topic, i, p.Partition, kerr.ErrorForCode(p.ErrorCode), p.Leader, p.Replicas, p.ISR, i)
		}
	}
	return mt
}

func wantErr(tb testing.TB, what string, got error, want *kerr.Error) {
	tb.Helper()
	if !errors.Is(got, want) {
		tb.Fatalf("%s: error %v, want %s", what, got, want.Message)
	}
}

func wantCode(tb testing.TB, what string, got int16, want *kerr.Error) {
	tb.Helper()
	if got != want.Code {
		tb.Fatalf("%s: error code %d (%v), want %d %s", what, got, kerr.ErrorForCode(got), want.Code, want.Message)
	}
}

func wantOK(tb testing.TB, what string, got int16) {
	tb.Helper()
	if got != 0 {
		tb.Fatalf("%s: error code %d (%v), want success", what, got, kerr.ErrorForCode(got))
	}
}

// rawCreateTopics sends one CreateTopics v7 request.
func rawCreateTopics(tb testing.TB, addr string, validateOnly bool, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsResponse {
	tb.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	req.TimeoutMillis = 30000
	req.ValidateOnly = validateOnly
	req.Topics = topics
	return dialRaw(tb, addr).roundTrip(req).(*kmsg.CreateTopicsResponse)
}

func createTopicReq(name string, partitions int32, rf int16, configs ...string) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = partitions
	rt.ReplicationFactor = rf
	for i := 0; i+1 < len(configs); i += 2 {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = configs[i]
		c.Value = kmsg.StringPtr(configs[i+1])
		rt.Configs = append(rt.Configs, c)
	}
	return rt
}

func TestAdminCreateTopics(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	ctx := testContext(t, 60*time.Second)

	t.Run("success", func(t *testing.T) {
		topic := legalTopic(t)
		resp := createOne(t, adm, 3, 1, nil, topic)
		if resp.Err != nil {
			t.Fatalf("create: %v (%s)", resp.Err, resp.ErrMessage)
		}
		if resp.NumPartitions != 3 || resp.ReplicationFactor != 1 {
			t.Fatalf("response: %d partitions, RF %d; want 3, 1", resp.NumPartitions, resp.ReplicationFactor)
		}
		if resp.ID == (kadm.TopicID{}) {
			t.Fatal("response topic id is all zero")
		}
		mt := requireTopicPartitions(t, b.addr, topic, 3)
		if mt.TopicID != [16]byte(resp.ID) {
			t.Fatalf("Metadata topic id %x, CreateTopics returned %x", mt.TopicID, resp.ID)
		}
		// The topic is usable right away.
		offs := produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 2, "x")
		if offs[0] != 0 {
			t.Fatalf("first record at offset %d, want 0", offs[0])
		}

		// Created configs come back in the response (CreateTopics v5+).
		topic2 := legalTopic(t) + "-cfg"
		r2 := rawCreateTopics(t, b.addr, false, createTopicReq(topic2, 1, 1, "retention.ms", "3600000"))
		ct := r2.Topics[0]
		wantOK(t, "create with a config", ct.ErrorCode)
		found := false
		for _, c := range ct.Configs {
			if c.Name == "retention.ms" {
				found = true
				if c.Value == nil || *c.Value != "3600000" || c.Source != int8(kmsg.ConfigSourceDynamicTopicConfig) {
					t.Fatalf("CreateTopics response config retention.ms = %v (source %d), want 3600000 (DYNAMIC_TOPIC_CONFIG)", c.Value, c.Source)
				}
			}
		}
		if !found {
			t.Fatal("CreateTopics v7 response does not list retention.ms")
		}
	})

	t.Run("default partitions and replication factor (-1)", func(t *testing.T) {
		topic := legalTopic(t)
		resp := createOne(t, adm, -1, -1, nil, topic)
		if resp.Err != nil {
			t.Fatalf("create: %v (%s)", resp.Err, resp.ErrMessage)
		}
		if resp.NumPartitions != 1 || resp.ReplicationFactor != 1 {
			t.Fatalf("response: %d partitions, RF %d; want num.partitions=1, default.replication.factor=1", resp.NumPartitions, resp.ReplicationFactor)
		}
		requireTopicPartitions(t, b.addr, topic, 1)
	})

	t.Run("topic already exists", func(t *testing.T) {
		topic := legalTopic(t)
		createTopic(t, b.addr, topic, 2, nil)
		resp := createOne(t, adm, 5, 1, nil, topic)
		wantErr(t, "second create", resp.Err, kerr.TopicAlreadyExists)
		requireTopicPartitions(t, b.addr, topic, 2) // untouched
	})

	t.Run("invalid partitions", func(t *testing.T) {
		for _, n := range []int32{0, -2, -100} {
			topic := legalTopic(t)
			resp := createOne(t, adm, n, 1, nil, topic)
			wantErr(t, fmt.Sprintf("%d partitions", n), resp.Err, kerr.InvalidPartitions)
			requireNoTopic(t, b.addr, topic)
		}
	})

	t.Run("invalid replication factor", func(t *testing.T) {
		for _, rf := range []int16{3, 2, 0, -2} {
			topic := legalTopic(t)
			resp := createOne(t, adm, 1, rf, nil, topic)
			wantErr(t, fmt.Sprintf("RF %d on one broker", rf), resp.Err, kerr.InvalidReplicationFactor)
			requireNoTopic(t, b.addr, topic)
		}
	})

	t.Run("invalid topic names", func(t *testing.T) {
		for _, name := range []string{"bad name", "..", ".", "", "with/slash", "naïve", strings.Repeat("a", 250)} {
			resp := rawCreateTopics(t, b.addr, false, createTopicReq(name, 1, 1))
			if len(resp.Topics) != 1 {
				t.Fatalf("name %q: %d results, want 1", name, len(resp.Topics))
			}
			wantCode(t, fmt.Sprintf("name %q", name), resp.Topics[0].ErrorCode, kerr.InvalidTopicException)
			if name != "" {
				requireNoTopic(t, b.addr, name)
			}
		}
		// 249 characters is the longest legal name.
		long := fmt.Sprintf("%d-%s", time.Now().UnixNano()%1000000, strings.Repeat("b", 249))[:249]
		resp := createOne(t, adm, 1, 1, nil, long)
		if resp.Err != nil {
			t.Fatalf("249-character name: %v (%s)", resp.Err, resp.ErrMessage)
		}
		requireTopicPartitions(t, b.addr, long, 1)
	})

	t.Run("invalid configs", func(t *testing.T) {
		for _, cfg := range [][2]string{
			{"no.such.config", "1"},
			{"retention.ms", "abc"},
			{"retention.ms", "-2"},
			{"max.message.bytes", "99999999999"},
			{"message.timestamp.type", "WallClock"},
			{"cleanup.policy", "shred"},
			{"cleanup.policy", "delete,shred"},
			{"min.cleanable.dirty.ratio", "1.5"},
		} {
			topic := legalTopic(t)
			resp := createOne(t, adm, 1, 1, map[string]*string{cfg[0]: kadm.StringPtr(cfg[1])}, topic)
			wantErr(t, cfg[0]+"="+cfg[1], resp.Err, kerr.InvalidConfig)
			requireNoTopic(t, b.addr, topic)
		}
	})

	t.Run("validate only creates nothing", func(t *testing.T) {
		topic := legalTopic(t)
		resps, err := adm.ValidateCreateTopics(ctx, 4, 1, map[string]*string{"retention.ms": kadm.StringPtr("1000")}, topic)
		if err != nil {
			t.Fatal(err)
		}
		resp := resps[topic]
		if resp.Err != nil {
			t.Fatalf("validate-only: %v (%s)", resp.Err, resp.ErrMessage)
		}
		if resp.NumPartitions != 4 || resp.ReplicationFactor != 1 {
			t.Fatalf("validate-only response: %d partitions, RF %d; want 4, 1", resp.NumPartitions, resp.ReplicationFactor)
		}
		requireNoTopic(t, b.addr, topic)
		// Validation is the real one: a bad request still fails.
		bad, err := adm.ValidateCreateTopics(ctx, 0, 1, nil, topic)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, "validate-only with 0 partitions", bad[topic].Err, kerr.InvalidPartitions)
		bad, err = adm.ValidateCreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("abc")}, topic)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, "validate-only with a bad config", bad[topic].Err, kerr.InvalidConfig)
		requireNoTopic(t, b.addr, topic)
		// And the name is still free.
		createTopic(t, b.addr, topic, 1, nil)
		requireTopicPartitions(t, b.addr, topic, 1)
	})

	t.Run("duplicate topic in one request", func(t *testing.T) {
		dup := legalTopic(t)
		other := dup + "-other"
		resp := rawCreateTopics(t, b.addr, false, createTopicReq(dup, 1, 1), createTopicReq(other, 2, 1), createTopicReq(dup, 3, 1))
		sawDup, sawOther := 0, 0
		for _, rt := range resp.Topics {
			switch rt.Topic {
			case dup:
				sawDup++
				wantCode(t, "duplicated topic", rt.ErrorCode, kerr.InvalidRequest)
			case other:
				sawOther++
				wantOK(t, "the other topic in the request", rt.ErrorCode)
			default:
				t.Fatalf("result for a topic not in the request: %q", rt.Topic)
			}
		}
		if sawDup == 0 || sawOther != 1 {
			t.Fatalf("results: %d for the duplicated topic, %d for the other; want at least 1 and exactly 1", sawDup, sawOther)
		}
		requireNoTopic(t, b.addr, dup)
		requireTopicPartitions(t, b.addr, other, 2)
	})
}

// describeTopic returns a topic's configs by name (DescribeConfigs through
// kadm, which asks for synonyms).
func describeTopic(tb testing.TB, adm *kadm.Client, topic string) map[string]kadm.Config {
	tb.Helper()
	rcs, err := adm.DescribeTopicConfigs(testContext(tb, 30*time.Second), topic)
	if err != nil {
		tb.Fatalf("describe %s: %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		tb.Fatalf("describe %s: %v", topic, err)
	}
	if rc.Err != nil {
		tb.Fatalf("describe %s: %v (%s)", topic, rc.Err, rc.ErrMessage)
	}
	out := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}

// requireConfigs checks explicitly set configs (DYNAMIC_TOPIC_CONFIG) and
// that every other known config is at its default (DEFAULT_CONFIG).
func requireConfigs(tb testing.TB, adm *kadm.Client, topic string, explicit map[string]string) {
	tb.Helper()
	got := describeTopic(tb, adm, topic)
	for name, def := range kafkaTopicDefaults {
		c, ok := got[name]
		if !ok {
			tb.Fatalf("%s: config %s not described", topic, name)
		}
		want, wantSource := def, kmsg.ConfigSourceDefaultConfig
		if v, set := explicit[name]; set {
			want, wantSource = v, kmsg.ConfigSourceDynamicTopicConfig
		}
		if c.MaybeValue() != want || c.Source != wantSource {
			tb.Fatalf("%s: %s = %q (source %v), want %q (source %v)", topic, name, c.MaybeValue(), c.Source, want, wantSource)
		}
	}
	for name := range explicit {
		if _, known := kafkaTopicDefaults[name]; !known {
			tb.Fatalf("test bug: %s is not a known config", name)
		}
	}
}

func TestAdminDescribeConfigs(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	ctx := testContext(t, 60*time.Second)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, map[string]*string{
		"retention.ms":      kadm.StringPtr("3600000"),
		"max.message.bytes": kadm.StringPtr("2048"),
	})

	t.Run("defaults and explicit values", func(t *testing.T) {
		requireConfigs(t, adm, topic, map[string]string{"retention.ms": "3600000", "max.message.bytes": "2048"})
		got := describeTopic(t, adm, topic)
		// Synonyms: the topic's own value first, the default last.
		rm := got["retention.ms"]
		if len(rm.Synonyms) < 2 {
			t.Fatalf("retention.ms synonyms %+v, want the topic value and the default", rm.Synonyms)
		}
		first, last := rm.Synonyms[0], rm.Synonyms[len(rm.Synonyms)-1]
		if first.Source != kmsg.ConfigSourceDynamicTopicConfig || first.Value == nil || *first.Value != "3600000" {
			t.Fatalf("first retention.ms synonym %+v, want the topic's 3600000 (DYNAMIC_TOPIC_CONFIG)", first)
		}
		if last.Source != kmsg.ConfigSourceDefaultConfig || last.Value == nil || *last.Value != "604800000" {
			t.Fatalf("last retention.ms synonym %+v, want the default 604800000 (DEFAULT_CONFIG)", last)
		}
	})

	t.Run("named configs only", func(t *testing.T) {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version = 4
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeTopic
		rr.ResourceName = topic
		rr.ConfigNames = []string{"retention.ms", "segment.bytes"}
		req.Resources = append(req.Resources, rr)
		resp := dialRaw(t, b.addr).roundTrip(req).(*kmsg.DescribeConfigsResponse)
		if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("resources %+v", resp.Resources)
		}
		got := map[string]string{}
		for _, c := range resp.Resources[0].Configs {
			got[c.Name] = *c.Value
			if c.ReadOnly || c.IsSensitive {
				t.Fatalf("%s: read-only %v sensitive %v, want neither", c.Name, c.ReadOnly, c.IsSensitive)
			}
			want := map[string]kmsg.ConfigType{"retention.ms": kmsg.ConfigTypeLong, "segment.bytes": kmsg.ConfigTypeInt}[c.Name]
			if c.ConfigType != want {
				t.Fatalf("%s: config type %v, want %v (as Kafka)", c.Name, c.ConfigType, want)
			}
		}
		if len(got) != 2 || got["retention.ms"] != "3600000" || got["segment.bytes"] != "1073741824" {
			t.Fatalf("named configs %v, want exactly retention.ms=3600000 and segment.bytes=1073741824", got)
		}
	})

	t.Run("broker resource", func(t *testing.T) {
		rcs, err := adm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("1", nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("broker 1: %v / %v (%s)", err, rc.Err, rc.ErrMessage)
		}
		got := map[string]string{}
		for _, c := range rc.Configs {
			got[c.Key] = c.MaybeValue()
		}
		for name, want := range map[string]string{
			"broker.id":                 "1",
			"num.partitions":            "1",
			"auto.create.topics.enable": "true",
			"log.retention.ms":          "604800000",
		} {
			if got[name] != want {
				t.Errorf("broker config %s = %q, want %q", name, got[name], want)
			}
		}
	})

	t.Run("unknown topic", func(t *testing.T) {
		missing := legalTopic(t) + "-missing"
		rcs, err := adm.DescribeTopicConfigs(ctx, missing)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(missing, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, "describe unknown topic", rc.Err, kerr.UnknownTopicOrPartition)
		requireNoTopic(t, b.addr, missing) // describing does not create
	})
}

func alterErr(tb testing.TB, resps kadm.AlterConfigsResponses, err error, topic string) error {
	tb.Helper()
	if err != nil {
		tb.Fatalf("alter %s: %v", topic, err)
	}
	r, err := resps.On(topic, nil)
	if err != nil {
		tb.Fatalf("alter %s: no result: %v", topic, err)
	}
	return r.Err
}

func TestAdminAlterConfigs(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	ctx := testContext(t, 60*time.Second)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, map[string]*string{
		"retention.ms":      kadm.StringPtr("1000000"),
		"max.message.bytes": kadm.StringPtr("2048"),
	})
	set := func(name, value string) kadm.AlterConfig {
		return kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(value)}
	}

	t.Run("AlterConfigs replaces the whole set", func(t *testing.T) {
		resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("segment.bytes", "1048576")}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("alter: %v", e)
		}
		// retention.ms and max.message.bytes were not named: back to defaults.
		requireConfigs(t, adm, topic, map[string]string{"segment.bytes": "1048576"})
	})

	t.Run("AlterConfigs refuses bad input and changes nothing", func(t *testing.T) {
		for _, bad := range [][]kadm.AlterConfig{
			{set("retention.ms", "abc")},
			{set("no.such.config", "1")},
			{set("cleanup.policy", "shred")},
			{set("segment.bytes", "2097152"), set("min.insync.replicas", "0")},
		} {
			resps, err := adm.AlterTopicConfigsState(ctx, bad, topic)
			wantErr(t, fmt.Sprintf("AlterConfigs %v", bad[len(bad)-1].Name), alterErr(t, resps, err, topic), kerr.InvalidConfig)
			requireConfigs(t, adm, topic, map[string]string{"segment.bytes": "1048576"})
		}
		// validate-only: accepted, nothing changes.
		resps, err := adm.ValidateAlterTopicConfigsState(ctx, []kadm.AlterConfig{set("retention.ms", "5000")}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("validate-only alter: %v", e)
		}
		requireConfigs(t, adm, topic, map[string]string{"segment.bytes": "1048576"})
		// unknown topic.
		missing := topic + "-missing"
		resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("retention.ms", "5000")}, missing)
		wantErr(t, "AlterConfigs on an unknown topic", alterErr(t, resps, err, missing), kerr.UnknownTopicOrPartition)
		requireNoTopic(t, b.addr, missing)
	})

	t.Run("IncrementalAlterConfigs SET and DELETE", func(t *testing.T) {
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "7200000"), set("max.message.bytes", "4096")}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("SET: %v", e)
		}
		// segment.bytes, set before, is kept: incremental does not replace.
		requireConfigs(t, adm, topic, map[string]string{"segment.bytes": "1048576", "retention.ms": "7200000", "max.message.bytes": "4096"})

		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "segment.bytes"}, {Op: kadm.DeleteConfig, Name: "flush.ms"}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("DELETE: %v", e)
		}
		requireConfigs(t, adm, topic, map[string]string{"retention.ms": "7200000", "max.message.bytes": "4096"})
	})

	t.Run("IncrementalAlterConfigs APPEND and SUBTRACT on cleanup.policy", func(t *testing.T) {
		explicit := map[string]string{"retention.ms": "7200000", "max.message.bytes": "4096"}
		// APPEND of a value already in the (default) list: no duplicate,
		// and the list is now set on the topic.
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("APPEND delete: %v", e)
		}
		explicit["cleanup.policy"] = "delete"
		requireConfigs(t, adm, topic, explicit)
		// APPEND of an unknown policy is refused and changes nothing.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("shred")}}, topic)
		wantErr(t, "APPEND shred", alterErr(t, resps, err, topic), kerr.InvalidConfig)
		requireConfigs(t, adm, topic, explicit)
		// SUBTRACT of a value not in the list leaves it as it was.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("SUBTRACT compact: %v", e)
		}
		requireConfigs(t, adm, topic, explicit)
		// APPEND compact makes "delete,compact", SUBTRACT takes it away again.
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("APPEND compact: %v", e)
		}
		requireConfigs(t, adm, topic, map[string]string{"retention.ms": "7200000", "max.message.bytes": "4096", "cleanup.policy": "delete,compact"})
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("SUBTRACT compact: %v", e)
		}
		requireConfigs(t, adm, topic, explicit)
		// APPEND/SUBTRACT on a non-list config is INVALID_CONFIG.
		for _, op := range []kadm.IncrementalOp{kadm.AppendConfig, kadm.SubtractConfig} {
			resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "retention.ms", Value: kadm.StringPtr("5")}}, topic)
			wantErr(t, fmt.Sprintf("op %d on retention.ms", op), alterErr(t, resps, err, topic), kerr.InvalidConfig)
		}
		requireConfigs(t, adm, topic, explicit)
	})

	t.Run("IncrementalAlterConfigs refuses bad input atomically", func(t *testing.T) {
		explicit := map[string]string{"retention.ms": "7200000", "max.message.bytes": "4096", "cleanup.policy": "delete"}
		for _, bad := range [][]kadm.AlterConfig{
			{set("retention.ms", "abc")},
			{set("segment.ms", "1"), set("message.timestamp.type", "Sometimes")},
			{set("segment.ms", "1"), set("no.such.config", "1")},
		} {
			resps, err := adm.AlterTopicConfigs(ctx, bad, topic)
			wantErr(t, fmt.Sprintf("incremental %s", bad[len(bad)-1].Name), alterErr(t, resps, err, topic), kerr.InvalidConfig)
			requireConfigs(t, adm, topic, explicit) // segment.ms not applied either
		}
		// A DELETE of a name that is no config is a no-op, as in Kafka
		// (which validates the configs a change leaves).
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "no.such.config"}}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("DELETE of an unknown name: %v", e)
		}
		requireConfigs(t, adm, topic, explicit)
		resps, err = adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("segment.ms", "1000")}, topic)
		if e := alterErr(t, resps, err, topic); e != nil {
			t.Fatalf("validate-only incremental: %v", e)
		}
		requireConfigs(t, adm, topic, explicit)
		missing := topic + "-missing"
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "5000")}, missing)
		wantErr(t, "incremental alter of an unknown topic", alterErr(t, resps, err, missing), kerr.UnknownTopicOrPartition)
		requireNoTopic(t, b.addr, missing)
	})
}

// rawAlterConfigs sends AlterConfigs v2 with one resource per entry
// (name → name/value pairs, a nil value sent as null) and returns the codes.
func rawAlterConfigs(tb testing.TB, addr string, resources ...kmsg.AlterConfigsRequestResource) []int16 {
	tb.Helper()
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version = 2
	req.Resources = resources
	resp := dialRaw(tb, addr).roundTrip(req).(*kmsg.AlterConfigsResponse)
	if len(resp.Resources) != len(resources) {
		tb.Fatalf("AlterConfigs: %d results for %d resources", len(resp.Resources), len(resources))
	}
	var codes []int16
	for _, r := range resp.Resources {
		codes = append(codes, r.ErrorCode)
	}
	return codes
}

func alterResource(topic string, kv ...*string) kmsg.AlterConfigsRequestResource {
	r := kmsg.NewAlterConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = topic
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name = *kv[i]
		c.Value = kv[i+1]
		r.Configs = append(r.Configs, c)
	}
	return r
}

func rawIncrementalAlter(tb testing.TB, addr string, resources ...kmsg.IncrementalAlterConfigsRequestResource) []int16 {
	tb.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version = 1
	req.Resources = resources
	resp := dialRaw(tb, addr).roundTrip(req).(*kmsg.IncrementalAlterConfigsResponse)
	if len(resp.Resources) != len(resources) {
		tb.Fatalf("IncrementalAlterConfigs: %d results for %d resources", len(resp.Resources), len(resources))
	}
	var codes []int16
	for _, r := range resp.Resources {
		codes = append(codes, r.ErrorCode)
	}
	return codes
}

func incrementalResource(topic string, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) kmsg.IncrementalAlterConfigsRequestResource {
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = topic
	r.Configs = ops
	return r
}

func incSet(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name = name
	c.Op = kmsg.IncrementalAlterConfigOpSet
	c.Value = kmsg.StringPtr(value)
	return c
}

// TestAdminAlterConfigsMalformed: requests Kafka refuses with INVALID_REQUEST
// (ConfigAdminManager.preprocess) — a config named twice, a null value, a
// resource named twice — change nothing.
func TestAdminAlterConfigsMalformed(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, map[string]*string{"retention.ms": kadm.StringPtr("1000000")})
	explicit := map[string]string{"retention.ms": "1000000"}
	s := kmsg.StringPtr

	for _, tc := range []struct {
		name      string
		resources []kmsg.AlterConfigsRequestResource
	}{
		{"a config named twice", []kmsg.AlterConfigsRequestResource{alterResource(topic, s("segment.bytes"), s("1048576"), s("segment.bytes"), s("2097152"))}},
		{"a null value", []kmsg.AlterConfigsRequestResource{alterResource(topic, s("segment.bytes"), s("1048576"), s("retention.ms"), nil)}},
		{"the resource twice", []kmsg.AlterConfigsRequestResource{alterResource(topic, s("segment.bytes"), s("1048576")), alterResource(topic, s("segment.ms"), s("1000"))}},
	} {
		for i, code := range rawAlterConfigs(t, b.addr, tc.resources...) {
			wantCode(t, fmt.Sprintf("AlterConfigs with %s (result %d)", tc.name, i), code, kerr.InvalidRequest)
		}
		requireConfigs(t, adm, topic, explicit)
	}

	for _, tc := range []struct {
		name      string
		resources []kmsg.IncrementalAlterConfigsRequestResource
	}{
		{"a config named twice", []kmsg.IncrementalAlterConfigsRequestResource{incrementalResource(topic, incSet("segment.bytes", "1048576"), incSet("segment.bytes", "2097152"))}},
		{"SET with a null value", []kmsg.IncrementalAlterConfigsRequestResource{incrementalResource(topic, incSet("segment.bytes", "1048576"), kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "segment.ms", Op: kmsg.IncrementalAlterConfigOpSet})}},
		{"the resource twice", []kmsg.IncrementalAlterConfigsRequestResource{incrementalResource(topic, incSet("segment.bytes", "1048576")), incrementalResource(topic, incSet("segment.ms", "1000"))}},
	} {
		for i, code := range rawIncrementalAlter(t, b.addr, tc.resources...) {
			wantCode(t, fmt.Sprintf("IncrementalAlterConfigs with %s (result %d)", tc.name, i), code, kerr.InvalidRequest)
		}
		requireConfigs(t, adm, topic, explicit)
	}

	// Well-formed raw requests still work: two different topics in one.
	other := topic + "-other"
	createTopic(t, b.addr, other, 1, nil)
	codes := rawIncrementalAlter(t, b.addr, incrementalResource(topic, incSet("segment.bytes", "1048576")), incrementalResource(other, incSet("segment.ms", "1000")))
	wantOK(t, "incremental alter of two topics", codes[0])
	wantOK(t, "incremental alter of two topics", codes[1])
	explicit["segment.bytes"] = "1048576"
	requireConfigs(t, adm, topic, explicit)
	requireConfigs(t, adm, other, map[string]string{"segment.ms": "1000"})
}

// TestAdminConfigsSurviveRestart: configs set through every admin path are
// in the Raft metadata and come back after a graceful restart and after
// kill -9, and they are enforced, not just stored.
func TestAdminConfigsSurviveRestart(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 60*time.Second)
	a := legalTopic(t) + "-a"
	c := legalTopic(t) + "-c"
	createTopic(t, b.addr, a, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")})
	createTopic(t, b.addr, c, 1, nil)
	adm := newAdmin(t, b.addr)
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("1024")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, a)
	if e := alterErr(t, resps, err, a); e != nil {
		t.Fatal(e)
	}
	resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kadm.StringPtr("1048576")}}, c)
	if e := alterErr(t, resps, err, c); e != nil {
		t.Fatal(e)
	}
	wantA := map[string]string{"max.message.bytes": "1024"}
	wantC := map[string]string{"segment.bytes": "1048576"}
	requireConfigs(t, adm, a, wantA)
	requireConfigs(t, adm, c, wantC)

	check := func(stage string) {
		t.Helper()
		adm := newAdmin(t, b.addr)
		requireConfigs(t, adm, a, wantA)
		requireConfigs(t, adm, c, wantC)
		// Enforced: a 4 KiB batch is too large for a (1024), fine for c.
		conn := dialRaw(t, b.addr)
		big := buildBatch(time.Now().UnixMilli(), strings.Repeat("x", 4096))
		if code, msg := produceCode(t, conn, a, big); code != kerr.MessageTooLarge.Code {
			t.Fatalf("%s: 4 KiB batch to %s (max.message.bytes=1024): code %d (%s), want MESSAGE_TOO_LARGE", stage, a, code, msg)
		}
		if code, msg := produceCode(t, conn, c, big); code != 0 {
			t.Fatalf("%s: 4 KiB batch to %s: code %d (%s), want success", stage, c, code, msg)
		}
	}
	check("before restart")

	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	b.restart(t)
	check("after graceful restart")

	// One more change, then kill -9: the committed change survives.
	resps, err = newAdmin(t, b.addr).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: kadm.StringPtr("123456789")}}, c)
	if e := alterErr(t, resps, err, c); e != nil {
		t.Fatal(e)
	}
	wantC["retention.bytes"] = "123456789"
	b.kill()
	b.restart(t)
	check("after kill -9")
}

// TestAdminLogAppendTime: with message.timestamp.type=LogAppendTime set on a
// live topic, records carry the broker's clock (timestamp type 1), whatever
// timestamp the producer chose; before the change they keep the producer's.
func TestAdminLogAppendTime(t *testing.T) {
	b := sharedBroker(t)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	producer := newClient(t, b.addr, manualPartitioner())
	produceOld := func(v string) {
		t.Helper()
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v), Timestamp: old}
		if err := producer.ProduceSync(testContext(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceOld("create-time")

	adm := newAdmin(t, b.addr)
	resps, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.timestamp.type", Value: kadm.StringPtr("LogAppendTime")}}, topic)
	if e := alterErr(t, resps, err, topic); e != nil {
		t.Fatal(e)
	}
	before := time.Now().UnixMilli()
	produceOld("log-append-time-franz")
	// Raw produce: the response carries the append time.
	conn := dialRaw(t, b.addr)
	resp := conn.roundTrip(produceRequest(topic, 0, buildBatch(old.UnixMilli(), "log-append-time-raw-1", "log-append-time-raw-2"))).(*kmsg.ProduceResponse)
	after := time.Now().UnixMilli()
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("raw produce: code %d base offset %d, want success at 2", p.ErrorCode, p.BaseOffset)
	}
	if p.LogAppendTime < before || p.LogAppendTime > after {
		t.Fatalf("produce response LogAppendTime %d, want the broker's clock within [%d, %d]", p.LogAppendTime, before, after)
	}

	recs := consumeAll(t, b.addr, topic, 4)
	if len(recs) != 4 {
		t.Fatalf("read %d records, want 4", len(recs))
	}
	if r := recs[0]; string(r.Value) != "create-time" || r.Attrs.TimestampType() != 0 || !r.Timestamp.Equal(old) {
		t.Fatalf("record before the change: %q type %d ts %v, want the producer's %v (CreateTime)", r.Value, r.Attrs.TimestampType(), r.Timestamp, old)
	}
	for i, r := range recs[1:] {
		ts := r.Timestamp.UnixMilli()
		if r.Offset != int64(i+1) || r.Attrs.TimestampType() != 1 || ts < before || ts > after {
			t.Fatalf("record %q at %d: timestamp type %d ts %d, want LogAppendTime (1) within [%d, %d]", r.Value, r.Offset, r.Attrs.TimestampType(), ts, before, after)
		}
	}
	if !recs[2].Timestamp.Equal(recs[3].Timestamp) || recs[2].Timestamp.UnixMilli() != p.LogAppendTime {
		t.Fatalf("raw batch records at %v and %v, want both at the response's LogAppendTime %d", recs[2].Timestamp, recs[3].Timestamp, p.LogAppendTime)
	}
}

func TestAdminCreatePartitions(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	ctx := testContext(t, 60*time.Second)
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "p0-before")

	resps, err := adm.UpdatePartitions(ctx, 4, topic)
	if err != nil {
		t.Fatal(err)
	}
	if r := resps[topic]; r.Err != nil {
		t.Fatalf("grow 1→4: %v (%s)", r.Err, r.ErrMessage)
	}
	requireTopicPartitions(t, b.addr, topic, 4)

	// A new client sees 4 partitions and every one takes writes.
	producer := newClient(t, b.addr, manualPartitioner())
	for p := int32(0); p < 4; p++ {
		offs := produceSync(t, producer, topic, p, fmt.Sprintf("p%d-after", p))
		want := int64(0)
		if p == 0 {
			want = 1
		}
		if offs[0] != want {
			t.Fatalf("partition %d: record at offset %d, want %d", p, offs[0], want)
		}
	}
	recs := consumeAll(t, b.addr, topic, 5)
	got := map[string]string{}
	for _, r := range recs {
		got[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	}
	want := map[string]string{"p0-before": "0/0", "p0-after": "0/1", "p1-after": "1/0", "p2-after": "2/0", "p3-after": "3/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records (value → partition/offset) %v, want %v", got, want)
	}

	for _, n := range []int{4, 2, 1, 0} {
		resps, err := adm.UpdatePartitions(ctx, n, topic)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, fmt.Sprintf("set partitions to %d (have 4)", n), resps[topic].Err, kerr.InvalidPartitions)
	}
	// validate-only growth changes nothing.
	vr, err := adm.ValidateUpdatePartitions(ctx, 6, topic)
	if err != nil {
		t.Fatal(err)
	}
	if r := vr[topic]; r.Err != nil {
		t.Fatalf("validate-only grow to 6: %v (%s)", r.Err, r.ErrMessage)
	}
	requireTopicPartitions(t, b.addr, topic, 4)

	missing := topic + "-missing"
	resps, err = adm.UpdatePartitions(ctx, 3, missing)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "grow an unknown topic", resps[missing].Err, kerr.UnknownTopicOrPartition)
	requireNoTopic(t, b.addr, missing)
}

// TestAdminManualAssignmentToUnknownBroker: CreateTopics and
// CreatePartitions with a manual replica assignment naming a broker that
// does not exist answer INVALID_REPLICA_ASSIGNMENT for that topic, as
// Kafka does, and change nothing.
func TestAdminManualAssignmentToUnknownBroker(t *testing.T) {
	b := sharedBroker(t)
	c := dialRaw(t, b.addr)
	const unknownBroker = 7

	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version = 4
	create.TimeoutMillis = 10000
	nowhere := kmsg.NewCreateTopicsRequestTopic()
	nowhere.Topic = legalTopic(t) + "-nowhere"
	nowhere.NumPartitions, nowhere.ReplicationFactor = -1, -1
	nowhere.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{
		{Partition: 0, Replicas: []int32{1}},
		{Partition: 1, Replicas: []int32{unknownBroker}},
	}
	create.Topics = append(create.Topics, nowhere)
	created := c.roundTrip(create).(*kmsg.CreateTopicsResponse)
	if len(created.Topics) != 1 || created.Topics[0].ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("CreateTopics naming broker %d: %+v, want INVALID_REPLICA_ASSIGNMENT", unknownBroker, created.Topics)
	}
	requireNoTopic(t, b.addr, nowhere.Topic)

	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.Version = 1
	grow.TimeoutMillis = 10000
	growTopic := kmsg.NewCreatePartitionsRequestTopic()
	growTopic.Topic, growTopic.Count = topic, 2
	growTopic.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{unknownBroker}}}
	grow.Topics = append(grow.Topics, growTopic)
	grown := c.roundTrip(grow).(*kmsg.CreatePartitionsResponse)
	if len(grown.Topics) != 1 || grown.Topics[0].ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("CreatePartitions naming broker %d: %+v, want INVALID_REPLICA_ASSIGNMENT", unknownBroker, grown.Topics)
	}
	requireTopicPartitions(t, b.addr, topic, 1)
}

func TestAdminDeleteTopics(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)

	missing := legalTopic(t) + "-missing"
	resp := deleteOne(t, adm, missing)
	wantErr(t, "delete unknown topic", resp.Err, kerr.UnknownTopicOrPartition)

	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 2, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 1, "gone")
	id := requireTopicPartitions(t, b.addr, topic, 2).TopicID
	resp = deleteOne(t, adm, topic)
	if resp.Err != nil {
		t.Fatalf("delete: %v (%s)", resp.Err, resp.ErrMessage)
	}
	if [16]byte(resp.ID) != id {
		t.Fatalf("delete answered topic id %x, want %x", resp.ID, id)
	}
	requireNoTopic(t, b.addr, topic)
	mt := rawMetadata(t, b.addr, 12, topic, false)
	wantCode(t, "Metadata for the deleted topic", mt.ErrorCode, kerr.UnknownTopicOrPartition)
	resp = deleteOne(t, adm, topic)
	wantErr(t, "delete it again", resp.Err, kerr.UnknownTopicOrPartition)
	conn := dialRaw(t, b.addr)
	if code, _ := produceCode(t, conn, topic, buildBatch(time.Now().UnixMilli(), "x")); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to the deleted topic: code %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}

	// DeleteTopics v6 by topic id: an unknown id, then a real one.
	byID := legalTopic(t) + "-byid"
	createTopic(t, b.addr, byID, 1, nil)
	realID := requireTopicPartitions(t, b.addr, byID, 1).TopicID
	deleteByID := func(id [16]byte) kmsg.DeleteTopicsResponseTopic {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = 6
		req.TimeoutMillis = 30000
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
		r := dialRaw(t, b.addr).roundTrip(req).(*kmsg.DeleteTopicsResponse)
		if len(r.Topics) != 1 {
			t.Fatalf("DeleteTopics v6: %d results, want 1", len(r.Topics))
		}
		return r.Topics[0]
	}
	unknownID := realID
	unknownID[0] ^= 0xff
	wantCode(t, "delete by unknown topic id", deleteByID(unknownID).ErrorCode, kerr.UnknownTopicID)
	requireTopicPartitions(t, b.addr, byID, 1)
	r := deleteByID(realID)
	wantOK(t, "delete by topic id", r.ErrorCode)
	if r.Topic == nil || *r.Topic != byID {
		t.Fatalf("delete by id answered name %v, want %q", r.Topic, byID)
	}
	requireNoTopic(t, b.addr, byID)
}

func TestAdminAutoCreate(t *testing.T) {
	t.Run("producing creates the topic", func(t *testing.T) {
		b := sharedBroker(t)
		topic := legalTopic(t)
		producer := newClient(t, b.addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
		res := producer.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Value: []byte("auto")})
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce to a new topic: %v", err)
		}
		if r := res[0].Record; r.Partition != 0 || r.Offset != 0 {
			t.Fatalf("record at %d/%d, want 0/0", r.Partition, r.Offset)
		}
		requireTopicPartitions(t, b.addr, topic, 1) // num.partitions=1
		recs := consumeAll(t, b.addr, topic, 1)
		if string(recs[0].Value) != "auto" {
			t.Fatalf("read %q, want auto", recs[0].Value)
		}
	})

	t.Run("Metadata AllowAutoTopicCreation", func(t *testing.T) {
		b := sharedBroker(t)
		// v4+ with AllowAutoTopicCreation=false: nothing is created.
		no := legalTopic(t) + "-no"
		for _, v := range []int16{4, 9, 12} {
			wantCode(t, fmt.Sprintf("Metadata v%d without auto-create", v), rawMetadata(t, b.addr, v, no, false).ErrorCode, kerr.UnknownTopicOrPartition)
		}
		requireNoTopic(t, b.addr, no)

		// v4+ with AllowAutoTopicCreation=true, and v1 (always allowed).
		for _, v := range []int16{12, 1} {
			topic := fmt.Sprintf("%s-v%d", legalTopic(t), v)
			mt := rawMetadata(t, b.addr, v, topic, true)
			// Kafka may answer LEADER_NOT_AVAILABLE while a new topic settles.
			if mt.ErrorCode != 0 && mt.ErrorCode != kerr.LeaderNotAvailable.Code {
				t.Fatalf("Metadata v%d auto-create: error %v", v, kerr.ErrorForCode(mt.ErrorCode))
			}
			requireTopicPartitions(t, b.addr, topic, 1)
		}

		// An illegal name is not created.
		bad := "bad name " + legalTopic(t)
		wantCode(t, "Metadata auto-create with an illegal name", rawMetadata(t, b.addr, 12, bad, true).ErrorCode, kerr.InvalidTopicException)
		requireNoTopic(t, b.addr, bad)
	})

	t.Run("disabled with --auto-create-topics=false", func(t *testing.T) {
		b := startBroker(t, "--auto-create-topics=false")
		topic := legalTopic(t)
		for _, v := range []int16{12, 4, 1} {
			wantCode(t, fmt.Sprintf("Metadata v%d asking to auto-create", v), rawMetadata(t, b.addr, v, topic, true).ErrorCode, kerr.UnknownTopicOrPartition)
		}
		requireNoTopic(t, b.addr, topic)
		conn := dialRaw(t, b.addr)
		if code, _ := produceCode(t, conn, topic, buildBatch(time.Now().UnixMilli(), "x")); code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("produce to an unknown topic: code %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
		}
		requireNoTopic(t, b.addr, topic)
		// CreateTopics still works, and the broker config says so.
		createTopic(t, b.addr, topic, 1, nil)
		requireTopicPartitions(t, b.addr, topic, 1)
		rcs, err := newAdmin(t, b.addr).DescribeBrokerConfigs(testContext(t, 30*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := rcs.On("1", nil)
		value := "(not described)"
		for _, c := range rc.Configs {
			if c.Key == "auto.create.topics.enable" {
				value = c.MaybeValue()
			}
		}
		if value != "false" {
			t.Fatalf("broker config auto.create.topics.enable = %s, want false", value)
		}
	})
}
