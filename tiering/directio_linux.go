//go:build linux

package tiering

import (
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/strata-log/strata/internal/fsperm"
)

// memoryFileSystem reports whether dir is on a file system that keeps
// its files in memory (tmpfs, ramfs): Linux accepts O_DIRECT on tmpfs
// since 6.6, but the files are the page cache there.
func memoryFileSystem(dir string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false // the probe's open fails and says why
	}
	return fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC
}

// writeFileDirect creates (or truncates) the file at path and writes parts
// one after the other with O_DIRECT, then cuts it to size bytes: each part
// starts at a directIOAlign boundary and all but the last are a multiple
// of it long (whole chunks); the last is its chunk padded to one, the
// padding cut off. No fsync: the chunk cache does not need its files to
// survive a power loss (see chunkCache).
func writeFileDirect(path string, parts [][]byte, size int64) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, fsperm.File)
	if err != nil {
		return err
	}
	written := int64(0)
	for _, part := range parts {
		if err == nil {
			_, err = file.Write(part)
			written += int64(len(part))
		}
	}
	if err == nil && written != size {
		err = file.Truncate(size)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	return err
}

// readFileDirect reads size bytes at offset (a multiple of directIOAlign)
// of the file at path into padded (aligned as for writeFileDirect) with
// O_DIRECT; a file that ends first is io.ErrUnexpectedEOF. Each read asks
// for whole blocks, so the file's end comes as a short read (not a
// multiple of the block).
func readFileDirect(path string, offset int64, padded []byte, size int64) error {
	file, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	read := 0
	for read < len(padded) {
		n, err := file.Read(padded[read:])
		read += n
		if err == io.EOF || n%directIOAlign != 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	if int64(read) < size {
		return io.ErrUnexpectedEOF
	}
	return nil
}
