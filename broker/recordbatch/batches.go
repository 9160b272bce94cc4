package recordbatch

import (
	"errors"
	"fmt"
	"hash/crc32"
	"sync/atomic"
)

// Batches is whole record batches, back to back, held in one or more
// buffers that may belong to someone else: a remote read's batches lie in
// the tier's pooled chunk buffers, a batch may span two of them, and they
// go to the socket from there (one iovec per buffer) without being
// assembled into one slice. The buffers are read-only and valid until
// Release, which hands them back to their owner; Release is idempotent
// and safe on nil, so every path that drops Batches (written, or a
// response abandoned) may call it. The other methods are for one
// goroutine at a time, before Release.
type Batches struct {
	buffers  [][]byte
	length   int64
	release  func()
	released atomic.Bool
}

// NewBatches holds buffers (empty ones dropped), which together hold whole
// batches; release (may be nil) runs once, at the first Release.
func NewBatches(buffers [][]byte, release func()) *Batches {
	b := &Batches{release: release}
	for _, buf := range buffers {
		if len(buf) > 0 {
			b.buffers = append(b.buffers, buf)
			b.length += int64(len(buf))
		}
	}
	return b
}

// Len is the number of bytes held.
func (b *Batches) Len() int {
	if b == nil {
		return 0
	}
	return int(b.length)
}

// Buffers returns the buffers in order (none empty): what a writev sends.
func (b *Batches) Buffers() [][]byte {
	if b == nil {
		return nil
	}
	return b.buffers
}

// Release gives the buffers back to their owner; later calls do nothing.
func (b *Batches) Release() {
	if b == nil || b.released.Swap(true) {
		return
	}
	b.buffers, b.length = nil, 0
	if b.release != nil {
		b.release()
	}
}

// AppendTo appends the bytes to dst, for a caller that needs them in one
// slice (and beyond Release).
func (b *Batches) AppendTo(dst []byte) []byte {
	for _, buf := range b.Buffers() {
		dst = append(dst, buf...)
	}
	return dst
}

// Scan calls visit for each batch in order with its byte position and
// header, after checking its framing (a v2 header, the batch whole within
// Len) and, when checkCRC (nil: never) says so for the batch, its CRC-32C,
// computed piece by piece over a batch that spans two buffers rather than
// on an assembled copy. It returns visit's first error or the first failed
// check (ErrCorrupt), with the position of the batch concerned.
func (b *Batches) Scan(checkCRC func(position int64, h Header) bool, visit func(position int64, h Header) error) (int64, error) {
	var header [HeaderSize]byte
	buffers := b.Buffers()
	index, bufferStart := 0, int64(0) // the buffer holding position, and where it starts
	for position := int64(0); position < int64(b.Len()); {
		for position >= bufferStart+int64(len(buffers[index])) {
			bufferStart += int64(len(buffers[index]))
			index++
		}
		if b.length-position < HeaderSize {
			return position, fmt.Errorf("%w: %d trailing bytes are fewer than a batch header", ErrCorrupt, b.length-position)
		}
		raw := buffers[index][position-bufferStart:]
		if len(raw) < HeaderSize {
			raw = header[:b.copyAt(header[:], index, bufferStart, position)]
		}
		h, err := ParseHeader(raw)
		if err != nil {
			return position, err
		}
		if position+h.Size() > b.length {
			return position, fmt.Errorf("%w: batch of %d bytes runs past the end (%d bytes)", ErrCorrupt, h.Size(), b.length)
		}
		if checkCRC != nil && checkCRC(position, h) {
			crc := uint32(0)
			b.pieces(index, bufferStart, position+attributesPosition, position+h.Size(), func(piece []byte) {
				crc = crc32.Update(crc, crcTable, piece)
			})
			if crc != h.CRC {
				return position, fmt.Errorf("%w: CRC mismatch: header %#08x, computed %#08x", ErrCorrupt, h.CRC, crc)
			}
		}
		if err := visit(position, h); err != nil {
			return position, err
		}
		position += h.Size()
	}
	return int64(b.Len()), nil
}

// pieces calls fn with the parts of [from, to) in the buffers from index
// (which starts at bufferStart and holds from) on.
func (b *Batches) pieces(index int, bufferStart, from, to int64, fn func([]byte)) {
	for ; from < to; index++ {
		buf := b.buffers[index]
		end := bufferStart + int64(len(buf))
		if from < end {
			fn(buf[from-bufferStart : min(to, end)-bufferStart])
			from = min(to, end)
		}
		bufferStart = end
	}
}

// copyAt copies the bytes at position into dst (as many as fit and are
// held), position being in buffer index, which starts at bufferStart.
func (b *Batches) copyAt(dst []byte, index int, bufferStart, position int64) int {
	n := 0
	b.pieces(index, bufferStart, position, min(position+int64(len(dst)), b.length), func(piece []byte) {
		n += copy(dst[n:], piece)
	})
	return n
}

// NextOffset is the offset after the last batch, or -1 when there is none
// (or the framing is broken).
func (b *Batches) NextOffset() int64 {
	next := int64(-1)
	if _, err := b.Scan(nil, func(_ int64, h Header) error {
		next = h.LastOffset() + 1
		return nil
	}); err != nil {
		return -1
	}
	return next
}

// CutBelow keeps the leading batches that end below offset end (a
// read_committed read stopping at the last stable offset), dropping the
// rest without copying; the buffers cut away stay held until Release.
func (b *Batches) CutBelow(end int64) {
	keep := int64(0)
	b.Scan(nil, func(position int64, h Header) error {
		if h.LastOffset() >= end {
			return errStop
		}
		keep = position + h.Size()
		return nil
	})
	b.keep(keep)
}

// CutToBytes keeps the leading batches that fit in maxBytes (a remote
// read cut at what is left of a Fetch response's max bytes), dropping the
// rest without copying; the buffers cut away stay held until Release.
func (b *Batches) CutToBytes(maxBytes int) {
	keep := int64(0)
	b.Scan(nil, func(position int64, h Header) error {
		if position+h.Size() > int64(maxBytes) {
			return errStop
		}
		keep = position + h.Size()
		return nil
	})
	b.keep(keep)
}

// keep drops the bytes past the first keep (a batch boundary).
func (b *Batches) keep(keep int64) {
	if keep == b.length {
		return
	}
	kept0 := keep
	var kept [][]byte
	for _, buf := range b.buffers {
		if keep <= 0 {
			break
		}
		n := min(int64(len(buf)), keep)
		kept = append(kept, buf[:n])
		keep -= n
	}
	b.buffers, b.length = kept, kept0
}

// errStop ends a Scan early.
var errStop = errors.New("recordbatch: stop")
