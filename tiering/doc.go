// Package tiering is Strata's cold tier: it copies sealed segments to an
// object store (S3 or any S3-compatible server, a local directory, memory
// in tests) through gocloud.dev/blob and serves reads of them, byte for
// byte what the local segment held. It knows nothing of Raft or the
// broker, and shares metadata's types: a partition is named by a
// metadata.TopicPartition, a segment in the store is described by its
// metadata.SegmentManifest (the Raft manifest entry, with its
// metadata.EpochRange leader epochs). The broker's tier manager
// (broker/tiermanager) decides what to upload and commits the returned
// entry in the Raft manifest; the broker reads remote data through an
// interface of its own that Tier implements (broker.RemoteReader); this
// package moves and checks bytes.
//
// "Manifest" means one thing here as everywhere in Strata: the Raft
// manifest of tiered segments, whose entries are metadata.SegmentManifest
// values. A copy of one partition's manifest is a ManifestSnapshot; the
// object it is written to in the bucket is the manifest snapshot object
// (named "manifest-<leader epoch>" in the bucket; "manifest" alone in
// buckets written before the epoch joined the name, still read).
//
// # Using it
//
//	bucket, _ := tiering.OpenBucket(ctx, "s3://b?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true")
//	tier, _ := tiering.New(tiering.Config{Bucket: bucket, CacheDir: dir})
//	entry, _ := tier.Upload(ctx, tiering.SegmentFiles{Partition: p, ...}) // then commit entry in Raft
//	batches, _ := tier.Read(ctx, p, entry, offset, maxBytes, true)        // consumer below local log start
//	net.Buffers(batches.Buffers()).WriteTo(conn); batches.Release()       // the chunks' bytes (writev), then back to the pool
//
// A file:// bucket (fileblob) is made durable by this package, which
// fileblob is not: Upload returns only once the object's file, its
// directory and any directory created for it are fsynced, and Delete once
// its directory is; objects are written to a temporary file next to their
// name and renamed (no_tmp_dir, so a bucket on another file system than
// os.TempDir works), without fileblob's ".attrs" sidecar files
// (metadata=skip: they are written in place and a torn one fails every
// read; old ones are still read). A URL that sets these parameters keeps
// its own.
//
// Buckets are layered: OpenBucket gives a *BlobBucket; NewMetricsBucket
// wraps any Bucket with request and byte counters; tieringtest.FaultBucket
// wraps one with injected failures. Errors are classified by the Bucket
// (errors.Is ErrNotFound / ErrUnavailable), never by parsing provider
// messages.
//
// # Bucket layout
//
// Every key starts with Config.Prefix and a slash (no slash without a
// prefix). One directory per partition of one topic incarnation — the topic
// id (32 lowercase hex digits) keeps a re-created topic apart from the old
// one — holding six objects per segment and the manifest snapshot:
//
//	<prefix>/<topic>-<topic id hex>/<partition>/
//	    <base offset, 20 digits>-<segment uuid>.log        the .log file, as on disk
//	    <base offset, 20 digits>-<segment uuid>.index      the .index file, as on disk
//	    <base offset, 20 digits>-<segment uuid>.timeindex  the .timeindex file, as on disk
//	    <base offset, 20 digits>-<segment uuid>.epochs     leader-epoch ranges (below)
//	    <base offset, 20 digits>-<segment uuid>.producers  producer snapshot at the segment's end, as on disk (may be empty)
//	    <base offset, 20 digits>-<segment uuid>.txnindex   aborted-transaction index (below; may be empty)
//	    manifest-<leader epoch, 10 digits>                 manifest snapshot (below), e.g. manifest-0000000007
//
// e.g. strata/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/00000000000000004242-ffeeddcc-bbaa-9988-7766-554433221100.log.
// The .log, .index, .timeindex and .producers objects hold the local files'
// bytes unchanged (formats in broker/segment/doc.go and
// broker/producer/doc.go). The uuid is chosen per copy of a segment:
// uploading again under the same uuid overwrites the same six objects; a
// copy under a new uuid never collides with an older one whose deletion is
// still pending. Names are part of the format, do not change.
//
// # .txnindex object
//
// The transactions aborted by an ABORT marker in the uploaded range
// (broker/tiermanager reads them from the partition's aborted-transaction
// index; a trimmed copy leaves out those whose marker is before its
// first offset), in marker order, in Kafka's .txnindex format: 34-byte
// entries version int16 (0) | producer id int64 | first offset int64 |
// last offset int64 (the marker) | last stable offset int64, big endian,
// no header (broker/segment/txnindex.go; golden test
// testdata/txnindex.golden). Only segments entirely below the partition's
// last stable offset are uploaded, so the object is final. Segments
// uploaded before this object existed have none: a missing one reads as
// empty (they could hold no transactional data) and scrub does not report
// it. A read_committed Fetch served from the bucket lists the entries of
// the segment read and of the segments after it, remote then local, that
// overlap what it returns (Tier.ReadAbortedTxns, decoded objects kept in
// memory). The manifest entry records whether the object holds entries
// (metadata.SegmentManifest.TxnIndex, set by DescribeSegment from the
// file uploaded; Kafka's txnIdxEmpty, KIP-1058): the broker never reads
// an object recorded empty. Entries of earlier versions say nothing
// (unknown) and are read; a recovery sets it from the object's size in
// the bucket listing (ManifestSnapshots), as the manifest snapshot object
// does not hold it.
//
// # .epochs object
//
// The leader-epoch ranges of the segment, read from its batch headers
// (partitionLeaderEpoch) at upload: a new range starts at each batch whose
// epoch differs from the previous batch's. Big endian; part of the format,
// do not change:
//
//	 0        4        6                 10
//	+--------+--------+-----------------+
//	| "STRE" | version| count uint32    |   version = 1
//	+--------+--------+-----------------+
//	then count ranges, epochs strictly increasing, start offsets not decreasing:
//	+-----------------+-----------------------------------+
//	| epoch int32     | start offset int64                |   12 bytes each
//	+-----------------+-----------------------------------+
//	then:
//	+-----------------+
//	| crc32c uint32   |   CRC-32C (Castagnoli) of every byte before it
//	+-----------------+
//
// # Manifest snapshot object
//
// A snapshot of the partition's readable remote segments (its Raft
// manifest's SegmentCopyFinished entries), written by PutManifestSnapshot,
// so that a cluster can be rebuilt from the bucket alone. Its name carries
// the writer's leader epoch, zero-padded to 10 digits
// ("manifest-0000000007"): object stores without conditional PUT (file
// buckets, some S3 servers) let the last writer of a shared name win, so a
// deposed or paused leader could otherwise replace a newer leader's
// snapshot with an older one. Readers (GetManifestSnapshot, and
// ManifestSnapshots for recovery and `strata tiering` commands) take the
// object with the highest epoch; the name "manifest" without an epoch
// (written by earlier versions) counts as lower than any epoch. After
// writing, PutManifestSnapshot deletes the partition's snapshot objects of
// lower epochs; a deposed leader's late one is deleted by the next
// snapshot of the current leader, and scrub reports it as an orphan until
// then. A recovery from the bucket gives the imported entries the epoch
// of the snapshot they came from, so the recovered cluster's leader
// epochs, and its snapshots, are above the old cluster's. An entry's LeaderEpoch and State are not in the object.
//
// Version 2 holds the partition's log start offset (the quorum's, moved by
// DeleteRecords or retention; the first segment's base offset when none
// was set): a recovery sets it in the recovered partition when it is above
// the first segment imported, so the records deleted inside a segment stay
// deleted. The tier manager rewrites the object when the log start moves,
// not only when segments change. Version 1 objects (written before) have
// no log start: it reads as -1 (unknown), and a recovery from one serves
// each segment from its base offset. Writers write version 2; readers
// read both. Big endian; part of the format, do not change:
//
//	 0        4        6          8
//	+--------+--------+----------+--------------------+
//	| "STRM" | version| topic    | topic name          |   version = 2 (or 1)
//	|        | uint16 | length   | (length bytes,      |
//	|        |        | uint16   |  UTF-8)             |
//	+--------+--------+----------+--------------------+
//	+-----------------------------------+-----------------+
//	| topic id [16]byte                 | partition int32 |
//	+-----------------------------------+-----------------+
//	version 2 only:
//	+-----------------------------------+
//	| log start offset int64 (-1 =      |
//	| unknown)                          |
//	+-----------------------------------+
//	+-----------------+
//	| count uint32    |
//	+-----------------+
//	then count entries, base offsets strictly increasing:
//	 0                 16           24           32           40
//	+-----------------+------------+------------+------------+
//	| segment uuid    | base offset| last offset| size       |
//	| [16]byte        | int64      | int64      | int64 (.log|
//	|                 |            |            | bytes)     |
//	+-----------------+------------+------------+------------+
//	40           48           56            60
//	+------------+------------+-------------+--------------------------------+
//	| first      | max        | epoch count | epoch ranges as in .epochs:    |
//	| timestamp  | timestamp  | uint32      | (epoch int32, start int64) × n |
//	| int64 (-1  | int64 (-1  |             |                                |
//	| = none)    | = none)    |             |                                |
//	+------------+------------+-------------+--------------------------------+
//	then:
//	+-----------------+
//	| crc32c uint32   |   CRC-32C of every byte before it
//	+-----------------+
//
// ManifestSnapshots lists and decodes every partition's manifest snapshot
// under the prefix (disaster recovery). An object that fails any check
// (magic, version, CRC, lengths, order) is reported as a *CorruptError;
// nothing from it is used. testdata/*.golden pin the formats
// (manifest-v2.golden is the manifest snapshot object as written,
// manifest.golden one of version 1, still read).
//
// # Upload
//
// Upload walks the .log's batch headers first (framing, dense offsets from
// the base offset) to describe the segment, then uploads the six objects,
// the .log first. Every source is a SizedReaderAt (a section of the open
// file, or bytes in memory), and on S3 it is sent in place: one PutObject
// up to Config.UploadPartBytes, else CreateMultipartUpload, parts of
// Config.UploadPartBytes sent as sections of the file (5 at a time), then
// CompleteMultipartUpload; a failed multipart upload is aborted. No part is
// copied into a buffer (the AWS transfer manager behind gocloud's writer
// copied each into a fresh part-sized one: 87 MB of heap per 32 MiB
// segment, against 0.6 MB now, TestS3UploadFromFileAllocatesNoPartBuffers).
// Each request's body is unsigned and aws-chunked with its CRC-32 in a
// trailer, computed while the body is sent (s3payload.go: over plain HTTP
// the SDK would put it in a header, reading every byte once more before
// sending it); the server refuses a body whose CRC-32 differs
// (TestS3UploadCorruptedOnTheWayIsRefused), and the SDK retries a request
// by seeking the section back. A failed part stops the parts not started
// and the abort waits for those in flight. file:// and mem:// buckets write
// through gocloud's writer. A retriable failure of one object retries that
// object with exponential backoff and jitter. At most
// Config.UploadConcurrency segments upload at once. The tier manager first
// describes the segment (DescribeSegment, which picks the segment uuid) and
// commits "copy started" with it in Raft, then calls UploadDescribed with
// that description (the headers are read once), then commits "copy
// finished"; only then may the local copy go
// (DESIGN invariant 4). It pipelines one partition's segments: up to
// UploadConcurrency of them are started ("copy started" committed, objects
// being written) while "copy finished" is committed in offset order only. A copy that never finished is found in the manifest
// by the next leader, which deletes its objects (DeleteSegment) and the
// entry before uploading again, so a crash leaves no orphans behind. DeleteSegment removes
// the objects .log last; missing ones count as deleted. It then drops the
// segment from the chunk and index caches, after marking it in a record
// of the last deleted segments (deleted.go), so that a read of it already
// under way does not put its chunks or indexes back.
//
// # Remote read
//
//	manifest entry → .index (fetched once per segment, decoded, kept in an
//	in-memory LRU bounded by IndexCacheBytes) → position of the last entry
//	whose batch ends at or before the offset → walk batch headers forward to
//	the batch holding the offset → whole batches up to maxBytes (the first
//	one whole, KIP-74) → the chunks covering them.
//
// The .log is read in chunks aligned to Config.ChunkBytes (chunk i covers
// bytes [i·ChunkBytes, (i+1)·ChunkBytes), the last one shorter), fetched
// by ranged GETs of one chunk or of a run of consecutive chunks. Chunk
// bytes live in pooled buffers (reference counted, reused once the last
// holder releases them), so neither a GET nor a cache hit allocates and
// zeroes a fresh buffer per chunk. A fetched chunk is handed to its readers
// and kept in an in-memory LRU (MemoryCacheBytes) first, then queued for
// the on-disk LRU cache (CacheDir, CacheBytes) by a writer goroutine
// behind the readers: a bounded queue (chunks that wait too long for room
// in it are not cached on disk), whose chunks are served from memory
// until written; space is reserved first, so the directory never holds
// more than CacheBytes of chunk files, and a file evicted while it waits
// is never written (TestChunkEvictedWhileQueuedNeverWritten). The chunks of one run (a GET's, or
// one part of a streamed GET's, below) go into one
// file (creating a file costs more than filling it), at most as many as
// the queue holds:
//
//	<segment uuid>-<index of its first chunk, 10 digits>.chunk
//	+-----------------+-----------------+-----+----------------------+
//	| chunk first     | chunk first+1   | ... | last (may be short:  |
//	| ChunkBytes      | ChunkBytes      |     | the segment's end)   |
//	+-----------------+-----------------+-----+----------------------+
//
// written to a temporary name (…chunk.tmpXXXXXXXX) and renamed. A file's
// chunks stay in the cache together: the least recently used chunk's
// file is evicted whole, and a chunk found damaged drops its file. A cache
// file is the chunks' bytes and nothing else: no checksum of its own. The batch checks below run on
// every read whatever the bytes' source (store, memory or file), and they
// cover every byte a read returns, the header fields the batch CRC-32C
// does not cover included: each header is tied to an offset known apart
// from the chunk bytes (the segment's base offset at position 0, the
// offset index entry's last offset at its position, or where the same
// reader's previous read ended), each batch must start where the one
// before it ended (base offset), a wrong batch length moves the range the
// CRC is computed over (and the next header), the magic must be 2, and
// the partition leader epoch must be the one the segment's manifest
// (EpochRanges, taken from the batches at upload) gives the batch's base
// offset. So each byte is checksummed once per read that returns it: a
// cold miss does not checksum the chunk again to cache it, nor a warm hit
// the file it reads back. A read from the cache that fails the checks
// drops its chunks and reads again from the store; a file that is missing
// or shorter than its chunk is a miss (TestDamagedCacheFileNeverServed
// damages every header field, a record, a header across two files, and
// cuts and removes files).
//
// The batch CRC-32C is computed off the Fetch's path where it can be: the
// read-ahead that brings a chunk in (a GET's chunks after the one a reader
// waits for, or a load from a cache file ahead of a sequential reader)
// walks its batches from a known boundary (the segment's start, or where
// the walk of the chunk before it ended: chunk.tail) and, before the chunk
// is published to readers, records on that in-memory chunk which batches
// it checked: the positions of those whole in it, and the batch that
// starts in the chunk before and ends in it, checked over both and tied to
// the id of that very chunk before (ids are unique per buffer hand-out).
// A read skips the CRC of a batch its own anchored walk finds at a
// recorded position (and, for a spanning one, only with the same chunk
// before in hand); every other check above runs on every batch. The
// record is a fact about those bytes in memory, never about the file: a
// chunk read back from its file is a new chunk, unverified until checked
// again (TestDamagedChunkVerifiedAheadNeverServed). Batches spanning more
// than two chunks, and chunks whose chain of boundaries is not known (the
// chunk before neither in memory nor on its way), are checked by the
// reads. Counted in strata_tiering_batch_bytes_verified_ahead_total and
// strata_tiering_batch_bytes_crc_on_read_total.
//
// Files are written without fsync and none left by an earlier process is
// served, so a power loss never serves a torn file: New removes
// interrupted writes (…chunk.tmpXXXXXXXX) and, through the page cache,
// renames the other files to spare-N.spare (up to CacheBytes, counted in
// it; removed beyond, and all of them with O_DIRECT), which new files are
// written over, as a full cache writes a new file over the one it evicts
// (overwriting a file's allocated blocks costs a fraction of creating
// one). An entry named like a cache file that is not a regular file (a
// directory, a symbolic link) is not the cache's: New leaves it alone,
// unused and uncounted, and logs a warning with its path
// (TestChunkCacheStartSkipsEntriesNotItsOwn). Where the CacheDir's file system allows it (Linux, not tmpfs;
// probed once at New, strata_tiering_cache_direct_io) the files are
// written and read with O_DIRECT, bypassing the page cache: the chunk
// buffers are 4096-aligned, and a chunk whose length is not a multiple of
// 4096 (a segment's last) is written padded, then truncated; the files'
// content is the chunk's bytes either way (Config.CacheBufferedIO turns
// it off). Concurrent readers
// of a chunk (or an index) share one GET, run detached from any one
// reader's context under Config.RequestTimeout; a reader that gives up
// does not fail the others. A reader is known by the offset it reads
// next: a read that starts where a previous read of the partition ended
// (whatever the read sizes, so consumers with default fetch sizes
// qualify), or at a segment's base offset, is sequential. It starts at the
// byte position the previous read ended at (or 0) without the offset
// index, its misses fetch its read-ahead window (8 chunks, doubling per
// read up to Config.PrefetchChunks) in one ranged GET, and after each
// read the window after it is kept in memory or on its way: a chunk only
// in the disk cache is loaded from its file into the memory LRU in the
// background (with O_DIRECT a disk hit is a device read, which would
// otherwise be on the reader's path), and a missing one is fetched, but
// nothing is fetched until a run of at least 4 chunks is missing, a run
// whose end would leave fewer than 4 chunks of the segment takes them
// too, and the chunks of a run are handed out one by one as they stream
// in (a failed read-ahead, or a load of a file that is gone or damaged,
// makes its waiting readers fetch on their own, with retries). A
// sequential reader's runs are read from one GET per segment, streamed:
// a run that needs a new GET asks for the rest of the segment (from its
// first chunk to the segment's end; from chunk 0 a whole-object GET,
// which a store may serve without copying: versitygw's posix backend
// sendfiles it but copies any other range) and reads only its own chunks
// from the body; the body is then parked as the segment's open stream at
// the run's next chunk, and the run that starts there (a run started
// while the one before it still reads waits for it) takes it and reads
// on, without a GET. A reader that catches up with its read-ahead (a read
// finds a chunk a read-ahead run has not delivered yet: the store's
// connection is slower than the reader, as one S3 connection delivers
// tens of MB/s) does not make its next runs wait for the stream: each
// makes a ranged GET of its own chunks, so several are in flight at once
// (up to Config.ReaderThreads per broker; strata_tiering_read_ahead_tasks),
// and the stream they passed is closed where it would have been parked.
// The runs of that segment already waiting for the stream are released
// the same way (streams.release), so only the run reading the stream
// when the reader caught up comes over its one connection.
// Its window then grows on to 4 × Config.PrefetchChunks, in runs of half
// PrefetchChunks, and its runs stay ranged GETs while it reads on (it
// does not go back to one stream when a read finds its chunks in
// memory); not while the remote fetch quota is saturated (its pacer paid
// out at least 90% of the quota over the last 100 ms or 8 chunks' time,
// quota.Pacer.Saturated): the reader then caught up with the quota
// rather than the store, more runs would only pile up the quota's debt,
// and a grown window goes back to PrefetchChunks. Under a quota above
// what the store's connections deliver, a reader still gets several.
// Such a run checks the batch spanning its first chunk and the one
// before without waiting for that one (the reader checks what is left).
// Bytes are read from a body only when a run asks for
// them (TCP flow control holds the store back meanwhile), so the bytes
// read stay the bytes needed; a parked stream is closed, the rest of it
// unread, when no run takes it within 10 s, when more than
// Config.ReaderThreads are parked (the least recently parked first), or
// by Close (strata_tiering_open_streams counts those parked). Each run
// reads under Config.RequestTimeout (past it the GET is cancelled and
// the rest of the run fails); a body that fails is closed, never parked,
// and a parked one that fails on its first chunk gives way to a new GET.
// Any other run (a random reader's, or one that does not start where a
// parked stream goes on) makes a ranged GET of its own chunks. So a
// sequential replay served faster than it reads makes one GET per segment
// (on AWS S3 every GET is billed), one that outruns the store about one
// per run, and either fetches each byte once, plus one window for a
// reader that stops (a caught-up reader's grown one), and a warm one finds its chunks in memory. The chunks a sequential reader has passed
// (all those before the one its read ends in, and the last one at a
// segment's end) leave the memory LRU as soon as they are in the disk
// cache (at once when written already, else when the writer has written
// them; meanwhile they wait at the LRU's back, to leave it first), their
// buffers back to the pool (chunkCache.passed): a long replay neither
// allocates a buffer per chunk until the LRU is full (a cold pass uses
// about its read-ahead window's buffers and those waiting to be written)
// nor pushes out the windows loaded ahead of the readers and the chunks
// random readers use (scan resistance). Another reader of the same
// partition trailing it loads them again from the disk cache, ahead of
// it; a chunk another reader gets before it leaves stays as any other. Once the rest of a segment is in memory or
// on its way the window goes on into the next segment
// (Config.NextSegment, the broker's manifest). The chunks fetched
// ahead of all readers (past the one each waits for) stay within
// Config.ReadAheadBytes (loads from the disk cache as well): a read-ahead
// GET is shortened to what is left,
// so windows shrink when many partitions replay at once. With the remote
// fetch quota set (Config.FetchMaxBytesPerSecond, KIP-956) every GET
// reads its body and every load ahead reads its chunk file at the quota's
// pace, a chunk at a time (quota.go); no read-ahead starts while the
// quota throttles, and one fetches at most a second's worth of it. At most
// Config.ReaderThreads reads run at once (and as many read-ahead GETs or
// loads are in flight); Config.ReaderMaxPendingTasks more wait, and a read past them
// returns ErrBusy at once.
// Read is safe for concurrent use: the broker reads the remote partitions
// of one Fetch concurrently. For ListOffsets by timestamp, TimestampStart
// reads the segment's .timeindex (checked by broker/segment/index, the
// local log's decoder: timestamps not negative and strictly increasing,
// offsets not decreasing and inside the segment) and returns the offset of
// its last entry at or below the timestamp, where the broker starts
// reading batches.
//
// Before any bytes are returned every batch is checked: header, CRC-32C
// (here, or by the read-ahead that loaded its chunk, above),
// first batch holding the offset and starting where its anchor says,
// dense offsets, nothing past the segment's last offset, leader epochs as
// the manifest's. A failed check drops the chunks involved and
// reads them once more from the store; if they fail again the read returns
// a *CorruptError. A store that cannot be reached returns an error
// wrapping ErrUnavailable after Config.ReadAttempts tries. Either way no
// data comes with an error: never wrong data, never partial data.
//
// # Scrub
//
// Scrub (whole prefix) and ScrubPartition list the bucket and compare it
// with snapshots of the partitions' manifests (entries in every state):
// objects without an entry (orphans: failed uploads, interrupted deletes,
// a deposed uploader's late objects, manifest snapshot objects older than
// the partition's newest, unknown names), entries whose objects are
// missing, and .log objects whose size differs from the entry.
// ListPartition, DeleteObjects and AbortMultipartUploads are what the
// broker's tier manager deletes orphans with (what is an orphan, and when
// deleting it is safe, is the tier manager's decision).
//
// # Concurrency
//
// A Tier is safe for concurrent use. Its goroutines are the shared and
// prefetch GETs (and the idle timer of the parked streams); Close cancels
// them, waits, and closes the parked streams. Buckets are safe for
// concurrent use.
package tiering
