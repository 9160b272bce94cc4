package broker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// listLatest asks ListOffsets latest for t-0 with cl (whose version cap
// picks the request version); it returns the offset and error code.
func listLatest(t *testing.T, cl *kgo.Client) (offset int64, code int16) {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	topic := kmsg.NewListOffsetsRequestTopic()
	topic.Topic = "t"
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Timestamp = -1
	topic.Partitions = append(topic.Partitions, p)
	req.Topics = append(req.Topics, topic)
	resp := request[*kmsg.ListOffsetsResponse](t, cl, req)
	rp := resp.Topics[0].Partitions[0]
	if resp.Version == 0 {
		if len(rp.OldStyleOffsets) > 0 {
			return rp.OldStyleOffsets[0], rp.ErrorCode
		}
		return -1, rp.ErrorCode
	}
	return rp.Offset, rp.ErrorCode
}

// leading waits until the node leads t-0 and returns its replica.
func leading(t *testing.T, n *brokertest.Node) *partition.Partition {
	t.Helper()
	return leadingTopic(t, n, "t")
}

// TestListOffsetsLatestNeverGoesBackAcrossRestart: a leader whose follower
// (broker 2, driven by hand) holds the high watermark at 2 of 3 records
// restarts; ListOffsets latest never answers below 2: the high watermark
// comes back from its checkpoint, and until it reaches the log end the
// leader restarted with (KIP-207) clients get OFFSET_NOT_AVAILABLE (v5+) or
// LEADER_NOT_AVAILABLE (older versions), then the new latest.
func TestListOffsetsLatestNeverGoesBackAcrossRestart(t *testing.T) {
	n := brokertest.Start(t)
	metadatatest.RegisterBroker(t, n.Store, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	created, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	p := leading(t, n)
	producer := n.Client(kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("t"))
	for _, v := range []string{"a", "b", "c"} {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.FollowerFetched(2, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if offset, code := listLatest(t, n.Client()); code != 0 || offset != 2 {
		t.Fatalf("before the restart: latest %d (code %d), want 2", offset, code)
	}

	// The controlled shutdown hands leadership to broker 2; the node
	// takes it back at a new epoch with broker 2 still in the ISR (as the
	// preferred-leader pass does).
	n.Restart()
	for {
		topic, _ := n.Store.State().TopicByID(created.ID)
		a := topic.Partitions[0]
		if a.Leader == metadatatest.NodeID && len(a.ISR) == 2 {
			break
		}
		// The controller's preferred-leader pass may move it at the same
		// time: then the change is stale, and the state is read again.
		_, err := n.Store.ChangePartition(ctx, metadata.PartitionChange{TopicID: created.ID, Partition: 0, PartitionEpoch: a.PartitionEpoch,
			Leader: metadatatest.NodeID, ISR: []int32{metadatatest.NodeID, 2}})
		if err != nil && !errors.Is(err, metadata.ErrStalePartitionEpoch) {
			t.Fatal(err)
		}
	}
	p = leading(t, n)
	oldVersions := kversion.Stable()
	oldVersions.SetMaxKeyVersion(kmsg.ListOffsets.Int16(), 4)
	for _, c := range []struct {
		name string
		cl   *kgo.Client
		want int16
	}{
		{"v5+", n.Client(), kerr.OffsetNotAvailable.Code},
		{"v4", n.Client(kgo.MaxVersions(oldVersions)), kerr.LeaderNotAvailable.Code},
	} {
		if offset, code := listLatest(t, c.cl); code != c.want {
			t.Fatalf("%s after the restart: latest %d (code %d), want code %d", c.name, offset, code, c.want)
		}
	}
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark after the restart %d, want the checkpointed 2", hw)
	}
	if _, err := p.FollowerFetched(2, 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	if offset, code := listLatest(t, n.Client()); code != 0 || offset != 3 {
		t.Fatalf("follower caught up: latest %d (code %d), want 3", offset, code)
	}
}

// TestListOffsetsRefusedOnAFailedLog: a leader whose log failed (an fsync
// answered EIO) answers ListOffsets KAFKA_STORAGE_ERROR, as Kafka does for
// a replica in an offline log directory, not its high watermark: that is
// frozen at what it had fsynced, while the replica the partition is handed
// to moves on. Seen in the nemesis (slow-and-failing-fsync-durable): the
// failed leader's metadata log failed too, so it went on leading the old
// epoch in its own view, and a client whose metadata came from it read a
// latest offset (1200) below the one the new leader had answered (1201).
// Before, the failed leader answered its frozen high watermark.
func TestListOffsetsRefusedOnAFailedLog(t *testing.T) {
	n := failedLogLeader(t)
	if offset, code := listLatest(t, n.Client()); code != kerr.KafkaStorageError.Code {
		t.Fatalf("after the failure: latest %d (code %d), want KAFKA_STORAGE_ERROR", offset, code)
	}
}

// TestOffsetForLeaderEpochRefusedOnAFailedLog: a leader whose log failed
// answers OffsetForLeaderEpoch KAFKA_STORAGE_ERROR too, as Kafka does for a
// replica in an offline log directory, not its epoch cache and log end:
// that end holds a record whose produce failed and which the replica the
// partition is handed to does not have, and a client validating its
// position there (KIP-320) would be told the log ends past what was ever
// committed. Before, it answered epoch 0 ending at 3.
func TestOffsetForLeaderEpochRefusedOnAFailedLog(t *testing.T) {
	n := failedLogLeader(t)
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
	rp := request[*kmsg.OffsetForLeaderEpochResponse](t, n.Client(), req).Topics[0].Partitions[0]
	if rp.ErrorCode != kerr.KafkaStorageError.Code || rp.LeaderEpoch != -1 || rp.EndOffset != -1 {
		t.Fatalf("after the failure: epoch %d ends at %d (code %d), want KAFKA_STORAGE_ERROR", rp.LeaderEpoch, rp.EndOffset, rp.ErrorCode)
	}
}

// failedLogLeader starts a node leading t-0 (flush.messages=1) with
// records 0..1 committed, whose log then failed: the fsync of a third
// record's produce answered EIO (its produce failed, the record stays in
// the log unsynced).
func failedLogLeader(t *testing.T) *brokertest.Node {
	t.Helper()
	var failing atomic.Bool
	n := brokertest.Start(t, func(c *broker.Config) {
		c.SegmentSyncFault = func(topic string, _ int32) error {
			if topic == "t" && failing.Load() {
				return syscall.EIO
			}
			return nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID}},
		Configs: map[string]string{"flush.messages": "1"}}); err != nil {
		t.Fatal(err)
	}
	p := leading(t, n)
	producer := n.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("t"), kgo.RecordRetries(0))
	for _, v := range []string{"a", "b"} {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if offset, code := listLatest(t, n.Client()); code != 0 || offset != 2 {
		t.Fatalf("before the failure: latest %d (code %d), want 2", offset, code)
	}
	failing.Store(true)
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("c")}).FirstErr(); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("produce on a failing fsync: %v, want KAFKA_STORAGE_ERROR", err)
	}
	if p.LogFailed() == nil {
		t.Fatal("the log did not fail")
	}
	return n
}
