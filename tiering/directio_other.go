//go:build !linux

package tiering

func memoryFileSystem(dir string) bool { return false }

// writeFileDirect and readFileDirect are O_DIRECT file I/O, Linux only
// (directio_linux.go); elsewhere probeDirectIO fails and the chunk cache
// stays buffered.
func writeFileDirect(path string, parts [][]byte, size int64) error { return errDirectIOUnsupported }

func readFileDirect(path string, offset int64, padded []byte, size int64) error {
	return errDirectIOUnsupported
}
