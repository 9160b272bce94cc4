//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// What older tools still send: ListOffsets v0 and the topic configs Kafka
// 3.x deprecated but still accepts.

// TestListOffsetsV0: the old "offsets before" form, as a raw exchange and
// from sarama configured as Kafka 0.10.0 (which sends v0).
func TestListOffsetsV0(t *testing.T) {
	b := sharedBroker(t)
	topic := legalTopic(t)
	// Small segments, so the answer lists several segment bases.
	createTopic(t, b.addr, topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("2048")})
	ctx := testContext(t, time.Minute)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerLinger(0))
	const n = 60
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%0200d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	raw := dialRaw(t, b.addr) // sends the version asked for, as kgo would not
	ask := func(timestamp int64, maxOffsets int32) []int64 {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(0)
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.MaxNumOffsets = 0, timestamp, maxOffsets
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := raw.roundTrip(req).(*kmsg.ListOffsetsResponse)
		p := resp.Topics[0].Partitions[0]
		wantOK(t, "ListOffsets v0", p.ErrorCode)
		return p.OldStyleOffsets
	}
	if got := ask(-1, 1); !slices.Equal(got, []int64{n}) {
		t.Fatalf("latest, one offset: %v, want [%d]", got, n)
	}
	if got := ask(-2, 1); !slices.Equal(got, []int64{0}) {
		t.Fatalf("earliest: %v, want [0]", got)
	}
	all := ask(-1, 1000)
	if len(all) < 3 || all[0] != n || all[len(all)-1] != 0 || !slices.IsSortedFunc(all, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("latest, all offsets: %v, want the log end, then every segment base down to 0", all)
	}
	if got := ask(time.Now().Add(time.Hour).UnixMilli(), 1000); !slices.Equal(got, all) {
		t.Fatalf("offsets before an hour from now: %v, want %v", got, all)
	}
	if got := ask(1, 10); len(got) != 0 {
		t.Fatalf("offsets before 1970: %v, want none", got)
	}

	useSaramaLog(t)
	cfg := saramaConfig(sarama.V0_10_0_0)
	client, err := sarama.NewClient([]string{b.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, c := range []struct {
		time int64
		want int64
	}{{sarama.OffsetNewest, n}, {sarama.OffsetOldest, 0}} {
		var got int64
		within(t, ctx, "sarama (Kafka 0.10.0) GetOffset", func() (err error) {
			got, err = client.GetOffset(topic, 0, c.time)
			return err
		})
		if got != c.want {
			t.Fatalf("sarama GetOffset(%d) = %d, want %d", c.time, got, c.want)
		}
	}
}

// TestDeprecatedTopicConfigs: message.format.version and
// message.downconversion.enable are accepted, stored and described as
// Kafka 3.9 does, with a warning in the log; bad values are refused.
func TestDeprecatedTopicConfigs(t *testing.T) {
	b := sharedBroker(t)
	adm := newAdmin(t, b.addr)
	ctx := testContext(t, time.Minute)
	topic := legalTopic(t)
	if r := createOne(t, adm, 1, 1, map[string]*string{
		"message.format.version":        kadm.StringPtr("2.8"),
		"message.downconversion.enable": kadm.StringPtr("false"),
	}, topic); r.Err != nil {
		t.Fatalf("create with deprecated configs: %v %s", r.Err, r.ErrMessage)
	}
	requireDescribed := func(name, value string, source kmsg.ConfigSource) {
		t.Helper()
		c, ok := describeTopic(t, adm, topic)[name]
		if !ok || c.MaybeValue() != value || c.Source != source {
			t.Fatalf("%s described as %q (source %v, listed %v), want %q (source %v)", name, c.MaybeValue(), c.Source, ok, value, source)
		}
	}
	requireDescribed("message.format.version", "2.8", kmsg.ConfigSourceDynamicTopicConfig)
	requireDescribed("message.downconversion.enable", "false", kmsg.ConfigSourceDynamicTopicConfig)

	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.format.version", Value: kadm.StringPtr("3.0-IV1")}}, topic)
	if err := alterErr(t, resps, err, topic); err != nil {
		t.Fatalf("incremental alter of message.format.version: %v", err)
	}
	requireDescribed("message.format.version", "3.0-IV1", kmsg.ConfigSourceDynamicTopicConfig)
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "message.downconversion.enable"}}, topic)
	if err := alterErr(t, resps, err, topic); err != nil {
		t.Fatalf("incremental delete of message.downconversion.enable: %v", err)
	}
	requireDescribed("message.downconversion.enable", "true", kmsg.ConfigSourceDefaultConfig)

	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.format.version", Value: kadm.StringPtr("latest")}}, topic)
	if err := alterErr(t, resps, err, topic); !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("message.format.version=latest: %v, want INVALID_CONFIG", err)
	}
	if !b.logContains("topic config is deprecated and has no effect") {
		t.Fatal("no deprecation warning in the broker log")
	}

	// The records are stored as produced: the deprecated settings have no
	// effect.
	cl := newClient(t, b.addr, manualPartitioner())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v2 batch")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, b.addr, topic, 1)
	if len(recs) != 1 || string(recs[0].Value) != "v2 batch" {
		t.Fatalf("read back %d records", len(recs))
	}
}
