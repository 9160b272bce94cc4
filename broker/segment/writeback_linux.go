package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing length bytes of f from
// offset to disk without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE only: no durability, no metadata). It is advice:
// an error is left for the next fsync of the file to report.
func startWriteback(f *os.File, offset, length int64) {
	_ = unix.SyncFileRange(int(f.Fd()), offset, length, unix.SYNC_FILE_RANGE_WRITE)
}
