package recordbatch

import (
	"errors"
	"fmt"
	"io"
)

const (
	maxVarintLength  = 5
	maxVarlongLength = 10
	// maxEmptyReads bounds consecutive (0, nil) reads from a stream, as
	// bufio does, so a misbehaving decoder cannot spin the walker forever.
	maxEmptyReads = 100
)

// recordReader reads the records section of a batch. For an uncompressed
// batch buf is the records section itself and src is nil: everything is
// read in place, without copying. For a compressed batch buf is a window
// refilled from the decompressing stream src; bytes already walked are
// dropped from the window, so memory stays at one window whatever the size
// of the batch.
//
// Errors are sticky in err once the stream fails: a failed decompression is
// reported instead of the truncation it looks like to the walker.
type recordReader struct {
	buf      []byte    // unread bytes are buf[position:]
	position int       // next byte to read in buf
	base     int64     // stream offset of buf[0]
	src      io.Reader // nil when buf is the whole records section
	limit    int64     // most bytes src may deliver
	consumed int64     // bytes src has delivered
	done     bool      // src is exhausted (or failed: see err)
	err      error     // why src failed
}

// offset is the stream offset of the next unread byte.
func (r *recordReader) offset() int64 { return r.base + int64(r.position) }

// buffered is the number of unread bytes in the window.
func (r *recordReader) buffered() int { return len(r.buf) - r.position }

// fill tries to have at least want unread bytes in the window (want must
// not exceed the window's capacity). Fewer remain only at the end of the
// stream or after an error.
func (r *recordReader) fill(want int) {
	if r.buffered() >= want || r.src == nil || r.done {
		return
	}
	if r.position > 0 {
		kept := copy(r.buf[:cap(r.buf)], r.buf[r.position:])
		r.base += int64(r.position)
		r.buf = r.buf[:kept]
		r.position = 0
	}
	for empty := 0; len(r.buf) < want && !r.done; {
		n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		r.consumed += int64(n)
		switch {
		case r.consumed > r.limit:
			r.fail(fmt.Errorf("%w: records decompress to more than %d bytes", ErrTooLarge, r.limit))
		case errors.Is(err, io.EOF):
			r.done = true
		case errors.Is(err, ErrTooLarge):
			r.fail(err)
		case err != nil:
			r.fail(fmt.Errorf("%w: decompress: %w", ErrCorrupt, err))
		case n == 0:
			if empty++; empty >= maxEmptyReads {
				r.fail(fmt.Errorf("%w: decompress: %w", ErrCorrupt, io.ErrNoProgress))
			}
		}
	}
}

func (r *recordReader) fail(err error) {
	r.err, r.done = err, true
}

// atEnd reports whether no byte is left, reading ahead if it must.
func (r *recordReader) atEnd() bool {
	r.fill(1)
	return r.buffered() == 0
}

// truncated is the error for data that ends mid-field: the stream's own
// failure when there is one.
func (r *recordReader) truncated(what string) error {
	if r.err != nil {
		return r.err
	}
	return fmt.Errorf("%w: records end inside %s at byte %d", ErrCorrupt, what, r.offset())
}

// varint reads a zigzag varint that must fit an int32, as Kafka's
// ByteUtils.readVarint demands (at most 5 bytes), and refuses bits past 32.
func (r *recordReader) varint(what string) (int32, error) {
	if r.buffered() < maxVarintLength {
		r.fill(maxVarintLength)
	}
	var value uint32
	for shift := 0; shift < 7*maxVarintLength; shift += 7 {
		if r.position >= len(r.buf) {
			return 0, r.truncated(what)
		}
		b := r.buf[r.position]
		r.position++
		if shift == 28 && b > 0x0f {
			return 0, fmt.Errorf("%w: %s: varint overflows 32 bits at byte %d", ErrCorrupt, what, r.offset())
		}
		value |= uint32(b&0x7f) << shift
		if b < 0x80 {
			return int32(value>>1) ^ -int32(value&1), nil
		}
	}
	// Unreachable: the fifth byte either ends the varint or overflows.
	return 0, fmt.Errorf("%w: %s: varint longer than %d bytes", ErrCorrupt, what, maxVarintLength)
}

// varlong reads a zigzag varint that must fit an int64 (at most 10 bytes).
func (r *recordReader) varlong(what string) (int64, error) {
	if r.buffered() < maxVarlongLength {
		r.fill(maxVarlongLength)
	}
	var value uint64
	for shift := 0; shift < 7*maxVarlongLength; shift += 7 {
		if r.position >= len(r.buf) {
			return 0, r.truncated(what)
		}
		b := r.buf[r.position]
		r.position++
		if shift == 63 && b > 0x01 {
			return 0, fmt.Errorf("%w: %s: varlong overflows 64 bits at byte %d", ErrCorrupt, what, r.offset())
		}
		value |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(value>>1) ^ -int64(value&1), nil
		}
	}
	return 0, fmt.Errorf("%w: %s: varlong longer than %d bytes", ErrCorrupt, what, maxVarlongLength)
}

// readByte reads one byte.
func (r *recordReader) readByte(what string) (byte, error) {
	if r.position >= len(r.buf) {
		r.fill(1)
		if r.position >= len(r.buf) {
			return 0, r.truncated(what)
		}
	}
	b := r.buf[r.position]
	r.position++
	return b, nil
}

// skip passes over n bytes (n >= 0), refilling the window as often as it
// takes for a long key or value.
func (r *recordReader) skip(n int, what string) error {
	for {
		if available := r.buffered(); n <= available {
			r.position += n
			return nil
		} else {
			n -= available
			r.position = len(r.buf)
		}
		r.fill(1)
		if r.buffered() == 0 {
			return r.truncated(what)
		}
	}
}

// take returns a copy of the next n bytes (n >= 0). On a stream the copy
// grows with what arrives, so a lying length cannot force a large
// allocation by itself.
func (r *recordReader) take(n int, what string) ([]byte, error) {
	if n <= r.buffered() {
		out := make([]byte, n)
		copy(out, r.buf[r.position:])
		r.position += n
		return out, nil
	}
	if r.src == nil {
		return nil, r.truncated(what)
	}
	out := make([]byte, 0, min(n, cap(r.buf)))
	for len(out) < n {
		if r.buffered() == 0 {
			r.fill(1)
			if r.buffered() == 0 {
				return nil, r.truncated(what)
			}
		}
		chunk := min(n-len(out), r.buffered())
		out = append(out, r.buf[r.position:r.position+chunk]...)
		r.position += chunk
	}
	return out, nil
}
