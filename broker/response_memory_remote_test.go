package broker_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// TestClientsThatDoNotReadHoldBoundedRemoteFetchMemory is
// TestClientsThatDoNotReadHoldBoundedFetchMemory for records served from
// the object store. A remote read returns the tier's chunk buffers, and
// the response holds them until it is written — for
// connections.max.idle.ms when the client does not read — past the
// tier's memory LRU, which evicts them but cannot free them. Uncounted,
// N clients that each pipeline a few Fetches of tiered offsets and stop
// reading held N × 3 responses (the one being written, the one queued,
// the one built), whatever queued.max.response.bytes and the tier's
// MemoryCacheBytes say.
//
// Here 8 connections each pipeline 3 Fetches of 2 MiB, each of another
// remote segment, and read nothing, with queued.max.response.bytes 4 MiB
// (3 MiB of it for consumers) and a 4 MiB memory LRU in the tier. The
// heap the broker keeps for the clients stays within those two, not
// 8 × 3 × 2 MiB: the remote records take room in the response memory,
// the Fetches without room wait for it holding nothing, and a connection
// whose response holds room reads its next request once it is written.
func TestClientsThatDoNotReadHoldBoundedRemoteFetchMemory(t *testing.T) {
	const (
		topic       = "unread-remote"
		fetchBytes  = 2 << 20
		budget      = 2 * fetchBytes
		tierMemory  = 4 << 20
		chunkBytes  = 64 << 10
		connections = 8
		pipelined   = 3
		segments    = connections * pipelined
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bucket, err := tiering.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	// No read-ahead: the tier holds only the chunks reads ask for (and
	// its memory LRU).
	tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: t.TempDir(), ChunkBytes: chunkBytes, MemoryCacheBytes: tierMemory, PrefetchChunks: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	n := startTiered(t, tier, func(c *broker.Config) { c.QueuedMaxResponseBytes = budget })
	cl := n.Client(kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	// A segment per Fetch: each Fetch reads a remote segment of its own.
	createTopic(t, cl, topic, 1, map[string]string{"remote.storage.enable": "true", "segment.bytes": "2097152", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, topic)
	value := bytes.Repeat([]byte("x"), 100<<10)
	for range (segments + 2) * fetchBytes / len(value) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	defer startTierManager(t, ctx, n, tier)()
	id, _ := n.Store.State().Topic(topic)
	var bases []int64
	for len(bases) < segments {
		bases = bases[:0]
		n.Store.State().EachSegment(id.ID, 0, 0, func(e metadata.SegmentManifest) bool {
			if e.State == metadata.SegmentCopyFinished {
				bases = append(bases, e.BaseOffset)
			}
			return len(bases) < segments
		})
		if ctx.Err() != nil {
			t.Fatalf("%d of %d segments uploaded", len(bases), segments)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLocalLogStart(t, ctx, p, bases[segments-1], "the segments to fetch")

	// idle waits until no response holds chunk references or response
	// memory: the writer releases a frame just after writing it, so the
	// client may see the response first.
	idle := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			chunks := tier.Stats().ReadChunksHeld
			held, holders, waiting := n.Server.ResponseMemory()
			if chunks == 0 && held == 0 && holders == 0 && waiting == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d chunk references held; %d bytes of response memory held by %d, %d waiting; want none", what, chunks, held, holders, waiting)
			}
		}
	}
	frames := make([][]byte, segments)
	for i, base := range bases {
		idle("before a Fetch")
		fetch := fetchFrom(topic, base, fetchBytes)
		// Those without room wait for it for the whole test.
		fetch.MaxWaitMillis = 60_000
		// Each segment read once: its chunks are in the tier's disk
		// cache, and a Fetch of it reads about fetchBytes.
		got := rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if got.ErrorCode != 0 || len(got.RecordBatches) < fetchBytes*3/4 {
			t.Fatalf("a Fetch of %d bytes of remote segment %d: error %d, %d bytes", fetchBytes, base, got.ErrorCode, len(got.RecordBatches))
		}
		frames[i] = requestFrame(fetch, 7)
	}
	idle("after every Fetch was read")
	heldHeap, closeConnections := pipelineWithoutReading(t, n.Addr, connections, pipelined, func(c, i int) []byte { return frames[c*pipelined+i] })
	defer closeConnections()
	for deadline := time.Now().Add(30 * time.Second); ; {
		held, holders, waiting := n.Server.ResponseMemory()
		if held > budget {
			t.Fatalf("%d bytes of response memory held, over queued.max.response.bytes %d", held, budget)
		}
		chunks := tier.Stats().ReadChunksHeld
		heap := heldHeap()
		if heap > budget+tierMemory {
			t.Fatalf("the broker holds %d MiB of remote Fetch responses for %d clients that do not read (%d MiB each); want the memory held for unread responses bounded across connections (at most queued.max.response.bytes %d MiB and the tier's memory LRU %d MiB here)",
				heap>>20, connections, heap/connections>>20, budget>>20, tierMemory>>20)
		}
		// Every connection's first Fetch holds its response or waits for
		// room, and those holding room have read their records (the
		// room held is that of the chunk buffers the reads hold).
		if holders > 0 && waiting > 0 && holders+waiting == connections && chunks*chunkBytes >= held {
			t.Logf("%d connections that pipelined %d remote Fetches of %d bytes each and read nothing: %d responses hold %d MiB of response memory, %d Fetches wait for room; %d MiB of heap held, %d chunk references",
				connections, pipelined, fetchBytes, holders, held>>20, waiting, heap>>20, chunks)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d responses hold %d bytes, %d Fetches wait, %d chunk references held (%d MiB of heap); want every one of the %d connections' Fetch holding its records or waiting", holders, held, waiting, chunks, heap>>20, connections)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOversizedFirstRemoteBatchWaitsForResponseMemory is
// TestOversizedFirstBatchWaitsForResponseMemory for records served from
// the object store: the first batch of a Fetch is returned whole even
// when larger than its limits (KIP-74), but not past
// queued.max.response.bytes. A Fetch whose first remote batch is larger
// than the room free gives back the read and the room it took and waits
// for room for the whole batch (holding nothing), answered without
// records at its max wait; once room is given back, it gets the batch.
func TestOversizedFirstRemoteBatchWaitsForResponseMemory(t *testing.T) {
	const (
		topic  = "oversized-remote"
		budget = 16 << 20 // 12 MiB for consumers
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier, func(c *broker.Config) { c.QueuedMaxResponseBytes = budget })
	cl := n.Client(kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	// A segment per batch (the third rolls the second), uploaded and
	// gone from the local log.
	createTopic(t, cl, topic, 1, map[string]string{"max.message.bytes": "16777216", "remote.storage.enable": "true", "segment.bytes": "9437184", "local.retention.bytes": "1"})
	p := leadingTopic(t, n, topic)
	for _, size := range []int{8 << 20, 6 << 20, 6 << 20} { // offsets 0, 1 and 2
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte("x"), size)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	defer startTierManager(t, ctx, n, tier)()
	waitLocalLogStart(t, ctx, p, 1, "offset 1")
	checkOversizedFirstBatchWaits(t, n, topic, budget, "remote batch", 30*time.Second)
}
