package recordbatch

import (
	"fmt"
	"math"
)

// DefaultMaxDecompressedBytes is the decompression limit when
// Limits.MaxDecompressedBytes is 0. Validate streams, so memory is not the
// concern; CPU is: it bounds what a small "decompression bomb" can make the
// broker chew through. Real batches stay far below it (Kafka's
// max.request.size default is 1 MiB, and records seldom compress 100-fold).
const DefaultMaxDecompressedBytes = 256 << 20

// minimumRecordSize is the smallest record: a length varint and six
// one-byte fields (attributes, timestamp delta, offset delta, key length,
// value length, header count).
const minimumRecordSize = 7

// Limits says what Validate accepts beyond the format itself. The zero value
// is what a plain client produce needs apart from message.max.bytes.
type Limits struct {
	// MaxBatchBytes is message.max.bytes: the largest batch, header
	// included. 0 means no limit.
	MaxBatchBytes int32
	// MaxDecompressedBytes bounds the records section of a compressed
	// batch once decompressed. 0 means DefaultMaxDecompressedBytes; a
	// negative value means no limit.
	MaxDecompressedBytes int64
	// RequireKeys refuses records without a key, as a compacted topic
	// (cleanup.policy=compact) must.
	RequireKeys bool
	// AllowControl accepts control batches (transaction markers). Clients
	// may not write them; replication and log recovery see them.
	AllowControl bool
	// Compacted accepts batches as a compacted log stores them: fewer
	// records than lastOffsetDelta+1 (none at all in an empty batch), with
	// offset deltas that only increase and stay within 0..lastOffsetDelta.
	// Never set for client input.
	Compacted bool
	// CheckTimestamps refuses (ErrInvalidTimestamp) a record whose
	// timestamp lies outside EarliestTimestamp..LatestTimestamp, as Kafka
	// does on a CreateTime topic (message.timestamp.before.max.ms and
	// after.max.ms around the broker's clock), and a batch that says
	// LogAppendTime: only the broker may. A record without a timestamp
	// (-1) passes.
	CheckTimestamps                    bool
	EarliestTimestamp, LatestTimestamp int64
}

// TimestampWindow returns the EarliestTimestamp and LatestTimestamp of a
// broker whose clock reads now (milliseconds) and whose topic allows
// timestamps up to before milliseconds behind and after ahead. The
// maximum int64 (Kafka's default of before) means no bound on that side,
// and the bounds saturate instead of overflowing.
func TimestampWindow(now, before, after int64) (earliest, latest int64) {
	earliest, latest = math.MinInt64, math.MaxInt64
	if before >= 0 && before != math.MaxInt64 && now-before <= now {
		earliest = now - before
	}
	if after >= 0 && after != math.MaxInt64 && now+after >= now {
		latest = now + after
	}
	return earliest, latest
}

func (l Limits) decompressionLimit() int64 {
	switch {
	case l.MaxDecompressedBytes == 0:
		return DefaultMaxDecompressedBytes
	case l.MaxDecompressedBytes < 0:
		return math.MaxInt64
	default:
		return l.MaxDecompressedBytes
	}
}

// Record is one decoded record.
type Record struct {
	// Offset is the record's offset: the batch's base offset plus its
	// offset delta. Build ignores it and numbers records in order.
	Offset int64
	// Timestamp is in milliseconds: firstTimestamp plus the record's
	// delta, or the batch's maxTimestamp for LogAppendTime.
	Timestamp int64
	// Key and Value are nil when null; an empty non-nil slice is an empty
	// value.
	Key     []byte
	Value   []byte
	Headers []RecordHeader
}

// RecordHeader is one record header. Its key is never null.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Validate checks one whole batch as the produce path must before appending
// it: the magic (only v2), the length, limits.MaxBatchBytes, the CRC, the
// header's fields, then every record — decompressing compressed batches as
// a stream, without keeping the records — and its framing: a record count
// equal to lastOffsetDelta+1 and to the records present, offset deltas
// exactly 0..n-1, every varint and length within bounds, record lengths
// that match their fields, nothing left over. It returns the parsed header.
//
// Errors classify with ErrorCode (see the package doc). Validate never
// panics and never modifies batch. It allocates nothing for an uncompressed
// batch that passes; compressed batches use pooled decoders.
func Validate(batch []byte, limits Limits) (Header, error) {
	h, err := checkHeader(batch, limits, true)
	if err != nil {
		return h, err
	}
	return h, walkRecords(batch, h, limits, nil, nil)
}

// Records decodes every record of one whole batch, decompressing it. It
// checks the framing as Validate does, but not the CRC or the client
// policies: control batches are decoded, and batches as compaction leaves
// them (offset gaps, no records at all) are accepted. Keys, values and
// headers are copies: they do not alias batch. Meant for tools, the log
// cleaner and rare reads; the produce path uses Validate and lookups use
// Iterate.
func Records(batch []byte) ([]Record, error) {
	limits := storedLimits
	h, err := checkHeader(batch, limits, false)
	if err != nil {
		return nil, err
	}
	records := make([]Record, 0, initialRecordCapacity(h, len(batch)))
	if err := walkRecords(batch, h, limits, &records, nil); err != nil {
		return nil, err
	}
	return records, nil
}

// Iterate walks the records of one whole batch in order, calling visit with
// each record's offset and timestamp (maxTimestamp for every record of a
// LogAppendTime batch), until visit returns false. It decodes nothing else
// and allocates nothing for an uncompressed batch: ListOffsets uses it to
// find the first record at or after a timestamp. Like Records it checks the
// framing but not the CRC, and accepts compacted batches.
func Iterate(batch []byte, visit func(offset, timestamp int64) bool) error {
	limits := storedLimits
	h, err := checkHeader(batch, limits, false)
	if err != nil {
		return err
	}
	return walkRecords(batch, h, limits, nil, visit)
}

// RecordAtTimestamp finds, inside one batch with header h, the first record
// at or after offset from (the log start: a batch may straddle it, and the
// records below it are deleted) whose timestamp is at or after ts (exact:
// equal to ts) and returns its offset and timestamp, or (-1, -1). With
// LogAppendTime every record carries the batch's timestamp.
func RecordAtTimestamp(batch []byte, h Header, ts int64, exact bool, from int64) (offset, timestamp int64, err error) {
	if h.LogAppendTime() {
		if h.LastOffset() < from {
			return -1, -1, nil
		}
		return max(h.BaseOffset, from), h.MaxTimestamp, nil
	}
	offset, timestamp = -1, -1
	err = Iterate(batch, func(o, t int64) bool {
		if o >= from && (t == ts || (!exact && t > ts)) {
			offset, timestamp = o, t
			return false
		}
		return true
	})
	if err != nil {
		return -1, -1, err
	}
	return offset, timestamp, nil
}

// storedLimits are what Records and Iterate accept: any batch a log may
// hold.
var storedLimits = Limits{AllowControl: true, Compacted: true}

// initialRecordCapacity guesses how many records to make room for without
// trusting the count of a batch that has not been walked yet.
func initialRecordCapacity(h Header, size int) int {
	limit := 1024
	if h.Codec() == None {
		limit = (size-HeaderSize)/minimumRecordSize + 1
	}
	return int(min(int64(h.NumRecords), int64(limit)))
}

// checkHeader checks everything Validate checks before the records.
func checkHeader(batch []byte, limits Limits, verifyCRC bool) (Header, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return h, err
	}
	if h.Size() != int64(len(batch)) {
		return h, fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorrupt, h.Size(), len(batch))
	}
	if limits.MaxBatchBytes > 0 && len(batch) > int(limits.MaxBatchBytes) {
		return h, fmt.Errorf("%w: batch of %d bytes is larger than the %d-byte limit (message.max.bytes)", ErrTooLarge, len(batch), limits.MaxBatchBytes)
	}
	if verifyCRC {
		if actual := checksum(batch); actual != h.CRC {
			return h, fmt.Errorf("%w: CRC mismatch: header %#08x, computed %#08x", ErrCorrupt, h.CRC, actual)
		}
	}
	if codec := h.Codec(); !codec.Valid() {
		return h, fmt.Errorf("%w: %v", ErrUnsupportedCodec, codec)
	}
	switch {
	case limits.Compacted:
		if h.NumRecords < 0 || h.LastOffsetDelta < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1 {
			return h, fmt.Errorf("%w: record count %d with last offset delta %d", ErrInvalidRecord, h.NumRecords, h.LastOffsetDelta)
		}
	case h.NumRecords <= 0:
		return h, fmt.Errorf("%w: record count %d", ErrInvalidRecord, h.NumRecords)
	case int64(h.LastOffsetDelta)+1 != int64(h.NumRecords):
		return h, fmt.Errorf("%w: record count %d does not match last offset delta %d", ErrInvalidRecord, h.NumRecords, h.LastOffsetDelta)
	}
	if limits.CheckTimestamps && h.LogAppendTime() {
		return h, fmt.Errorf("%w: the batch says LogAppendTime, which only the broker may set", ErrInvalidTimestamp)
	}
	if h.IsControl() && !limits.AllowControl {
		return h, fmt.Errorf("%w: clients may not write control batches", ErrInvalidRecord)
	}
	if h.IsTransactional() && !h.HasProducerID() {
		return h, fmt.Errorf("%w: transactional batch without a producer id", ErrInvalidRecord)
	}
	// Control batches (transaction markers) carry a producer id but no
	// sequence.
	if h.HasProducerID() && !h.IsControl() && h.BaseSequence < 0 {
		return h, fmt.Errorf("%w: producer %d sent base sequence %d", ErrInvalidRecord, h.ProducerID, h.BaseSequence)
	}
	return h, nil
}

// walkRecords reads the records of a batch whose header passed checkHeader,
// checking their framing. collect, when not nil, receives decoded copies;
// visit, when not nil, sees each record's offset and timestamp and can stop
// the walk.
func walkRecords(batch []byte, h Header, limits Limits, collect *[]Record, visit func(offset, timestamp int64) bool) error {
	payload := batch[HeaderSize:]
	codec := h.Codec()
	if codec == None {
		r := recordReader{buf: payload}
		_, err := walk(&r, h, limits, collect, visit)
		return err
	}
	d := getDecompressor()
	defer d.release()
	limit := limits.decompressionLimit()
	src, err := d.open(codec, payload, limit)
	if err != nil {
		return fmt.Errorf("%v batch: %w", codec, err)
	}
	r := recordReader{buf: d.window[:0], src: src, limit: limit}
	stopped, err := walk(&r, h, limits, collect, visit)
	if err != nil {
		return fmt.Errorf("%v batch: %w", codec, err)
	}
	if stopped {
		return nil
	}
	if err := d.finish(codec); err != nil {
		return fmt.Errorf("%v batch: %w", codec, err)
	}
	return nil
}

// walk reads NumRecords records from r and checks that nothing follows,
// unless visit stops it early (stopped).
func walk(r *recordReader, h Header, limits Limits, collect *[]Record, visit func(offset, timestamp int64) bool) (stopped bool, err error) {
	count := h.NumRecords
	previousDelta := int32(-1)
	for index := int32(0); index < count; index++ {
		if r.atEnd() {
			if r.err != nil {
				return false, r.err
			}
			return false, fmt.Errorf("%w: batch declares %d records but holds %d", ErrInvalidRecord, count, index)
		}
		offsetDelta, timestampDelta, err := readRecord(r, limits, collect)
		if err != nil {
			return false, fmt.Errorf("record %d: %w", index, err)
		}
		if offsetDelta <= previousDelta || offsetDelta > h.LastOffsetDelta || (!limits.Compacted && offsetDelta != index) {
			return false, fmt.Errorf("%w: record %d: offset delta %d after %d (last offset delta %d)", ErrInvalidRecord, index, offsetDelta, previousDelta, h.LastOffsetDelta)
		}
		previousDelta = offsetDelta
		timestamp := h.FirstTimestamp + timestampDelta
		if h.LogAppendTime() {
			timestamp = h.MaxTimestamp
		}
		offset := h.BaseOffset + int64(offsetDelta)
		if limits.CheckTimestamps && timestamp != -1 && (timestamp < limits.EarliestTimestamp || timestamp > limits.LatestTimestamp) {
			return false, fmt.Errorf("%w: record %d has timestamp %d, outside [%d, %d] (message.timestamp.before.max.ms / after.max.ms around the broker's clock)",
				ErrInvalidTimestamp, index, timestamp, limits.EarliestTimestamp, limits.LatestTimestamp)
		}
		if collect != nil {
			last := &(*collect)[len(*collect)-1]
			last.Offset, last.Timestamp = offset, timestamp
		}
		if visit != nil && !visit(offset, timestamp) {
			return true, nil
		}
	}
	// Reading to the end also makes the decoders check their trailing
	// checksums (gzip's CRC-32, lz4's and zstd's content checksums).
	if !r.atEnd() {
		return false, fmt.Errorf("%w: bytes left over after the %d records the batch declares", ErrInvalidRecord, count)
	}
	return false, r.err
}

// readRecord reads the next record and checks its framing. With collect
// it appends a copy of the record (Offset and Timestamp left for the
// caller).
func readRecord(r *recordReader, limits Limits, collect *[]Record) (offsetDelta int32, timestampDelta int64, err error) {
	length, err := r.varint("record length")
	if err != nil {
		return 0, 0, err
	}
	if length < minimumRecordSize-1 {
		return 0, 0, fmt.Errorf("%w: record length %d is shorter than a record (%d)", ErrCorrupt, length, minimumRecordSize-1)
	}
	start := r.offset()
	end := start + int64(length)
	if r.src == nil && int64(length) > int64(r.buffered()) {
		return 0, 0, fmt.Errorf("%w: record length %d runs past the batch end (%d bytes remain)", ErrCorrupt, length, r.buffered())
	}
	if _, err := r.readByte("record attributes"); err != nil {
		return 0, 0, err
	}
	if timestampDelta, err = r.varlong("timestamp delta"); err != nil {
		return 0, 0, err
	}
	if offsetDelta, err = r.varint("offset delta"); err != nil {
		return 0, 0, err
	}

	var record *Record
	if collect != nil {
		*collect = append(*collect, Record{})
		record = &(*collect)[len(*collect)-1]
	}
	keyLength, err := r.varint("key length")
	if err != nil {
		return 0, 0, err
	}
	if keyLength < 0 && limits.RequireKeys {
		return 0, 0, fmt.Errorf("%w: a compacted topic needs a key on every record", ErrInvalidRecord)
	}
	key, err := readBytes(r, keyLength, end, record != nil, "key")
	if err != nil {
		return 0, 0, err
	}
	valueLength, err := r.varint("value length")
	if err != nil {
		return 0, 0, err
	}
	value, err := readBytes(r, valueLength, end, record != nil, "value")
	if err != nil {
		return 0, 0, err
	}
	headerCount, err := r.varint("header count")
	if err != nil {
		return 0, 0, err
	}
	// A header takes at least two bytes (two length varints): a count
	// that cannot fit is corrupt, and is refused before anything trusts it.
	if headerCount < 0 || int64(headerCount)*2 > end-r.offset() {
		return 0, 0, fmt.Errorf("%w: header count %d does not fit the %d bytes left in the record", ErrCorrupt, headerCount, end-r.offset())
	}
	var headers []RecordHeader
	if record != nil && headerCount > 0 {
		headers = make([]RecordHeader, 0, headerCount)
	}
	for header := int32(0); header < headerCount; header++ {
		headerKeyLength, err := r.varint("header key length")
		if err != nil {
			return 0, 0, err
		}
		if headerKeyLength < 0 {
			return 0, 0, fmt.Errorf("%w: header %d has a null key", ErrCorrupt, header)
		}
		headerKey, err := readBytes(r, headerKeyLength, end, record != nil, "header key")
		if err != nil {
			return 0, 0, err
		}
		headerValueLength, err := r.varint("header value length")
		if err != nil {
			return 0, 0, err
		}
		headerValue, err := readBytes(r, headerValueLength, end, record != nil, "header value")
		if err != nil {
			return 0, 0, err
		}
		if record != nil {
			headers = append(headers, RecordHeader{Key: string(headerKey), Value: headerValue})
		}
	}
	if r.offset() != end {
		return 0, 0, fmt.Errorf("%w: record length says %d bytes, its fields take %d", ErrCorrupt, length, r.offset()-start)
	}
	if record != nil {
		record.Key, record.Value, record.Headers = key, value, headers
	}
	return offsetDelta, timestampDelta, nil
}

// readBytes reads (keep) or skips a length-prefixed field that must end by
// the record's end. Length -1 is null; anything below is corrupt.
func readBytes(r *recordReader, length int32, end int64, keep bool, what string) ([]byte, error) {
	if length < -1 {
		return nil, fmt.Errorf("%w: %s length %d", ErrCorrupt, what, length)
	}
	if length <= 0 {
		if keep && length == 0 {
			return []byte{}, nil
		}
		return nil, nil
	}
	if int64(length) > end-r.offset() {
		return nil, fmt.Errorf("%w: %s length %d runs past the record end (%d bytes left)", ErrCorrupt, what, length, end-r.offset())
	}
	if keep {
		return r.take(int(length), what)
	}
	return nil, r.skip(int(length), what)
}
