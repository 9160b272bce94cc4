package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// busyReader refuses reads as a remote reader whose queue is full
// (tiering.ErrBusy) while busy is set, and the next refuse reads; reads
// counts the reads asked for.
type busyReader struct {
	broker.RemoteReader
	busy   atomic.Bool
	refuse atomic.Int32
	reads  atomic.Int32
}

func (r *busyReader) Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch bool) (*recordbatch.Batches, error) {
	r.reads.Add(1)
	if r.busy.Load() || r.refuse.Add(-1) >= 0 {
		return nil, fmt.Errorf("tiering: read offset %d: %w", offset, tiering.ErrBusy)
	}
	return r.RemoteReader.Read(ctx, p, segment, offset, maxBytes, minOneBatch)
}

// A partition whose remote read is refused because the reader's queue is
// full (remote.log.reader.max.pending.tasks) is answered at once without
// data and without an error (the consumer asks again), not with a
// failure; once the queue has room the same fetch returns the records. A
// long poll (max wait above 0) does not answer empty: it asks the reader
// again within its max wait (an hour here: the request returns only if a
// retry gets the records) — no immediate empty answer for the client to
// re-send at once, no stall for the whole max wait either.
func TestRemoteQueueFullAnswersEmpty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	reader := &busyReader{RemoteReader: tier}
	n := startTiered(t, reader)
	cl := n.Client()
	fetch, stop := tieredReplay(t, ctx, n, tier, cl)
	defer stop()
	reader.busy.Store(true)
	got := request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) != 0 {
		t.Fatalf("fetch while the remote reader's queue is full: error %d with %d bytes, want no error and no data", got.ErrorCode, len(got.RecordBatches))
	}
	reader.busy.Store(false)
	got = request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
		t.Fatalf("fetch once the queue has room: error %d with %d bytes, want the records", got.ErrorCode, len(got.RecordBatches))
	}

	fetch.MaxWaitMillis = int32(time.Hour.Milliseconds())
	reader.refuse.Store(3)
	reader.reads.Store(0)
	got = request[*kmsg.FetchResponse](t, cl, fetch).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
		t.Fatalf("long poll refused three times by the full queue: error %d with %d bytes, want the records", got.ErrorCode, len(got.RecordBatches))
	}
	if reads := reader.reads.Load(); reads != 4 {
		t.Fatalf("the long poll asked the reader %d times, want 4 (3 refused, then the read)", reads)
	}
}
