package broker_test

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/topicconfig"
)

// TestDeleteTopicsRefusesMalformedEntriesPerEntry: as Kafka's controller
// (ControllerApis.deleteTopics), a DeleteTopics entry that names a topic
// by both name and id, or by neither, a name or id given twice (answered
// once), and a name whose topic another entry names by id, are each
// refused with INVALID_REQUEST and delete nothing, while the request's
// other entries are carried out.
func TestDeleteTopicsRefusesMalformedEntriesPerEntry(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	for _, name := range []string{"dup", "both", "byid", "ok", "old-dup", "old-ok"} {
		createTopic(t, admin, name, 1, nil)
	}
	id := func(name string) [16]byte { return mustTopic(t, n, name).ID }
	exists := func(name string) bool {
		_, ok := n.Store.State().Topic(name)
		return ok
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 10000
	entry := func(name string, topicID [16]byte) kmsg.DeleteTopicsRequestTopic {
		e := kmsg.NewDeleteTopicsRequestTopic()
		if name != "" {
			e.Topic = kmsg.StringPtr(name)
		}
		e.TopicID = topicID
		return e
	}
	req.Topics = []kmsg.DeleteTopicsRequestTopic{
		entry("dup", [16]byte{}),
		entry("both", id("both")),
		entry("dup", [16]byte{}),
		entry("", [16]byte{}),
		entry("", id("byid")),
		entry("byid", [16]byte{}),
		entry("ok", [16]byte{}),
	}
	r := request[*kmsg.DeleteTopicsResponse](t, admin, req)
	if r.Version < 6 {
		t.Fatalf("DeleteTopics v%d, want v6+ (topic ids)", r.Version)
	}
	// "dup" is answered once (Kafka's response is keyed by name, and
	// librdkafka refuses a topic answered twice).
	want := []int16{kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code, 0}
	if len(r.Topics) != len(want) {
		t.Fatalf("%d results for %d entries, one of them a repeat: %+v", len(r.Topics), len(want)+1, r.Topics)
	}
	for i, w := range want {
		if got := r.Topics[i].ErrorCode; got != w {
			name := "<null>"
			if r.Topics[i].Topic != nil {
				name = *r.Topics[i].Topic
			}
			t.Errorf("entry %d (%s): %v, want %v", i, name, kerr.ErrorForCode(got), kerr.ErrorForCode(w))
		}
	}
	for name, kept := range map[string]bool{"dup": true, "both": true, "byid": false, "ok": false} {
		if exists(name) != kept {
			t.Errorf("topic %s exists: %v, want %v", name, exists(name), kept)
		}
	}

	// Before topic ids (v5): a name given twice.
	v5 := kversion.Stable()
	v5.SetMaxKeyVersion(kmsg.DeleteTopics.Int16(), 5)
	old := kmsg.NewPtrDeleteTopicsRequest()
	old.TimeoutMillis = 10000
	old.TopicNames = []string{"old-dup", "old-ok", "old-dup"}
	r = request[*kmsg.DeleteTopicsResponse](t, n.Client(kgo.MaxVersions(v5)), old)
	if r.Version != 5 || len(r.Topics) != 2 || r.Topics[0].ErrorCode != kerr.InvalidRequest.Code || r.Topics[1].ErrorCode != 0 {
		t.Fatalf("v%d with a name twice: %d results, errors %v", r.Version, len(r.Topics), deleteErrors(r))
	}
	if !exists("old-dup") || exists("old-ok") {
		t.Fatalf("after v5: old-dup exists %v (want true), old-ok exists %v (want false)", exists("old-dup"), exists("old-ok"))
	}
}

func deleteErrors(r *kmsg.DeleteTopicsResponse) []error {
	var errs []error
	for _, topic := range r.Topics {
		errs = append(errs, kerr.ErrorForCode(topic.ErrorCode))
	}
	return errs
}

// TestAdminBatchesArePerItem: CreateTopics, CreatePartitions, AlterConfigs
// and IncrementalAlterConfigs answer each item of a batch on its own, as
// Kafka does: a bad item gets its own Kafka error (never
// UNKNOWN_SERVER_ERROR) and the good ones are applied; validate_only
// answers the same and changes nothing.
func TestAdminBatchesArePerItem(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	createTopic(t, admin, "existing", 1, nil)
	createTopic(t, admin, "grow", 1, nil)
	exists := func(name string) bool {
		_, ok := n.Store.State().Topic(name)
		return ok
	}
	codes := func(got []int16) []error {
		var errs []error
		for _, c := range got {
			errs = append(errs, kerr.ErrorForCode(c))
		}
		return errs
	}
	check := func(what string, got, want []int16) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d results %v, want %d", what, len(got), codes(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: item %d: %v, want %v", what, i, kerr.ErrorForCode(got[i]), kerr.ErrorForCode(want[i]))
			}
		}
	}

	for _, validateOnly := range []bool{true, false} {
		create := kmsg.NewPtrCreateTopicsRequest()
		create.TimeoutMillis, create.ValidateOnly = 10000, validateOnly
		topic := func(name string, partitions int32, configs map[string]string) kmsg.CreateTopicsRequestTopic {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
			for k, v := range configs {
				rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: kmsg.StringPtr(v)})
			}
			return rt
		}
		create.Topics = []kmsg.CreateTopicsRequestTopic{
			topic("new-a", 2, nil),
			topic("bad-value", 1, map[string]string{"retention.ms": "soon"}),
			topic("unknown-config", 1, map[string]string{"no.such.config": "1"}),
			topic("existing", 1, nil),
			topic("too-many", 100000, nil),
			topic("bad/name", 1, nil),
			topic("twice", 1, nil),
			topic("new-b", 1, map[string]string{"cleanup.policy": "compact"}),
			topic("twice", 1, nil),
		}
		r := request[*kmsg.CreateTopicsResponse](t, admin, create)
		var got []int16
		for _, rt := range r.Topics {
			got = append(got, rt.ErrorCode)
		}
		check("CreateTopics validate_only="+map[bool]string{true: "true", false: "false"}[validateOnly], got, []int16{
			0, kerr.InvalidConfig.Code, kerr.InvalidConfig.Code, kerr.TopicAlreadyExists.Code,
			kerr.InvalidPartitions.Code, kerr.InvalidTopicException.Code,
			kerr.InvalidRequest.Code, 0, // "twice" answered once (keyed by name, as Kafka)
		})
		if exists("new-a") == validateOnly || exists("new-b") == validateOnly {
			t.Fatalf("validate_only=%v: new-a exists %v, new-b exists %v", validateOnly, exists("new-a"), exists("new-b"))
		}
		for _, name := range []string{"bad-value", "unknown-config", "too-many", "twice"} {
			if exists(name) {
				t.Fatalf("refused topic %s was created", name)
			}
		}
	}
	if p := len(mustTopic(t, n, "new-a").Partitions); p != 2 {
		t.Fatalf("new-a has %d partitions, want 2", p)
	}

	for _, validateOnly := range []bool{true, false} {
		grow := kmsg.NewPtrCreatePartitionsRequest()
		grow.TimeoutMillis, grow.ValidateOnly = 10000, validateOnly
		grow.Topics = []kmsg.CreatePartitionsRequestTopic{
			{Topic: "grow", Count: 3},
			{Topic: "missing", Count: 3},
			{Topic: "new-a", Count: 1},
			{Topic: "existing", Count: 100000},
		}
		r := request[*kmsg.CreatePartitionsResponse](t, admin, grow)
		var got []int16
		for _, rt := range r.Topics {
			got = append(got, rt.ErrorCode)
		}
		check("CreatePartitions", got, []int16{0, kerr.UnknownTopicOrPartition.Code, kerr.InvalidPartitions.Code, kerr.InvalidPartitions.Code})
		want := 3
		if validateOnly {
			want = 1
		}
		if p := len(mustTopic(t, n, "grow").Partitions); p != want {
			t.Fatalf("validate_only=%v: grow has %d partitions, want %d", validateOnly, p, want)
		}
		if p := len(mustTopic(t, n, "existing").Partitions); p != 1 {
			t.Fatalf("existing has %d partitions after a refused growth", p)
		}
	}

	for _, validateOnly := range []bool{true, false} {
		incremental := kmsg.NewPtrIncrementalAlterConfigsRequest()
		incremental.ValidateOnly = validateOnly
		resource := func(name, key, value string) kmsg.IncrementalAlterConfigsRequestResource {
			r := kmsg.NewIncrementalAlterConfigsRequestResource()
			r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, name
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Value = key, kmsg.StringPtr(value)
			r.Configs = append(r.Configs, c)
			return r
		}
		incremental.Resources = []kmsg.IncrementalAlterConfigsRequestResource{
			resource("existing", "retention.ms", "12345"),
			resource("missing", "retention.ms", "12345"),
			resource("new-b", "retention.ms", "soon"),
			resource("new-a", "retention.ms", "1"),
			resource("new-a", "retention.ms", "2"),
			resource("grow", "no.such.config", "1"),
		}
		r := request[*kmsg.IncrementalAlterConfigsResponse](t, admin, incremental)
		var got []int16
		for _, rr := range r.Resources {
			got = append(got, rr.ErrorCode)
		}
		// "new-a" appears twice, so both of its entries are refused as
		// repeated, as Kafka does.
		check("IncrementalAlterConfigs", got, []int16{0, kerr.UnknownTopicOrPartition.Code, kerr.InvalidConfig.Code,
			kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidConfig.Code})
		_, set := mustTopic(t, n, "existing").Configs["retention.ms"]
		if set == validateOnly {
			t.Fatalf("validate_only=%v: existing's retention.ms set: %v", validateOnly, set)
		}
		if len(mustTopic(t, n, "new-a").Configs) != 0 || len(mustTopic(t, n, "grow").Configs) != 0 || len(mustTopic(t, n, "new-b").Configs) != 1 {
			t.Fatalf("refused resources changed: new-a %v, grow %v, new-b %v", mustTopic(t, n, "new-a").Configs, mustTopic(t, n, "grow").Configs, mustTopic(t, n, "new-b").Configs)
		}
	}

	alter := kmsg.NewPtrAlterConfigsRequest()
	resource := func(name, key, value string) kmsg.AlterConfigsRequestResource {
		r := kmsg.NewAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, name
		r.Configs = append(r.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: key, Value: kmsg.StringPtr(value)})
		return r
	}
	alter.Resources = []kmsg.AlterConfigsRequestResource{
		resource("grow", "retention.ms", "777"),
		resource("new-a", "retention.ms", "-7"),
		resource("missing", "retention.ms", "1"),
		resource("new-b", "segment.bytes", "1"),
	}
	r := request[*kmsg.AlterConfigsResponse](t, admin, alter)
	var got []int16
	for _, rr := range r.Resources {
		got = append(got, rr.ErrorCode)
	}
	check("AlterConfigs", got, []int16{0, kerr.InvalidConfig.Code, kerr.UnknownTopicOrPartition.Code, kerr.InvalidConfig.Code})
	if v := mustTopic(t, n, "grow").Configs["retention.ms"]; v != "777" {
		t.Fatalf("grow's retention.ms %q, want 777", v)
	}
	if v := mustTopic(t, n, "new-b").Configs["cleanup.policy"]; v != "compact" {
		t.Fatalf("new-b's configs after a refused AlterConfigs: %v", mustTopic(t, n, "new-b").Configs)
	}
}

// TestAlterClientQuotasBatchIsPerEntity: one AlterClientQuotas request
// whose entities include a refused one (an unknown quota key, even next
// to a valid key of the same entity) answers INVALID_REQUEST for that
// entity only and stores the others; validate_only answers the same and
// stores nothing.
func TestAlterClientQuotasBatchIsPerEntity(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	entry := func(user string, ops ...kmsg.AlterClientQuotasRequestEntryOp) kmsg.AlterClientQuotasRequestEntry {
		e := kmsg.NewAlterClientQuotasRequestEntry()
		e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr(user)}}
		e.Ops = ops
		return e
	}
	op := func(key string, value float64) kmsg.AlterClientQuotasRequestEntryOp {
		return kmsg.AlterClientQuotasRequestEntryOp{Key: key, Value: value}
	}
	for _, validateOnly := range []bool{true, false} {
		req := kmsg.NewPtrAlterClientQuotasRequest()
		req.ValidateOnly = validateOnly
		req.Entries = []kmsg.AlterClientQuotasRequestEntry{
			entry("alice", op("producer_byte_rate", 1000)),
			entry("bob", op("producer_byte_rate", 1000), op("no_such_quota", 1)),
			entry("carol", op("consumer_byte_rate", 2000)),
		}
		r := request[*kmsg.AlterClientQuotasResponse](t, admin, req)
		if len(r.Entries) != 3 || r.Entries[0].ErrorCode != 0 || r.Entries[1].ErrorCode != kerr.InvalidRequest.Code || r.Entries[2].ErrorCode != 0 {
			var errs []error
			for _, e := range r.Entries {
				errs = append(errs, kerr.ErrorForCode(e.ErrorCode))
			}
			t.Fatalf("validate_only=%v: %v, want [nil INVALID_REQUEST nil]", validateOnly, errs)
		}
		want := 2
		if validateOnly {
			want = 0
		}
		if got := n.Store.State().ClientQuotaCount(); got != want {
			t.Fatalf("validate_only=%v: %d entities stored, want %d", validateOnly, got, want)
		}
	}
	for _, q := range n.Store.State().ClientQuotas() {
		if q.Entity.User.Name == "bob" {
			t.Fatalf("the refused entity was stored: %+v", q)
		}
	}
}

// TestDescribeLogDirsSizeIsTheLogFiles: the size DescribeLogDirs reports
// for a replica is its segment files' bytes on disk (Kafka's log size),
// and it drops when DeleteRecords removes whole segments; asking for one
// topic answers that topic only.
func TestDescribeLogDirsSizeIsTheLogFiles(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "sized", 1, map[string]string{"segment.bytes": "100"})
	createTopic(t, cl, "other", 1, nil)
	produceValues(t, cl, "sized", 10)
	produceValues(t, cl, "other", 1)
	onDisk := func() int64 {
		t.Helper()
		var total int64
		err := filepath.WalkDir(n.Dir(), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && filepath.Base(filepath.Dir(path)) == "sized-0" && strings.HasSuffix(path, ".log") {
				info, err := d.Info()
				if err != nil {
					return err
				}
				total += info.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return total
	}
	described := func() int64 {
		t.Helper()
		dirs, err := adm.DescribeBrokerLogDirs(t.Context(), 1, kadm.TopicsSet{"sized": {0: {}}})
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		partitions := 0
		dirs.Each(func(d kadm.DescribedLogDir) {
			if d.Err != nil {
				t.Fatalf("log dir %s: %v", d.Dir, d.Err)
			}
			d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
				if p.Topic != "sized" || p.Partition != 0 {
					t.Fatalf("asked for sized-0 only, got %s-%d", p.Topic, p.Partition)
				}
				size = p.Size
				partitions++
			})
		})
		if partitions != 1 {
			t.Fatalf("sized-0 described %d times", partitions)
		}
		return size
	}
	before := described()
	if want := onDisk(); before != want || want == 0 {
		t.Fatalf("DescribeLogDirs says %d bytes, the segment files hold %d", before, want)
	}
	if _, err := deleteRecords(t, adm, "sized", -1); err != nil {
		t.Fatal(err)
	}
	if after, files := described(), onDisk(); after != files || after >= before {
		t.Fatalf("after DeleteRecords: DescribeLogDirs says %d bytes, the segment files hold %d, %d before", after, files, before)
	}
}

// TestDescribeConfigsEmptyNamesListsAll: DescribeConfigs with an empty
// list of config names (not null) describes every config, as Kafka's
// ConfigHelper does, for a topic and for a broker.
func TestDescribeConfigsEmptyNamesListsAll(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "described", 1, map[string]string{"retention.ms": "60000"})
	for _, c := range []struct {
		kind kmsg.ConfigResourceType
		name string
		want string
	}{
		{kmsg.ConfigResourceTypeTopic, "described", "retention.ms"},
		{kmsg.ConfigResourceTypeBroker, "1", "num.partitions"},
	} {
		counts := map[bool]int{}
		for _, null := range []bool{true, false} {
			req := kmsg.NewPtrDescribeConfigsRequest()
			r := kmsg.NewDescribeConfigsRequestResource()
			r.ResourceType, r.ResourceName = c.kind, c.name
			if !null {
				r.ConfigNames = []string{}
			}
			req.Resources = append(req.Resources, r)
			resp := request[*kmsg.DescribeConfigsResponse](t, cl, req)
			if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
				t.Fatalf("%s %s: %+v", c.kind, c.name, resp.Resources)
			}
			found := false
			for _, entry := range resp.Resources[0].Configs {
				found = found || entry.Name == c.want
			}
			if !found {
				t.Errorf("%s %s with config names null=%v: %d configs, %s not among them", c.kind, c.name, null, len(resp.Resources[0].Configs), c.want)
			}
			counts[null] = len(resp.Resources[0].Configs)
		}
		if counts[true] != counts[false] {
			t.Errorf("%s %s: %d configs for null names, %d for an empty list", c.kind, c.name, counts[true], counts[false])
		}
	}
}

// TestDescribeConfigsBrokerSources: DescribeConfigs of a broker reports
// each config's source as Kafka does, with its synonyms in Kafka's
// precedence order when asked (v1+): a config left at its built-in default
// is DEFAULT_CONFIG and is_default; one the operator set (a serve flag:
// Config.StaticConfigs, or a topic default) is STATIC_BROKER_CONFIG, then
// its default; a dynamic one is DYNAMIC_BROKER_CONFIG or
// DYNAMIC_DEFAULT_BROKER_CONFIG and not read-only. is_default (v0 only)
// is true for DEFAULT_CONFIG. Every static broker config was
// STATIC_BROKER_CONFIG, never is_default, and none had synonyms.
func TestDescribeConfigsBrokerSources(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.NumPartitions = 3
		c.StaticConfigs = []string{"num.partitions"}
		c.TopicDefaults = topicconfig.Defaults{topicconfig.RetentionMs: "3600000"}
	})
	cl := n.Client()
	for _, alter := range []struct{ broker, name, value string }{
		{"1", "leader.replication.throttled.rate", "1024"},
		{"", "leader.replication.throttled.rate", "4096"},
		{"", "follower.replication.throttled.rate", "2048"},
	} {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: alter.broker,
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: alter.name, Value: kmsg.StringPtr(alter.value)}}}}
		if r := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0]; r.ErrorCode != 0 {
			t.Fatalf("set %s on broker %q: %v", alter.name, alter.broker, kerr.ErrorForCode(r.ErrorCode))
		}
	}
	const (
		dynamic        = kmsg.ConfigSourceDynamicBrokerConfig
		dynamicDefault = kmsg.ConfigSourceDynamicDefaultBrokerConfig
		static         = kmsg.ConfigSourceStaticBrokerConfig
		builtin        = kmsg.ConfigSourceDefaultConfig
		unlimited      = "9223372036854775807"
	)
	type synonym struct {
		value  string
		source kmsg.ConfigSource
	}
	want := map[string]struct {
		readOnly bool
		synonyms []synonym // the first is the config's value and source
	}{
		"message.max.bytes":                   {true, []synonym{{"1048588", builtin}}},
		"default.replication.factor":          {true, []synonym{{"1", builtin}}},
		"num.partitions":                      {true, []synonym{{"3", static}, {"1", builtin}}},
		"log.retention.ms":                    {true, []synonym{{"3600000", static}, {"604800000", builtin}}},
		"leader.replication.throttled.rate":   {false, []synonym{{"1024", dynamic}, {"4096", dynamicDefault}, {unlimited, builtin}}},
		"follower.replication.throttled.rate": {false, []synonym{{"2048", dynamicDefault}, {unlimited, builtin}}},
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	// A topic's configs, described by the same code, keep theirs.
	createTopic(t, cl, "sourced", 1, map[string]string{topicconfig.RetentionMs: "60000"})
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "sourced", ConfigNames: []string{topicconfig.RetentionMs}}}
	if r := request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]; r.ErrorCode != 0 || len(r.Configs) != 1 {
		t.Errorf("describe topic: %v, %d configs", kerr.ErrorForCode(r.ErrorCode), len(r.Configs))
	} else if c := r.Configs[0]; deref(c.Value) != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig || c.ReadOnly || len(c.ConfigSynonyms) != 3 ||
		c.ConfigSynonyms[1].Name != "log.retention.ms" || deref(c.ConfigSynonyms[1].Value) != "3600000" || c.ConfigSynonyms[1].Source != static ||
		deref(c.ConfigSynonyms[2].Value) != "604800000" || c.ConfigSynonyms[2].Source != builtin {
		t.Errorf("topic retention.ms: %s %v read_only %v, synonyms %+v", deref(c.Value), c.Source, c.ReadOnly, c.ConfigSynonyms)
	}

	v0 := kversion.Stable()
	v0.SetMaxKeyVersion(kmsg.DescribeConfigs.Int16(), 0)
	for _, c := range []struct {
		client          *kgo.Client
		v0              bool // is_default, no source
		includeSynonyms bool
	}{{cl, false, true}, {cl, false, false}, {n.Client(kgo.MaxVersions(v0)), true, false}} {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.IncludeSynonyms = c.includeSynonyms
		req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1", ConfigNames: names}}
		r := request[*kmsg.DescribeConfigsResponse](t, c.client, req).Resources[0]
		if r.ErrorCode != 0 || len(r.Configs) != len(want) {
			t.Fatalf("describe broker 1 (v0 %v): %v, %d configs for %d names", c.v0, kerr.ErrorForCode(r.ErrorCode), len(r.Configs), len(want))
		}
		for _, entry := range r.Configs {
			w := want[entry.Name]
			first := w.synonyms[0]
			if deref(entry.Value) != first.value || entry.ReadOnly != w.readOnly {
				t.Errorf("%s (v0 %v): value %s read_only %v, want %s read_only %v", entry.Name, c.v0, deref(entry.Value), entry.ReadOnly, first.value, w.readOnly)
			}
			if c.v0 {
				if entry.IsDefault != (first.source == builtin) {
					t.Errorf("%s (v0): is_default %v, want %v", entry.Name, entry.IsDefault, first.source == builtin)
				}
				continue
			}
			if entry.Source != first.source {
				t.Errorf("%s: source %v, want %v", entry.Name, entry.Source, first.source)
			}
			var got []synonym
			for _, s := range entry.ConfigSynonyms {
				if s.Name != entry.Name {
					t.Errorf("%s: synonym named %s", entry.Name, s.Name)
				}
				got = append(got, synonym{deref(s.Value), s.Source})
			}
			if !c.includeSynonyms {
				if len(got) != 0 {
					t.Errorf("%s: synonyms %v not asked for", entry.Name, got)
				}
				continue
			}
			if !slices.Equal(got, w.synonyms) {
				t.Errorf("%s: synonyms %v, want %v", entry.Name, got, w.synonyms)
			}
		}
	}
}

// TestCreatePartitionsLimitsTheWholeRequest: one CreatePartitions may ask
// for at most 10,000 new partitions in all, as one CreateTopics may
// create (what one request can make a broker open); the limit held per
// topic, so N topics could add N × 10,000. A topic named twice is
// answered once, as Kafka's controller answers a repeated name.
func TestCreatePartitionsLimitsTheWholeRequest(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	for _, name := range []string{"first", "second", "twice"} {
		createTopic(t, admin, name, 1, nil)
	}
	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.TimeoutMillis, grow.ValidateOnly = 10000, true
	grow.Topics = []kmsg.CreatePartitionsRequestTopic{
		{Topic: "twice", Count: 2},
		{Topic: "first", Count: 6001},
		{Topic: "twice", Count: 2},
		{Topic: "second", Count: 6001},
	}
	r := request[*kmsg.CreatePartitionsResponse](t, admin, grow)
	if len(r.Topics) != 3 {
		t.Fatalf("%d results for 3 topics, one named twice: %+v", len(r.Topics), r.Topics)
	}
	if r.Topics[0].Topic != "twice" || r.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("the repeated topic: %s %v, want twice INVALID_REQUEST", r.Topics[0].Topic, kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
	// The first 6,000 pass the limit (the broker's file descriptors may
	// still refuse them: POLICY_VIOLATION); the next 6,000 do not.
	if code := r.Topics[1].ErrorCode; code != 0 && code != kerr.PolicyViolation.Code {
		t.Fatalf("first: %v, want none or POLICY_VIOLATION", kerr.ErrorForCode(code))
	}
	if r.Topics[2].Topic != "second" || r.Topics[2].ErrorCode != kerr.InvalidPartitions.Code {
		t.Fatalf("second: %s %v, want INVALID_PARTITIONS (over the request's 10,000)", r.Topics[2].Topic, kerr.ErrorForCode(r.Topics[2].ErrorCode))
	}
	for _, name := range []string{"first", "second", "twice"} {
		if p := len(mustTopic(t, n, name).Partitions); p != 1 {
			t.Fatalf("validate_only: %s has %d partitions", name, p)
		}
	}
}
