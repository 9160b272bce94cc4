package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/tiering"
)

// fetchAllocRange is what the allocation tests fetch: records of
// fetchAllocValue bytes, about fetchAllocMiB MiB of them.
const (
	fetchAllocMiB   = 24
	fetchAllocValue = 1 << 10
	fetchAllocMax   = 1 << 20
)

// produceRange produces about fetchAllocMiB MiB of fetchAllocValue-byte
// records to topic (created with configs), a few records per batch.
func produceRange(t *testing.T, n *brokertest.Node, topic string, configs map[string]string) {
	t.Helper()
	cl := n.Client(kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	defer cl.Close()
	createTopic(t, cl, topic, 1, configs)
	value := bytes.Repeat([]byte("0123456789abcdef"), fetchAllocValue/16)
	for range fetchAllocMiB << 20 / fetchAllocValue {
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// rawFetcher fetches one partition over a connection of its own, without
// a client library: the responses are read into one reused buffer and
// only the next offset is taken from them, so what the process allocates
// is the broker's.
type rawFetcher struct {
	t     *testing.T
	nc    net.Conn
	topic string
	body  []byte
	id    int32
	// isolation is the Fetches' isolation level (1: read_committed).
	isolation int8
}

func newRawFetcher(t *testing.T, n *brokertest.Node, topic string) *rawFetcher {
	t.Helper()
	nc, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawFetcher{t: t, nc: nc, topic: topic, body: make([]byte, 4<<20)}
}

// fetch fetches from offset and returns the record bytes the response
// carries and the offset after its last batch (offset when none).
func (f *rawFetcher) fetch(offset int64) (records int, next int64) {
	f.t.Helper()
	f.id++
	req := fetchFrom(f.topic, offset, fetchAllocMax)
	req.IsolationLevel = f.isolation
	if _, err := f.nc.Write(requestFrame(req, f.id)); err != nil {
		f.t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(f.nc, size[:]); err != nil {
		f.t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n > len(f.body) {
		f.t.Fatalf("a %d-byte response", n)
	}
	body := f.body[:n]
	if _, err := io.ReadFull(f.nc, body); err != nil {
		f.t.Fatal(err)
	}
	// Fetch v11, one topic, one partition, no aborted transactions:
	// correlation id 4, throttle 4, error 2, session 4, topics 4, name
	// 2+len, partitions 4, partition 4, error 2, high watermark 8, last
	// stable 8, log start 8, aborted transactions 4 (null, or none
	// read_committed), preferred replica 4, records size 4.
	at := 4 + 4 + 2 + 4 + 4 + 2 + len(f.topic) + 4 + 4
	if code := binary.BigEndian.Uint16(body[at:]); code != 0 {
		f.t.Fatalf("fetch at %d: error %d", offset, code)
	}
	at += 2 + 8 + 8 + 8 + 4 + 4
	size32 := int(binary.BigEndian.Uint32(body[at:]))
	recs := body[at+4 : at+4+size32]
	next = offset
	for len(recs) >= 61 {
		length := int(binary.BigEndian.Uint32(recs[8:]))
		if 12+length > len(recs) {
			break
		}
		next = int64(binary.BigEndian.Uint64(recs)) + int64(binary.BigEndian.Uint32(recs[23:])) + 1
		recs = recs[12+length:]
	}
	return size32, next
}

// pass fetches [0, end) once, Fetch after Fetch, and returns the record
// bytes fetched.
func (f *rawFetcher) pass(end int64) int64 {
	f.t.Helper()
	var fetched int64
	for offset := int64(0); offset < end; {
		n, next := f.fetch(offset)
		if next <= offset {
			f.t.Fatalf("fetch at %d returned no batch (%d bytes)", offset, n)
		}
		fetched += int64(n)
		offset = next
	}
	return fetched
}

// allocatedPerByte runs passes over [0, end) and returns the bytes the
// process allocated per record byte fetched. With
// STRATA_FETCH_ALLOC_PROFILE set to a directory it writes the allocation
// profile before and after there, named for what (compare them with
// `go tool pprof -sample_index=alloc_space -diff_base`).
func allocatedPerByte(f *rawFetcher, end int64, passes int, what string) (float64, int64) {
	var before, after runtime.MemStats
	runtime.GC()
	profile := func(suffix string) {
		if dir := os.Getenv("STRATA_FETCH_ALLOC_PROFILE"); dir != "" {
			runtime.GC()
			out, err := os.Create(filepath.Join(dir, strings.ReplaceAll(what, "/", "-")+suffix+".pb.gz"))
			if err != nil {
				f.t.Fatal(err)
			}
			defer out.Close()
			if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	profile("-before")
	runtime.ReadMemStats(&before)
	var fetched int64
	for range passes {
		fetched += f.pass(end)
	}
	runtime.ReadMemStats(&after)
	profile("-after")
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(fetched), fetched
}

// TestFetchAllocationsPerByte bounds what the broker allocates per byte
// a consumer fetches with 1 MiB Fetches, from the local log and from the
// tier once its chunks are warm (with the default memory LRU, which the
// chunks a sequential reader passes leave once on disk, so the warm passes
// load them ahead from the disk cache; or with none, each chunk read from
// the disk cache on the read's path), read_uncommitted and read_committed: the record bytes go from
// the segment's pooled read buffers and the tier's pooled chunk buffers
// to the socket (writev), so a Fetch allocates per request, not per byte
// (docs/performance.md, "Fetch path allocations"). Local: under 0.0125
// bytes per byte, about 13 KB per 1 MiB Fetch (0.003 measured; 0.007
// with -race, whose sync.Pool drops a quarter of what is put back; a
// fresh 16 KiB seek window per read made it 0.019). Remote: under 0.05,
// which a copy of the records (1 byte per byte) or a buffer per chunk
// read exceeds, and a chunk buffer or two the pool may still add on a
// busy machine (1 MiB each, 0.015 each here) does not (0.005 measured).
// The cold pass before, which fills the chunk pool (about a byte per byte
// while it fills: the read-ahead window's buffers and those waiting to be
// written), is logged, not bounded.
func TestFetchAllocationsPerByte(t *testing.T) {
	// measure fetches [0, end) warm, read_uncommitted and read_committed,
	// and fails when that allocates more than bound bytes per byte.
	measure := func(t *testing.T, f *rawFetcher, end int64, what string, bound float64) {
		t.Helper()
		for _, isolation := range []int8{0, 1} {
			f.isolation = isolation
			f.pass(end) // warm: the pools
			perByte, fetched := allocatedPerByte(f, end, 3, fmt.Sprintf("%s-isolation%d", t.Name(), isolation))
			t.Logf("%s, isolation level %d: %.4f bytes allocated per byte fetched (%d bytes)", what, isolation, perByte, fetched)
			if perByte > bound {
				t.Errorf("%s, isolation level %d: %.4f bytes allocated per byte fetched, want under %g", what, isolation, perByte, bound)
			}
		}
	}
	t.Run("local", func(t *testing.T) {
		n := brokertest.Start(t)
		produceRange(t, n, "local", nil)
		p := leadingTopic(t, n, "local")
		measure(t, newRawFetcher(t, n, "local"), p.HighWatermark(), "local", 0.0125)
	})
	for _, c := range []struct {
		name   string
		memory int64 // the tier's memory LRU (-1: none, reads from the disk cache)
	}{{"remote-memory", 0}, {"remote-disk", -1}} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			bucket, err := tiering.OpenBucket(ctx, "mem://")
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			tier, err := tiering.New(tiering.Config{Bucket: bucket, CacheDir: t.TempDir(), MemoryCacheBytes: c.memory})
			if err != nil {
				t.Fatal(err)
			}
			defer tier.Close()
			n := startTiered(t, tier)
			produceRange(t, n, "remote", map[string]string{"remote.storage.enable": "true", "segment.bytes": "4194304", "local.retention.bytes": "1"})
			p := leadingTopic(t, n, "remote")
			stop := startTierManager(t, ctx, n, tier)
			// All but the active segment leave the local log.
			for p.LogStartOffset() < p.HighWatermark()*2/3 {
				if ctx.Err() != nil {
					t.Fatalf("the segments never left the local log (local log start %d of %d)", p.LogStartOffset(), p.HighWatermark())
				}
				time.Sleep(10 * time.Millisecond)
			}
			stop()
			// Below the local log start, in whole segments.
			end := p.LogStartOffset()
			f := newRawFetcher(t, n, "remote")
			// Cold: the GETs fill the chunk pool, which the warm passes
			// then reuse.
			cold, coldFetched := allocatedPerByte(f, end, 1, t.Name()+"-cold")
			t.Logf("%s: cold pass %.4f bytes allocated per byte fetched (%d bytes)", c.name, cold, coldFetched)
			before := tier.Stats()
			measure(t, f, end, c.name, 0.05)
			after := tier.Stats()
			t.Logf("%s: warm passes: cache misses %d, chunk buffers allocated %d", c.name, after.CacheMisses-before.CacheMisses, after.ChunkBuffers-before.ChunkBuffers)
		})
	}
}
