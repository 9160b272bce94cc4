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

// writeFileDirect creates (or truncates) the file at path and writes the
// first size bytes of padded with O_DIRECT: padded starts at a
// directIOAlign boundary and its length is size rounded up to one; the
// padding is written, then cut off. No fsync: the chunk cache does not
// need its files to survive a power loss (see chunkCache).
func writeFileDirect(path string, padded []byte, size int64) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, fsperm.File)
	if err != nil {
		return err
	}
	_, err = file.Write(padded)
	if err == nil && int64(len(padded)) != size {
		err = file.Truncate(size)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	return err
}

// readFileDirect reads the first size bytes of the file at path into
// padded (aligned as for writeFileDirect) with O_DIRECT; a file shorter
// than size is io.ErrUnexpectedEOF. Each read asks for whole blocks, so
// the file's end comes as a short read (not a multiple of the block).
func readFileDirect(path string, padded []byte, size int64) error {
	file, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer file.Close()
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
