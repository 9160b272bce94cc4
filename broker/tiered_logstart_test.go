package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/tiermanager"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
)

// TestRequestStateBeforeFirstUpload: a Fetch or ListOffsets that read the
// metadata just before a partition's first upload committed, whose local
// copies local retention then deleted at once, still sees the uploaded
// records: a consumer's Fetch at offset 0 is served from the object store
// (not answered OFFSET_OUT_OF_RANGE, which makes a consumer reset past
// them), and ListOffsets earliest answers 0, not the local log start.
func TestRequestStateBeforeFirstUpload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	now := time.Now()
	fetched, listed := tieredPartition(t, ctx, n, "fetched", now), tieredPartition(t, ctx, n, "listed", now)
	if _, _, ok := n.Store.State().RemoteLogOffsets(fetched.TopicID(), 0); ok {
		t.Fatal("remote data before any tier manager ran")
	}

	// Each request's first partition read waits, once, for its partition's
	// first upload and the deletion of its first local segment.
	var fetchHeld, listHeld atomic.Bool
	n.Server.AfterRequestState(func(key int16) {
		switch {
		case key == kmsg.NewPtrFetchRequest().Key() && !fetchHeld.Swap(true):
			uploadDroppingLocal(t, ctx, n, tier, fetched)
		case key == kmsg.NewPtrListOffsetsRequest().Key() && !listHeld.Swap(true):
			uploadDroppingLocal(t, ctx, n, tier, listed)
		}
	})

	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(11)
	fetch.ReplicaID, fetch.MaxBytes = -1, 1<<20
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "fetched", Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	got := request[*kmsg.FetchResponse](t, topicsByNameClient(n), fetch).Topics[0].Partitions[0]
	if !fetchHeld.Load() || fetched.LogStartOffset() == 0 {
		t.Fatalf("the Fetch was not held for the upload (local log start %d)", fetched.LogStartOffset())
	}
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 || got.LogStartOffset != 0 {
		t.Errorf("Fetch at offset 0 while its first segment moved to the object store: error %d, %d bytes, log start %d; want its records and log start 0 (local log start %d)",
			got.ErrorCode, len(got.RecordBatches), got.LogStartOffset, fetched.LogStartOffset())
	}

	list := kmsg.NewPtrListOffsetsRequest()
	list.ReplicaID = -1
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = 0, -2, -1
	list.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "listed", Partitions: []kmsg.ListOffsetsRequestTopicPartition{lp}}}
	earliest := request[*kmsg.ListOffsetsResponse](t, n.Client(), list).Topics[0].Partitions[0]
	if !listHeld.Load() || listed.LogStartOffset() == 0 {
		t.Fatalf("the ListOffsets was not held for the upload (local log start %d)", listed.LogStartOffset())
	}
	if earliest.ErrorCode != 0 || earliest.Offset != 0 {
		t.Errorf("ListOffsets earliest while the first segment moved to the object store: offset %d, error %d; want 0 (local log start %d)",
			earliest.Offset, earliest.ErrorCode, listed.LogStartOffset())
	}
}

// uploadDroppingLocal runs a tier manager over p alone until p's first
// local segment is gone (uploaded, then deleted by local retention).
// It reports failures with t.Errorf: it runs in a request's goroutine.
func uploadDroppingLocal(t *testing.T, ctx context.Context, n *brokertest.Node, tier *tiering.Tier, p *partition.Partition) {
	manager, err := tiermanager.New(tiermanager.Config{Tier: tier, Store: n.Store, NodeID: metadatatest.NodeID,
		Partitions: func() []*partition.Partition { return []*partition.Partition{p} }, StagingDir: t.TempDir(), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Errorf("tier manager: %v", err)
		return
	}
	managerCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); manager.Run(managerCtx) }()
	defer func() { stop(); <-done }()
	for p.LogStartOffset() == 0 {
		if ctx.Err() != nil {
			t.Errorf("%s: the first segment never left the local log", p.Name())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tieredPartition creates topic, tiered with one-batch segments and no
// local retention beyond what is uploaded, appends 20 records stamped now
// to it, and waits until they are committed; nothing is uploaded yet.
func tieredPartition(t *testing.T, ctx context.Context, n *brokertest.Node, topic string, now time.Time) *partition.Partition {
	t.Helper()
	createTopic(t, n.Client(), topic, 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, topic)
	for i := range 20 {
		appendRecord(t, p, now, recordbatch.BuildOptions{}, recordbatch.Record{Value: fmt.Appendf(nil, "v-%d", i)})
	}
	for p.HighWatermark() < p.LogEndOffset() {
		if ctx.Err() != nil {
			t.Fatalf("%s: high watermark %d, log end %d", p.Name(), p.HighWatermark(), p.LogEndOffset())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// TestFetchLocalSegmentUploadedAfterPlan: a consumer's Fetch that planned
// a local read of offset 0, whose segment was then uploaded and deleted
// by local retention before the read, is answered without error (empty, or
// with records from offset 0), and the same offset fetched again comes
// from the object store. Before, the local read out of the local log
// answered OFFSET_OUT_OF_RANGE for an offset still in the log (in the
// tier): a consumer resets to earliest or latest, re-reading or skipping.
// A long poll (max wait 1 h, min bytes 1) is answered at once too, so the
// consumer asks again for the offset from the tier: before, it waited out
// its max wait with nothing to wait for (the request timed out here).
func TestFetchLocalSegmentUploadedAfterPlan(t *testing.T) {
	for _, maxWait := range []int32{0, 3_600_000} {
		t.Run(fmt.Sprintf("max wait %d ms", maxWait), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tier := memoryTier(t)
			n := startTiered(t, tier)
			p := tieredPartition(t, ctx, n, "t", time.Now())
			var held atomic.Bool
			n.Server.AfterLogStarts(func(key int16) {
				if key == kmsg.NewPtrFetchRequest().Key() && !held.Swap(true) {
					uploadDroppingLocal(t, ctx, n, tier, p)
				}
			})
			fetch := kmsg.NewPtrFetchRequest()
			fetch.SetVersion(11)
			fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, maxWait, 1
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
			fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
			cl := topicsByNameClient(n)
			for attempt := range 2 {
				got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
				if !held.Load() || p.LogStartOffset() == 0 {
					t.Fatalf("the Fetch was not held for the upload (local log start %d)", p.LogStartOffset())
				}
				base := int64(-1)
				if len(got.RecordBatches) > 0 {
					h, err := recordbatch.ParseHeader(got.RecordBatches)
					if err != nil {
						t.Fatal(err)
					}
					base = h.BaseOffset
				}
				if got.ErrorCode != 0 || (len(got.RecordBatches) > 0 && base != 0) || (attempt > 0 && base != 0) {
					t.Fatalf("Fetch %d at offset 0 planned local, its segment since uploaded and deleted locally: error %d, %d bytes from offset %d; want no error and records from 0 (or, the first time, none)",
						attempt, got.ErrorCode, len(got.RecordBatches), base)
				}
			}
		})
	}
}

// TestListOffsetsTimestampSegmentUploadedAfterLogStarts: ListOffsets by
// timestamp for a partition whose first segment, local only when the
// request read the log starts, is uploaded and deleted by local retention
// before the lookup still answers the first record at or after the
// timestamp (offset 0). Before, the remote search (below the local log
// start read, 0) found nothing and the local search started past the
// deleted segment: a later offset was answered.
func TestListOffsetsTimestampSegmentUploadedAfterLogStarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	now := time.Now()
	p := tieredPartition(t, ctx, n, "t", now)
	var held atomic.Bool
	n.Server.AfterLogStarts(func(key int16) {
		if key == kmsg.NewPtrListOffsetsRequest().Key() && !held.Swap(true) {
			uploadDroppingLocal(t, ctx, n, tier, p)
		}
	})
	list := kmsg.NewPtrListOffsetsRequest()
	list.ReplicaID = -1
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = 0, now.UnixMilli(), -1
	list.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{lp}}}
	for attempt := range 2 {
		got := request[*kmsg.ListOffsetsResponse](t, n.Client(), list).Topics[0].Partitions[0]
		if !held.Load() || p.LogStartOffset() == 0 {
			t.Fatalf("the ListOffsets was not held for the upload (local log start %d)", p.LogStartOffset())
		}
		if got.ErrorCode != 0 || got.Offset != 0 || got.Timestamp != now.UnixMilli() {
			t.Fatalf("ListOffsets %d by timestamp, the first segment uploaded and deleted locally after the log starts were read: offset %d, timestamp %d, error %d; want 0 at %d (local log start %d)",
				attempt, got.Offset, got.Timestamp, got.ErrorCode, now.UnixMilli(), p.LogStartOffset())
		}
	}
}
