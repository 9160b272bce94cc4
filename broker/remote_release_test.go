package broker_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// failingAborted is a remote reader whose aborted-transaction reads fail
// while fail is set: a read_committed Fetch then fails after its remote
// read succeeded.
type failingAborted struct {
	broker.RemoteReader
	fail  atomic.Bool
	reads atomic.Int64 // reads done
}

func (r *failingAborted) Read(ctx context.Context, p metadata.TopicPartition, seg metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch bool) (*recordbatch.Batches, error) {
	defer r.reads.Add(1)
	return r.RemoteReader.Read(ctx, p, seg, offset, maxBytes, minOneBatch)
}

func (r *failingAborted) ReadAbortedTxns(ctx context.Context, p metadata.TopicPartition, seg metadata.SegmentManifest) ([]segment.AbortedTxn, error) {
	if r.fail.Load() {
		return nil, errors.New("aborted transactions unavailable")
	}
	return r.RemoteReader.ReadAbortedTxns(ctx, p, seg)
}

// Remote reads are served from the tier's chunk buffers and hold them,
// and room in the response memory, until the response is written: every
// way a Fetch ends gives them back (the chunk references read results
// hold and the response memory held return to 0) — a response
// written, a read_committed read failing after its remote read
// succeeded, a throttled consumer answered empty, a connection closed
// before its response is written — so a warm replay allocates no chunk
// buffer, and a batch spanning chunks reaches the consumer whole.
func TestRemoteReadsReleasedOnEveryPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bucket, err := tiering.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	// 4 KiB chunks: most reads span several, and batches span two.
	// No memory LRU: every read loads its chunks from the disk cache into
	// pool buffers, so a reference never released makes the pool allocate.
	tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: t.TempDir(), ChunkBytes: 4 << 10, CacheBytes: 1 << 20, MemoryCacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	reader := &failingAborted{RemoteReader: tier}
	n := startTiered(t, reader)
	cl := n.Client(kgo.ProducerBatchCompression(kgo.NoCompression())) // batches of known size
	createTopic(t, cl, "released", 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, "released")
	// An aborted transaction first: the first segment's .txnindex then
	// holds an entry, so a read_committed Fetch of it reads that index
	// (one known to be empty is never read).
	aborted, err := recordbatch.Build(recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: 100},
		[]recordbatch.Record{{Value: []byte("aborted"), Timestamp: time.Now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	p.StartTxnVerification(100, 0)
	if _, _, err := p.Append(aborted, 9, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendMarker(partition.Marker{ProducerID: 100, CoordinatorEpoch: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("0123456789abcdef"), 90) // 1440 bytes: batches straddle 4 KiB chunks
	for range 40 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "released", Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	defer startTierManager(t, ctx, n, tier)()
	for p.LogStartOffset() == 0 {
		if ctx.Err() != nil {
			topic, _ := n.Store.State().Topic("released")
			_, ok := n.Store.State().SegmentContaining(topic.ID, 0, 0)
			t.Fatalf("offset 0 never left the local log (end %d, hw %d, remote %v, tier %+v)", p.LogEndOffset(), p.HighWatermark(), ok, tier.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	topic, _ := n.Store.State().Topic("released")
	seg, ok := n.Store.State().SegmentContaining(topic.ID, 0, 0)
	if !ok {
		t.Fatal("no remote segment holds offset 0")
	}
	direct, err := tier.Read(ctx, p.Name(), seg, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	want := direct.AppendTo(nil)
	chunksPerRead := len(direct.Buffers())
	if chunksPerRead < 3 {
		t.Fatalf("a %d-byte read in %d buffers: want several chunks", direct.Len(), chunksPerRead)
	}
	direct.Release()

	// released waits for the read results' chunk references, and the
	// room they took in the response memory, to return to 0: the writer
	// releases a frame just after writing it, so the client may see the
	// response first.
	released := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			chunks := tier.Stats().ReadChunksHeld
			held, holders, _ := n.Server.ResponseMemory()
			if chunks == 0 && held == 0 && holders == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d chunk references still held, %d bytes of response memory held by %d", what, chunks, held, holders)
			}
		}
	}
	fetchRequest := func(isolation int8) *kmsg.FetchRequest {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.ReplicaID, fetch.MaxBytes, fetch.MaxWaitMillis, fetch.MinBytes = -1, 1<<20, 0, 1
		fetch.IsolationLevel = isolation
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
		fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "released", TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
		return fetch
	}

	// Written: the consumer gets the bytes the tier holds, in one piece.
	got := request[*kmsg.FetchResponse](t, cl, fetchRequest(0)).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || !bytes.Equal(got.RecordBatches, want) {
		t.Fatalf("fetch: error %d, %d bytes, want the %d remote bytes", got.ErrorCode, len(got.RecordBatches), len(want))
	}
	released("a written response")

	// A warm replay through the broker reuses the pool's buffers: none
	// is allocated however often the range is fetched.
	// Warm first: until a fetch misses no chunk (all in the disk cache).
	for misses := int64(-1); misses != tier.Stats().CacheMisses; {
		if ctx.Err() != nil {
			t.Fatal("the chunks never all reached the disk cache")
		}
		misses = tier.Stats().CacheMisses
		request[*kmsg.FetchResponse](t, cl, fetchRequest(0))
	}
	released("warming")
	allocated := tier.Stats().ChunkBuffers
	for range 20 {
		if got := request[*kmsg.FetchResponse](t, cl, fetchRequest(0)).Topics[0].Partitions[0]; !bytes.Equal(got.RecordBatches, want) {
			t.Fatalf("warm fetch: error %d, %d bytes", got.ErrorCode, len(got.RecordBatches))
		}
		// The client may read a response before the writer releases
		// it: a fetch sent meanwhile would need a second read's worth
		// of buffers once (bounded, not a leak). One at a time here.
		released("a warm fetch")
	}
	if more := tier.Stats().ChunkBuffers - allocated; more > 2 {
		t.Fatalf("%d chunk buffers allocated over 20 warm fetches of %d chunks each, want them reused", more, chunksPerRead)
	}

	// Read, then failed: the partition answers an error, its read goes back.
	reader.fail.Store(true)
	got = request[*kmsg.FetchResponse](t, cl, fetchRequest(1)).Topics[0].Partitions[0]
	if got.ErrorCode == 0 || len(got.RecordBatches) != 0 {
		t.Fatalf("read_committed fetch whose aborted transactions fail: error %d with %d bytes", got.ErrorCode, len(got.RecordBatches))
	}
	reader.fail.Store(false)
	released("an error after the remote read")

	// Throttled: a consumer over its quota is answered empty.
	adm := kadm.NewClient(cl)
	app := "throttled-app"
	if _, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &app}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	throttledClient := n.Client(kgo.ClientID(app))
	defer throttledClient.Close()
	throttled := false
	for i := 0; i < 20 && !throttled; i++ {
		resp := request[*kmsg.FetchResponse](t, throttledClient, fetchRequest(0))
		throttled = resp.ThrottleMillis > 0 && len(resp.Topics) == 0
	}
	if !throttled {
		t.Fatal("the consumer over its quota was never answered throttled")
	}
	released("a throttled response")

	// Closed: a client that sends a Fetch and closes without reading.
	readsBefore := reader.reads.Load()
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fetch := fetchRequest(0)
	fetch.SetVersion(11)
	if _, err := conn.Write(requestFrame(fetch, 1)); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetLinger(0) // reset: the broker's write fails if it comes later
	conn.Close()
	for reader.reads.Load() == readsBefore {
		if ctx.Err() != nil {
			t.Fatal("the closed connection's Fetch was never read")
		}
		time.Sleep(time.Millisecond)
	}
	released("a connection closed before its response")
}
