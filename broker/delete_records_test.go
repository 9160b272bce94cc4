package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// produceValues writes n one-record batches to topic partition 0.
func produceValues(t *testing.T, cl *kgo.Client, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// deleteRecords asks kadm's DeleteRecords for topic-0 before offset and
// returns the low watermark and the error.
func deleteRecords(t *testing.T, adm *kadm.Client, topic string, offset int64) (int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offsets := kadm.Offsets{}
	offsets.AddOffset(topic, 0, offset, -1)
	resp, err := adm.DeleteRecords(ctx, offsets)
	if err != nil {
		return -1, err // kadm's metadata lookup: an unknown topic
	}
	r, _ := resp.Lookup(topic, 0)
	return r.LowWatermark, r.Err
}

// earliest is ListOffsets EARLIEST of topic-0.
func earliest(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	listed, err := adm.ListStartOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := listed.Lookup(topic, 0)
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	return o.Offset
}

// fetchAt is a consumer's Fetch of topic-0 at offset: its error code and
// log start offset.
func fetchAt(t *testing.T, n *brokertest.Node, cl *kgo.Client, topic string, offset int64) (int16, int64) {
	t.Helper()
	described, _ := n.Store.State().Topic(topic)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes = -1, 1<<20
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes = offset, 1<<20
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: topic, TopicID: described.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	resp := request[*kmsg.FetchResponse](t, cl, fetch)
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.LogStartOffset
}

// TestDeleteRecordsLocal: kadm's DeleteRecords moves the log start (the
// low watermark answered), ListOffsets EARLIEST and a consumer's Fetch
// below it (OFFSET_OUT_OF_RANGE) follow, the log start survives a restart,
// and Kafka's refusals hold: past the high watermark OFFSET_OUT_OF_RANGE,
// a compacted topic POLICY_VIOLATION, an unknown topic
// UNKNOWN_TOPIC_OR_PARTITION.
func TestDeleteRecordsLocal(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "purge", 1, map[string]string{"segment.bytes": "100"})
	createTopic(t, cl, "compacted", 1, map[string]string{"cleanup.policy": "compact"})
	produceValues(t, cl, "purge", 10)
	produceValues(t, cl, "compacted", 2)

	if low, err := deleteRecords(t, adm, "purge", 4); err != nil || low != 4 {
		t.Fatalf("DeleteRecords before 4: low watermark %d, %v", low, err)
	}
	if got := earliest(t, adm, "purge"); got != 4 {
		t.Fatalf("earliest offset %d after DeleteRecords, want 4", got)
	}
	if code, start := fetchAt(t, n, cl, "purge", 2); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below the log start: %v (log start %d)", kerr.ErrorForCode(code), start)
	}
	if code, start := fetchAt(t, n, cl, "purge", 4); code != 0 || start != 4 {
		t.Fatalf("fetch at the log start: %v, log start %d", kerr.ErrorForCode(code), start)
	}
	for _, c := range []struct {
		topic  string
		offset int64
		want   error
	}{
		{"purge", 11, kerr.OffsetOutOfRange},
		{"compacted", 1, kerr.PolicyViolation},
		{"missing", 1, kerr.UnknownTopicOrPartition},
	} {
		if _, err := deleteRecords(t, adm, c.topic, c.offset); !errors.Is(err, c.want) {
			t.Errorf("DeleteRecords %s before %d: %v, want %v", c.topic, c.offset, err, c.want)
		}
	}

	n.Restart()
	cl = n.Client()
	adm = kadm.NewClient(cl)
	leadingTopic(t, n, "purge")
	if got := earliest(t, adm, "purge"); got != 4 {
		t.Fatalf("earliest offset %d after a restart, want 4", got)
	}
	if got := listSpecialOffset(t, cl, "purge", -6); got != -1 {
		t.Fatalf("earliest pending upload of a topic not tiered: %d, want -1", got)
	}
	// -1: everything up to the high watermark (Kafka Streams' purge).
	if low, err := deleteRecords(t, adm, "purge", -1); err != nil || low != 10 {
		t.Fatalf("DeleteRecords to the high watermark: low watermark %d, %v", low, err)
	}
}

// listSpecialOffset is ListOffsets (the newest version, v11) of topic-0 at the
// special timestamp ts.
func listSpecialOffset(t *testing.T, cl *kgo.Client, topic string, ts int64) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ListOffsetsResponse](t, cl, req)
	if resp.Version != 11 {
		t.Fatalf("ListOffsets sent as v%d, want v11", resp.Version)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("ListOffsets %d: %v", ts, kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

// topicMetric is the value of the gauge or counter name for topic in
// registry (0 when absent).
func topicMetric(t *testing.T, registry *prometheus.Registry, name, topic string) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, label := range m.GetLabel() {
				if label.GetName() == "topic" && label.GetValue() == topic {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// leadingTopic waits until the node leads topic-0 and returns its replica.
func leadingTopic(t *testing.T, n *brokertest.Node, topic string) *partition.Partition {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p := n.Server.OpenPartition(topic, 0); p != nil && p.Leading() {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s-0 not led by the node", topic)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bumpLeaderEpoch bumps topic-0's leader epoch (same leader, same ISR) and
// waits until the node's replica p is in the new term.
func bumpLeaderEpoch(ctx context.Context, t *testing.T, n *brokertest.Node, topic string, p *partition.Partition) {
	t.Helper()
	current, _ := n.Store.State().Topic(topic)
	if _, err := n.Store.ChangePartition(ctx, metadata.PartitionChange{TopicID: current.ID, Partition: 0,
		PartitionEpoch: current.Partitions[0].PartitionEpoch, Leader: metadata.NoLeaderChange,
		ISR: current.Partitions[0].ISR, BumpLeaderEpoch: true}); err != nil {
		t.Fatal(err)
	}
	for p.LeaderEpoch() <= current.Partitions[0].LeaderEpoch {
		if ctx.Err() != nil {
			t.Fatal("the leader epoch never moved")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeleteRecordsTiered: on a tiered partition whose oldest records are
// only in the object store, DeleteRecords commits the log start to the
// quorum: ListOffsets EARLIEST and Fetch follow it at once (the remote
// records below it are hidden), the tier manager deletes the tiered
// segments entirely below it, and the log start survives a restart.
func TestDeleteRecordsTiered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	registry := prometheus.NewRegistry()
	var registerer prometheus.Registerer = registry // nil after the restart: registered once
	n := startTiered(t, tier, func(c *broker.Config) {
		c.Registerer = registerer
	})
	cl := n.Client()
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "tiered", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "200", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "tiered")
	produceValues(t, cl, "tiered", 30)

	stop := startTierManager(t, ctx, n, tier)
	defer func() { stop() }()
	for p.LogStartOffset() < 10 {
		if ctx.Err() != nil {
			t.Fatalf("the oldest segments never left the local log (local log start %d)", p.LogStartOffset())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := earliest(t, adm, "tiered"); got != 0 {
		t.Fatalf("earliest offset %d before DeleteRecords, want 0 (in the object store)", got)
	}
	// DescribeLogDirs has no field for tiered bytes: the metrics have them.
	for _, name := range []string{"strata_log_size_bytes", "strata_remote_log_size_bytes"} {
		if got := topicMetric(t, registry, name, "tiered"); got <= 0 {
			t.Fatalf("%s{topic=tiered} = %v, want the partition's bytes", name, got)
		}
	}
	// The tier manager may commit another upload meanwhile: compare with
	// a remote log end that did not move across the request.
	for {
		_, remoteEnd, _ := n.Store.State().RemoteLogOffsets(p.TopicID(), 0)
		got := listSpecialOffset(t, cl, "tiered", -6)
		if _, after, _ := n.Store.State().RemoteLogOffsets(p.TopicID(), 0); after != remoteEnd {
			if ctx.Err() != nil {
				t.Fatal("the remote log end kept moving")
			}
			continue
		}
		if got != remoteEnd+1 {
			t.Fatalf("earliest pending upload %d, want %d (after the remote log end)", got, remoteEnd+1)
		}
		break
	}
	target := p.LogStartOffset() - 3 // inside the remote data
	if low, err := deleteRecords(t, adm, "tiered", target); err != nil || low != target {
		t.Fatalf("DeleteRecords before %d: low watermark %d, %v", target, low, err)
	}
	if got := earliest(t, adm, "tiered"); got != target {
		t.Fatalf("earliest offset %d after DeleteRecords, want %d", got, target)
	}
	if code, _ := fetchAt(t, n, cl, "tiered", 0); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below the log start: %v", kerr.ErrorForCode(code))
	}
	if code, start := fetchAt(t, n, cl, "tiered", target); code != 0 || start != target {
		t.Fatalf("fetch at the log start (remote): %v, log start %d", kerr.ErrorForCode(code), start)
	}
	topicID := p.TopicID()
	below := func(state *metadata.State) (count int) {
		state.EachSegment(topicID, 0, 0, func(e metadata.SegmentManifest) bool {
			if e.LastOffset < target {
				count++
			}
			return true
		})
		return count
	}
	for below(n.Store.State()) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("%d tiered segments below the log start %d were never deleted", below(n.Store.State()), target)
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop()
	registerer = nil
	n.Restart()
	stop = startTierManager(t, ctx, n, tier)
	adm = kadm.NewClient(n.Client())
	leadingTopic(t, n, "tiered")
	if got := earliest(t, adm, "tiered"); got != target {
		t.Fatalf("earliest offset %d after a restart, want %d", got, target)
	}
}

// TestListOffsetsTimestampAfterDeleteRecordsInsideABatch: after
// DeleteRecords to an offset inside a batch, ListOffsets by timestamp
// answers no record below the log start, as Kafka (which searches from the
// log start): the first record at or after it whose timestamp reaches the
// one asked, with that record's timestamp, in the local log and in a
// remote segment alike. (It answered the deleted record, below the log
// start, from the local log, and the log start with the deleted record's
// timestamp from a remote segment.)
func TestListOffsetsTimestampAfterDeleteRecordsInsideABatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	cl := n.Client()
	adm := kadm.NewClient(cl)
	base := time.Now().Add(-time.Hour).UnixMilli()
	// One batch of ten records, offsets 0-9 stamped base + offset seconds,
	// then single records that roll the segment after it.
	appendTen := func(p *partition.Partition) {
		t.Helper()
		var records []recordbatch.Record
		for i := range 10 {
			records = append(records, recordbatch.Record{Value: []byte("v"), Timestamp: base + int64(i)*1000})
		}
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Append(batch, 9, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	list := func(topic string, timestamp int64) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, timestamp, -1
		req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
		return request[*kmsg.ListOffsetsResponse](t, cl, req).Topics[0].Partitions[0]
	}
	for _, c := range []struct {
		topic   string
		configs map[string]string
	}{
		{"local", nil},
		{"remote", map[string]string{"remote.storage.enable": "true", "segment.bytes": "300", "local.retention.bytes": "1"}},
	} {
		createTopic(t, cl, c.topic, 1, c.configs)
		p := leadingTopic(t, n, c.topic)
		appendTen(p)
		if c.configs != nil {
			produceValues(t, cl, c.topic, 6)
			stop := startTierManager(t, ctx, n, tier)
			waitLocalLogStart(t, ctx, p, 9, "the batch of ten")
			stop()
		}
		for p.HighWatermark() < 10 {
			if ctx.Err() != nil {
				t.Fatalf("%s: high watermark %d, want 10", c.topic, p.HighWatermark())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if low, err := deleteRecords(t, adm, c.topic, 5); err != nil || low != 5 {
			t.Fatalf("%s: DeleteRecords before 5: low watermark %d, %v", c.topic, low, err)
		}
		for _, ts := range []int64{base, base + 2000, base + 5000} {
			if got := list(c.topic, ts); got.ErrorCode != 0 || got.Offset != 5 || got.Timestamp != base+5000 {
				t.Errorf("%s: ListOffsets at timestamp base+%d ms: offset %d timestamp base+%d ms, error %d; want offset 5 at base+5000 ms",
					c.topic, ts-base, got.Offset, got.Timestamp-base, got.ErrorCode)
			}
		}
		if got := list(c.topic, base+7000); got.ErrorCode != 0 || got.Offset != 7 || got.Timestamp != base+7000 {
			t.Errorf("%s: ListOffsets at timestamp base+7000 ms: offset %d timestamp base+%d ms, error %d; want offset 7", c.topic, got.Offset, got.Timestamp-base, got.ErrorCode)
		}
	}
}

// TestDeleteRecordsRetriedAfterTheQuorumCommit: a DeleteRecords whose
// commit of the log start to the quorum outlived the request (answered
// REQUEST_TIMED_OUT, committed after) or whose leader lost its leadership
// right after the commit leaves the quorum's log start above the leader's
// local log start. The client's retry still moves the local log start:
// no record below the log start stays on the leader's disk, and
// ListOffsets EARLIEST_LOCAL (-4) is never below EARLIEST, as in Kafka,
// whose local log start never is below its log start. (The retry answered
// at once from the quorum's log start, and the local log kept its records
// below it.)
func TestDeleteRecordsRetriedAfterTheQuorumCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startTiered(t, memoryTier(t))
	cl := n.Client()
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "retried", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "200"})
	p := leadingTopic(t, n, "retried")
	produceValues(t, cl, "retried", 20)
	// The first request's commit, its local move never made.
	if _, err := n.Store.SetLogStartOffset(ctx, p.TopicID(), 0, p.LeaderEpoch(), 12); err != nil {
		t.Fatal(err)
	}
	if low, err := deleteRecords(t, adm, "retried", 12); err != nil || low != 12 {
		t.Fatalf("DeleteRecords before 12, retried: low watermark %d, %v", low, err)
	}
	if got := p.LogStartOffset(); got != 12 {
		t.Errorf("local log start %d after the retried DeleteRecords, want 12", got)
	}
	if got := listSpecialOffset(t, cl, "retried", -4); got != 12 {
		t.Errorf("earliest local offset %d after the retried DeleteRecords, want 12 (earliest: %d)", got, earliest(t, adm, "retried"))
	}
}

// TestNewLeaderLocalLogStartFollowsTheQuorum: a replica that missed a
// DeleteRecords (down, or out of the ISR, when its leader moved the log
// start, or its leader lost the partition right after the quorum commit)
// starts a term with its local log start below the log start committed in
// the quorum. Its local log start moves up to it when the term starts: no
// record below the log start stays on its disk, and ListOffsets
// EARLIEST_LOCAL (-4) is never below EARLIEST, as in Kafka, whose local log
// start never is below its log start.
func TestNewLeaderLocalLogStartFollowsTheQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startTiered(t, memoryTier(t))
	cl := n.Client()
	createTopic(t, cl, "elected", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "200"})
	p := leadingTopic(t, n, "elected")
	produceValues(t, cl, "elected", 20)
	// The previous term's commit, its local move never made here.
	if _, err := n.Store.SetLogStartOffset(ctx, p.TopicID(), 0, p.LeaderEpoch(), 12); err != nil {
		t.Fatal(err)
	}
	bumpLeaderEpoch(ctx, t, n, "elected", p)
	// The epoch moves inside the term's start, which holds the partition's
	// append lock; LowWatermark takes it: the start is over once it returns.
	p.LowWatermark()
	if got := p.LogStartOffset(); got != 12 {
		t.Errorf("local log start %d in the new term, want 12", got)
	}
	if got := listSpecialOffset(t, cl, "elected", -4); got != 12 {
		t.Errorf("earliest local offset %d in the new term, want 12 (earliest: %d)", got, earliest(t, kadm.NewClient(cl), "elected"))
	}
}

// TestListOffsetsByTimestampNotBelowQuorumLogStart: on a tiered partition
// whose local log start lags the log start committed in the quorum (a
// DeleteRecords whose commit outlived its request, REQUEST_TIMED_OUT, and
// was not retried yet; the tier manager's next pass closes the gap),
// ListOffsets by timestamp answers no record below the log start (EARLIEST),
// as in Kafka: a consumer seeking there would be OFFSET_OUT_OF_RANGE.
func TestListOffsetsByTimestampNotBelowQuorumLogStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startTiered(t, memoryTier(t))
	cl := n.Client()
	createTopic(t, cl, "lagging", 1, map[string]string{"remote.storage.enable": "true"})
	p := leadingTopic(t, n, "lagging")
	before := time.Now().Add(-time.Second).UnixMilli()
	produceValues(t, cl, "lagging", 20)
	if _, err := n.Store.SetLogStartOffset(ctx, p.TopicID(), 0, p.LeaderEpoch(), 12); err != nil {
		t.Fatal(err)
	}
	if got := listSpecialOffset(t, cl, "lagging", -2); got != 12 {
		t.Fatalf("earliest offset %d, want 12", got)
	}
	if got := listSpecialOffset(t, cl, "lagging", before); got != 12 {
		t.Errorf("offset for a timestamp before every record %d, want the log start 12", got)
	}
	if got := listSpecialOffset(t, cl, "lagging", -3); got >= 0 && got < 12 {
		t.Errorf("offset of the max timestamp %d, below the log start 12", got)
	}
	if got := listSpecialOffset(t, cl, "lagging", -4); got != 12 {
		t.Errorf("earliest local offset %d, want the log start 12 (never below EARLIEST)", got)
	}
}

// TestNewLeaderBehindTheQuorumLogStart: a replica elected with its log
// ending below the log start committed in the quorum (it missed the
// records and the DeleteRecords: an unclean election) restarts its log at
// the log start when its term starts, as Kafka's log is truncated fully
// when its log start passes its end. Its high watermark is the log start:
// ListOffsets LATEST is not below EARLIEST, a Fetch at the log start
// answers a high watermark and last stable offset not below its log start
// (clients compute lag as high watermark − position), OffsetForLeaderEpoch
// of the previous epoch answers no end below the log start, and the term's
// first produce lands at the log start, readable — not below it, where no
// consumer could ever fetch it.
func TestNewLeaderBehindTheQuorumLogStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startTiered(t, memoryTier(t))
	cl := n.Client()
	createTopic(t, cl, "behind", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "200"})
	p := leadingTopic(t, n, "behind")
	produceValues(t, cl, "behind", 20)
	previous := p.LeaderEpoch()
	// An earlier leader's commit, past this replica's log end.
	if _, err := n.Store.SetLogStartOffset(ctx, p.TopicID(), 0, previous, 25); err != nil {
		t.Fatal(err)
	}
	bumpLeaderEpoch(ctx, t, n, "behind", p)
	p.LowWatermark() // the term's start is over once the append lock is free

	if latest, first := listSpecialOffset(t, cl, "behind", -1), listSpecialOffset(t, cl, "behind", -2); latest != 25 || first != 25 {
		t.Errorf("ListOffsets LATEST %d, EARLIEST %d; want 25 and 25", latest, first)
	}
	fetched := func(when string, wantHighWatermark int64) {
		t.Helper()
		described, _ := n.Store.State().Topic("behind")
		fetch := kmsg.NewPtrFetchRequest()
		fetch.ReplicaID, fetch.MaxBytes, fetch.IsolationLevel = -1, 1<<20, 1
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes = 25, 1<<20
		fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "behind", TopicID: described.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
		got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
		if got.ErrorCode != 0 || got.LogStartOffset != 25 || got.HighWatermark != wantHighWatermark || got.LastStableOffset != wantHighWatermark {
			t.Errorf("%s: Fetch at 25: %v, log start %d, high watermark %d, last stable offset %d; want log start 25, both %d",
				when, kerr.ErrorForCode(got.ErrorCode), got.LogStartOffset, got.HighWatermark, got.LastStableOffset, wantHighWatermark)
		}
	}
	fetched("in the new term", 25)

	epochs := kmsg.NewPtrOffsetForLeaderEpochRequest()
	et := kmsg.NewOffsetForLeaderEpochRequestTopic()
	et.Topic = "behind"
	ep := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	ep.CurrentLeaderEpoch, ep.LeaderEpoch = -1, previous
	et.Partitions = append(et.Partitions, ep)
	epochs.Topics = append(epochs.Topics, et)
	if got := request[*kmsg.OffsetForLeaderEpochResponse](t, cl, epochs).Topics[0].Partitions[0]; got.ErrorCode != 0 || got.EndOffset < 25 {
		t.Errorf("OffsetForLeaderEpoch of the previous epoch %d: %v, epoch %d, end offset %d; want no end below the log start 25",
			previous, kerr.ErrorForCode(got.ErrorCode), got.LeaderEpoch, got.EndOffset)
	}

	r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: "behind", Value: []byte("after")}).First()
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset != 25 {
		t.Errorf("the term's first produce went to offset %d, want the log start 25", r.Offset)
	}
	fetched("after a produce", 26)
}
