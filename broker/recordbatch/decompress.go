package recordbatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

const (
	// windowSize is the decompressed window the record walker reads
	// through: bytes already walked are dropped, so a compressed batch
	// costs one window of memory however large it decompresses.
	windowSize = 32 << 10
	// maxZstdWindow bounds the history a zstd frame may ask for; the
	// decoder allocates it up front. 8 MiB covers every level up to 19
	// (Kafka's default is 3, a 2 MiB window); a Java producer set to the
	// "ultra" levels 20-22 is refused as corrupt.
	maxZstdWindow = 8 << 20
	// maxPooledSnappyBuffer bounds the snappy decode buffer kept in the
	// pool: one large batch should not pin its memory forever.
	maxPooledSnappyBuffer = 1 << 20
	// maxSnappyExpansion bounds how much a snappy block can grow: its
	// densest element, a 3-byte copy, yields 64 bytes. A block whose length
	// header claims more is corrupt, and refusing it before decoding keeps
	// a 20-byte block from allocating gigabytes.
	maxSnappyExpansion = 22
)

// xerialMagic starts the Java client's snappy framing: magic, then an int32
// version and an int32 compatible version. Part of the format: do not change.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

// decompressor holds everything one stream decompression needs. Creating
// zstd decoders and gzip readers is expensive, so they live in a pool and
// are reset for each batch.
type decompressor struct {
	window []byte
	source bytes.Reader
	gzip   gzip.Reader
	zstd   *zstd.Decoder
	lz4    *lz4.Reader
	snappy snappyReader
}

var decompressors = sync.Pool{New: func() any {
	return &decompressor{window: make([]byte, windowSize)}
}}

func getDecompressor() *decompressor { return decompressors.Get().(*decompressor) }

// open starts decompressing payload with codec.
func (d *decompressor) open(codec Codec, payload []byte, limit int64) (io.Reader, error) {
	d.source.Reset(payload)
	switch codec {
	case Gzip:
		if err := d.gzip.Reset(&d.source); err != nil {
			return nil, fmt.Errorf("%w: gzip header: %w", ErrCorrupt, err)
		}
		// Java's GZIPInputStream reads concatenated members too.
		d.gzip.Multistream(true)
		return &d.gzip, nil
	case Snappy:
		d.snappy.reset(payload, limit)
		return &d.snappy, nil
	case LZ4:
		if d.lz4 == nil {
			d.lz4 = lz4.NewReader(nil)
		}
		d.lz4.Reset(&d.source)
		return d.lz4, nil
	case Zstd:
		if d.zstd == nil {
			// One goroutine-free decoder per pooled entry: with
			// concurrency 1 it decodes synchronously in Read.
			decoder, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(maxZstdWindow))
			if err != nil {
				return nil, fmt.Errorf("create zstd decoder: %w", err)
			}
			d.zstd = decoder
		}
		if err := d.zstd.Reset(&d.source); err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		return d.zstd, nil
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, codec)
	}
}

// finish checks that the decompressor used all of the compressed input:
// bytes after the end of the compressed stream are corrupt, even when a
// decoder would ignore them.
func (d *decompressor) finish(codec Codec) error {
	if codec == Snappy {
		return d.snappy.finish()
	}
	if left := d.source.Len(); left > 0 {
		return fmt.Errorf("%w: %d bytes follow the end of the %v stream", ErrCorrupt, left, codec)
	}
	return nil
}

// release drops every reference to the caller's bytes and returns d to the
// pool.
func (d *decompressor) release() {
	d.source.Reset(nil)
	if d.zstd != nil {
		_ = d.zstd.Reset(nil)
	}
	if d.lz4 != nil {
		d.lz4.Reset(nil)
	}
	d.snappy.release()
	decompressors.Put(d)
}

// snappyReader decodes a raw snappy block or the xerial framing block by
// block. Snappy blocks cannot be decoded in pieces, so it holds one decoded
// block (a xerial chunk, typically 32 KiB, or a raw batch's whole records).
type snappyReader struct {
	input     []byte // compressed bytes not decoded yet
	xerial    bool
	rawDone   bool   // the one raw block has been decoded
	block     []byte // current decoded block
	position  int    // next unread byte of block
	remaining int64  // decompressed bytes still allowed
	err       error  // sticky: io.EOF at the end
	scratch   []byte // decode buffer, reused
}

func (s *snappyReader) reset(payload []byte, limit int64) {
	*s = snappyReader{scratch: s.scratch, remaining: limit}
	if len(payload) >= xerialHeaderSize && bytes.HasPrefix(payload, xerialMagic) {
		s.xerial = true
		s.input = payload[xerialHeaderSize:]
		return
	}
	s.input = payload
}

func (s *snappyReader) release() {
	scratch := s.scratch
	if cap(scratch) > maxPooledSnappyBuffer {
		scratch = nil
	}
	*s = snappyReader{scratch: scratch}
}

func (s *snappyReader) Read(p []byte) (int, error) {
	for s.position == len(s.block) {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	n := copy(p, s.block[s.position:])
	s.position += n
	return n, nil
}

// next decodes the next block into s.block; io.EOF when there is none.
func (s *snappyReader) next() error {
	var chunk []byte
	if s.xerial {
		if len(s.input) == 0 {
			return io.EOF
		}
		if len(s.input) < 4 {
			return fmt.Errorf("xerial snappy: %d bytes are too few for a chunk length", len(s.input))
		}
		length := binary.BigEndian.Uint32(s.input)
		if length == 0 || int64(length) > int64(len(s.input)-4) {
			return fmt.Errorf("xerial snappy: chunk length %d, %d bytes remain", length, len(s.input)-4)
		}
		chunk, s.input = s.input[4:4+length], s.input[4+length:]
	} else {
		if s.rawDone {
			return io.EOF
		}
		chunk, s.input, s.rawDone = s.input, nil, true
	}
	decodedLength, err := snappy.DecodedLen(chunk)
	if err != nil {
		return fmt.Errorf("snappy: %w", err)
	}
	if int64(decodedLength) > s.remaining {
		return fmt.Errorf("%w: records decompress to more than the limit", ErrTooLarge)
	}
	if decodedLength > maxSnappyExpansion*len(chunk) {
		return fmt.Errorf("snappy: a %d-byte block cannot decode to %d bytes", len(chunk), decodedLength)
	}
	// The strict decoder refuses S2 extensions, which a reference snappy
	// decoder (any consumer) could not read.
	block, err := snappy.DecodeStrict(s.scratch[:cap(s.scratch)], chunk)
	if err != nil {
		return fmt.Errorf("snappy: %w", err)
	}
	if cap(block) > cap(s.scratch) {
		s.scratch = block[:0]
	}
	s.block, s.position = block, 0
	s.remaining -= int64(len(block))
	return nil
}

// finish reports input the reader never consumed. The walker reads until
// io.EOF, so only an error left input behind; that error is reported first.
func (s *snappyReader) finish() error {
	if s.xerial && len(s.input) > 0 || !s.xerial && !s.rawDone {
		return fmt.Errorf("%w: snappy input not fully decoded", ErrCorrupt)
	}
	return nil
}
