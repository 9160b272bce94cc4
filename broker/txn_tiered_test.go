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

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/tiermanager"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
)

// TestReadCommittedFromTieredSegments: transactions whose segments were
// uploaded and dropped locally are read back from the object store with
// their aborted-transaction list (the tiered segment's .txnindex): a raw
// read_committed Fetch lists the aborted transaction, and a franz-go
// ReadCommitted consumer sees every committed record and none of the
// aborted ones, while a read_uncommitted one sees them all.
func TestReadCommittedFromTieredSegments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	cl := n.Client()
	createTopic(t, cl, "tx", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "tx")

	// What a transactional producer and its coordinator would write:
	// producer 100's transaction aborted, interleaved with plain records
	// and producer 200's committed one.
	now := time.Now()
	appendValue := func(opts recordbatch.BuildOptions, value string) int64 {
		return appendRecord(t, p, now, opts, recordbatch.Record{Key: []byte(value), Value: []byte(value)})
	}
	marker := func(pid int64, commit bool) {
		t.Helper()
		if _, err := p.AppendMarker(partition.Marker{ProducerID: pid, CoordinatorEpoch: 1, Commit: commit}, now); err != nil {
			t.Fatal(err)
		}
	}
	abortedFirst := appendValue(txnOptions(100, 0), "aborted-1")
	appendValue(recordbatch.BuildOptions{}, "plain-1")
	appendValue(txnOptions(200, 0), "committed-1")
	appendValue(txnOptions(100, 1), "aborted-2")
	marker(100, false)
	appendValue(txnOptions(200, 1), "committed-2")
	marker(200, true)
	for i := range 20 {
		appendValue(recordbatch.BuildOptions{}, fmt.Sprintf("plain-%d", i+2))
	}
	want := []string{"plain-1", "committed-1", "committed-2"}
	for i := range 20 {
		want = append(want, fmt.Sprintf("plain-%d", i+2))
	}

	stopManager := startTierManager(t, ctx, n, tier)
	defer stopManager() // a second call returns at once
	waitLocalLogStart(t, ctx, p, 10, "the transactions' segments")

	// A raw read_committed Fetch from the start: served from the bucket,
	// with producer 100's transaction listed.
	fetch := readCommittedFetch("tx", 0, 1<<20)
	rawClient := topicsByNameClient(n)
	checkRawFetch := func(what string) {
		t.Helper()
		resp := request[*kmsg.FetchResponse](t, rawClient, fetch)
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
			t.Fatalf("%s: remote read_committed fetch: %+v", what, got)
		}
		if len(got.AbortedTransactions) != 1 || got.AbortedTransactions[0].ProducerID != 100 || got.AbortedTransactions[0].FirstOffset != abortedFirst {
			t.Fatalf("%s: aborted transactions %+v, want producer 100's from offset %d", what, got.AbortedTransactions, abortedFirst)
		}
	}
	checkRawFetch("after local retention")

	if values := consumeValues(t, ctx, n, "tx", kgo.ReadCommitted(), len(want)); !slices.Equal(values, want) {
		t.Fatalf("read_committed consumer read %v, want %v", values, want)
	}
	if values := consumeValues(t, ctx, n, "tx", kgo.ReadUncommitted(), len(want)+2); !slices.Contains(values, "aborted-1") || !slices.Contains(values, "aborted-2") {
		t.Fatalf("read_uncommitted consumer read %v, want the aborted records too", values)
	}

	// A log restarted after the remote data (a partition recovered from
	// the bucket) has no local index entries below its start: the remote
	// ones still answer.
	stopManager()
	state := n.Store.State()
	_, remoteEnd, _ := state.RemoteLogOffsets(p.TopicID(), p.Index())
	if err := p.RestartAt(remoteEnd+1, p.RemoteEpochs(state, remoteEnd+1), nil); err != nil {
		t.Fatal(err)
	}
	checkRawFetch("after RestartAt")
}

// startTierManager runs a tier manager for n's partitions over tier
// (uploads every 20 ms) until stop, which waits for it.
func startTierManager(t *testing.T, ctx context.Context, n *brokertest.Node, tier *tiering.Tier) (stop func()) {
	t.Helper()
	manager, err := tiermanager.New(tiermanager.Config{Tier: tier, Store: n.Store, NodeID: metadatatest.NodeID,
		Partitions: n.Server.HostedPartitions, StagingDir: t.TempDir(), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	managerCtx, stopManager := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); manager.Run(managerCtx) }()
	return func() { stopManager(); <-done }
}

// waitLocalLogStart waits until p's local log starts above offset (what
// is below is in the object store only), failing with what when ctx ends.
func waitLocalLogStart(t *testing.T, ctx context.Context, p *partition.Partition, offset int64, what string) {
	t.Helper()
	for p.LogStartOffset() <= offset {
		if ctx.Err() != nil {
			t.Fatalf("%s never left the local log (local log start %d)", what, p.LogStartOffset())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memoryTier is a tiered store on an in-memory bucket, closed (after the
// broker stops: cleanups run last-registered first) when the test ends.
// startTiered starts a broker that serves remote reads through reader (a
// memoryTier or a wrapper of one) and checks retention every 20 ms, so
// that uploaded segments leave the local log at once; configure changes
// the rest of its config.
func startTiered(t *testing.T, reader broker.RemoteReader, configure ...func(*broker.Config)) *brokertest.Node {
	t.Helper()
	return brokertest.Start(t, func(c *broker.Config) {
		c.RemoteReader = reader
		c.RetentionCheckInterval = 20 * time.Millisecond
		for _, change := range configure {
			change(c)
		}
	})
}

func memoryTier(t *testing.T) *tiering.Tier {
	t.Helper()
	bucket, err := tiering.OpenBucket(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

// appendRecord appends record, timestamped now, to p as its leader at
// epoch 9, in a batch of its own built with opts (a transactional one
// after the verification the coordinator would start), and returns its
// offset: what a producer and its coordinator would write.
func appendRecord(t *testing.T, p *partition.Partition, now time.Time, opts recordbatch.BuildOptions, record recordbatch.Record) int64 {
	t.Helper()
	record.Timestamp = now.UnixMilli()
	batch, err := recordbatch.Build(opts, []recordbatch.Record{record})
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

// txnOptions builds a batch of producer pid's transaction at sequence.
func txnOptions(pid int64, sequence int32) recordbatch.BuildOptions {
	return recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: pid, BaseSequence: sequence}
}

// readCommittedFetch is a read_committed Fetch (v11, topics by name: send
// it with a topicsByNameClient) of partition 0 of topic from offset, of
// at most 1 MiB and partitionMaxBytes of the partition.
func readCommittedFetch(topic string, offset int64, partitionMaxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, 1
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, offset, partitionMaxBytes
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	return req
}

// topicsByNameClient is a client of n that sends Fetch at v11 at most,
// the last version naming topics (not ids).
func topicsByNameClient(n *brokertest.Node) *kgo.Client {
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.NewPtrFetchRequest().Key(), 11)
	return n.Client(kgo.MaxVersions(versions))
}

// consumeValues consumes topic of n from the start at isolation (with
// opts) until it has count records, and returns their values.
func consumeValues(t *testing.T, ctx context.Context, n *brokertest.Node, topic string, isolation kgo.IsolationLevel, count int, opts ...kgo.Opt) []string {
	t.Helper()
	consumer := n.Client(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(isolation)}, opts...)...)
	var values []string
	for len(values) < count {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("consume: %v (so far %d records: %v)", err, len(values), values)
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	return values
}
