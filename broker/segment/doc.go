// Package segment is the durable local log of one partition: a directory of
// Kafka-style segment files holding record batches exactly as appended, with
// sparse offset and time indexes, recovery after a crash, retention, and
// reads that do not block appends.
//
// # Directory
//
// One Log owns one partition directory <data>/<topic>-<partition>/:
//
//	00000000000000000000.log          record batches v2, back to back
//	00000000000000000000.index        sparse offset index of that segment
//	00000000000000000000.timeindex    sparse time index of that segment
//	00000000000000000000.txnindex     aborted transactions whose ABORT marker is in
//	                                  that segment (Kafka's format, see txnindex.go);
//	                                  only when the segment holds one
//	00000000000000004242.log          next segment: base offset 4242 …
//	partition.metadata                topic id (Kafka's format)
//	log-start-offset-checkpoint       log start offset set by SetStartOffset (Strata checkpoint)
//	clean-shutdown                    written by Close, removed by Open (Strata checkpoint)
//	cleaner-offset-checkpoint         offset below which Compact last cleaned (Strata checkpoint)
//	<base>.{log,index,timeindex}.cleaned / .swap   an unfinished compaction swap (see Compaction)
//
// Segment file names are the segment's base offset (the offset of its first
// batch) in 20 decimal digits. The last segment is the active one; appends
// go only there. Files this package does not know (leader-epoch checkpoint,
// producer snapshots) are left alone; the three names above ending in .tmp
// are leftovers of an interrupted atomic write and removed by Open, as are
// .index/.timeindex/.txnindex files without their .log.
//
// # .log: record batches v2
//
// The file is a sequence of Kafka record batches, magic 2, as the producer
// sent them (the caller validated them) except for the base offset, which
// Append stamps. Big endian:
//
//	 0                   8         12        16 17        21    23        27
//	+-------------------+---------+---------+--+---------+-----+---------+
//	| baseOffset int64  | length  | leader  |m | crc     |attr | lastOff |
//	|                   | int32   | epoch   |=2| uint32  |int16| Delta   |
//	+-------------------+---------+---------+--+---------+-----+---------+
//	27                  35                  43                  51    53
//	+-------------------+-------------------+-------------------+-----+---------+---------+
//	| firstTimestamp    | maxTimestamp      | producerId int64  |epoch| baseSeq | records |
//	| int64             | int64             |                   |int16| int32   | int32   |
//	+-------------------+-------------------+-------------------+-----+---------+---------+
//	61: records … (length - 49 bytes)
//
// length counts the bytes after the length field, so a batch takes
// 12 + length bytes. crc is CRC-32C (Castagnoli) of bytes [21, end); the base
// offset and partition leader epoch lie outside it. The batch holds offsets
// baseOffset .. baseOffset+lastOffsetDelta; the next batch starts at the
// offset after. Offsets are dense within a segment, and the first batch's
// base offset is the segment's base offset.
//
// # .index: offset index
//
// Sparse, sorted, 8 bytes per entry (relativeOffset int32, position int32),
// big endian; the bytes are drawn in package broker/segment/index, the one
// codec of both indexes (tiering decodes its copies with it too).
// relativeOffset is a batch's last offset minus the segment's base offset;
// position is where that batch starts in the .log. An entry is written for
// the first batch that starts more than IndexIntervalBytes after the
// previous entry's batch (Kafka's rule, applied per batch rather than per
// append). To find offset o: take the last entry with relativeOffset at most
// o - base (or position 0) and walk batch headers forward to the first batch
// whose last offset is at least o.
//
// # .timeindex: time index
//
// Sparse, sorted, 12 bytes per entry (timestamp int64 in ms,
// relativeOffset int32), big endian, drawn in package broker/segment/index.
// Written together with an offset index entry when the segment's largest
// timestamp so far grew since the last time entry: timestamp is that
// largest timestamp and relativeOffset the last offset of the first batch
// that carried it. Timestamps strictly increase. When a segment is rolled or
// the log closed, an entry holding the segment's largest timestamp is
// appended if the last entry does not hold it, so the last entry of a sealed
// segment is its largest timestamp (retention reads it from there). To find
// the first batch with maxTimestamp >= t: pick the first segment whose
// largest timestamp is >= t, take the last entry with timestamp <= t (or the
// base offset), look its offset up in the offset index and walk forward.
//
// The indexes carry no checksum, as in Kafka: they are derived data. Open
// checks them (package index's decoder checks: size a multiple of the
// entry size, entries strictly increasing and inside the segment; then the
// last offset entry pointing at the batch it names, the last time entry
// matching its batch's maxTimestamp) and rebuilds them from the .log when
// a check fails or a file is missing. A lookup that lands on a batch other
// than the one its entry names falls back to scanning the segment from its
// start.
//
// # partition.metadata
//
// Kafka's PartitionMetadataFile, text, no trailing newline:
//
//	version: 0
//	topic_id: <16 bytes, URL-safe base64 without padding (22 chars)>
//
// # Strata checkpoints: log-start-offset-checkpoint, clean-shutdown
//
// Text, one "key: value" per line, each line ending in a newline; the first
// line is the version, the last a CRC-32C (8 lowercase hex digits) of every
// byte before that line. Written to <name>.tmp, fsynced, renamed, then the
// directory fsynced. Part of the format, do not change:
//
//	version: 0
//	log_start_offset: 1234          (clean-shutdown: log_end_offset: 5678)
//	crc32c: 0a1b2c3d
//
// log-start-offset-checkpoint records a start offset set by SetStartOffset
// (or lowered by Truncate); Open uses the larger of it and the first
// segment's base offset. An unreadable one fails Open (a *CorruptError):
// ignoring it would resurrect deleted records.
//
// # Durability contract
//
//   - Append writes the bytes to the active segment with one write(2) (pwrite)
//     before it returns, so a killed process (kill -9) loses nothing: the
//     page cache survives it.
//   - fsync happens when a segment is rolled (log, both indexes; in the
//     background, see below; the new file's directory entry before the
//     roll returns), on Flush and Close, after FlushMessages records and
//     when the oldest unflushed append is FlushInterval old (on Append and
//     FlushIfDue), and after Truncate. By default neither count nor time
//     triggers it: like Kafka, Strata relies on replication, not fsync,
//     for acknowledged writes.
//   - The fsync of a segment sealed by a roll runs on its own goroutine,
//     as Kafka schedules the flush of a rolled segment: the append that
//     rolls does not wait for it (a mostly dirty 1 GiB segment takes about
//     2 s to fsync, 256 MiB about 0.5 s). At most one sealed segment waits
//     for its fsync: a roll first waits, under the append lock, for the
//     previous roll's (normally long done). Flush, Close, Truncate and
//     TruncateFullyAndStartAt wait for it too; Sync waits for it outside
//     the append lock; Delete, retention and compaction do not (the fsync
//     holds its own reference on the files; a compacted copy is fsynced
//     before its swap). Until it is done SyncedEnd stays below
//     the sealed segment's end, and a flush policy counts its records as
//     unflushed. Its failure fails the Log (below).
//   - Sync is the group commit of the durable mode (broker/partition, with
//     flush.messages=1): it fsyncs the active segment's .log file without
//     the append lock, so appends and reads continue while it runs, and
//     publishes SyncedEnd, the end offset when it started: one fsync covers
//     every append before it (and it waits for a sealed segment's fsync
//     still running). SyncedEnd also moves when a sealed segment's
//     background fsync is done, with Flush and Close, only goes down on
//     Truncate, and at Open is the end offset after a clean shutdown, the
//     active segment's base offset otherwise.
//   - Open of a log without segments (a new partition) fsyncs the parent
//     directory too, so that the log directory's own name is durable.
//   - Segments before the last two were fsynced (a roll waits for the
//     previous roll's fsync), so after a power loss only the active
//     segment and the one sealed by the last roll can have a torn or
//     missing tail.
//   - Close writes the clean-shutdown marker (with the end offset) after
//     the final fsync, which covers a sealed segment's background one.
//     Open removes it first; when it was present and the indexes pass
//     their checks, Open skips verifying the last segments. Without it,
//     Open verifies every batch of the last two segments (header sanity,
//     CRC-32C, contiguous offsets, length within the file) and truncates
//     at the first bad or torn one, logging file, position and reason;
//     when the second to last loses bytes, the last is deleted so offsets
//     stay dense. It then fsyncs the second to last (after a process
//     crash its tail may be in the page cache only), so that the segments
//     before the last are durable again when the next roll comes.
//     Appends continue at the offset after the last good batch. (So an
//     unclean open reads up to two segments, not one: the price of not
//     keeping a recovery point checkpoint as Kafka does.)
//   - An fsync that fails (Sync, a flush, the background fsync of a
//     segment sealed by a roll) leaves the page cache state unknown: the
//     kernel may have dropped the pages it could not write and report the
//     next fsync as a success. The Log is failed then (Failed): appends, flushes and syncs
//     answer ErrLogFailed, and SyncedEnd no longer moves, until Open
//     recovers the log. Config.SyncFault injects such a failure in tests.
//
// # Concurrency
//
// A Log is safe for concurrent use. Mutations are serialized by one lock.
// Readers take no lock that appends take: they read up to the end offset
// published when they start (bytes are written before the end offset is
// published) and hold a reference on each segment they read, so retention
// can delete a segment under an in-flight read (its descriptors stay open
// until the last reader is done). Truncate rewrites bytes in place, so it
// waits for in-flight reads.
//
// # Compaction
//
// Log.Compact is one pass of Kafka's log cleaner (cleanup.policy=compact),
// called by the owner of the log; nothing here runs it in the background.
//
//   - Cleanable part: the longest run of oldest sealed segments whose largest
//     timestamp (or, without timestamps, last modification) is at least
//     MinCompactionLag old and that end at or below StableEnd (the
//     partition's last stable offset) when set. The active segment is never
//     touched.
//   - Dirty ratio: bytes of cleanable segments ending above the
//     cleaner-offset-checkpoint over all cleanable bytes; below
//     MinCleanableDirtyRatio the pass does nothing unless Force is set.
//   - Offset map: key -> offset of its latest record over the whole log up
//     to the end offset at the start of the pass, or StableEnd when lower
//     (dirty and active part included; an open transaction's records never
//     supersede anything, nor do an aborted transaction's), exact keys in
//     memory (Kafka hashes them to bound memory).
//   - A record in the cleanable part is kept when it has no key (Kafka
//     refuses null keys on compacted topics at produce time; here they are
//     kept), or it is its key's latest record, except that a latest record
//     with a null value (tombstone) is dropped once its batch's delete
//     horizon passed. As in Kafka (KIP-534), the first pass that keeps a
//     tombstone stamps its batch's delete horizon (now + DeleteRetention:
//     attribute bit 6, the first timestamp holds the horizon, record
//     timestamp deltas re-encoded against it, maxTimestamp and record
//     timestamps unchanged, CRC recomputed); the first pass at or after
//     the horizon removes it. So removing a tombstone takes two passes, and
//     a consumer that reads the log to its end within DeleteRetention of
//     the first sees every delete, however old the tombstone was then. A
//     stamped batch keeps its horizon when rebuilt later. Readers of time
//     (time index, FindTimestamp, retention, MaxTimestampBatch) use
//     maxTimestamp only, never the first timestamp.
//   - Transactions, as Kafka's cleaner (CleanedTransactionMetadata): the
//     aborted-transaction entries of every segment say which transactional
//     batches are aborted (producer P's batches at offsets first..last of
//     an entry of P; last is the ABORT marker). Aborted batches are removed
//     whole. Committed transactional records are compacted like any other.
//     A marker (control batch) is kept while the pass walked a batch of its
//     transaction (an ABORT marker: an aborted batch of P since the entry's
//     first offset; a COMMIT marker: a transactional batch of P since P's
//     previous marker). The first pass that finds a marker's transaction
//     without data stamps its delete horizon into the batch, as for
//     tombstones; the first pass at or after the horizon removes it. So
//     removing an aborted transaction takes three passes: the data, then
//     the stamp, then (DeleteRetention later) the marker.
//     Control batches without records (never written here) go at once;
//     control records of other types stay.
//   - Aborted-transaction index: merged segments' entries are concatenated
//     into the merged segment's .txnindex before the swap; after the swap
//     commits (<base>.log.swap written) and before <base>.log.swap is
//     renamed, the entries whose ABORT marker the pass removed are dropped
//     (a read_committed consumer skips P's transactional batches from an
//     entry's first offset until it meets P's ABORT marker, so an entry
//     outliving its marker would hide P's later committed transactions).
//     Open, finishing a committed swap, drops the entries whose marker is
//     not in the swapped log. An entry
//     whose data is gone but whose marker stays (for DeleteRetention) is
//     kept, unlike Kafka (harmless: no batch of it remains to skip, and
//     the marker ends it).
//   - Kept records never change offset. A batch that keeps every record is
//     copied byte for byte. A batch that loses some is rebuilt: same base
//     offset, lastOffsetDelta, attributes (so the same codec and
//     timestamp type), partition leader epoch, producer id/epoch, base
//     sequence and firstTimestamp (the delete horizon once stamped, see
//     above); each kept record keeps its offset delta,
//     timestamp, key, value and headers; maxTimestamp is recomputed for
//     CreateTime batches. The records are re-compressed with the batch's
//     codec by recordbatch.Compress (the libraries recordbatch
//     decodes with); snappy is written as a raw block even when the
//     producer used the xerial framing. Rebuilt batches have
//     recordCount < lastOffsetDelta+1 and sparse offset deltas, which
//     recordbatch.Validate refuses from clients (Records and Iterate accept them).
//   - A run of consecutive batches that lose every record becomes one empty
//     filler batch (no records, no timestamps, producer id -1, codec none)
//     covering the run's offsets (a run ends where the partition leader
//     epoch changes), so offsets stay dense inside a segment and
//     recovery keeps its contiguity check; it costs 61 bytes per run. A
//     fetch at a removed offset returns the batch containing it (possibly a
//     filler, which consumers skip) or the next kept one. A producer's
//     last data batch (CompactOptions.Producers, from the partition's
//     producer state) is kept instead when it loses every record, aborted
//     or not, emptied — offsets, timestamps, producer id, epoch, sequences
//     and transactional flag kept, no records, no codec — as Kafka's
//     RETAIN_EMPTY, so producer state rebuilt from the log still knows
//     the producer (its transaction's marker stays while it does). A
//     producer without a data batch at its epoch (a Transactions V2
//     marker bumped it) keeps that marker whole, as Kafka does.
//   - Cleanable segments are cleaned in groups, oldest first, as Kafka's
//     cleaner groups them: consecutive segments whose current sizes add up
//     to at most SegmentBytes, whose index entries fit MaxIndexBytes and
//     whose offsets fit relative offsets become one segment with the
//     first one's base offset. Fresh segments are about SegmentBytes each
//     and are cleaned one for one; cleaned ones are small, so later passes
//     merge them and the number of files stays bounded. A group of one
//     segment that loses no record is left alone. A group's cleaned copy
//     is built aside without the append lock; only the renames below hold
//     it, after checking the group is still a run of sealed segments of
//     the log and no Truncate ran since the pass began (otherwise the copy
//     is dropped and the pass stops: a later group may drop a tombstone
//     or marker only because this one loses what it deleted). Readers
//     holding old segments keep their open descriptors.
//
// Swap of one group (first segment <base>), crash-safe:
//
//  1. write <base>.log.cleaned, .index.cleaned, .timeindex.cleaned, fsync;
//  2. rename .index.cleaned and .timeindex.cleaned to .swap, then
//     .log.cleaned to <base>.log.swap: the commit point; fsync the directory;
//  3. remove the files of the group's other segments (their offsets are all
//     in the swap), then rename .index.swap, .timeindex.swap, then
//     .log.swap over the live names; fsync the directory; put the new
//     segment in the list in place of the group.
//
// Open, before anything else: removes every *.cleaned file (the swap had not
// committed: the old segments are whole); for each <base>.log.swap (the
// swap had committed) reads its batch headers for its last offset, removes
// every segment whose base offset lies in (base, last] (merged segments not
// yet removed), and renames the .swap files present over the live names,
// the .log last (an index left over from the old segment fails its checks
// and is rebuilt); then removes remaining *.swap files (index .swap without
// their .log.swap: not committed). Groups are swapped oldest first, so a
// crash between two groups leaves every removed record's successor in
// place; each group is the old segments or the cleaned one, never a mix.
//
// The cleaner-offset-checkpoint (key cleaner_offset, same format as the
// other checkpoints) is written after the pass; unreadable, it is ignored
// (the next pass sees everything as dirty). A truncation below it lowers
// it to the new log end (what is appended there again is dirty).
//
// # Errors
//
// ErrOffsetOutOfRange, ErrClosed, ErrNoPartitionMetadata, ErrInvalidAppend,
// ErrAppendTooLarge, ErrInvalidConfig and ErrLogFailed are sentinels for
// errors.Is. Bytes on disk that do not have the expected format are
// reported as *CorruptError; classify with IsCorrupt.
package segment
