package broker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

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
	appendRecord := func(opts recordbatch.BuildOptions, value string) int64 {
		t.Helper()
		batch, err := recordbatch.Build(opts, []recordbatch.Record{{Value: []byte(value), Timestamp: now.UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		if opts.Transactional {
			p.StartTxnVerification(opts.ProducerID, opts.ProducerEpoch)
		}
		base, _, err := p.Append(batch, 9, now)
		if err != nil {
			t.Fatal(err)
		}
		return base
	}
	txn := func(pid int64, sequence int32) recordbatch.BuildOptions {
		return recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: pid, BaseSequence: sequence}
	}
	var want []string
	plain := func(count int) {
		for range count {
			value := fmt.Sprintf("plain-%d", len(want))
			appendRecord(recordbatch.BuildOptions{}, value)
			want = append(want, value)
		}
	}
	appendRecord(txn(100, 0), "aborted-1")
	plain(10)
	abortedLast := appendRecord(txn(100, 1), "aborted-2")
	plain(10)
	markerAt, err := p.AppendMarker(partition.Marker{ProducerID: 100, CoordinatorEpoch: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	plain(1)
	openAt := appendRecord(txn(300, 0), "open")
	appendRecord(recordbatch.BuildOptions{}, "after the open transaction")
	if lso := p.LastStableOffset(); lso != openAt {
		t.Fatalf("last stable offset %d, want the open transaction's first offset %d", lso, openAt)
	}

	stop := startTierManager(t, ctx, n, tier)
	defer stop()
	waitLocalLogStart(t, ctx, p, abortedLast, "the aborted transaction's records")
	if p.LogStartOffset() > markerAt {
		t.Fatalf("local log start %d past the ABORT marker at %d: the test wants it local", p.LogStartOffset(), markerAt)
	}

	consumer := n.Client(kgo.ConsumeTopics("txb"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	var got []string
	for len(got) < len(want) {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("consume: %v (so far %v)", err, got)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed consumer read %v, want %v", got, want)
	}

	// A read_committed Fetch from the start (served from the bucket) lists
	// the aborted transaction; one at the last stable offset returns
	// nothing.
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, 1
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, offset, 1<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "txb", Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
		versions := kversion.Stable()
		versions.SetMaxKeyVersion(req.Key(), 11) // topics by name
		return request[*kmsg.FetchResponse](t, n.Client(kgo.MaxVersions(versions)), req).Topics[0].Partitions[0]
	}
	if got := fetch(0); got.ErrorCode != 0 || len(got.RecordBatches) == 0 || len(got.AbortedTransactions) != 1 ||
		got.AbortedTransactions[0].ProducerID != 100 || got.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("remote read_committed fetch: error %d, %d bytes, aborted %+v; want producer 100's from offset 0", got.ErrorCode, len(got.RecordBatches), got.AbortedTransactions)
	}
	if got := fetch(openAt); got.ErrorCode != 0 || len(got.RecordBatches) != 0 || got.LastStableOffset != openAt {
		t.Fatalf("read_committed fetch at the last stable offset %d: error %d, %d bytes, last stable offset %d; want no records", openAt, got.ErrorCode, len(got.RecordBatches), got.LastStableOffset)
	}
}
