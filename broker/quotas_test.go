package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// muteClock is a quota clock that stands still: rates are measured at
// one instant, and a muted connection waits until the test releases it.
type muteClock struct {
	now     time.Time
	waits   chan time.Duration // each mute asked for
	release chan time.Time
}

func newMuteClock() *muteClock {
	return &muteClock{now: time.UnixMilli(1_700_000_000_000), waits: make(chan time.Duration, 16), release: make(chan time.Time)}
}

func (c *muteClock) Now() time.Time { return c.now }
func (c *muteClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.release
}

func (c *muteClock) awaitMute(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not muted")
		return 0
	}
}

func setQuota(t *testing.T, n *brokertest.Node, entity metadata.QuotaEntity, key string, value float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Store.AlterClientQuotas(ctx, []metadata.QuotaAlteration{{Entity: entity, Ops: []metadata.QuotaOp{{Key: key, Value: value}}}}); err != nil {
		t.Fatal(err)
	}
}

// send writes req on the raw connection without reading a response, and
// returns the frame's size (what a produce quota counts).
func (r *rawConn) send(req kmsg.Request) int {
	r.id++
	frame := requestFrame(req, r.id)
	if _, err := r.nc.Write(frame); err != nil {
		r.t.Fatal(err)
	}
	return len(frame) - 4
}

// receive reads one response.
func (r *rawConn) receive(resp kmsg.Response, version int16) error {
	var size [4]byte
	if _, err := io.ReadFull(r.nc, size[:]); err != nil {
		return err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.nc, buf); err != nil {
		return err
	}
	resp.SetVersion(version)
	buf = buf[4:]
	if resp.IsFlexible() {
		buf = buf[1:]
	}
	return resp.ReadFrom(buf)
}

// TestQuotaMutesConnection: a produce over the user's quota is answered
// at once with Kafka's throttle time, and then the connection is muted
// for exactly that long: the next request is not read until the time has
// passed (KIP-219).
func TestQuotaMutesConnection(t *testing.T) {
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) { c.Quotas.Clock = clock })
	// 100 B/s for every user: the first request's bytes are measured
	// over the 10-s minimum window (11 samples of 1 s).
	setQuota(t, n, metadata.QuotaEntity{User: metadata.DefaultQuota}, metadata.ProducerByteRate, 100)

	raw := dialRaw(t, n.Addr)
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(7)
	produce.Acks, produce.TimeoutMillis = 1, 5000
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "no-such-topic" // the bytes count whatever becomes of them
	partition := kmsg.NewProduceRequestTopicPartition()
	partition.Records = make([]byte, 1500)
	topic.Partitions = append(topic.Partitions, partition)
	produce.Topics = append(produce.Topics, topic)
	size := raw.send(produce)
	resp := kmsg.NewPtrProduceResponse()
	if err := raw.receive(resp, 7); err != nil {
		t.Fatal(err)
	}
	// rate = size / 10 s; throttle = (rate − 100) / 100 × 10 s.
	want := time.Duration(size-1000) * 10 * time.Millisecond
	if got := time.Duration(resp.ThrottleMillis) * time.Millisecond; got != want {
		t.Fatalf("throttle_time_ms %s, want %s for a %d-byte request", got, want, size)
	}
	if mute := clock.awaitMute(t); mute != want {
		t.Fatalf("muted for %s, want %s", mute, want)
	}
	// Muted: the next request is not answered. (A negative check: it
	// cannot fail spuriously, and the mute above is what it checks.)
	raw.send(kmsg.NewPtrApiVersionsRequest())
	raw.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var one [1]byte
	if _, err := raw.nc.Read(one[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while muted: %v, want no response", err)
	}
	raw.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	clock.release <- clock.now.Add(want)
	// The byte read above is the response's first.
	rest := make([]byte, 3)
	if _, err := io.ReadFull(raw.nc, rest); err != nil {
		t.Fatalf("no response once the mute ended: %v", err)
	}
}

// TestQuotaFetchThrottledEmpty: a consumer fetch that would take the
// consumer over its quota is answered empty with a throttle time, its
// bytes not counted; fetches are capped to what the quota allows in the
// window.
func TestQuotaFetchThrottledEmpty(t *testing.T) {
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) { c.Quotas.Clock = clock })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer := n.Client(kgo.DefaultProduceTopic("metered"), kgo.AllowAutoTopicCreation())
	for range 20 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 100)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// 100 B/s for client ids without a quota of their own: 1000 B per
	// 10-s window.
	setQuota(t, n, metadata.QuotaEntity{ClientID: metadata.DefaultQuota}, metadata.ConsumerByteRate, 100)

	raw := dialRaw(t, n.Addr)
	fetch := func() *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "metered"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrFetchResponse()
		raw.send(req)
		if err := raw.receive(resp, 11); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := fetch()
	if first.ThrottleMillis != 0 || len(first.Topics) != 1 {
		t.Fatalf("first fetch: throttle %d ms, %d topics", first.ThrottleMillis, len(first.Topics))
	}
	got := len(first.Topics[0].Partitions[0].RecordBatches)
	if got == 0 || got > 1000 {
		t.Fatalf("first fetch returned %d bytes, want some, capped to the 1000 B the window allows", got)
	}
	second := fetch()
	if second.ThrottleMillis <= 0 || len(second.Topics) != 0 {
		t.Fatalf("second fetch: throttle %d ms, %d topics; want an empty throttled response", second.ThrottleMillis, len(second.Topics))
	}
	if mute := clock.awaitMute(t); mute != time.Duration(second.ThrottleMillis)*time.Millisecond {
		t.Fatalf("muted %s, throttle_time_ms %d", mute, second.ThrottleMillis)
	}
	clock.release <- clock.now
	// The throttled fetch's bytes were not counted: what is left of the
	// window still serves a small fetch (none here: the same fetch is
	// throttled by the same amount, not more).
	third := fetch()
	if third.ThrottleMillis != second.ThrottleMillis {
		t.Fatalf("third fetch throttled %d ms, second %d: the throttled fetch's bytes were counted", third.ThrottleMillis, second.ThrottleMillis)
	}
	clock.awaitMute(t)
	clock.release <- clock.now
}

// TestClientQuotasAdmin: DescribeClientQuotas and AlterClientQuotas with
// kadm: Kafka's match semantics (exact, default, any; strict), validate
// only, and Kafka's errors for what is refused.
func TestClientQuotasAdmin(t *testing.T) {
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(n.Client())
	name := func(s string) *string { return &s }
	user := func(s *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "user", Name: s}
	}
	client := func(s *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "client-id", Name: s}
	}
	set := func(entity kadm.ClientQuotaEntity, key string, value float64) kadm.AlterClientQuotaEntry {
		return kadm.AlterClientQuotaEntry{Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: value}}}
	}
	entries := []kadm.AlterClientQuotaEntry{
		set(kadm.ClientQuotaEntity{user(name("alice"))}, "producer_byte_rate", 1024),
		set(kadm.ClientQuotaEntity{user(nil)}, "producer_byte_rate", 512),
		set(kadm.ClientQuotaEntity{user(name("alice")), client(name("app"))}, "consumer_byte_rate", 2048),
		set(kadm.ClientQuotaEntity{client(nil)}, "consumer_byte_rate", 256),
	}
	// Validate only: answered, nothing stored.
	results, err := adm.ValidateAlterClientQuotas(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("validate %s: %v", r.Entity, r.Err)
		}
	}
	if count := n.Store.State().ClientQuotaCount(); count != 0 {
		t.Fatalf("validate-only stored %d entities", count)
	}
	if results, err = adm.AlterClientQuotas(ctx, entries); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("alter %s: %v", r.Entity, r.Err)
		}
	}

	refused := map[string]kadm.AlterClientQuotaEntry{
		"request_percentage": set(kadm.ClientQuotaEntity{user(name("bob"))}, "request_percentage", 50),
		"unknown key":        set(kadm.ClientQuotaEntity{user(name("bob"))}, "bytes", 50),
		"fraction":           set(kadm.ClientQuotaEntity{user(name("bob"))}, "producer_byte_rate", 10.5),
		"zero":               set(kadm.ClientQuotaEntity{user(name("bob"))}, "producer_byte_rate", 0),
		"empty user":         set(kadm.ClientQuotaEntity{user(name(""))}, "producer_byte_rate", 10),
		"ip":                 {Entity: kadm.ClientQuotaEntity{{Type: "ip", Name: name("10.0.0.1")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "connection_creation_rate", Value: 5}}},
		"unknown type":       set(kadm.ClientQuotaEntity{{Type: "group", Name: name("g")}}, "producer_byte_rate", 10),
		"user twice":         set(kadm.ClientQuotaEntity{user(name("bob")), user(name("carol"))}, "producer_byte_rate", 10),
	}
	for what, entry := range refused {
		results, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{entry})
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 1 || !errors.Is(results[0].Err, kerr.InvalidRequest) {
			t.Fatalf("%s: %+v, want INVALID_REQUEST", what, results)
		}
	}

	describe := func(strict bool, components ...kadm.DescribeClientQuotaComponent) []string {
		t.Helper()
		described, err := adm.DescribeClientQuotas(ctx, strict, components)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range described {
			out = append(out, d.Entity.String()+" "+d.Values[0].String())
		}
		sort.Strings(out)
		return out
	}
	exact := func(typ, match string) kadm.DescribeClientQuotaComponent {
		return kadm.DescribeClientQuotaComponent{Type: typ, MatchName: &match, MatchType: kmsg.QuotasMatchTypeExact}
	}
	defaultOf := func(typ string) kadm.DescribeClientQuotaComponent {
		return kadm.DescribeClientQuotaComponent{Type: typ, MatchType: kmsg.QuotasMatchTypeDefault}
	}
	anyOf := func(typ string) kadm.DescribeClientQuotaComponent {
		return kadm.DescribeClientQuotaComponent{Type: typ, MatchType: kmsg.QuotasMatchTypeAny}
	}
	const (
		alice       = "{user=alice} producer_byte_rate=1024.000000"
		userDefault = "{user=<default>} producer_byte_rate=512.000000"
		aliceApp    = "{user=alice, client-id=app} consumer_byte_rate=2048.000000"
		clientDflt  = "{client-id=<default>} consumer_byte_rate=256.000000"
	)
	for _, c := range []struct {
		strict     bool
		components []kadm.DescribeClientQuotaComponent
		want       []string
	}{
		{false, nil, []string{aliceApp, alice, clientDflt, userDefault}},
		{true, nil, nil},
		{false, []kadm.DescribeClientQuotaComponent{exact("user", "alice")}, []string{aliceApp, alice}},
		{true, []kadm.DescribeClientQuotaComponent{exact("user", "alice")}, []string{alice}},
		{false, []kadm.DescribeClientQuotaComponent{defaultOf("user")}, []string{userDefault}},
		{false, []kadm.DescribeClientQuotaComponent{anyOf("user")}, []string{aliceApp, alice, userDefault}},
		{true, []kadm.DescribeClientQuotaComponent{anyOf("user")}, []string{alice, userDefault}},
		{false, []kadm.DescribeClientQuotaComponent{anyOf("client-id")}, []string{aliceApp, clientDflt}},
		{true, []kadm.DescribeClientQuotaComponent{exact("user", "alice"), exact("client-id", "app")}, []string{aliceApp}},
		{false, []kadm.DescribeClientQuotaComponent{exact("user", "bob")}, nil},
		{false, []kadm.DescribeClientQuotaComponent{anyOf("ip")}, nil},
	} {
		if got := describe(c.strict, c.components...); !equalStrings(got, c.want) {
			t.Fatalf("describe strict=%v %+v: %q, want %q", c.strict, c.components, got, c.want)
		}
	}
	for what, components := range map[string][]kadm.DescribeClientQuotaComponent{
		"exact without a name": {{Type: "user", MatchType: kmsg.QuotasMatchTypeExact}},
		"default with a name":  {{Type: "user", MatchName: name("x"), MatchType: kmsg.QuotasMatchTypeDefault}},
		"a type twice":         {anyOf("user"), exact("user", "alice")},
		"ip with user":         {anyOf("ip"), anyOf("user")},
		"empty type":           {{Type: "", MatchType: kmsg.QuotasMatchTypeAny}},
	} {
		if _, err := adm.DescribeClientQuotas(ctx, false, components); !errors.Is(err, kerr.InvalidRequest) {
			t.Fatalf("%s: %v, want INVALID_REQUEST", what, err)
		}
	}
	if _, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{anyOf("group")}); !errors.Is(err, kerr.UnsupportedVersion) {
		t.Fatalf("unknown entity type: %v, want UNSUPPORTED_VERSION", err)
	}

	// An entry without changes is answered success, as Kafka does.
	if results, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: kadm.ClientQuotaEntity{user(name("dave"))}}}); err != nil || results[0].Err != nil {
		t.Fatalf("no ops: %v %+v", err, results)
	}
	// Removing the last key drops the entity.
	remove := kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{client(nil)}, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Remove: true}}}
	if results, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{remove}); err != nil || results[0].Err != nil {
		t.Fatalf("remove: %v %+v", err, results)
	}
	if got := describe(false, anyOf("client-id")); !equalStrings(got, []string{aliceApp}) {
		t.Fatalf("after removal: %q", got)
	}
}

// TestClientQuotasAuthorization: under an authorizer, describing quotas
// needs DESCRIBE_CONFIGS on the cluster and altering them ALTER_CONFIGS
// (Kafka's rule); without it nothing is stored.
func TestClientQuotasAuthorization(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(n.Client())
	alter := func() error {
		results, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
			Entity: kadm.ClientQuotaEntity{{Type: "user"}},
			Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 10}},
		}})
		if err != nil {
			return err
		}
		return results[0].Err
	}
	if err := alter(); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alter without ALTER_CONFIGS: %v", err)
	}
	if n.Store.State().ClientQuotaCount() != 0 {
		t.Fatal("an unauthorized alteration was stored")
	}
	if _, err := adm.DescribeClientQuotas(ctx, false, nil); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("describe without DESCRIBE_CONFIGS: %v", err)
	}
	if err := n.Store.CreateACLs(ctx, []authz.Binding{anonymousACL(authz.OpAlterConfigs, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName)}); err != nil {
		t.Fatal(err)
	}
	if err := alter(); err != nil {
		t.Fatalf("alter with ALTER_CONFIGS: %v", err)
	}
	if described, err := adm.DescribeClientQuotas(ctx, false, nil); err != nil || len(described) != 1 {
		t.Fatalf("describe with ALTER_CONFIGS (implies DESCRIBE_CONFIGS): %v %+v", err, described)
	}
}

// equalStrings compares as sets of lines.
func equalStrings(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// throttleHook records the throttle times a franz-go client is given.
type throttleHook struct{ throttles chan time.Duration }

func (h throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.throttles <- d
}

// TestQuotaUserIsAuthenticatedPrincipal: a user quota applies to the
// principal a SASL client authenticated as, and to no other.
func TestQuotaUserIsAuthenticatedPrincipal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice:alice-secret\nbob:bob-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := authn.LoadPlainUsers(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.PlainUsers = users
		c.Quotas.Clock = clock
	})
	setQuota(t, n, metadata.QuotaEntity{User: metadata.NamedQuota("alice")}, metadata.ProducerByteRate, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(user, password string) throttleHook {
		t.Helper()
		hook := throttleHook{throttles: make(chan time.Duration, 16)}
		cl := n.Client(kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()), kgo.AllowAutoTopicCreation(), kgo.WithHooks(hook),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		// 5000 B uncompressed: 500 B/s over the 10-s window.
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "metered", Value: make([]byte, 5000)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return hook
	}
	bob := produce("bob", "bob-secret")
	select {
	case d := <-bob.throttles:
		t.Fatalf("bob, without a quota, throttled %s", d)
	case d := <-clock.waits:
		t.Fatalf("bob's connection muted for %s", d)
	default:
	}
	alice := produce("alice", "alice-secret")
	select {
	case d := <-alice.throttles:
		if d <= 0 {
			t.Fatalf("alice throttled %s", d)
		}
	case <-ctx.Done():
		t.Fatal("alice, over her quota, was not throttled")
	}
	clock.awaitMute(t)
	close(clock.release)
}

// TestQuotaFetchCapsMinBytes: a consumer whose quota caps its fetch below
// its fetch.min.bytes is answered as soon as the capped fetch is full, as
// Kafka caps min bytes to the fetch's max bytes; otherwise it could never
// reach min bytes and every fetch would wait its whole max wait.
func TestQuotaFetchCapsMinBytes(t *testing.T) {
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) { c.Quotas.Clock = clock })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer := n.Client(kgo.DefaultProduceTopic("metered"), kgo.AllowAutoTopicCreation())
	for range 20 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 100)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	raw := dialRaw(t, n.Addr)
	fetch := func(minBytes int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
		req.MinBytes, req.MaxWaitMillis = minBytes, 3_600_000
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "metered"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		raw.send(req)
		raw.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang guard, not a measure: the answer is due at once
		resp := kmsg.NewPtrFetchResponse()
		if err := raw.receive(resp, 11); err != nil {
			t.Fatalf("no answer to a fetch of min bytes %d: %v", minBytes, err)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("answered %+v, want the topic", resp)
		}
		return resp
	}
	// The batches are all of one size (no quota yet: nothing counted).
	all := fetch(1).Topics[0].Partitions[0].RecordBatches
	size := int(binary.BigEndian.Uint32(all[8:12])) + 12
	if len(all) != 20*size {
		t.Fatalf("fetched %d bytes, want 20 batches of %d", len(all), size)
	}
	// A quota of one batch per second caps fetches to the 10 batches of
	// the 10-s window, far below min bytes; they are the quota exactly,
	// so the fetch is not throttled.
	setQuota(t, n, metadata.QuotaEntity{ClientID: metadata.DefaultQuota}, metadata.ConsumerByteRate, float64(size))
	resp := fetch(1 << 20)
	if got := len(resp.Topics[0].Partitions[0].RecordBatches); got != 10*size || resp.ThrottleMillis != 0 {
		t.Fatalf("fetched %d bytes, throttle %d ms; want the %d bytes the quota allows, unthrottled", got, resp.ThrottleMillis, 10*size)
	}
}
