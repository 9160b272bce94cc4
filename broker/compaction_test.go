package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/topicconfig"
)

// A cleaner that never ticks by itself: tests drive passes with cleanPartition.
func manualCleaner(c *broker.Config) { c.CleanerBackoff = time.Hour }

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	ct := kmsg.NewPtrCreateTopicsRequest()
	topic := kmsg.CreateTopicsRequestTopic{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}
	for k, v := range configs {
		topic.Configs = append(topic.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: kmsg.StringPtr(v)})
	}
	ct.Topics = []kmsg.CreateTopicsRequestTopic{topic}
	if r := request[*kmsg.CreateTopicsResponse](t, cl, ct); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic %s: %+v", name, r.Topics[0])
	}
}

func commitOffset(t *testing.T, cl *kgo.Client, groupID string, generation int32, memberID, topic string, partition int32, offset int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = groupID, generation, memberID
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: offset, LeaderEpoch: -1}}}}
	if r := request[*kmsg.OffsetCommitResponse](t, cl, req); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit %s %s-%d: %+v", groupID, topic, partition, r)
	}
}

func fetchOffset(t *testing.T, cl *kgo.Client, groupID, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = groupID
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{partition}}}
	r := request[*kmsg.OffsetFetchResponse](t, cl, req)
	if r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset fetch %s: %+v", groupID, r)
	}
	return r.Topics[0].Partitions[0].Offset
}

func describeGroup(t *testing.T, cl *kgo.Client, groupID string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{groupID}
	return request[*kmsg.DescribeGroupsResponse](t, cl, req).Groups[0]
}

// joinAndSync makes one member join groupID and become Stable. With
// topics, its metadata is a consumer's subscription to them.
func joinAndSync(t *testing.T, cl *kgo.Client, groupID string, topics ...string) (memberID string, generation int32) {
	t.Helper()
	metadata := []byte("sub")
	if len(topics) > 0 {
		subscription := kmsg.NewConsumerMemberMetadata()
		subscription.Topics = topics
		metadata = subscription.AppendTo(nil)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = groupID, "consumer", 30000, 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: metadata}}
	jr := request[*kmsg.JoinGroupResponse](t, cl, join)
	if jr.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = jr.MemberID
		jr = request[*kmsg.JoinGroupResponse](t, cl, join)
	}
	if jr.ErrorCode != 0 {
		t.Fatalf("join %s: %+v", groupID, jr)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = groupID, jr.Generation, jr.MemberID
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("a")}}
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 {
		t.Fatalf("sync %s: %+v", groupID, r)
	}
	return jr.MemberID, jr.Generation
}

// waitLoaded waits until every coordinator shard is loaded.
func waitLoaded(t *testing.T, n *brokertest.Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, all := n.Server.Groups().Shards(); all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("coordinator shards not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOffsetExpiry: offsets of a group that has been Empty for
// offsets.retention (counted from when it became Empty), and offsets of a
// member-less group not committed for that long, are removed and the groups
// deleted; a Stable group keeps its offsets; the removal survives a restart.
func TestOffsetExpiry(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 1, nil)
	retention := time.Duration(n.Server.OffsetsRetention())

	commitOffset(t, cl, "standalone", -1, "", "t", 0, 5)
	member, generation := joinAndSync(t, cl, "left")
	commitOffset(t, cl, "left", generation, member, "t", 0, 6)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "left", member
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}}
	if r := request[*kmsg.LeaveGroupResponse](t, cl, leave); r.ErrorCode != 0 || describeGroup(t, cl, "left").State != "Empty" {
		t.Fatalf("leave: %+v", r)
	}
	member, generation = joinAndSync(t, cl, "active")
	commitOffset(t, cl, "active", generation, member, "t", 0, 7)
	start := time.Now()

	n.Server.Groups().ExpireOffsets(start.Add(retention - time.Minute))
	for groupID, want := range map[string]int64{"standalone": 5, "left": 6, "active": 7} {
		if got := fetchOffset(t, cl, groupID, "t", 0); got != want {
			t.Fatalf("%s before retention: offset %d, want %d", groupID, got, want)
		}
	}

	n.Server.Groups().ExpireOffsets(start.Add(retention + time.Minute))
	check := func(when string) {
		for groupID, want := range map[string]int64{"standalone": -1, "left": -1, "active": 7} {
			if got := fetchOffset(t, cl, groupID, "t", 0); got != want {
				t.Fatalf("%s %s: offset %d, want %d", groupID, when, got, want)
			}
		}
		for _, groupID := range []string{"standalone", "left"} {
			if g := describeGroup(t, cl, groupID); g.State != "Dead" {
				t.Fatalf("expired group %s %s: %+v", groupID, when, g)
			}
		}
		if g := describeGroup(t, cl, "active"); g.State != "Stable" {
			t.Fatalf("active group %s: %+v", when, g)
		}
	}
	check("after expiry")
	cl.Close()
	n.Restart()
	cl = n.Client(offsetsByName())
	waitLoaded(t, n)
	check("after restart")
}

// TestOffsetsOfDeletedTopicRemoved: deleting a topic removes every group's
// committed offsets of it, so a re-created topic of that name starts clean.
func TestOffsetsOfDeletedTopicRemoved(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "gone", 2, nil)
	createTopic(t, cl, "kept", 1, nil)
	commitOffset(t, cl, "g", -1, "", "gone", 1, 10)
	commitOffset(t, cl, "g", -1, "", "kept", 0, 11)
	commitOffset(t, cl, "only-gone", -1, "", "gone", 0, 12)

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"gone"}
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("gone")}}
	if r := request[*kmsg.DeleteTopicsResponse](t, cl, del); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete topic: %+v", r)
	}
	createTopic(t, cl, "gone", 2, nil)
	if got := fetchOffset(t, cl, "g", "gone", 1); got != -1 {
		t.Fatalf("offset of the deleted topic: %d, want -1", got)
	}
	if got := fetchOffset(t, cl, "g", "kept", 0); got != 11 {
		t.Fatalf("offset of the other topic: %d, want 11", got)
	}
	if g := describeGroup(t, cl, "only-gone"); g.State != "Dead" {
		t.Fatalf("group left without offsets: %+v", g)
	}
}

// TestOffsetsTopicCompacted: __consumer_offsets is created compacted, and a
// cleaner pass shrinks a shard to about one record per key while the
// coordinator still replays the latest commits.
func TestOffsetsTopicCompacted(t *testing.T) {
	n := brokertest.Start(t, manualCleaner, func(c *broker.Config) { c.OffsetsTopicSegmentBytes = 2048 })
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 3, nil)
	const commits = 3000
	for i := range commits {
		commitOffset(t, cl, "g", -1, "", "t", int32(i%3), int64(i))
	}
	topic, _ := n.Store.State().Topic(group.OffsetsTopic)
	if topic.Configs[topicconfig.CleanupPolicy] != "compact" || topic.Configs[topicconfig.SegmentBytes] != "2048" {
		t.Fatalf("offsets topic configs: %v", topic.Configs)
	}
	p := n.Server.OpenPartition(group.OffsetsTopic, coordinator.Partition("g", int32(len(topic.Partitions))))
	before := p.Size()
	n.Server.CleanPartition(p)
	after := p.Size()
	t.Logf("shard log: %d bytes before the cleaner pass, %d after (%d commits)", before, after, commits)
	if after*10 > before {
		t.Fatalf("cleaner left %d of %d bytes", after, before)
	}
	cl.Close()
	n.Restart()
	cl = n.Client(offsetsByName())
	waitLoaded(t, n)
	for partition := range int32(3) {
		if got, want := fetchOffset(t, cl, "g", "t", partition), int64(commits-3)+int64(partition); got != want {
			t.Fatalf("partition %d after compaction and restart: %d, want %d", partition, got, want)
		}
	}
}

// TestCompactedTopic: a cleanup.policy=compact topic refuses records without
// a key, and after a cleaner pass serves each key's latest value at its
// original offset, without the superseded records; a tombstone stays after
// the first pass (which stamps its batch's delete horizon, KIP-534: the
// client reads the stamped batch) and goes on a pass past the horizon.
func TestCompactedTopic(t *testing.T) {
	n := brokertest.Start(t, manualCleaner)
	cl := n.Client()
	createTopic(t, cl, "c", 1, map[string]string{
		topicconfig.CleanupPolicy: "compact", topicconfig.SegmentBytes: "4096",
		topicconfig.DeleteRetentionMs: "0", topicconfig.MinCleanableDirtyRatio: "0.01",
	})
	producer, err := kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.DefaultProduceTopic("c"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); err != kerr.InvalidRecord {
		t.Fatalf("record without a key on a compacted topic: %v, want INVALID_RECORD", err)
	}
	latest := map[string]int64{} // key → offset of its latest value
	deleted := map[string]bool{}
	for i := range 600 {
		key := fmt.Sprintf("k%02d", i%40)
		r := &kgo.Record{Key: []byte(key), Value: fmt.Appendf(nil, "v%d", i)}
		if i >= 560 && i%4 == 0 {
			r.Value = nil // tombstone
		}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		latest[key], deleted[key] = r.Offset, r.Value == nil
	}
	// roll appends past the last real record so every one of them is
	// cleanable.
	roll := func() {
		for range 40 {
			if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte("filler"), Value: make([]byte, 200)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	roll()
	p := n.Server.OpenPartition("c", 0)
	before := p.Size()
	n.Server.CleanPartition(p)
	if after := p.Size(); after*3 > before {
		t.Fatalf("cleaner left %d of %d bytes", after, before)
	}

	// read consumes the partition from the start and returns each key's
	// record (filler aside).
	read := func() map[string]*kgo.Record {
		consumer, err := kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"c": {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		got := map[string]*kgo.Record{}
		var lastOffset int64 = -1
		end := p.HighWatermark()
		for lastOffset < end-1 {
			fetches := consumer.PollFetches(ctx)
			if err := fetches.Err(); err != nil {
				t.Fatal(err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				if r.Offset <= lastOffset {
					t.Fatalf("offset %d after %d", r.Offset, lastOffset)
				}
				lastOffset = r.Offset
				if string(r.Key) != "filler" {
					if previous, seen := got[string(r.Key)]; seen {
						t.Errorf("key %s read twice (offsets %d and %d)", r.Key, previous.Offset, r.Offset)
					}
					got[string(r.Key)] = r
				}
			})
		}
		return got
	}
	// check compares what read returns with each key's latest record;
	// tombstones are read when kept.
	check := func(what string, tombstonesKept bool) {
		got := read()
		for key, offset := range latest {
			r, read := got[key]
			switch {
			case deleted[key] && tombstonesKept && (!read || r.Offset != offset || r.Value != nil):
				t.Errorf("%s: tombstoned key %s: read %v, want its tombstone at %d", what, key, r, offset)
			case deleted[key] && !tombstonesKept && read:
				t.Errorf("%s: tombstoned key %s still read at %d", what, key, r.Offset)
			case !deleted[key] && (!read || r.Offset != offset):
				t.Errorf("%s: key %s read %v, want its latest offset %d", what, key, r, offset)
			}
		}
	}
	check("first pass", true)

	// delete.retention.ms is 0: the next pass (new data makes the log
	// dirty) is past the horizon.
	roll()
	n.Server.CleanPartition(p)
	check("second pass", false)
}
