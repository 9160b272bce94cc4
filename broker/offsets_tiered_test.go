package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestOffsetsOverTieredData: ListOffsets and OffsetForLeaderEpoch answer
// for offsets held only in the object store as Kafka does: earliest is the
// remote log start, earliest-local the local one, latest-tiered the remote
// log end, a timestamp finds its record in a remote segment, and an epoch
// whose records are all remote ends where the next epoch starts. Each
// ListOffsets answer carries Kafka's leader epoch: the current one for the
// latest, the one covering the offset for the log starts and the latest
// tiered, the found batch's for a timestamp or the max timestamp (read
// from the remote batch for a remote record), -1 when nothing is found.
func TestOffsetsOverTieredData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	createTopic(t, n.Client(), "offs", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "offs")
	base := time.Now().Add(-time.Hour).UnixMilli()
	appendAt := func(ts int64) int64 {
		t.Helper()
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Value: []byte("v"), Timestamp: ts}})
		if err != nil {
			t.Fatal(err)
		}
		offset, _, err := p.Append(batch, 9, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return offset
	}
	for i := range 10 {
		appendAt(base + int64(i)*1000)
	}
	firstEpoch := p.LeaderEpoch()
	n.Restart()
	p = leadingTopic(t, n, "offs")
	secondEpoch := p.LeaderEpoch()
	if secondEpoch == firstEpoch {
		t.Fatalf("leader epoch %d after the restart, want a new one", secondEpoch)
	}
	secondStart := p.LogEndOffset()
	for i := 10; i < 30; i++ {
		appendAt(base + int64(i)*1000)
	}
	stop := startTierManager(t, ctx, n, tier)
	waitLocalLogStart(t, ctx, p, secondStart+1, "the first epoch's records")
	waitSealedUploaded(t, ctx, n, p)
	stop()
	state := n.Store.State()
	remoteStart, remoteEnd, _ := state.RemoteLogOffsets(p.TopicID(), p.Index())
	localStart := p.LogStartOffset()

	list := func(timestamp int64) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, timestamp, -1
		req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "offs", Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
		resp := request[*kmsg.ListOffsetsResponse](t, n.Client(), req)
		return resp.Topics[0].Partitions[0]
	}
	for _, tc := range []struct {
		name      string
		timestamp int64
		want      int64
		epoch     int32
	}{
		{"earliest", -2, remoteStart, firstEpoch},
		{"earliest local", -4, localStart, secondEpoch},
		{"latest tiered", -5, remoteEnd, secondEpoch},
		{"latest", -1, p.LogEndOffset(), secondEpoch},
		{"max timestamp", -3, 29, secondEpoch},
		{"timestamp of offset 3", base + 3000, 3, firstEpoch},
		{"timestamp between offsets 11 and 12", base + 11500, 12, secondEpoch},
		{"timestamp after every record", base + 99000, -1, -1},
	} {
		if got := list(tc.timestamp); got.ErrorCode != 0 || got.Offset != tc.want || got.LeaderEpoch != tc.epoch {
			t.Errorf("ListOffsets %s: offset %d, epoch %d, error %d; want %d, epoch %d", tc.name, got.Offset, got.LeaderEpoch, got.ErrorCode, tc.want, tc.epoch)
		}
	}

	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, -1, firstEpoch
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "offs", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
	got := request[*kmsg.OffsetForLeaderEpochResponse](t, n.Client(), req).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || got.LeaderEpoch != firstEpoch || got.EndOffset != secondStart {
		t.Errorf("OffsetForLeaderEpoch(%d) over remote records: epoch %d end %d error %d; want epoch %d end %d", firstEpoch, got.LeaderEpoch, got.EndOffset, got.ErrorCode, firstEpoch, secondStart)
	}
	// And after a restart, whose local log holds none of the first
	// epoch's records.
	n.Restart()
	p = leadingTopic(t, n, "offs")
	got = request[*kmsg.OffsetForLeaderEpochResponse](t, n.Client(), req).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || got.LeaderEpoch != firstEpoch || got.EndOffset != secondStart {
		t.Errorf("after a restart: OffsetForLeaderEpoch(%d): epoch %d end %d error %d; want epoch %d end %d", firstEpoch, got.LeaderEpoch, got.EndOffset, got.ErrorCode, firstEpoch, secondStart)
	}
	if got := list(base + 3000); got.ErrorCode != 0 || got.Offset != 3 || got.LeaderEpoch != firstEpoch {
		t.Errorf("after a restart: ListOffsets by timestamp: offset %d epoch %d error %d, want 3, epoch %d", got.Offset, got.LeaderEpoch, got.ErrorCode, firstEpoch)
	}
	// A third epoch, with nothing written in it: the latest answers it,
	// the max timestamp its batch's.
	if got := list(-1); got.ErrorCode != 0 || got.LeaderEpoch != p.LeaderEpoch() || p.LeaderEpoch() == secondEpoch {
		t.Errorf("after a restart: ListOffsets latest: epoch %d error %d, want the current %d (not %d)", got.LeaderEpoch, got.ErrorCode, p.LeaderEpoch(), secondEpoch)
	}
	if got := list(-3); got.ErrorCode != 0 || got.Offset != 29 || got.LeaderEpoch != secondEpoch {
		t.Errorf("after a restart: ListOffsets max timestamp: offset %d epoch %d error %d, want 29, epoch %d", got.Offset, got.LeaderEpoch, got.ErrorCode, secondEpoch)
	}
}

// TestLatestTieredAfterRemoteRetention: once total retention has deleted
// every remote segment of a tiered partition, ListOffsets latest tiered
// (-5) answers -1, as before anything was uploaded, and earliest pending
// upload (-6) the local log start. Kafka answers -5 with the highest
// offset it ever copied (UnifiedLog.highestOffsetInRemoteStorage, which
// only moves up, and the remote log metadata's per-epoch highest offset,
// which deleting a segment does not lower); Strata's metadata keeps no
// such offset once the manifest entries are gone (docs/architecture.md,
// "Tiered storage"), and its followers' restart from the tier relies on
// -5 meaning the end of the readable remote data.
func TestLatestTieredAfterRemoteRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	createTopic(t, n.Client(), "expired", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "expired")
	old := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 30 {
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Value: []byte("v"), Timestamp: old + int64(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Append(batch, 9, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	list := func(timestamp int64) int64 {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, timestamp, -1
		req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "expired", Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
		got := request[*kmsg.ListOffsetsResponse](t, n.Client(), req).Topics[0].Partitions[0]
		if got.ErrorCode != 0 {
			t.Fatalf("ListOffsets %d: error %d", timestamp, got.ErrorCode)
		}
		return got.Offset
	}

	stop := startTierManager(t, ctx, n, tier)
	waitSealedUploaded(t, ctx, n, p)
	stop()
	_, remoteEnd, ok := n.Store.State().RemoteLogOffsets(p.TopicID(), p.Index())
	if !ok {
		t.Fatal("nothing uploaded")
	}
	if got := list(-5); got != remoteEnd {
		t.Fatalf("latest tiered: %d, want the remote log end %d", got, remoteEnd)
	}

	// Total retention expires every remote segment (the records are an
	// hour old); the active segment stays local, not uploaded.
	topic, _ := n.Store.State().Topic("expired")
	configs := map[string]string{"retention.ms": "60000"}
	for k, v := range topic.Configs {
		configs[k] = v
	}
	if err := n.Store.SetTopicConfigs(ctx, topic, configs); err != nil {
		t.Fatal(err)
	}
	stop = startTierManager(t, ctx, n, tier)
	for n.Store.State().PartitionSegmentCount(p.TopicID(), p.Index()) > 0 {
		if ctx.Err() != nil {
			t.Fatal("retention never deleted the remote segments")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if got := list(-5); got != -1 {
		t.Errorf("latest tiered with every remote segment deleted: %d, want -1 (Kafka: %d, the highest offset it copied)", got, remoteEnd)
	}
	if got, want := list(-6), p.LogStartOffset(); got != want {
		t.Errorf("earliest pending upload with every remote segment deleted: %d, want the local log start %d", got, want)
	}
}
