//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupBrokerFlags start a broker whose groups form quickly.
var groupBrokerFlags = []string{"--group-initial-rebalance-delay-ms", "300", "--offsets-topic-num-partitions", "10"}

// groupMember is one franz-go group consumer that commits what it polled
// before it lets a rebalance happen, so nothing it consumed is handed to
// another member uncommitted.
type groupMember struct {
	name string
	cl   *kgo.Client

	mu       sync.Mutex
	assigned map[int32]bool
	consumed []*kgo.Record
}

func newGroupMember(t *testing.T, addr, groupID, topic, name string) *groupMember {
	m := &groupMember{name: name, assigned: map[int32]bool{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID(name),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.FetchMaxWait(300*time.Millisecond),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	return m
}

// run polls, records and commits until ctx ends.
func (m *groupMember) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		fetches := m.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			m.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Errorf("%s: fetch %s[%d]: %v", m.name, topic, p, err)
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			if err := m.cl.CommitRecords(context.Background(), recs...); err != nil {
				t.Errorf("%s: commit: %v", m.name, err)
			}
			m.mu.Lock()
			m.consumed = append(m.consumed, recs...)
			m.mu.Unlock()
		}
		m.cl.AllowRebalance()
	}
}

func (m *groupMember) assignment() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *groupMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.consumed)
}

// waitFor polls cond until it holds or the bounded wait ends.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func produceSpread(t *testing.T, cl *kgo.Client, topic string, partitions int32, prefix string, n int) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(fmt.Sprintf("%s-%d", prefix, i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// TestGroupFranzGoMembers: two franz-go members share a 6-partition topic:
// the partitions are split between them, every record is consumed once and
// committed; when one leaves, the other takes over all partitions and
// resumes from the committed offsets.
func TestGroupFranzGoMembers(t *testing.T) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	const parts = 6
	createTopic(t, b.addr, topic, parts, nil)
	groupID := "g-" + topic
	m1 := newGroupMember(t, b.addr, groupID, topic, "m1")
	defer m1.cl.Close()
	m2 := newGroupMember(t, b.addr, groupID, topic, "m2")
	ctx1, stop1 := context.WithCancel(context.Background())
	ctx2, stop2 := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m1.run(ctx1, t) }()
	go func() { defer wg.Done(); m2.run(ctx2, t) }()
	defer func() { stop1(); stop2(); wg.Wait() }()

	waitFor(t, 30*time.Second, "both members to own partitions", func() bool {
		a1, a2 := m1.assignment(), m2.assignment()
		return len(a1) > 0 && len(a2) > 0 && len(a1)+len(a2) == parts
	})
	a1, a2 := m1.assignment(), m2.assignment()
	seen := map[int32]bool{}
	for _, p := range append(append([]int32{}, a1...), a2...) {
		if seen[p] {
			t.Fatalf("partition %d assigned to both members: m1 %v m2 %v", p, a1, a2)
		}
		seen[p] = true
	}
	t.Logf("assignment: m1 %v, m2 %v", a1, a2)

	producer := newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, parts, "a", 600)
	waitFor(t, 30*time.Second, "600 records consumed", func() bool { return m1.count()+m2.count() >= 600 })
	for _, m := range []*groupMember{m1, m2} {
		own := map[int32]bool{}
		for _, p := range m.assignment() {
			own[p] = true
		}
		m.mu.Lock()
		for _, r := range m.consumed {
			if !own[r.Partition] {
				t.Errorf("%s consumed partition %d it does not own", m.name, r.Partition)
			}
		}
		m.mu.Unlock()
	}

	// m2 leaves the group: m1 takes over every partition.
	stop2()
	m2.cl.Close()
	waitFor(t, 30*time.Second, "m1 to own all partitions", func() bool { return len(m1.assignment()) == parts })
	produceSpread(t, producer, topic, parts, "b", 600)
	waitFor(t, 30*time.Second, "1200 records consumed", func() bool { return m1.count()+m2.count() >= 1200 })
	stop1()
	wg.Wait()

	counts := map[string]int{}
	for _, m := range []*groupMember{m1, m2} {
		for _, r := range m.consumed {
			counts[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
		}
	}
	dups := 0
	for _, n := range counts {
		dups += n - 1
	}
	if len(counts) != 1200 || dups != 0 {
		t.Fatalf("consumed %d distinct records with %d duplicates, want 1200 and 0", len(counts), dups)
	}
	t.Logf("m1 consumed %d, m2 consumed %d", m1.count(), m2.count())

	adm := kadm.NewClient(newClient(t, b.addr))
	offsets, err := adm.FetchOffsets(testContext(t, 20*time.Second), groupID)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < parts; p++ {
		o, ok := offsets.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != 200 {
			t.Errorf("committed offset of partition %d: %+v (found %v), want 200", p, o, ok)
		}
	}
}

// TestGroupOffsetsSurviveRestart: offsets committed by a group are records
// in __consumer_offsets in Kafka's schema; after a clean broker restart they
// are back and a new member resumes after them; after a kill -9 too.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 3, nil)
	groupID := "g-restart-" + topic
	producer := newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, 3, "first", 300)

	m := newGroupMember(t, b.addr, groupID, topic, "before")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx, t) }()
	waitFor(t, 30*time.Second, "300 records consumed", func() bool { return m.count() >= 300 })
	stop()
	<-done
	m.cl.Close()
	producer.Close()

	// The commits are readable straight from __consumer_offsets.
	raw := newClient(t, b.addr, kgo.ConsumeTopics("__consumer_offsets"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	found := map[int32]int64{}
	rctx := testContext(t, 20*time.Second)
	for len(found) < 3 && rctx.Err() == nil {
		raw.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			if len(r.Key) < 2 || r.Key[1] > 1 || r.Key[0] != 0 {
				return
			}
			var k kmsg.OffsetCommitKey
			var v kmsg.OffsetCommitValue
			if k.ReadFrom(r.Key) != nil || k.Group != groupID || k.Topic != topic || r.Value == nil || v.ReadFrom(r.Value) != nil {
				return
			}
			if v.Offset == 100 {
				found[k.Partition] = v.Offset
			}
		})
	}
	if len(found) != 3 {
		t.Fatalf("offset commit records in __consumer_offsets with offset 100: %v, want partitions 0-2", found)
	}
	raw.Close()

	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	b.restart(t)

	adm := kadm.NewClient(newClient(t, b.addr))
	var offsets kadm.OffsetResponses
	waitFor(t, 20*time.Second, "offsets fetchable after restart", func() bool {
		var err error
		offsets, err = adm.FetchOffsets(testContext(t, 10*time.Second), groupID)
		return err == nil
	})
	for p := int32(0); p < 3; p++ {
		if o, ok := offsets.Lookup(topic, p); !ok || o.At != 100 {
			t.Fatalf("after restart, committed offset of partition %d: %+v (found %v), want 100", p, o, ok)
		}
	}
	described, err := adm.DescribeGroups(testContext(t, 10*time.Second), groupID)
	if err != nil {
		t.Fatal(err)
	}
	if g := described[groupID]; g.Err != nil || g.State != "Empty" {
		t.Fatalf("group after restart: state %q err %v, want Empty", g.State, g.Err)
	}

	producer = newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, 3, "second", 30)
	m2 := newGroupMember(t, b.addr, groupID, topic, "after")
	defer m2.cl.Close()
	ctx2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { defer close(done2); m2.run(ctx2, t) }()
	waitFor(t, 30*time.Second, "30 new records consumed", func() bool { return m2.count() >= 30 })
	// Give it a moment to show anything it should not have read.
	time.Sleep(500 * time.Millisecond)
	stop2()
	<-done2
	if m2.count() != 30 {
		t.Fatalf("the member after restart consumed %d records, want the 30 new ones", m2.count())
	}
	for _, r := range m2.consumed {
		if r.Offset < 100 {
			t.Fatalf("the member after restart re-read %d/%d (%s)", r.Partition, r.Offset, r.Value)
		}
	}
	m2.cl.Close()

	// kill -9: the acknowledged commits (110 per partition) are back too.
	b.kill()
	b.restart(t)
	adm = kadm.NewClient(newClient(t, b.addr))
	waitFor(t, 20*time.Second, "offsets fetchable after kill -9", func() bool {
		var err error
		offsets, err = adm.FetchOffsets(testContext(t, 10*time.Second), groupID)
		return err == nil
	})
	for p := int32(0); p < 3; p++ {
		if o, ok := offsets.Lookup(topic, p); !ok || o.At != 110 {
			t.Fatalf("after kill -9, committed offset of partition %d: %+v (found %v), want 110", p, o, ok)
		}
	}
}

// TestGroupAdmin: kadm lists, describes, lags, deletes offsets and deletes
// groups.
func TestGroupAdmin(t *testing.T) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 2, nil)
	producer := newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, 2, "x", 20)
	groupID := "g-admin-" + topic
	m := newGroupMember(t, b.addr, groupID, topic, "admin-member")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx, t) }()
	waitFor(t, 30*time.Second, "20 records consumed", func() bool { return m.count() >= 20 })

	adm := kadm.NewClient(newClient(t, b.addr))
	actx := testContext(t, 30*time.Second)

	// While the member is in the group.
	listed, err := adm.ListGroups(actx, "Stable")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := listed[groupID]; !ok || g.ProtocolType != "consumer" || g.State != "Stable" {
		t.Fatalf("ListGroups(Stable): %+v", listed)
	}
	if empty, err := adm.ListGroups(actx, "Empty"); err != nil || len(empty) != 0 {
		t.Fatalf("ListGroups(Empty) while the member is in it: %v %v", empty, err)
	}
	described, err := adm.DescribeGroups(actx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	dg := described[groupID]
	if dg.Err != nil || dg.State != "Stable" || dg.Protocol != "cooperative-sticky" || len(dg.Members) != 1 || dg.Members[0].ClientID != "admin-member" {
		t.Fatalf("DescribeGroups: %+v", dg)
	}
	if ca, ok := dg.Members[0].Assigned.AsConsumer(); !ok || len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != 2 {
		t.Fatalf("member assignment: %+v", dg.Members[0].Assigned)
	}
	if _, err := adm.DeleteGroup(actx, groupID); err == nil {
		t.Fatal("DeleteGroups of a group with a member succeeded")
	}

	// Lag: nothing outstanding, then 4 records behind.
	stop()
	<-done
	m.cl.Close()
	produceSpread(t, producer, topic, 2, "y", 4)
	lags, err := adm.Lag(actx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	gl := lags[groupID]
	if gl.Error() != nil || gl.Lag.Total() != 4 {
		t.Fatalf("lag: %+v (err %v), want 4", gl.Lag, gl.Error())
	}
	if gl.State != "Empty" {
		t.Fatalf("group state after the member left: %q", gl.State)
	}

	// OffsetDelete of one partition, then DeleteGroups.
	del, err := adm.DeleteOffsets(actx, groupID, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := del.Error(); err != nil {
		t.Fatalf("DeleteOffsets: %v", err)
	}
	offsets, err := adm.FetchOffsets(actx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := offsets.Lookup(topic, 0); ok {
		t.Fatalf("partition 0 still has a committed offset after OffsetDelete: %+v", offsets)
	}
	if o, ok := offsets.Lookup(topic, 1); !ok || o.At != 10 {
		t.Fatalf("partition 1 offset: %+v %v, want 10", o, ok)
	}
	if _, err := adm.DeleteGroup(actx, groupID); err != nil {
		t.Fatalf("DeleteGroups: %v", err)
	}
	described, err = adm.DescribeGroups(actx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	if g := described[groupID]; g.State != "Dead" {
		t.Fatalf("deleted group described as %q", g.State)
	}
	offsets, err = adm.FetchOffsets(actx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(topic, 1); ok && o.At != -1 {
		t.Fatalf("deleted group still has offset %+v", o)
	}
	if listed, err := adm.ListGroups(actx); err != nil || len(listed) != 0 {
		t.Fatalf("ListGroups after delete: %v %v", listed, err)
	}
}

const confluentGroupScript = `
import sys, json, time
from confluent_kafka import Consumer
addr, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({"bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([topic])
seen = set()
deadline = time.time() + 40
while len(seen) < n and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        print("consume error: %s" % m.error(), file=sys.stderr)
        sys.exit(1)
    seen.add((m.partition(), m.offset()))
    c.commit(message=m, asynchronous=False)
c.close()
print(json.dumps({"consumed": len(seen)}))
`

const kafkaPythonGroupScript = `
import sys, json, time
from kafka import KafkaConsumer
addr, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = KafkaConsumer(topic, bootstrap_servers=addr, group_id=group, enable_auto_commit=False,
                  auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
seen = set()
deadline = time.time() + 40
while len(seen) < n and time.time() < deadline:
    for tp, msgs in c.poll(timeout_ms=500).items():
        for m in msgs:
            seen.add((m.partition, m.offset))
    c.commit()
c.close()
print(json.dumps({"consumed": len(seen)}))
`

// runPythonGroupConsumer runs a subscribing Python consumer twice against
// a 3-partition topic: the first run consumes and commits n records; the
// second, after more are produced, gets only the new ones.
func runPythonGroupConsumer(t *testing.T, script string) {
	requireTool(t, "/usr/bin/python3")
	b := startBroker(t, groupBrokerFlags...)
	path := filepath.Join(t.TempDir(), "group.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	topic := uniqueTopic(t)
	groupID := "g-" + topic
	createTopic(t, b.addr, topic, 3, nil)
	producer := newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, 3, "p", 90)
	check := func(want, total int) {
		out := runCmd(t, nil, 60*time.Second, "/usr/bin/python3", path, b.addr, topic, groupID, fmt.Sprint(want))
		var got struct{ Consumed int }
		if err := jsonUnmarshal(out, &got); err != nil {
			t.Fatalf("client output: %v\n%s", err, out)
		}
		if got.Consumed != want {
			t.Fatalf("consumed %d records, want %d", got.Consumed, want)
		}
		adm := kadm.NewClient(newClient(t, b.addr))
		offsets, err := adm.FetchOffsets(testContext(t, 10*time.Second), groupID)
		if err != nil {
			t.Fatal(err)
		}
		for p := int32(0); p < 3; p++ {
			if o, ok := offsets.Lookup(topic, p); !ok || o.At != int64(total/3) {
				t.Fatalf("committed offset of partition %d: %+v (found %v), want %d", p, o, ok, total/3)
			}
		}
	}
	check(90, 90)
	produceSpread(t, producer, topic, 3, "q", 30)
	// The second run must stop at exactly the 30 new records: were it to
	// start from the beginning it would see 120 distinct ones, and the
	// committed offsets (checked above) would not match.
	check(30, 120)
}

func TestGroupConfluentKafkaPython(t *testing.T) { runPythonGroupConsumer(t, confluentGroupScript) }

func TestGroupKafkaPython(t *testing.T) { runPythonGroupConsumer(t, kafkaPythonGroupScript) }

// TestGroupProtocolVersions drives the group and offset APIs at old and new
// versions over a raw connection, with the errors clients act on.
func TestGroupProtocolVersions(t *testing.T) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 2, nil)
	c := dialRaw(t, b.addr)
	groupID := "g-raw-" + topic

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = groupID
	if r := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse); r.ErrorCode != 0 || r.NodeID != 1 {
		t.Fatalf("FindCoordinator v0: %+v", r)
	}

	join := func(version int16, memberID string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = version
		req.Group, req.MemberID, req.ProtocolType = groupID, memberID, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 6000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("meta")}}
		return c.roundTrip(req).(*kmsg.JoinGroupResponse)
	}
	j := join(0, "")
	if j.ErrorCode != 0 || j.Generation != 1 || j.LeaderID != j.MemberID || len(j.Members) != 1 || string(j.Members[0].ProtocolMetadata) != "meta" || deref(j.Protocol) != "range" {
		t.Fatalf("JoinGroup v0: %+v", j)
	}
	member := j.MemberID

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version = 0
	sync.Group, sync.Generation, sync.MemberID = groupID, 1, member
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte("assigned")}}
	if r := c.roundTrip(sync).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "assigned" {
		t.Fatalf("SyncGroup v0: %+v", r)
	}
	hb := func(version int16, generation int32) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = version
		req.Group, req.Generation, req.MemberID = groupID, generation, member
		return c.roundTrip(req).(*kmsg.HeartbeatResponse).ErrorCode
	}
	if code := hb(0, 1); code != 0 {
		t.Fatalf("Heartbeat v0: %d", code)
	}
	if code := hb(4, 7); code != 22 { // ILLEGAL_GENERATION
		t.Fatalf("Heartbeat v4 with a wrong generation: %d, want 22", code)
	}

	commit := func(version int16, generation int32, memberID string, partition int32, offset int64) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = version
		req.Group, req.Generation, req.MemberID = groupID, generation, memberID
		meta := "m"
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: offset, Metadata: &meta, LeaderEpoch: -1}}}}
		return c.roundTrip(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(2, 1, member, 0, 5); code != 0 {
		t.Fatalf("OffsetCommit v2: %d", code)
	}
	if code := commit(1, 9, member, 0, 6); code != 22 {
		t.Fatalf("OffsetCommit v1 with a wrong generation: %d, want ILLEGAL_GENERATION", code)
	}
	if code := commit(8, 1, "nobody", 0, 6); code != 25 {
		t.Fatalf("OffsetCommit v8 from an unknown member: %d, want UNKNOWN_MEMBER_ID", code)
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 1
	fetch.Group = groupID
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0, 1}}}
	fr := c.roundTrip(fetch).(*kmsg.OffsetFetchResponse)
	if ps := fr.Topics[0].Partitions; len(ps) != 2 || ps[0].Offset != 5 || deref(ps[0].Metadata) != "m" || ps[0].ErrorCode != 0 || ps[1].Offset != -1 || ps[1].ErrorCode != 0 {
		t.Fatalf("OffsetFetch v1: %+v", fr.Topics)
	}
	multi := kmsg.NewPtrOffsetFetchRequest()
	multi.Version = 8
	multi.Groups = []kmsg.OffsetFetchRequestGroup{{Group: groupID}, {Group: "no-such-group", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}}}
	mr := c.roundTrip(multi).(*kmsg.OffsetFetchResponse)
	if len(mr.Groups) != 2 || mr.Groups[0].ErrorCode != 0 || len(mr.Groups[0].Topics) != 1 || mr.Groups[0].Topics[0].Partitions[0].Offset != 5 ||
		mr.Groups[1].ErrorCode != 0 || mr.Groups[1].Topics[0].Partitions[0].Offset != -1 || mr.Groups[1].Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetFetch v8: %+v", mr.Groups)
	}

	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Version = 0
	desc.Groups = []string{groupID, "no-such-group"}
	dr := c.roundTrip(desc).(*kmsg.DescribeGroupsResponse)
	if len(dr.Groups) != 2 || dr.Groups[0].State != "Stable" || dr.Groups[0].Protocol != "range" || len(dr.Groups[0].Members) != 1 ||
		string(dr.Groups[0].Members[0].MemberAssignment) != "assigned" || dr.Groups[1].ErrorCode != 0 || dr.Groups[1].State != "Dead" {
		t.Fatalf("DescribeGroups v0: %+v", dr.Groups)
	}
	list := func(states ...string) []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = 4
		req.StatesFilter = states
		var ids []string
		for _, g := range c.roundTrip(req).(*kmsg.ListGroupsResponse).Groups {
			ids = append(ids, g.Group+"/"+g.GroupState)
		}
		return ids
	}
	if got := list("stable"); len(got) != 1 || got[0] != groupID+"/Stable" {
		t.Fatalf("ListGroups v4 [stable]: %v", got)
	}
	if got := list("Empty"); len(got) != 0 {
		t.Fatalf("ListGroups v4 [Empty]: %v", got)
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 0
	leave.Group, leave.MemberID = groupID, member
	if r := c.roundTrip(leave).(*kmsg.LeaveGroupResponse); r.ErrorCode != 0 {
		t.Fatalf("LeaveGroup v0: %+v", r)
	}
	if code := hb(1, 1); code != 25 {
		t.Fatalf("Heartbeat after leaving: %d, want UNKNOWN_MEMBER_ID", code)
	}

	// KIP-394: JoinGroup v4+ without a member id is told to come back with one.
	j = join(4, "")
	if j.ErrorCode != 79 || j.MemberID == "" { // MEMBER_ID_REQUIRED
		t.Fatalf("JoinGroup v4 without a member id: %+v", j)
	}
	j = join(9, j.MemberID)
	if j.ErrorCode != 0 || deref(j.ProtocolType) != "consumer" || deref(j.Protocol) != "range" || j.LeaderID != j.MemberID {
		t.Fatalf("JoinGroup v9: %+v", j)
	}
	member = j.MemberID
	leave5 := kmsg.NewPtrLeaveGroupRequest()
	leave5.Version = 5
	leave5.Group = groupID
	leave5.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "nobody"}}
	lr := c.roundTrip(leave5).(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || len(lr.Members) != 2 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != 25 {
		t.Fatalf("LeaveGroup v5: %+v", lr)
	}

	// The group is Empty: commits outside membership (v0 has no
	// generation) are allowed, OffsetDelete removes one, DeleteGroups the
	// group.
	if code := commit(0, -1, "", 1, 7); code != 0 {
		t.Fatalf("OffsetCommit v0 to an empty group: %d", code)
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = groupID
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	if r := c.roundTrip(od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetDelete v0: %+v", r)
	}
	fetch.Version = 0
	fr = c.roundTrip(fetch).(*kmsg.OffsetFetchResponse)
	if ps := fr.Topics[0].Partitions; ps[0].Offset != 5 || ps[1].Offset != -1 {
		t.Fatalf("OffsetFetch v0 after OffsetDelete: %+v", ps)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{groupID}
	if r := c.roundTrip(del).(*kmsg.DeleteGroupsResponse); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("DeleteGroups v0: %+v", r)
	}
	if r := c.roundTrip(del).(*kmsg.DeleteGroupsResponse); r.Groups[0].ErrorCode != 69 { // GROUP_ID_NOT_FOUND
		t.Fatalf("DeleteGroups v0 again: %+v", r)
	}
	fr = c.roundTrip(fetch).(*kmsg.OffsetFetchResponse)
	if ps := fr.Topics[0].Partitions; ps[0].Offset != -1 {
		t.Fatalf("OffsetFetch after DeleteGroups: %+v", ps)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestGroupSessionExpiry: a member that stops heartbeating (a frozen
// consumer, here a raw-protocol member that goes silent after its
// SyncGroup) is removed when its session times out, and a franz-go member
// takes over its partitions and consumes everything.
func TestGroupSessionExpiry(t *testing.T) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	const parts = 4
	createTopic(t, b.addr, topic, parts, nil)
	groupID := "g-expiry-" + topic
	live := newGroupMember(t, b.addr, groupID, topic, "live")
	defer live.cl.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); live.run(ctx, t) }()
	defer func() { stop(); <-done }()
	waitFor(t, 30*time.Second, "the live member to own every partition", func() bool { return len(live.assignment()) == parts })

	// The frozen member joins with the same assignor, so the live leader
	// gives it partitions, then never heartbeats.
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 0
	meta.Topics = []string{topic}
	raw := dialRaw(t, b.addr)
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 3
	join.Group, join.ProtocolType = groupID, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 6000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "cooperative-sticky", Metadata: meta.AppendTo(nil)}}
	jr := raw.roundTrip(join).(*kmsg.JoinGroupResponse)
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version = 3
	sync.Group = groupID
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 3
	hb.Group = groupID
	var assigned kmsg.ConsumerMemberAssignment
	// A cooperative rebalance takes two rounds: the new member gets its
	// partitions once the live member has released them. It heartbeats
	// and rejoins until then.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if jr.ErrorCode != 0 {
			t.Fatalf("frozen member JoinGroup: %+v", jr)
		}
		sync.Generation, sync.MemberID = jr.Generation, jr.MemberID
		sr := raw.roundTrip(sync).(*kmsg.SyncGroupResponse)
		if sr.ErrorCode == 0 {
			if err := assigned.ReadFrom(sr.MemberAssignment); err != nil {
				t.Fatalf("frozen member assignment: %v", err)
			}
			if len(assigned.Topics) == 1 && len(assigned.Topics[0].Partitions) > 0 {
				break
			}
		} else if sr.ErrorCode != 27 { // REBALANCE_IN_PROGRESS
			t.Fatalf("frozen member SyncGroup: %+v", sr)
		}
		for {
			if time.Now().After(deadline) {
				t.Fatal("the frozen member got no partitions")
			}
			time.Sleep(300 * time.Millisecond)
			hb.Generation, hb.MemberID = jr.Generation, jr.MemberID
			if code := raw.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code == 27 {
				break
			} else if code != 0 {
				t.Fatalf("frozen member heartbeat: error %d", code)
			}
		}
		join.MemberID = jr.MemberID
		jr = raw.roundTrip(join).(*kmsg.JoinGroupResponse)
	}
	frozen := assigned.Topics[0].Partitions
	t.Logf("frozen member %s owns %v", jr.MemberID, frozen)
	waitFor(t, 30*time.Second, "the live member to give up the frozen member's partitions", func() bool {
		return len(live.assignment()) == parts-len(frozen)
	})

	// Records on every partition; the frozen member's are only consumed
	// once its session (6 s) expires and the live member takes over.
	producer := newClient(t, b.addr, manualPartitioner())
	produceSpread(t, producer, topic, parts, "e", 40)
	waitFor(t, 40*time.Second, "the live member to own every partition again", func() bool { return len(live.assignment()) == parts })
	waitFor(t, 30*time.Second, "all 40 records consumed", func() bool { return live.count() >= 40 })
	if live.count() != 40 {
		t.Fatalf("consumed %d records, want 40", live.count())
	}
	hb.Generation, hb.MemberID = jr.Generation, jr.MemberID
	if code := raw.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != 25 {
		t.Fatalf("the expired member's heartbeat: error %d, want UNKNOWN_MEMBER_ID", code)
	}
}
