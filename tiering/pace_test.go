package tiering_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/quota/quotatest"
	"github.com/strata-log/strata/tiering"
)

// bodyBucket counts the bytes read from the bodies of .log GETs.
type bodyBucket struct {
	tiering.Bucket
	read atomic.Int64
}

func (b *bodyBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	body, err := b.Bucket.Get(ctx, key, offset, length)
	if err != nil || !strings.HasSuffix(key, ".log") {
		return body, err
	}
	return &countedBody{ReadCloser: body, read: &b.read}, nil
}

type countedBody struct {
	io.ReadCloser
	read *atomic.Int64
}

func (c *countedBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// With remote.log.manager.fetch.max.bytes.per.second set, a cold replay
// takes the bytes from the store at the quota: at every moment, the
// bytes read from the store since the replay began are at most one chunk
// (the pacer's burst) plus the quota times the time elapsed, read-ahead
// included. Before, an admitted reader and its read-ahead read whole
// windows at full speed: the whole replay went in no time at all.
func TestColdReplayPacedByFetchQuota(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk, rate = 16 << 10, 4 * (16 << 10)
	bucket := &bodyBucket{Bucket: store}
	clock := quotatest.NewClock()
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 16, FetchMaxBytesPerSecond: rate, QuotaClock: clock})
	origin := clock.Now()

	var (
		mu        sync.Mutex // guards violation
		violation string
	)
	check := func(now time.Time) {
		elapsed := now.Sub(origin)
		if read, limit := bucket.read.Load(), chunk+int64(math.Ceil(rate*elapsed.Seconds())); read > limit {
			mu.Lock()
			violation = cmp.Or(violation, fmt.Sprintf("%d bytes read from the store within %s of the replay: more than a chunk plus the quota's, %d", read, elapsed, limit))
			mu.Unlock()
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, check) // time passes only while the replay waits for the quota
	}()
	var total int64
	for i, remote := range segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; {
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
			if want := local.localRead(t, local.sealed[i], offset, 16<<10); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("segment %d read %d: %v, %s", i, offset, err, describeDiff(got, want))
			}
			offset = lastOffsetOf(got) + 1
		}
		total += remote.SizeBytes
	}
	tiering.WaitCacheWrites(tier)
	close(stop)
	<-stopped
	check(clock.Now())
	if violation != "" {
		t.Fatal(violation)
	}
	// The quota did not waste time either: the replay took about what the
	// quota says for the bytes read (read-ahead past the end included).
	elapsed := clock.Now().Sub(origin)
	if read := bucket.read.Load(); read < total || elapsed < time.Duration(float64(read-chunk)/rate*float64(time.Second)) {
		t.Fatalf("%d bytes read (the log is %d) in %s at %d B/s", read, total, elapsed, rate)
	}
}

// Under a saturated remote fetch quota, a sequential reader's read-ahead
// is what the quota pays within Kafka's remote fetch max wait (500 ms),
// at least the 8 chunks a reader starts with: here the quota pays 4
// chunks a second, so the window stays at 8 rather than growing to
// PrefetchChunks (16). A longer window does not make the reader
// faster (the quota sets its pace), while every chunk of it is paid for
// before the reader needs it, ahead of other readers' chunks, and lost
// when the reader stops. Before, the store's bytes ran up to 16 chunks
// ahead of the reader.
func TestReadAheadUnderASaturatedQuotaStaysSmall(t *testing.T) {
	local, store, segments := uploadedLog(t, 250)
	const chunk, rate = 16 << 10, 4 * (16 << 10)
	bucket := &bodyBucket{Bucket: store}
	clock := quotatest.NewClock()
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk, PrefetchChunks: 16, FetchMaxBytesPerSecond: rate, QuotaClock: clock})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		clock.Run(stop, func(time.Time) {}) // time passes only while the replay waits for the quota
	}()
	remote := segments[0]
	var consumed, mostAhead int64
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := readBytes(tier, context.Background(), testPartition, remote, offset, chunk)
		if want := local.localRead(t, local.sealed[0], offset, chunk); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d: %v, %s", offset, err, describeDiff(got, want))
		}
		consumed += int64(len(got))
		offset = lastOffsetOf(got) + 1
		tiering.WaitFetches(tier) // what this read started is in
		mostAhead = max(mostAhead, bucket.read.Load()-consumed)
	}
	close(stop)
	<-stopped
	t.Logf("the store's bytes ran up to %.1f chunks ahead of the reader", float64(mostAhead)/chunk)
	if mostAhead > 9*chunk {
		t.Fatalf("the store's bytes ran %d bytes (%.1f chunks) ahead of the reader, want at most the 8 chunks of a reader's first window and the chunk being read", mostAhead, float64(mostAhead)/chunk)
	}
}
