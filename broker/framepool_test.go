package broker

import (
	"bytes"
	"io"
	"testing"
)

func TestFrameClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{0, 0}, {10, 0}, {4 << 10, 0}, {4<<10 + 1, 1}, {8 << 10, 1}, {64 << 10, 4},
		{1 << 20, 8}, {1<<20 + 1, 9}, {100 << 20, 15},
	} {
		if got := frameClass(tc.n); got != tc.class {
			t.Errorf("frameClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		if size := frameClassSize(frameClass(tc.n)); size < tc.n {
			t.Errorf("class of %d holds %d bytes", tc.n, size)
		}
	}
}

// TestFramePoolReusesFrames: once a frame's buffer is back, reading the
// next frame of its class allocates nothing and lands in the same memory.
func TestFramePoolReusesFrames(t *testing.T) {
	p := newFramePool(100<<20, 64<<20)
	data := bytes.Repeat([]byte{7}, 1000<<10)
	r := bytes.NewReader(data)
	first, err := p.read(r, len(data))
	if err != nil || !bytes.Equal(first, data) {
		t.Fatalf("read %d bytes, %v", len(first), err)
	}
	p.Put(first)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(data)
		frame, err := p.read(r, len(data))
		if err != nil || len(frame) != len(data) || &frame[0] != &first[0] {
			t.Fatalf("read %d bytes (%v) into other memory", len(frame), err)
		}
		p.Put(frame)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame read into a pooled buffer, want 0", allocs)
	}
}

// announcing is a client that announces a large frame and sends only a
// part of it.
type announcing struct{ left int }

func (a *announcing) Read(b []byte) (int, error) {
	if a.left == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(b), a.left)
	a.left -= n
	return n, nil
}

// TestFramePoolGrowsAsBytesArrive keeps readFrame's guard: a header that
// claims 100 MiB and 100 KiB of data commit buffers in proportion to the
// 100 KiB (64 KiB, then 128 KiB), not 100 MiB.
func TestFramePoolGrowsAsBytesArrive(t *testing.T) {
	p := newFramePool(100<<20, 1<<30)
	if _, err := p.read(&announcing{left: 100 << 10}, 100<<20); err == nil {
		t.Fatal("a truncated frame was read")
	}
	if idle := p.idleBytes(); idle != (64+128)<<10 {
		t.Fatalf("%d bytes of buffers after a truncated frame of 100 KiB, want 192 KiB", idle)
	}
	// With an idle buffer of the frame's class at hand, no growing.
	p.Put(make([]byte, 0, 128<<20))
	frame, err := p.read(bytes.NewReader(make([]byte, 100<<20)), 100<<20)
	if err != nil || cap(frame) != 128<<20 {
		t.Fatalf("read into a %d-byte buffer (%v), want the idle 128 MiB one", cap(frame), err)
	}
}

// TestFramePoolBoundsIdleBuffers: buffers past maxIdle are left to the
// garbage collector.
func TestFramePoolBoundsIdleBuffers(t *testing.T) {
	p := newFramePool(100<<20, 1<<20)
	a, b, c := p.Get(512<<10), p.Get(512<<10), p.Get(512<<10)
	p.Put(a)
	p.Put(b)
	p.Put(c)
	p.Put(make([]byte, 0, 1000)) // not a class size: not kept
	if idle := p.idleBytes(); idle != 1<<20 {
		t.Fatalf("%d idle bytes, want the 1 MiB bound", idle)
	}
}

// TestFramePoolScribblesReleasedFrames: with scribbling on (the
// stratascribble build tag), bytes kept from a released frame read as
// scribbleByte — how the handler tests find retained aliases.
func TestFramePoolScribblesReleasedFrames(t *testing.T) {
	p := newFramePool(100<<20, 64<<20)
	p.scribble.Store(true)
	frame, err := p.read(bytes.NewReader(bytes.Repeat([]byte{1}, 300)), 300)
	if err != nil {
		t.Fatal(err)
	}
	kept := frame[10:20]
	p.Put(frame)
	if !bytes.Equal(kept, bytes.Repeat([]byte{scribbleByte}, 10)) {
		t.Fatalf("released bytes read %x", kept)
	}
}
