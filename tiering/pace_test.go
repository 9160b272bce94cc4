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
