package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sync"
)

// Record batch v2 header layout, big endian. Part of the Kafka format, do
// not change.
const (
	batchBaseOffsetPosition      = 0  // int64, outside the CRC, stamped by Append
	batchLengthPosition          = 8  // int32, bytes after this field
	batchMagicPosition           = 16 // int8, 2
	batchCRCPosition             = 17 // uint32, CRC-32C of bytes [21, end)
	batchCRCStart                = 21 // attributes: first byte covered by the CRC
	batchLastOffsetDeltaPosition = 23 // int32
	batchMaxTimestampPosition    = 35 // int64
	batchRecordCountPosition     = 57 // int32

	// BatchHeaderSize is the size of a record batch v2 header, the bytes
	// Scan hands to its callback.
	BatchHeaderSize = 61
	// batchLogOverhead is the part of a batch not counted by its length
	// field: baseOffset and batchLength.
	batchLogOverhead = 12
	batchMagic       = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchInfo is what the log needs from a batch header.
type batchInfo struct {
	baseOffset   int64
	lastOffset   int64
	size         int64 // whole batch, including the 12-byte log overhead
	maxTimestamp int64
	records      int32
}

// decodeBatchHeader decodes the framing fields of a batch header (at least
// BatchHeaderSize bytes). A non-empty reason says why the bytes cannot be the
// header of a batch this package wrote.
func decodeBatchHeader(header []byte) (batchInfo, string) {
	baseOffset := int64(binary.BigEndian.Uint64(header[batchBaseOffsetPosition:]))
	length := int32(binary.BigEndian.Uint32(header[batchLengthPosition:]))
	magic := int8(header[batchMagicPosition])
	lastOffsetDelta := int32(binary.BigEndian.Uint32(header[batchLastOffsetDeltaPosition:]))
	records := int32(binary.BigEndian.Uint32(header[batchRecordCountPosition:]))
	switch {
	case length < BatchHeaderSize-batchLogOverhead:
		return batchInfo{}, fmt.Sprintf("batch length %d is below the minimum %d", length, BatchHeaderSize-batchLogOverhead)
	case magic != batchMagic:
		return batchInfo{}, fmt.Sprintf("magic %d, want %d", magic, batchMagic)
	case baseOffset < 0:
		return batchInfo{}, fmt.Sprintf("negative base offset %d", baseOffset)
	case lastOffsetDelta < 0:
		return batchInfo{}, fmt.Sprintf("negative last offset delta %d", lastOffsetDelta)
	case baseOffset > math.MaxInt64-int64(lastOffsetDelta):
		return batchInfo{}, fmt.Sprintf("base offset %d + last offset delta %d overflows", baseOffset, lastOffsetDelta)
	case records < 0:
		return batchInfo{}, fmt.Sprintf("negative record count %d", records)
	}
	return batchInfo{
		baseOffset:   baseOffset,
		lastOffset:   baseOffset + int64(lastOffsetDelta),
		size:         batchLogOverhead + int64(length),
		maxTimestamp: int64(binary.BigEndian.Uint64(header[batchMaxTimestampPosition:])),
		records:      records,
	}, ""
}

// checkBatchCRC verifies the CRC-32C of a whole batch.
func checkBatchCRC(batch []byte) string {
	stored := binary.BigEndian.Uint32(batch[batchCRCPosition:])
	computed := crc32.Checksum(batch[batchCRCStart:], castagnoli)
	if stored != computed {
		return fmt.Sprintf("crc mismatch: stored %08x, computed %08x", stored, computed)
	}
	return ""
}

// Window sizes for walking batches: seeking covers about one index interval,
// scans and recovery read further ahead.
const (
	seekWindowSize = 16 << 10
	scanWindowSize = 256 << 10
)

// seekWindows are the read-ahead buffers of seekWindowSize of the windows
// that seek (fileWindow.release gives them back): a Fetch seeks in each
// segment it reads, and a fresh 16 KiB per read was most of what a local
// Fetch allocated.
var seekWindows = sync.Pool{New: func() any {
	b := make([]byte, seekWindowSize)
	return &b
}}

// fileWindow reads a log file through a read-ahead buffer so that walking
// many small batch headers costs few system calls. Bytes at or beyond limit
// are never read. Not safe for concurrent use; slices it returns are valid
// until its next call (and its release).
type fileWindow struct {
	file   *os.File
	path   string
	limit  int64
	size   int    // read-ahead size
	buffer []byte // bytes [start, start+len(buffer)) of the file
	start  int64
	// pooled is the buffer taken from seekWindows (nil: none), given
	// back by release.
	pooled *[]byte
}

// release gives the window's read-ahead buffer back to its pool when it
// came from one; the window reads into a new one if used again.
func (w *fileWindow) release() {
	if w.pooled != nil {
		seekWindows.Put(w.pooled)
		w.pooled, w.buffer = nil, nil
	}
}

func newFileWindow(file *os.File, path string, limit int64, size int) *fileWindow {
	return &fileWindow{file: file, path: path, limit: limit, size: size}
}

// bytes returns the length bytes at position, or io.ErrUnexpectedEOF when
// they reach past the limit.
func (w *fileWindow) bytes(position, length int64) ([]byte, error) {
	if position < 0 || length < 0 || position+length > w.limit {
		return nil, io.ErrUnexpectedEOF
	}
	if position >= w.start && position+length <= w.start+int64(len(w.buffer)) {
		offset := position - w.start
		return w.buffer[offset : offset+length], nil
	}
	if length > int64(w.size) {
		out := make([]byte, length)
		if err := readFullAt(w.file, out, position); err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", w.path, position, err)
		}
		return out, nil
	}
	switch {
	case cap(w.buffer) >= w.size:
	case w.size == seekWindowSize:
		w.pooled = seekWindows.Get().(*[]byte)
		w.buffer = *w.pooled
	default:
		w.buffer = make([]byte, w.size)
	}
	readable := min(int64(w.size), w.limit-position)
	buffer := w.buffer[:readable]
	if err := readFullAt(w.file, buffer, position); err != nil {
		w.buffer = w.buffer[:0]
		return nil, fmt.Errorf("read %s at %d: %w", w.path, position, err)
	}
	w.buffer, w.start = buffer, position
	return buffer[:length], nil
}

// batchAt decodes the header of the batch at position, which must lie wholly
// below the limit. Bytes that cannot be a batch give a *CorruptError.
func (w *fileWindow) batchAt(position int64) (batchInfo, []byte, error) {
	header, err := w.bytes(position, BatchHeaderSize)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return batchInfo{}, nil, corruptf(w.path, position, "%d bytes left, a batch header needs %d", w.limit-position, BatchHeaderSize)
	}
	if err != nil {
		return batchInfo{}, nil, err
	}
	info, reason := decodeBatchHeader(header)
	if reason != "" {
		return batchInfo{}, nil, corruptf(w.path, position, "%s", reason)
	}
	if position+info.size > w.limit {
		return batchInfo{}, nil, corruptf(w.path, position, "batch of %d bytes runs past the end at %d", info.size, w.limit)
	}
	return info, header, nil
}

// readFullAt fills buffer from position, like io.ReadFull over ReadAt.
func readFullAt(file *os.File, buffer []byte, position int64) error {
	n, err := file.ReadAt(buffer, position)
	if n == len(buffer) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
