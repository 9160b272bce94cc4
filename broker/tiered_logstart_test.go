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
	configs := map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"}
	createTopic(t, n.Client(), "fetched", 1, configs)
	createTopic(t, n.Client(), "listed", 1, configs)
	fetched, listed := leadingTopic(t, n, "fetched"), leadingTopic(t, n, "listed")
	now := time.Now()
	for _, p := range []*partition.Partition{fetched, listed} {
		for i := range 20 {
			appendRecord(t, p, now, recordbatch.BuildOptions{}, recordbatch.Record{Value: fmt.Appendf(nil, "v-%d", i)})
		}
		for p.HighWatermark() < p.LogEndOffset() {
			if ctx.Err() != nil {
				t.Fatalf("%s: high watermark %d, log end %d", p.Name(), p.HighWatermark(), p.LogEndOffset())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
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
