package recordbatch

import (
	"bytes"
	"errors"
	"testing"
)

// testBatches returns count batches of 3 records, offsets from base,
// back to back, and each one's size.
func testBatches(t *testing.T, base int64, count int) ([]byte, []int64) {
	t.Helper()
	var out []byte
	var sizes []int64
	for i := range count {
		batch, err := Build(BuildOptions{BaseOffset: base + int64(3*i)}, makeRecords(3, 40+i, uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batch...)
		sizes = append(sizes, int64(len(batch)))
	}
	return out, sizes
}

// split cuts data into buffers of at most n bytes (copies, so that a
// damaged copy leaves data alone).
func split(data []byte, n int) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		k := min(n, len(data))
		out = append(out, bytes.Clone(data[:k]))
		data = data[k:]
	}
	return out
}

// Batches held in buffers of any size (down to one byte: headers and CRC
// ranges spanning buffers) scan as the contiguous bytes do; a damaged
// byte in any batch, wherever the buffer boundaries fall, fails its CRC.
func TestBatchesScanAcrossBuffers(t *testing.T) {
	data, sizes := testBatches(t, 100, 5)
	for _, n := range []int{1, 7, HeaderSize - 1, HeaderSize + 3, 100, len(data)} {
		b := NewBatches(split(data, n), nil)
		var positions []int64
		if _, err := b.Scan(everyCRC, func(position int64, h Header) error {
			positions = append(positions, position)
			return nil
		}); err != nil {
			t.Fatalf("buffers of %d: %v", n, err)
		}
		if len(positions) != len(sizes) || b.Len() != len(data) || !bytes.Equal(b.AppendTo(nil), data) {
			t.Fatalf("buffers of %d: %d batches at %v of %d bytes", n, len(positions), positions, b.Len())
		}
		if next := b.NextOffset(); next != 115 {
			t.Fatalf("buffers of %d: next offset %d, want 115", n, next)
		}
		for _, at := range []int{attributesPosition, int(sizes[0]) + 70, len(data) - 1} {
			buffers := split(data, n)
			buffers[at/n][at%n] ^= 0x10
			position, err := NewBatches(buffers, nil).Scan(everyCRC, func(int64, Header) error { return nil })
			if !errors.Is(err, ErrCorrupt) || position > int64(at) {
				t.Fatalf("buffers of %d, byte %d damaged: %v at %d", n, at, err, position)
			}
		}
	}
}

// CutBelow keeps the leading batches below an offset by trimming the
// buffers, without copying them.
func TestBatchesCutBelow(t *testing.T) {
	data, sizes := testBatches(t, 0, 4) // offsets 0..11, three per batch
	buffers := split(data, 50)
	b := NewBatches(buffers, nil)
	b.CutBelow(7) // batches 0..2 and 3..5 end below 7; 6..8 does not
	if want := sizes[0] + sizes[1]; int64(b.Len()) != want || !bytes.Equal(b.AppendTo(nil), data[:want]) || b.NextOffset() != 6 {
		t.Fatalf("cut at 7: %d bytes, next %d; want %d bytes", b.Len(), b.NextOffset(), want)
	}
	if got := b.Buffers(); &got[0][0] != &buffers[0][0] {
		t.Fatal("the cut copied the buffers")
	}
	b.CutBelow(0)
	if b.Len() != 0 || len(b.Buffers()) != 0 || b.NextOffset() != -1 {
		t.Fatalf("cut at 0: %d bytes in %d buffers", b.Len(), len(b.Buffers()))
	}
}

// CutToBytes keeps the leading batches that fit in a number of bytes
// (whole batches only), without copying them.
func TestBatchesCutToBytes(t *testing.T) {
	data, sizes := testBatches(t, 0, 4)
	buffers := split(data, 50)
	b := NewBatches(buffers, nil)
	b.CutToBytes(int(sizes[0]+sizes[1]+sizes[2]) - 1) // the third batch does not fit whole
	if want := sizes[0] + sizes[1]; int64(b.Len()) != want || !bytes.Equal(b.AppendTo(nil), data[:want]) || b.NextOffset() != 6 {
		t.Fatalf("cut to %d bytes: %d bytes, next %d; want %d bytes", sizes[0]+sizes[1]+sizes[2]-1, b.Len(), b.NextOffset(), want)
	}
	if got := b.Buffers(); &got[0][0] != &buffers[0][0] {
		t.Fatal("the cut copied the buffers")
	}
	b.CutToBytes(int(sizes[0]) - 1)
	if b.Len() != 0 || len(b.Buffers()) != 0 {
		t.Fatalf("cut below the first batch's size: %d bytes in %d buffers", b.Len(), len(b.Buffers()))
	}
}

// Release runs the owner's release once, however often it is called, and
// is safe on nil Batches.
func TestBatchesReleaseOnce(t *testing.T) {
	released := 0
	b := NewBatches([][]byte{{1}, {}, {2, 3}}, func() { released++ })
	if b.Len() != 3 || len(b.Buffers()) != 2 {
		t.Fatalf("%d bytes in %d buffers, want 3 in 2 (empty ones dropped)", b.Len(), len(b.Buffers()))
	}
	b.Release()
	b.Release()
	if released != 1 || b.Len() != 0 {
		t.Fatalf("released %d times, %d bytes left", released, b.Len())
	}
	var none *Batches
	none.Release()
	if none.Len() != 0 || none.Buffers() != nil || none.NextOffset() != -1 {
		t.Fatal("nil Batches are not empty")
	}
}

// everyCRC has Scan check every batch's CRC.
func everyCRC(int64, Header) bool { return true }

// TestCRCMatchesAcrossParts: a batch's CRC checks out over its bytes split
// anywhere (header included), not with a byte damaged in the covered range,
// nor with bytes missing; bytes after the batch do not count.
func TestCRCMatchesAcrossParts(t *testing.T) {
	data, sizes := testBatches(t, 0, 2)
	first := data[:sizes[0]]
	h, err := ParseHeader(first)
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut <= len(first); cut++ {
		if !h.CRCMatches(first[:cut], data[cut:]) {
			t.Fatalf("cut at %d: CRC does not match", cut)
		}
		damaged := bytes.Clone(first)
		damaged[attributesPosition+(cut%(len(first)-attributesPosition))] ^= 0x01
		if h.CRCMatches(damaged[:cut], damaged[cut:]) {
			t.Fatalf("cut at %d: a damaged byte still matches", cut)
		}
	}
	if h.CRCMatches(first[:len(first)-1]) {
		t.Fatal("a batch one byte short matches")
	}
}
