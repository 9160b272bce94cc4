package tiering

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsBucket counts the requests and bytes that go through a Bucket.
// It wraps any Bucket; the counters are exported as Prometheus metrics
// (strata_tiering_bucket_*) when a registerer is given, and read directly
// with Counts. A GET is one Get call (one ranged request), a PUT one Upload
// call (one object; on S3 a multipart upload of n parts is n+2 requests).
type MetricsBucket struct {
	bucket Bucket
	counts bucketCounts
}

type bucketCounts struct {
	gets, getBytes, puts, putBytes, lists, stats, deletes, failures atomic.Int64
}

// BucketCounts is a snapshot of a MetricsBucket's counters.
type BucketCounts struct {
	Gets, GetBytes, Puts, PutBytes, Lists, Stats, Deletes, Failures int64
}

var _ Bucket = (*MetricsBucket)(nil)

// NewMetricsBucket wraps bucket; with a non-nil registerer it registers
// the counters there.
func NewMetricsBucket(bucket Bucket, registerer prometheus.Registerer) (*MetricsBucket, error) {
	m := &MetricsBucket{bucket: bucket}
	if registerer == nil {
		return m, nil
	}
	for _, c := range []struct {
		name, help string
		value      *atomic.Int64
	}{
		{"strata_tiering_bucket_gets_total", "Object GET requests (whole or ranged).", &m.counts.gets},
		{"strata_tiering_bucket_get_bytes_total", "Bytes read from the object store.", &m.counts.getBytes},
		{"strata_tiering_bucket_puts_total", "Objects uploaded.", &m.counts.puts},
		{"strata_tiering_bucket_put_bytes_total", "Bytes uploaded to the object store.", &m.counts.putBytes},
		{"strata_tiering_bucket_lists_total", "List operations.", &m.counts.lists},
		{"strata_tiering_bucket_stats_total", "Object attribute (HEAD) requests.", &m.counts.stats},
		{"strata_tiering_bucket_deletes_total", "Object deletes.", &m.counts.deletes},
		{"strata_tiering_bucket_failures_total", "Requests that failed.", &m.counts.failures},
	} {
		value := c.value
		collector := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(value.Load()) })
		if err := registerer.Register(collector); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Counts returns the counters.
func (m *MetricsBucket) Counts() BucketCounts {
	c := &m.counts
	return BucketCounts{
		Gets: c.gets.Load(), GetBytes: c.getBytes.Load(), Puts: c.puts.Load(), PutBytes: c.putBytes.Load(),
		Lists: c.lists.Load(), Stats: c.stats.Load(), Deletes: c.deletes.Load(), Failures: c.failures.Load(),
	}
}

func (m *MetricsBucket) failed(err error) error {
	if err != nil {
		m.counts.failures.Add(1)
	}
	return err
}

// Get implements BucketReader.
func (m *MetricsBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	m.counts.gets.Add(1)
	reader, err := m.bucket.Get(ctx, key, offset, length)
	if err != nil {
		return nil, m.failed(err)
	}
	return &countingReader{ReadCloser: reader, bytes: &m.counts.getBytes}, nil
}

// Size implements BucketReader.
func (m *MetricsBucket) Size(ctx context.Context, key string) (int64, error) {
	m.counts.stats.Add(1)
	size, err := m.bucket.Size(ctx, key)
	return size, m.failed(err)
}

// Iter implements BucketReader.
func (m *MetricsBucket) Iter(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	m.counts.lists.Add(1)
	return m.failed(m.bucket.Iter(ctx, prefix, fn))
}

// Upload implements Bucket.
func (m *MetricsBucket) Upload(ctx context.Context, key string, r io.Reader, partSize int) error {
	m.counts.puts.Add(1)
	if body, ok := r.(SizedReaderAt); ok {
		// Passed on as it is (read in place, see Bucket.Upload): its
		// size is what goes up.
		m.counts.putBytes.Add(body.Size())
		return m.failed(m.bucket.Upload(ctx, key, r, partSize))
	}
	return m.failed(m.bucket.Upload(ctx, key, &countingReader{ReadCloser: io.NopCloser(r), bytes: &m.counts.putBytes}, partSize))
}

// Delete implements Bucket.
func (m *MetricsBucket) Delete(ctx context.Context, key string) error {
	m.counts.deletes.Add(1)
	return m.failed(m.bucket.Delete(ctx, key))
}

type countingReader struct {
	io.ReadCloser
	bytes *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.bytes.Add(int64(n))
	return n, err
}

// NewTierCollector exports a Tier's Stats (chunk cache hits, misses,
// evictions, bytes; shared fetches; read-ahead; reader queue; retries;
// uploads) and its read latency histogram as Prometheus metrics named
// strata_tiering_*.
func NewTierCollector(t *Tier) prometheus.Collector {
	return &tierCollector{tier: t}
}

type tierCollector struct{ tier *Tier }

var tierMetrics = []struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Stats) int64
}{
	{prometheus.NewDesc("strata_tiering_cache_hits_total", "Chunk lookups served by the on-disk cache.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheHits }},
	{prometheus.NewDesc("strata_tiering_cache_misses_total", "Chunk lookups that needed a GET.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheMisses }},
	{prometheus.NewDesc("strata_tiering_shared_fetches_total", "Chunk misses that joined a GET in flight.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.SharedFetches }},
	{prometheus.NewDesc("strata_tiering_prefetches_total", "Chunk GETs started ahead of sequential readers.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.Prefetches }},
	{prometheus.NewDesc("strata_tiering_cache_evictions_total", "Chunks evicted from the cache.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheEvictions }},
	{prometheus.NewDesc("strata_tiering_cache_bytes", "Bytes of the chunk cache's files (spare files left by an earlier process, to be overwritten, included).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.CacheBytes }},
	{prometheus.NewDesc("strata_tiering_cache_corrupt_chunks_total", "Cached chunks dropped because their bytes were wrong.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CorruptChunks }},
	{prometheus.NewDesc("strata_tiering_index_fetches_total", "Offset indexes fetched from the store.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.IndexFetches }},
	{prometheus.NewDesc("strata_tiering_retries_total", "Store requests retried after a retriable failure.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.Retries }},
	{prometheus.NewDesc("strata_tiering_segments_uploaded_total", "Segments uploaded.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.SegmentsUploaded }},
	// Remote reads (Kafka's RemoteLogReaderTaskQueueSize and friends).
	{prometheus.NewDesc("strata_tiering_chunk_gets_total", "GETs of .log chunks (each fetches a run of chunks, or for a sequential reader streams the rest of the segment over its runs).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.ChunkGETs }},
	{prometheus.NewDesc("strata_tiering_sequential_reads_total", "Remote reads that continued a reader's previous read (read ahead).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.SequentialReads }},
	{prometheus.NewDesc("strata_tiering_remote_reads_waiting", "Remote reads waiting for a reader thread (RemoteLogReaderTaskQueueSize).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.ReadsWaiting }},
	{prometheus.NewDesc("strata_tiering_read_ahead_bytes", "Bytes being fetched ahead of sequential readers now (within the read-ahead budget).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.ReadAheadBytes }},
	{prometheus.NewDesc("strata_tiering_read_ahead_tasks", "Read-ahead GETs and loads from the disk cache in flight now (at most --remote-log-reader-threads; several per reader once it caught up with the store).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.ReadAheadTasks }},
	{prometheus.NewDesc("strata_tiering_open_streams", "GETs of segments held open between the read-ahead runs of sequential readers (each read on by the run that continues it; closed once idle).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.OpenStreams }},
	{prometheus.NewDesc("strata_tiering_remote_reads_rejected_total", "Remote reads refused because --remote-log-reader-max-pending-tasks were waiting.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.ReadsRejected }},
	{prometheus.NewDesc("strata_tiering_cache_writes_dropped_total", "Chunks not written to the disk cache because its write-behind queue stayed full.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheWritesDropped }},
	{prometheus.NewDesc("strata_tiering_reader_get_waits_total", "Remote reads that waited before fetching their own chunks because the disk cache's writer fell behind (the replay slowed to the disk instead of holding more chunks in memory).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.ReaderGETWaits }},
	{prometheus.NewDesc("strata_tiering_chunk_buffers_allocated_total", "Chunk buffers allocated (the others were reused).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.ChunkBuffers }},
	{prometheus.NewDesc("strata_tiering_cache_direct_io", "1 when the chunk cache's files are written and read with O_DIRECT (bypassing the page cache), 0 when buffered (the file system refuses O_DIRECT, or --remote-log-cache-direct-io=false).", nil, nil), prometheus.GaugeValue, func(s Stats) int64 {
		if s.CacheDirectIO {
			return 1
		}
		return 0
	}},
	{prometheus.NewDesc("strata_tiering_cache_files_written_total", "Files the disk cache's writer wrote (each holds the chunks of one GET, or one chunk).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheFilesWritten }},
	{prometheus.NewDesc("strata_tiering_cache_disk_reads_total", "Chunks read from the disk cache's files on a reader's path (the reader waits for the device read).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheDiskReads }},
	{prometheus.NewDesc("strata_tiering_cache_disk_reads_ahead_total", "Chunks loaded from the disk cache's files into memory ahead of sequential readers, off their path.", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.CacheDiskReadsAhead }},
	{prometheus.NewDesc("strata_tiering_batch_bytes_verified_ahead_total", "Bytes of record batches whose CRC-32C was checked by read-ahead, before their chunk reached readers (off the Fetch's path).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.BatchBytesVerifiedAhead }},
	{prometheus.NewDesc("strata_tiering_batch_bytes_crc_on_read_total", "Bytes of record batches whose CRC-32C a remote read checked on its own path (not verified ahead).", nil, nil), prometheus.CounterValue, func(s Stats) int64 { return s.BatchBytesCRCOnRead }},
	{prometheus.NewDesc("strata_tiering_read_chunks_held", "Chunk references held by remote read results not yet written to their sockets (or dropped); growing without bound is a leak.", nil, nil), prometheus.GaugeValue, func(s Stats) int64 { return s.ReadChunksHeld }},
}

// cacheWriteSecondsDesc is the disk cache writer's busy time: its rate
// is the fraction of the time the writer is busy (1: it is the limit of
// a replay that fills the cache).
var cacheWriteSecondsDesc = prometheus.NewDesc("strata_tiering_cache_write_seconds_total",
	"Time the disk cache's writer spent writing chunk files (rate 1: always busy, and replays filling the cache wait for it).", nil, nil)

func (c *tierCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheWriteSecondsDesc
	for _, m := range tierMetrics {
		ch <- m.desc
	}
	c.tier.readSeconds.Describe(ch)
	c.tier.storeWaitSeconds.Describe(ch)
	c.tier.quotas.describe(ch)
}

func (c *tierCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.tier.Stats()
	for _, m := range tierMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(stats)))
	}
	ch <- prometheus.MustNewConstMetric(cacheWriteSecondsDesc, prometheus.CounterValue, stats.CacheWriteSeconds)
	c.tier.readSeconds.Collect(ch)
	c.tier.storeWaitSeconds.Collect(ch)
	c.tier.quotas.collect(ch)
}

// newReadSeconds is the histogram of Read latencies (Kafka's remote fetch
// latency), queueing for a reader thread included.
func newReadSeconds() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "strata_tiering_remote_read_seconds",
		Help:    "Latency of remote reads (one partition of a Fetch served from the object store or the chunk cache), waiting for a reader thread included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
}

// newStoreWaitSeconds is the histogram of the waits of remote reads for
// chunks not yet in memory or the disk cache: one observation per chunk a
// read waited for from the store (its own GET, or a read-ahead GET still
// in flight). Few observations next to strata_tiering_remote_read_seconds'
// count mean the read-ahead keeps ahead of the readers.
func newStoreWaitSeconds() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "strata_tiering_store_wait_seconds",
		Help:    "Time a remote read waited for a chunk from the object store (its own GET, or a read-ahead GET still in flight); one observation per chunk waited for.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
}
