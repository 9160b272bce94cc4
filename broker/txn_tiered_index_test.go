package broker_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/tiermanager"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
)

// txnIndexGETs counts the GETs of .txnindex objects that go through a
// bucket.
type txnIndexGETs struct {
	tiering.Bucket
	gets atomic.Int64
}

func (b *txnIndexGETs) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasSuffix(key, ".txnindex") {
		b.gets.Add(1)
	}
	return b.Bucket.Get(ctx, key, offset, length)
}

// abortedTxnReads records the remote segments (by base offset) whose
// aborted transactions the broker asks its remote reader for.
type abortedTxnReads struct {
	broker.RemoteReader
	mu    sync.Mutex
	bases []int64
}

func (r *abortedTxnReads) ReadAbortedTxns(ctx context.Context, p metadata.TopicPartition, seg metadata.SegmentManifest) ([]segment.AbortedTxn, error) {
	r.mu.Lock()
	r.bases = append(r.bases, seg.BaseOffset)
	r.mu.Unlock()
	return r.RemoteReader.ReadAbortedTxns(ctx, p, seg)
}

// take returns the base offsets recorded since the last call.
func (r *abortedTxnReads) take() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	bases := r.bases
	r.bases = nil
	return bases
}

// TestReadCommittedSkipsEmptyTxnIndexes: a read_committed Fetch from
// tiered data fetches the .txnindex of no segment whose manifest entry
// says it has none (KIP-1058), and answers the same aborted transactions
// as reading every index would. The uploader records, for each segment,
// whether its index holds entries; a partition of many segments with two
// aborted transactions, one spanning segments, is then read from the
// bucket: from the start (only the segment holding the first ABORT marker
// is read: its entry's last stable offset ends the search), from the
// spanning transaction's first record (listed, from the later segment
// holding its marker), and from past both (no index read at all). Entries
// of an older uploader, which recorded nothing, are read as before: every
// segment up to the one whose entry ends the search, with the same
// answers. A read_committed consumer still sees every committed record
// and no aborted one.
func TestReadCommittedSkipsEmptyTxnIndexes(t *testing.T) {
	t.Run("recorded", func(t *testing.T) { testReadCommittedTxnIndexes(t, false) })
	t.Run("uploaded by an older version", func(t *testing.T) { testReadCommittedTxnIndexes(t, true) })
}

// olderUploader is the metadata store as an uploader that records no txn
// index state (TxnIndexUnknown) sees it.
type olderUploader struct{ *metadata.Store }

func (s olderUploader) StartSegmentCopy(ctx context.Context, topicID [16]byte, partition int32, segment metadata.SegmentManifest) error {
	segment.TxnIndex = metadata.TxnIndexUnknown
	return s.Store.StartSegmentCopy(ctx, topicID, partition, segment)
}

func testReadCommittedTxnIndexes(t *testing.T, legacy bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	memory, err := tiering.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer memory.Close()
	bucket := &txnIndexGETs{Bucket: memory}
	tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	reader := &abortedTxnReads{RemoteReader: tier}
	n := startTiered(t, reader)
	cl := n.Client()
	createTopic(t, cl, "txidx", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "txidx")

	now := time.Now()
	var want []string
	appendValue := func(opts recordbatch.BuildOptions, value string) int64 {
		return appendRecord(t, p, now, opts, recordbatch.Record{Value: []byte(value)})
	}
	plain := func(count int) {
		t.Helper()
		for range count {
			value := fmt.Sprintf("plain-%d", len(want))
			want = append(want, value)
			appendValue(recordbatch.BuildOptions{}, value)
		}
	}
	abort := func(pid int64) int64 {
		t.Helper()
		offset, err := p.AppendMarker(partition.Marker{ProducerID: pid, CoordinatorEpoch: 1, Commit: false}, now)
		if err != nil {
			t.Fatal(err)
		}
		return offset
	}
	// Segments of 600 bytes hold a few of these batches each.
	plain(24)
	first200 := appendValue(txnOptions(200, 0), "aborted-200-a")
	plain(20)
	appendValue(txnOptions(200, 1), "aborted-200-b")
	marker200 := abort(200)
	plain(40)
	appendValue(txnOptions(300, 0), "aborted-300")
	marker300 := abort(300)
	plain(40)
	past := p.HighWatermark()
	plain(40)

	var store tiermanager.Store = n.Store
	if legacy {
		store = olderUploader{n.Store}
	}
	manager, err := tiermanager.New(tiermanager.Config{Tier: tier, Store: store, NodeID: metadatatest.NodeID,
		Partitions: n.Server.HostedPartitions, StagingDir: t.TempDir(), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	managerCtx, stopManager := context.WithCancel(ctx)
	managerDone := make(chan struct{})
	go func() { defer close(managerDone); manager.Run(managerCtx) }()
	waitLocalLogStart(t, ctx, p, past, "the segments past the transactions")
	// Stopped once every sealed segment is uploaded, so that no commit
	// of the manager's lands after it stops and the manifest read below
	// is the one the fetches see.
	for {
		segments := p.Segments()
		_, remoteEnd, _ := n.Store.State().RemoteLogOffsets(p.TopicID(), p.Index())
		if active := segments[len(segments)-1]; active.Active && remoteEnd+1 == active.BaseOffset {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the sealed segments were never all uploaded (remote log end %d, local segments %+v)", remoteEnd, segments)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopManager()
	<-managerDone

	// The manifest says which segments' indexes hold entries: exactly
	// those holding an ABORT marker.
	state := n.Store.State()
	var segments []metadata.SegmentManifest
	state.EachSegment(p.TopicID(), p.Index(), 0, func(e metadata.SegmentManifest) bool {
		if e.State == metadata.SegmentCopyFinished {
			segments = append(segments, e)
		}
		return true
	})
	containing := func(offset int64) metadata.SegmentManifest {
		t.Helper()
		for _, e := range segments {
			if e.BaseOffset <= offset && offset <= e.LastOffset {
				return e
			}
		}
		t.Fatalf("offset %d is in no remote segment (%d of them)", offset, len(segments))
		return metadata.SegmentManifest{}
	}
	for _, e := range segments {
		wantIndex := metadata.TxnIndexEmpty
		switch {
		case legacy:
			wantIndex = metadata.TxnIndexUnknown
		case e.BaseOffset <= marker200 && marker200 <= e.LastOffset || e.BaseOffset <= marker300 && marker300 <= e.LastOffset:
			wantIndex = metadata.TxnIndexNotEmpty
		}
		if e.TxnIndex != wantIndex {
			t.Errorf("segment %d..%d: txn index %s, want %s", e.BaseOffset, e.LastOffset, e.TxnIndex, wantIndex)
		}
	}
	with200, with300 := containing(marker200), containing(marker300)
	if containing(first200).BaseOffset == with200.BaseOffset || containing(0).BaseOffset == with200.BaseOffset {
		t.Fatalf("producer 200's transaction does not span segments: %+v", segments)
	}
	if len(segments) < 15 {
		t.Fatalf("%d remote segments, want more than 15", len(segments))
	}

	rawClient := topicsByNameClient(n)
	// fetch reads the first batch at offset read_committed and returns
	// its aborted transactions (producer id -> first offset), the remote
	// segments whose aborted transactions were read, and the .txnindex
	// GETs it took.
	fetch := func(offset int64) (map[int64]int64, []int64, int64) {
		t.Helper()
		req := readCommittedFetch("txidx", offset, 1) // the first batch only (KIP-74)
		gets := bucket.gets.Load()
		reader.take()
		resp := request[*kmsg.FetchResponse](t, rawClient, req)
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
			t.Fatalf("read_committed fetch at %d: %+v", offset, got)
		}
		aborted := map[int64]int64{}
		for _, a := range got.AbortedTransactions {
			aborted[a.ProducerID] = a.FirstOffset
		}
		return aborted, reader.take(), bucket.gets.Load() - gets
	}
	// bases returns the base offsets of the remote segments from the one
	// holding offset on, up to the one at base offset last (-1: all).
	bases := func(offset, last int64) []int64 {
		var out []int64
		for _, e := range segments {
			if e.LastOffset >= offset && (last < 0 || e.BaseOffset <= last) {
				out = append(out, e.BaseOffset)
			}
		}
		return out
	}
	pastBoth := containing(marker300).LastOffset + 1
	tests := []struct {
		what        string
		offset      int64
		wantAborted map[int64]int64
		wantReads   []int64
		wantGETs    int64
	}{
		// Every segment from the start to the first ABORT marker's is
		// empty: only that one is read, and its entry (last stable
		// offset past the read) ends the search, as in Kafka.
		{"from the start", 0, map[int64]int64{}, []int64{with200.BaseOffset}, 1},
		// The transaction's first record is segments before its marker.
		{"from the spanning transaction", first200, map[int64]int64{200: first200}, []int64{with200.BaseOffset}, 0},
		// Past both markers every remote index is empty: none is read.
		{"past the transactions", pastBoth, map[int64]int64{}, nil, 0},
	}
	if legacy {
		// Nothing recorded: every index up to the one that ends the
		// search is read (once: the reader keeps them).
		from200 := bases(0, with200.BaseOffset)
		tests[0].wantReads, tests[0].wantGETs = from200, int64(len(from200))
		tests[1].wantReads = bases(first200, with200.BaseOffset)
		tests[2].wantReads = bases(pastBoth, -1)
		tests[2].wantGETs = int64(len(tests[2].wantReads))
	}
	for _, test := range tests {
		aborted, reads, gets := fetch(test.offset)
		if fmt.Sprint(aborted) != fmt.Sprint(test.wantAborted) {
			t.Errorf("%s (offset %d): aborted transactions %v, want %v", test.what, test.offset, aborted, test.wantAborted)
		}
		if !slices.Equal(reads, test.wantReads) || gets != test.wantGETs {
			t.Errorf("%s (offset %d): read the aborted transactions of segments %v with %d .txnindex GETs, want %v with %d (segments with an index: %d and %d)",
				test.what, test.offset, reads, gets, test.wantReads, test.wantGETs, with200.BaseOffset, with300.BaseOffset)
		}
	}

	if values := consumeValues(t, ctx, n, "txidx", kgo.ReadCommitted(), len(want)); !slices.Equal(values, want) {
		t.Fatalf("read_committed consumer read %v, want %v", values, want)
	}
}
