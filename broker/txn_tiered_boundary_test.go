package broker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
)

// TestReadCommittedAcrossTheTieredBoundary: a transaction whose records
// are only in the object store and whose ABORT marker is in the local log
// is filtered out of a read_committed consumer's records, and the
// consumer stops at the last stable offset (a transaction left open).
func TestReadCommittedAcrossTheTieredBoundary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	createTopic(t, n.Client(), "txb", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "txb")
	now := time.Now()
	appendValue := func(opts recordbatch.BuildOptions, value string) int64 {
		return appendRecord(t, p, now, opts, recordbatch.Record{Value: []byte(value)})
	}
	var want []string
	plain := func(count int) {
		for range count {
			value := fmt.Sprintf("plain-%d", len(want))
			appendValue(recordbatch.BuildOptions{}, value)
			want = append(want, value)
		}
	}
	appendValue(txnOptions(100, 0), "aborted-1")
	plain(10)
	abortedLast := appendValue(txnOptions(100, 1), "aborted-2")
	plain(10)
	markerAt, err := p.AppendMarker(partition.Marker{ProducerID: 100, CoordinatorEpoch: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	plain(1)
	openAt := appendValue(txnOptions(300, 0), "open")
	appendValue(recordbatch.BuildOptions{}, "after the open transaction")
	if lso := p.LastStableOffset(); lso != openAt {
		t.Fatalf("last stable offset %d, want the open transaction's first offset %d", lso, openAt)
	}

	stop := startTierManager(t, ctx, n, tier)
	defer stop()
	waitLocalLogStart(t, ctx, p, abortedLast, "the aborted transaction's records")
	if p.LogStartOffset() > markerAt {
		t.Fatalf("local log start %d past the ABORT marker at %d: the test wants it local", p.LogStartOffset(), markerAt)
	}

	if got := consumeValues(t, ctx, n, "txb", kgo.ReadCommitted(), len(want), kgo.FetchMaxWait(100*time.Millisecond)); !slices.Equal(got, want) {
		t.Fatalf("read_committed consumer read %v, want %v", got, want)
	}

	// A read_committed Fetch from the start (served from the bucket) lists
	// the aborted transaction; one at the last stable offset returns
	// nothing.
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		return request[*kmsg.FetchResponse](t, topicsByNameClient(n), readCommittedFetch("txb", offset, 1<<20)).Topics[0].Partitions[0]
	}
	if got := fetch(0); got.ErrorCode != 0 || len(got.RecordBatches) == 0 || len(got.AbortedTransactions) != 1 ||
		got.AbortedTransactions[0].ProducerID != 100 || got.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("remote read_committed fetch: error %d, %d bytes, aborted %+v; want producer 100's from offset 0", got.ErrorCode, len(got.RecordBatches), got.AbortedTransactions)
	}
	if got := fetch(openAt); got.ErrorCode != 0 || len(got.RecordBatches) != 0 || got.LastStableOffset != openAt {
		t.Fatalf("read_committed fetch at the last stable offset %d: error %d, %d bytes, last stable offset %d; want no records", openAt, got.ErrorCode, len(got.RecordBatches), got.LastStableOffset)
	}
}
