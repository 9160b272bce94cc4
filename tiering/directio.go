package tiering

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// The chunk cache writes and reads its files with O_DIRECT where the file
// system allows it (directio_linux.go), so that they bypass the page
// cache. Three reasons: a chunk the memory LRU holds was cached twice in
// memory (the LRU and the page cache); on the machines measured, filling
// the page cache costs far more kernel CPU than the disk write itself
// (about 3 s per GiB buffered against 0.2 s per GiB direct: the writes of
// a cold replay were 64% of the broker's CPU); and a buffered read of a
// file that is not in the page cache costs the same again. Direct I/O
// asks for buffer addresses, file offsets and lengths aligned to the
// logical block size: chunk buffers are aligned (chunk.go), a file's
// chunks are written one after the other from offset 0 (all but the last
// whole chunks, so each starts aligned: files hold one chunk each when
// ChunkBytes is not a multiple of the alignment) and read at their
// offsets, and a chunk whose length is not a multiple of the alignment
// is written padded, then truncated to its length (read back: the padded
// length is asked for, the file's length is what comes).

// probeDirectIOName is the file probeDirectIO writes in the cache
// directory; it ends like an interrupted chunk write, so that a probe
// left by a crash is removed with them at the next start.
const probeDirectIOName = "direct-io-probe" + chunkCacheSuffix + ".tmp"

// probeDirectIO reports why the chunk cache cannot use O_DIRECT in dir
// (nil: it can): it writes a file shorter than one block the way the
// cache writes a chunk, reads it back the way the cache reads one, and
// compares. A file system that refuses O_DIRECT (tmpfs before Linux 6.6,
// some FUSE and network file systems) fails the open with EINVAL; a
// tmpfs that accepts it is errMemoryFileSystem (its files are the page
// cache: nothing to bypass); other platforms than Linux fail with
// errDirectIOUnsupported.
func probeDirectIO(dir string) error {
	if memoryFileSystem(dir) {
		return errMemoryFileSystem
	}
	path := filepath.Join(dir, probeDirectIOName)
	defer os.Remove(path)
	const size = directIOAlign / 2
	written := alignedBuffer(directIOAlign)
	for i := range written[:size] {
		written[i] = byte(i * 7)
	}
	if err := writeFileDirect(path, [][]byte{written}, size); err != nil {
		return err
	}
	read := alignedBuffer(directIOAlign)
	if err := readFileDirect(path, 0, read, size); err != nil {
		return err
	}
	if !bytes.Equal(read[:size], written[:size]) {
		return errors.New("a block written with O_DIRECT read back different")
	}
	if info, err := os.Stat(path); err != nil || info.Size() != size {
		return fmt.Errorf("a file written with O_DIRECT has the wrong size (%v)", err)
	}
	return nil
}

// probeDirectIO's answers that are not a failure of the file system.
var (
	errDirectIOUnsupported = errors.New("O_DIRECT is used on Linux only")
	errMemoryFileSystem    = errors.New("the cache directory is on tmpfs, whose files are the page cache (O_DIRECT would not bypass it)")
)

// addressOf is the address of b's first byte (Go's heap does not move
// objects, so it stays valid while b is referenced).
func addressOf(b []byte) int64 { return int64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
