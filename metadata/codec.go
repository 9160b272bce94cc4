package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// encoder appends the primitive encodings shared by commands and snapshot
// records (see doc.go, "Primitive encodings"). It never fails.
type encoder struct {
	buffer []byte
}

func (e *encoder) uint8(v uint8)   { e.buffer = append(e.buffer, v) }
func (e *encoder) int32(v int32)   { e.buffer = binary.BigEndian.AppendUint32(e.buffer, uint32(v)) }
func (e *encoder) int64(v int64)   { e.buffer = binary.BigEndian.AppendUint64(e.buffer, uint64(v)) }
func (e *encoder) uint64(v uint64) { e.buffer = binary.BigEndian.AppendUint64(e.buffer, v) }
func (e *encoder) uvarint(v uint64) {
	e.buffer = binary.AppendUvarint(e.buffer, v)
}

func (e *encoder) bool(v bool) {
	if v {
		e.uint8(1)
	} else {
		e.uint8(0)
	}
}

func (e *encoder) string(v string) {
	e.uvarint(uint64(len(v)))
	e.buffer = append(e.buffer, v...)
}

func (e *encoder) uuid(v [16]byte) { e.buffer = append(e.buffer, v[:]...) }

func (e *encoder) int32s(values []int32) {
	e.uvarint(uint64(len(values)))
	for _, v := range values {
		e.int32(v)
	}
}

// stringMap encodes pairs sorted by key so that equal maps encode to equal
// bytes.
func (e *encoder) stringMap(m map[string]string) {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	e.uvarint(uint64(len(keys)))
	for _, key := range keys {
		e.string(key)
		e.string(m[key])
	}
}

// errShortBuffer and friends describe why a decode failed; decoder.err wraps
// them with ErrCorrupt.
var (
	errShortBuffer   = errors.New("unexpected end of data")
	errBadVarint     = errors.New("malformed varint")
	errBadBool       = errors.New("boolean is neither 0 nor 1")
	errBadLength     = errors.New("length exceeds the remaining data")
	errTrailingBytes = errors.New("trailing bytes after payload")
	errDuplicateKey  = errors.New("duplicate or unsorted map key")
)

// decoder reads what encoder writes. The first failure sticks: later reads
// return zero values, and err reports the failure wrapped in ErrCorrupt.
type decoder struct {
	data   []byte
	offset int
	failed error
}

func (d *decoder) fail(err error) {
	if d.failed == nil {
		d.failed = fmt.Errorf("%w: at byte %d: %w", ErrCorrupt, d.offset, err)
	}
}

// err returns the first decode failure, or nil.
func (d *decoder) err() error { return d.failed }

// finish fails the decode if bytes remain, and returns err.
func (d *decoder) finish() error {
	if d.failed == nil && d.offset != len(d.data) {
		d.fail(errTrailingBytes)
	}
	return d.failed
}

func (d *decoder) take(n int) []byte {
	if d.failed != nil {
		return nil
	}
	if n < 0 || n > len(d.data)-d.offset {
		d.fail(errShortBuffer)
		return nil
	}
	b := d.data[d.offset : d.offset+n]
	d.offset += n
	return b
}

func (d *decoder) uint8() uint8 {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) int32() int32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

func (d *decoder) int64() int64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) uint64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (d *decoder) uvarint() uint64 {
	if d.failed != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.offset:])
	if n <= 0 {
		d.fail(errBadVarint)
		return 0
	}
	d.offset += n
	return v
}

// length reads a uvarint count of items that each take at least itemSize
// bytes, refusing counts the remaining data cannot hold so that a corrupt
// count never drives a huge allocation.
func (d *decoder) length(itemSize int) int {
	n := d.uvarint()
	if d.failed != nil {
		return 0
	}
	if n > math.MaxInt32 || int(n)*itemSize > len(d.data)-d.offset {
		d.fail(errBadLength)
		return 0
	}
	return int(n)
}

func (d *decoder) bool() bool {
	switch d.uint8() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(errBadBool)
		return false
	}
}

func (d *decoder) string() string {
	n := d.length(1)
	return string(d.take(n))
}

func (d *decoder) uuid() (v [16]byte) {
	copy(v[:], d.take(16))
	return v
}

// int32s returns nil for an empty list, so that decoded values compare equal
// to values built with nil slices.
func (d *decoder) int32s() []int32 {
	n := d.length(4)
	if n == 0 {
		return nil
	}
	values := make([]int32, n)
	for i := range values {
		values[i] = d.int32()
	}
	return values
}

// stringMap returns nil for an empty map. Keys must be strictly increasing,
// as encoder writes them.
func (d *decoder) stringMap() map[string]string {
	n := d.length(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	previous := ""
	for i := range n {
		key := d.string()
		value := d.string()
		if d.failed != nil {
			return nil
		}
		if i > 0 && key <= previous {
			d.fail(errDuplicateKey)
			return nil
		}
		m[key] = value
		previous = key
	}
	return m
}
