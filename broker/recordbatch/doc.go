// Package recordbatch parses, validates and stamps Kafka record batches
// (message format v2, "magic 2"), the unit a producer sends, a segment file
// stores and a consumer fetches. The broker keeps the bytes a producer sent:
// it checks them once here, writes the base offset and partition leader epoch
// into the header (and, for LogAppendTime topics, the timestamps), and appends
// the same bytes — unless the topic's compression.type names another codec
// than the batch's: the leader then re-encodes it with Recode (as Kafka
// does), and followers copy the leader's bytes.
//
// # Batch
//
// All integers are big endian. The CRC is CRC-32C (Castagnoli) over every
// byte from the attributes to the end of the batch, so the base offset, the
// batch length and the partition leader epoch can be rewritten without
// recomputing it.
//
//	offset  size  field
//	     0     8  baseOffset            first offset of the batch (stamped by the broker)
//	     8     4  batchLength           bytes after this field: total size - 12
//	    12     4  partitionLeaderEpoch  stamped by the leader
//	    16     1  magic                 2
//	    17     4  crc                   CRC-32C of bytes 21 .. end
//	    21     2  attributes            see below
//	    23     4  lastOffsetDelta       recordCount - 1
//	    27     8  firstTimestamp        base of the records' timestampDelta
//	    35     8  maxTimestamp          largest record timestamp, or the log-append time
//	    43     8  producerId            -1 without an idempotent producer
//	    51     2  producerEpoch
//	    53     4  baseSequence          sequence of the first record
//	    57     4  recordCount
//	    61     …  records               compressed as one stream when the codec is not none
//
//	+--------+--------+--------+-----+-----+-------+----------+---------+---------+
//	| base   | batch  | leader |magic| crc | attrs | last     | first   | max     |
//	| offset | length | epoch  |  2  |     |       | offset Δ | ts      | ts      |
//	|   8    |   4    |   4    |  1  |  4  |   2   |    4     |    8    |    8    |
//	+--------+--------+--------+-----+-----+-------+----------+---------+---------+
//	| producer id | producer epoch | base sequence | record count | records ...   |
//	|      8      |       2        |       4       |      4       |               |
//	+-------------+----------------+---------------+--------------+---------------+
//	                     the CRC covers attrs .. the last record byte
//
// Attributes:
//
//	bit 0-2  codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (5-7 unsupported)
//	bit 3    timestamp type: 0 CreateTime, 1 LogAppendTime
//	bit 4    transactional
//	bit 5    control batch (transaction markers; written by the broker only)
//	bit 6    has delete horizon (compaction; ignored here)
//
// Control batches (transaction markers) are written by the broker only,
// with BuildMarker; their one record's key and value are described in
// control.go (ParseMarker reads them).
//
// # Record
//
// Varints are zigzag-encoded base-128 integers (protobuf's sint32/sint64): a
// varint takes at most 5 bytes, a varlong at most 10.
//
//	length          varint   bytes after this field
//	attributes      int8     unused
//	timestampDelta  varlong  timestamp - firstTimestamp
//	offsetDelta     varint   offset - baseOffset: exactly 0, 1, ..., n-1
//	keyLength       varint   -1 for a null key
//	key             bytes
//	valueLength     varint   -1 for a null value (a tombstone)
//	value           bytes
//	headerCount     varint
//	headers         headerCount times:
//	    headerKeyLength    varint (>= 0: a header key is never null)
//	    headerKey          bytes
//	    headerValueLength  varint (-1 for null)
//	    headerValue        bytes
//
// With LogAppendTime every record's timestamp is the batch's maxTimestamp,
// whatever its timestampDelta says.
//
// # Compression
//
// A compressed batch compresses the concatenated records as one stream; the
// header stays uncompressed. gzip is RFC 1952 (several members allowed), lz4
// is the LZ4 frame format, zstd is a zstd frame. Snappy comes in two shapes
// and both are accepted: a raw snappy block (librdkafka, franz-go, Sarama),
// or the xerial framing of the Java client:
//
//	+----------------------+---------+---------------+------------------------------------+
//	| magic "\x82SNAPPY\0" | version | compatible    | chunks ...                         |
//	|          8           | int32 1 | version int32 | [ length int32 | snappy block ] ... |
//	+----------------------+---------+---------------+------------------------------------+
//
// Snappy blocks are decoded with a strict standard-snappy decoder: the S2
// extensions some Go encoders can emit are refused, because consumers with a
// reference decoder could not read them.
//
// # Validation and error classes
//
// Validate is what the produce path runs on every batch. It checks, in this
// order: the batch length against the bytes given, the magic, the size limit,
// the CRC, the attributes and header fields, then walks every record —
// stream-decompressing compressed batches without keeping them — and checks
// the framing. Failures classify into Kafka error codes (see ErrorCode):
//
//	ErrCorrupt          CORRUPT_MESSAGE (2): CRC mismatch, truncation, a bad
//	                    varint or length, a record whose fields do not add up
//	                    to its length, a compressed stream that does not decode
//	ErrInvalidRecord    INVALID_RECORD (87): readable but wrong: record count
//	                    not lastOffsetDelta+1 or not the number of records
//	                    present, offset deltas not 0..n-1, bytes left over, a
//	                    control batch from a client, a missing key on a
//	                    compacted topic, a sequence-less idempotent batch
//	ErrTooLarge         MESSAGE_TOO_LARGE (10): over message.max.bytes, or
//	                    decompressing past Limits.MaxDecompressedBytes
//	ErrUnsupportedMagic INVALID_RECORD (87) for magic 0 and 1, as Kafka
//	                    answers Produce v3+; CORRUPT_MESSAGE for any other
//	                    magic
//	ErrUnsupportedCodec UNSUPPORTED_COMPRESSION_TYPE (76): codec ids 5-7
//	ErrInvalidTimestamp INVALID_TIMESTAMP (32): with Limits.CheckTimestamps,
//	                    a record timestamped outside the topic's window
//	                    around the broker's clock, or a client batch that
//	                    says LogAppendTime
//
// Nothing in this package panics on any input; FuzzValidate and FuzzSplit
// check that, and that every batch Validate accepts decodes to exactly
// recordCount records at offsets base..base+n-1.
//
// # Concurrency
//
// All functions are safe for concurrent use. The setters write into the
// caller's slice: the caller must own it.
package recordbatch
