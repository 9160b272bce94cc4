package tiering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/metadata"
)

// Defaults of Config's zero values.
const (
	DefaultChunkBytes       = 1 << 20
	DefaultCacheBytes       = 256 << 20
	DefaultIndexCacheBytes  = 16 << 20
	DefaultPrefetchChunks   = 16
	DefaultMemoryCacheBytes = 64 << 20
	// DefaultReaderThreads and DefaultReaderMaxPendingTasks are Kafka's
	// remote.log.reader.threads and remote.log.reader.max.pending.tasks
	// defaults.
	DefaultReaderThreads         = 10
	DefaultReaderMaxPendingTasks = 100
	DefaultUploadConcurrency     = 4
	DefaultUploadPartBytes       = 8 << 20
	DefaultUploadAttempts        = 5
	DefaultReadAttempts          = 2
	DefaultRetryBackoff          = 100 * time.Millisecond
	DefaultMaxRetryBackoff       = 5 * time.Second
	DefaultRequestTimeout        = 30 * time.Second
)

// Config configures a Tier. The zero value of every field but Bucket means
// its default.
type Config struct {
	// Bucket is the object store (required): a *BlobBucket from
	// OpenBucket, possibly wrapped (NewMetricsBucket, fault injection).
	Bucket Bucket
	// Prefix is prepended to every key ("" = the bucket root). No leading
	// or trailing slash.
	Prefix string
	// ChunkBytes is the size of the aligned ranges remote reads fetch and
	// cache. Default 1 MiB.
	ChunkBytes int64
	// CacheDir holds the on-disk chunk cache; the *.chunk files it holds at
	// New are never served (kept as spare files to write over, or
	// removed). Default: a temporary directory removed by Close.
	CacheDir string
	// CacheBytes bounds the chunk cache. Default 256 MiB.
	CacheBytes int64
	// CacheBufferedIO makes the chunk cache write and read its files
	// through the page cache. By default it uses O_DIRECT where the
	// CacheDir's file system allows it (Linux, not tmpfs): filling the
	// page cache costs more CPU than the disk write, and the memory LRU
	// holds the chunks read recently already (see chunkCache).
	CacheBufferedIO bool
	// MemoryCacheBytes bounds the in-memory LRU of recently used and
	// read-ahead chunks in front of the disk cache. The chunks a
	// sequential reader has passed leave it once they are on disk (a
	// replay does not fill it). Default 64 MiB (at least 8 chunks);
	// negative disables.
	MemoryCacheBytes int64
	// IndexCacheBytes bounds the in-memory cache of offset indexes.
	// Default 16 MiB.
	IndexCacheBytes int64
	// PrefetchChunks is the read-ahead window a sequential reader grows
	// to, in chunks: the window starts at 8 chunks (or this, when
	// smaller) and doubles with each sequential read up to it; a reader
	// that catches up with the store has it grow on to 4 times this, read
	// by runs of half of it in parallel (not while the FetchMaxBytesPerSecond
	// quota is saturated).
	// Default 16; negative disables read-ahead.
	PrefetchChunks int
	// ReadAheadBytes bounds the bytes all sequential readers have being
	// fetched (or loaded from the disk cache) ahead of them at once (the chunks past the one a reader
	// waits for): when many partitions replay, each read-ahead GET takes
	// what is left, so windows shrink instead of overrunning the memory
	// they wait in. Default MemoryCacheBytes (at least 4 chunks).
	ReadAheadBytes int64
	// NextSegment, when set, returns the segment that follows segment in
	// the partition's manifest (false: none yet), so a sequential reader
	// nearing a segment's end has the next segment's first chunks read
	// ahead. The broker's manifest lives in the metadata quorum, so the
	// caller plugs it in.
	NextSegment func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool)
	// ReaderThreads bounds the remote reads served at once (Kafka's
	// remote.log.reader.threads) and the read-ahead GETs (and loads from
	// the disk cache) in flight.
	// Default 10.
	ReaderThreads int
	// ReaderMaxPendingTasks bounds the reads waiting for one of the
	// ReaderThreads (remote.log.reader.max.pending.tasks); a read beyond
	// it returns ErrBusy at once. Default 100; negative: none waits.
	ReaderMaxPendingTasks int
	// UploadConcurrency bounds the segments uploaded at once over all
	// Upload calls. Default 4.
	UploadConcurrency int
	// UploadPartBytes is the part size of streaming (multipart) uploads.
	// Default 8 MiB; at least 5 MiB (S3's minimum part size).
	UploadPartBytes int
	// UploadAttempts is how often an object upload or delete is tried
	// before a retriable failure is returned. Default 5.
	UploadAttempts int
	// ReadAttempts is how often a GET is tried before a read returns
	// ErrUnavailable. Default 2.
	ReadAttempts int
	// RetryBackoff is the first wait between attempts; it doubles (with
	// jitter) up to MaxRetryBackoff. Defaults 100 ms and 5 s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// RequestTimeout bounds one GET shared by readers (it runs detached
	// from any single reader's context). Default 30 s.
	RequestTimeout time.Duration
	// CopyMaxBytesPerSecond and FetchMaxBytesPerSecond are Kafka's
	// tiered storage quotas (KIP-956, quota.go):
	// remote.log.manager.copy.max.bytes.per.second bounds the bytes
	// uploaded per second (uploads wait), and
	// remote.log.manager.fetch.max.bytes.per.second the bytes remote
	// reads take from the store and the disk cache, paced a chunk at a
	// time (while it throttles the broker skips remote reads of
	// consumers' Fetches, FetchQuota, and no read-ahead starts).
	// 0 or math.MaxInt64 (Kafka's default) is unlimited.
	CopyMaxBytesPerSecond, FetchMaxBytesPerSecond int64
	// QuotaClock is the quotas' time source; default the real clock
	// (tests inject one).
	QuotaClock quota.Clock
	// Logger receives warnings (retries, corrupt cache files). Default
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	setDefault(&c.ChunkBytes, DefaultChunkBytes)
	setDefault(&c.CacheBytes, DefaultCacheBytes)
	setDefault(&c.MemoryCacheBytes, max(8*c.ChunkBytes, DefaultMemoryCacheBytes))
	setDefault(&c.ReadAheadBytes, max(c.MemoryCacheBytes, minRun*c.ChunkBytes))
	setDefault(&c.IndexCacheBytes, DefaultIndexCacheBytes)
	setDefault(&c.PrefetchChunks, DefaultPrefetchChunks)
	setDefault(&c.ReaderThreads, DefaultReaderThreads)
	setDefault(&c.ReaderMaxPendingTasks, DefaultReaderMaxPendingTasks)
	setDefault(&c.UploadConcurrency, DefaultUploadConcurrency)
	setDefault(&c.UploadPartBytes, DefaultUploadPartBytes)
	setDefault(&c.UploadAttempts, DefaultUploadAttempts)
	setDefault(&c.ReadAttempts, DefaultReadAttempts)
	setDefault(&c.RetryBackoff, DefaultRetryBackoff)
	setDefault(&c.MaxRetryBackoff, DefaultMaxRetryBackoff)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault[T int | int64 | time.Duration](field *T, value T) {
	if *field == 0 {
		*field = value
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Bucket == nil:
		return fmt.Errorf("%w: Bucket is required", ErrInvalidConfig)
	case strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("%w: Prefix %q must not start or end with a slash", ErrInvalidConfig, c.Prefix)
	case c.ChunkBytes < 4<<10 || c.ChunkBytes > 1<<30:
		return fmt.Errorf("%w: ChunkBytes %d outside [4 KiB, 1 GiB]", ErrInvalidConfig, c.ChunkBytes)
	case c.CacheBytes < c.ChunkBytes:
		return fmt.Errorf("%w: CacheBytes %d below ChunkBytes %d", ErrInvalidConfig, c.CacheBytes, c.ChunkBytes)
	case c.ReadAheadBytes < c.ChunkBytes:
		return fmt.Errorf("%w: ReadAheadBytes %d below ChunkBytes %d", ErrInvalidConfig, c.ReadAheadBytes, c.ChunkBytes)
	case c.IndexCacheBytes < 0:
		return fmt.Errorf("%w: IndexCacheBytes %d negative", ErrInvalidConfig, c.IndexCacheBytes)
	case c.UploadConcurrency < 0, c.UploadAttempts < 0, c.ReadAttempts < 0, c.ReaderThreads < 0:
		return fmt.Errorf("%w: concurrency and attempt counts must be positive", ErrInvalidConfig)
	case c.UploadPartBytes < 5<<20:
		return fmt.Errorf("%w: UploadPartBytes %d below S3's 5 MiB minimum", ErrInvalidConfig, c.UploadPartBytes)
	case c.RetryBackoff < 0 || c.MaxRetryBackoff < c.RetryBackoff || c.RequestTimeout < 0:
		return fmt.Errorf("%w: backoffs and timeouts must be positive, MaxRetryBackoff >= RetryBackoff", ErrInvalidConfig)
	case c.CopyMaxBytesPerSecond < 0 || c.FetchMaxBytesPerSecond < 0:
		return fmt.Errorf("%w: CopyMaxBytesPerSecond %d, FetchMaxBytesPerSecond %d: quotas must be 0 (unlimited) or more", ErrInvalidConfig, c.CopyMaxBytesPerSecond, c.FetchMaxBytesPerSecond)
	}
	return nil
}

// Tier uploads sealed segments to an object store and serves reads of
// them. All methods are safe for concurrent use. Close stops the
// background fetches (prefetches, GETs shared by readers) and waits for
// them.
type Tier struct {
	config  Config
	layout  layout
	bucket  Bucket
	logger  *slog.Logger
	cache   *chunkCache
	indexes *indexCache
	// txnIndexes holds the decoded .txnindex objects of remote segments.
	txnIndexes *txnIndexCache
	// deleted are the segments deleted last (DeleteSegment): what a read
	// under way brings back of one is not cached (deletedSegments).
	deleted *deletedSegments

	uploadSlots   chan struct{} // one token per segment being uploaded
	prefetchSlots chan struct{} // one token per read-ahead GET in flight
	// readerGETs has one token per GET a reader started for its own
	// miss, held until the GET's chunks are queued for the disk cache: a
	// writer slower than the replay makes readers wait here rather than
	// pile fetched chunks up in memory.
	readerGETs  chan struct{}
	readSlots   chan struct{} // one token per read admitted (running or waiting)
	readThreads chan struct{} // one token per read running

	// background is the lifetime of fetches that run detached from the
	// reader that started them; cancelled by Close.
	background       context.Context
	cancelBackground context.CancelFunc
	workers          sync.WaitGroup // fetch goroutines
	removeCacheDir   bool

	flightMu     sync.Mutex                // guards flights, chunkFlights, runStarts
	flights      map[string]*flight        // whole-object GETs in progress (indexes), by key
	chunkFlights map[chunkKey]*chunkFlight // chunks being fetched
	chunks       *chunkPool                // chunk buffers
	// runStarts counts the runs registered at each chunk (startRunLocked)
	// that have not looked for a stream parked there yet (runGET).
	runStarts map[chunkKey]int

	sequentialMu sync.Mutex                               // guards readers
	readers      map[metadata.TopicPartition][]readerMark // what readers' last reads left
	readerClock  uint64

	// streams are the GETs parked between the runs of sequential
	// readers' read-ahead (runGET).
	streams *streams
	// onRun, when set (tests), is called as a run of chunks starts
	// (runGET) with the bytes it is to read, and what it returns once it
	// has read them (or failed).
	onRun func(bytes int64) (ended func())
	// onPace, when set (tests), is called with the bytes each wait for
	// the fetch quota takes (paceFetch).
	onPace func(bytes int64)

	aheadMu    sync.Mutex // guards aheadBytes
	aheadBytes int64      // read-ahead bytes being fetched (within ReadAheadBytes)

	closed      atomic.Bool
	stats       stats
	readSeconds prometheus.Histogram // Read latencies
	// storeWaitSeconds: how long reads waited for GETs of chunks they
	// needed (fetchChunk).
	storeWaitSeconds prometheus.Histogram
	quotas           quotas // KIP-956 copy and fetch quotas
}

// New checks cfg and returns a Tier. The chunk cache directory is created;
// the chunk files an earlier process left are never served (kept as spare
// files to write new chunks over, up to CacheBytes, or removed: doc.go).
func New(cfg Config) (*Tier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t := &Tier{
		config:        cfg,
		layout:        layout{prefix: cfg.Prefix},
		bucket:        cfg.Bucket,
		logger:        cfg.Logger,
		indexes:       newIndexCache(cfg.IndexCacheBytes),
		txnIndexes:    newTxnIndexCache(),
		deleted:       newDeletedSegments(deletedSegmentsRemembered),
		uploadSlots:   make(chan struct{}, cfg.UploadConcurrency),
		prefetchSlots: make(chan struct{}, cfg.ReaderThreads),
		readerGETs:    make(chan struct{}, cfg.ReaderThreads),
		readSlots:     make(chan struct{}, cfg.ReaderThreads+max(cfg.ReaderMaxPendingTasks, 0)),
		readThreads:   make(chan struct{}, cfg.ReaderThreads),
		flights:       make(map[string]*flight),
		chunkFlights:  make(map[chunkKey]*chunkFlight),
		runStarts:     make(map[chunkKey]int),
		// Idle buffers: what the write queue, the read-ahead and the reads
		// under way (a chunk each) free when the cache writer catches up
		// (chunkPool).
		chunks: newChunkPool(cfg.ChunkBytes,
			writeQueueChunks(max(cfg.MemoryCacheBytes, 0), cfg.ChunkBytes)+cfg.ReadAheadBytes/cfg.ChunkBytes+int64(cfg.ReaderThreads)),
		readers:          make(map[metadata.TopicPartition][]readerMark),
		streams:          newStreams(cfg.ReaderThreads),
		readSeconds:      newReadSeconds(),
		storeWaitSeconds: newStoreWaitSeconds(),
		quotas:           newQuotas(cfg),
	}
	dir := cfg.CacheDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "strata-tiering-cache-"); err != nil {
			return nil, fmt.Errorf("tiering: chunk cache: %w", err)
		}
		t.removeCacheDir = true
	}
	cache, err := newChunkCache(chunkCacheConfig{
		dir: dir, capacity: cfg.CacheBytes, memoryCapacity: max(cfg.MemoryCacheBytes, 0),
		bufferedIO: cfg.CacheBufferedIO, logger: cfg.Logger, deleted: t.deleted,
	}, t.chunks, &t.stats)
	if err != nil {
		return nil, err
	}
	t.cache = cache
	t.background, t.cancelBackground = context.WithCancel(context.Background())
	return t, nil
}

// Close stops background fetches and waits for them; with the default
// CacheDir it removes the cache. Later calls return nil. The bucket is the
// caller's to close.
func (t *Tier) Close() error {
	// Under flightMu: background goroutines are added under it after
	// checking closed, so none is added once Wait may run.
	t.flightMu.Lock()
	alreadyClosed := t.closed.Swap(true)
	t.flightMu.Unlock()
	if alreadyClosed {
		return nil
	}
	t.cancelBackground()
	t.streams.close()
	t.workers.Wait()
	t.cache.close()
	if t.removeCacheDir {
		return os.RemoveAll(t.cache.dir)
	}
	return nil
}

// Stats are counters since New.
type Stats struct {
	CacheHits        int64 // chunk lookups served by the on-disk cache
	CacheMisses      int64 // chunk lookups that needed a GET (possibly shared)
	SharedFetches    int64 // misses that joined a GET already in flight
	Prefetches       int64 // chunks fetched ahead of a sequential reader (its read-ahead window)
	CacheEvictions   int64 // chunks dropped to stay within CacheBytes
	CacheBytes       int64 // bytes of the chunk cache's files now (spare files of an earlier process included)
	CorruptChunks    int64 // cached chunks dropped because their bytes were wrong
	IndexCacheHits   int64
	IndexFetches     int64
	Retries          int64 // attempts after a retriable failure (uploads, deletes, reads)
	SegmentsUploaded int64 // segments uploaded
	// ChunkGETs counts ranged GETs of .log chunks (each fetches a run of
	// chunks, or for a sequential reader streams the rest of the segment
	// over its runs); index objects are IndexFetches.
	ChunkGETs int64
	// CacheWritesDropped counts chunks not written to the disk cache
	// because its write-behind queue stayed full for RequestTimeout (or
	// the tier closed).
	CacheWritesDropped int64
	// ChunkBuffers counts chunk buffers allocated (the rest were reused).
	ChunkBuffers int64
	// SequentialReads counts reads that continued a reader's previous
	// read (or started a segment) and so had its window read ahead.
	SequentialReads int64
	// ReadsWaiting is the reads waiting for a reader thread now (Kafka's
	// RemoteLogReaderTaskQueueSize); ReadsRejected counts those refused
	// with ErrBusy because ReaderMaxPendingTasks were waiting.
	ReadsWaiting, ReadsRejected int64
	// ReadAheadBytes is the bytes being fetched ahead of sequential
	// readers now (at most Config.ReadAheadBytes).
	ReadAheadBytes int64
	// ReadAheadTasks is the read-ahead GETs and loads from the disk
	// cache in flight now (at most Config.ReaderThreads): several for a
	// reader that caught up with the store.
	ReadAheadTasks int64
	// OpenStreams is the GETs parked now between the runs of sequential
	// readers' read-ahead, each to be read on by the run that continues
	// it (at most ReaderThreads; closed once idle for 10 s).
	OpenStreams int64
	// CacheDirectIO says the chunk cache's files are written and read
	// with O_DIRECT (decided at New).
	CacheDirectIO bool
	// ReadChunksHeld is the chunk references held by read results
	// (Read's Batches) not released yet: 0 once every read is done with.
	ReadChunksHeld int64
	// CacheDiskReads counts chunks read from the disk cache's files on a
	// reader's path (the reader waits for the device read);
	// CacheDiskReadsAhead counts those loaded from the files into memory
	// ahead of sequential readers, off their path.
	CacheDiskReads, CacheDiskReadsAhead int64
	// BatchBytesVerifiedAhead counts the bytes of batches whose CRC-32C a
	// read-ahead (a GET, or a load from the disk cache) checked before its
	// chunk reached readers, and BatchBytesCRCOnRead those whose CRC a read
	// checked on its own path (the batches it returns not verified ahead).
	BatchBytesVerifiedAhead, BatchBytesCRCOnRead int64
	// ReaderGETWaits counts reads that waited before starting a GET of
	// their own because ReaderThreads such GETs were still queueing their
	// chunks for a disk cache writer that fell behind.
	ReaderGETWaits int64
	// StoreWaits counts the chunks reads waited for from the store: the
	// reader's own GET, or one (a read-ahead) still in flight when the
	// reader needed its chunk. A sequential replay whose read-ahead keeps
	// up waits only for its first chunks.
	StoreWaits int64
	// CacheFilesWritten counts the disk cache's files written (each holds
	// the chunks of one GET, or one chunk), and
	// CacheWriteSeconds the time its writer spent writing them (a rate of
	// 1 s/s: the writer is busy all the time, and the replays that fill
	// the cache wait for it).
	CacheFilesWritten int64
	CacheWriteSeconds float64
}

type stats struct {
	cacheHits, cacheMisses, sharedFetches, prefetches, cacheEvictions, corruptChunks atomic.Int64
	indexCacheHits, indexFetches, retries, segmentUploads                            atomic.Int64
	chunkGets, cacheWritesDropped, sequentialReads, readsWaiting, readsRejected      atomic.Int64
	readChunksHeld, diskReads, diskReadsAhead, readerGETWaits, storeWaits            atomic.Int64
	cacheFilesWritten, cacheWriteNanos                                               atomic.Int64
	bytesVerifiedAhead, bytesCRCOnRead                                               atomic.Int64
}

// Stats returns the counters.
func (t *Tier) Stats() Stats {
	return Stats{
		CacheHits: t.stats.cacheHits.Load(), CacheMisses: t.stats.cacheMisses.Load(),
		SharedFetches: t.stats.sharedFetches.Load(), Prefetches: t.stats.prefetches.Load(),
		CacheEvictions: t.stats.cacheEvictions.Load(), CacheBytes: t.cache.bytes(),
		CorruptChunks: t.stats.corruptChunks.Load(), IndexCacheHits: t.stats.indexCacheHits.Load(),
		IndexFetches: t.stats.indexFetches.Load(), Retries: t.stats.retries.Load(),
		SegmentsUploaded: t.stats.segmentUploads.Load(),
		ChunkGETs:        t.stats.chunkGets.Load(), CacheWritesDropped: t.stats.cacheWritesDropped.Load(),
		ChunkBuffers: t.chunks.allocations.Load(), SequentialReads: t.stats.sequentialReads.Load(),
		ReadsWaiting: t.stats.readsWaiting.Load(), ReadsRejected: t.stats.readsRejected.Load(),
		ReadAheadBytes: t.readAheadInFlight(), ReadAheadTasks: int64(len(t.prefetchSlots)), OpenStreams: t.streams.count(), CacheDirectIO: t.cache.direct, ReadChunksHeld: t.stats.readChunksHeld.Load(),
		CacheDiskReads: t.stats.diskReads.Load(), CacheDiskReadsAhead: t.stats.diskReadsAhead.Load(),
		ReaderGETWaits: t.stats.readerGETWaits.Load(), StoreWaits: t.stats.storeWaits.Load(),
		BatchBytesVerifiedAhead: t.stats.bytesVerifiedAhead.Load(), BatchBytesCRCOnRead: t.stats.bytesCRCOnRead.Load(),
		CacheFilesWritten: t.stats.cacheFilesWritten.Load(), CacheWriteSeconds: time.Duration(t.stats.cacheWriteNanos.Load()).Seconds(),
	}
}

// retry runs op up to attempts times while it fails with a retriable
// error, waiting with exponential backoff and jitter in between.
func (t *Tier) retry(ctx context.Context, attempts int, what string, op func() error) error {
	backoff := t.config.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !IsRetriable(err) || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		t.stats.retries.Add(1)
		wait := backoff/2 + rand.N(backoff/2+1)
		t.logger.Warn("tiering: retrying", "op", what, "attempt", attempt, "wait", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(err, ctx.Err())
		case <-timer.C:
		}
		backoff = min(backoff*2, t.config.MaxRetryBackoff)
	}
}
