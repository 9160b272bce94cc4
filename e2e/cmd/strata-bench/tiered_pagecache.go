package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pageCacheProbe is what the machine charges for page-cache pages, read
// just before the cold pass: the CPU this process spends per MiB writing
// a new file (new pages: allocated, zeroed and filled) and writing the
// same file over in place (pages it already has: only copied). A cold
// replay fills new pages with the chunk cache's files; a VM that hands the
// memory its guest frees back to its host (Firecracker's free page
// reporting) makes each new page a host fault as well, so there the first
// figure is several times the second, and it moves with what the machine
// freed last.
type pageCacheProbe struct {
	newPages, overwrite float64 // CPU ms per MiB written
}

const pageCacheProbeMiB = 64

func probePageCache(dir string) (pageCacheProbe, error) {
	path := filepath.Join(dir, "page-cache-probe")
	defer os.Remove(path)
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i)
	}
	write := func(flags int) (float64, error) {
		file, err := os.OpenFile(path, flags, 0o600)
		if err != nil {
			return 0, err
		}
		before := selfCPU()
		for range pageCacheProbeMiB {
			if _, err := file.Write(block); err != nil {
				file.Close()
				return 0, err
			}
		}
		spent := selfCPU() - before
		// Written back before the pass, so that the device does not
		// compete with it.
		if err := file.Sync(); err != nil {
			file.Close()
			return 0, err
		}
		return float64(spent) / float64(time.Millisecond) / pageCacheProbeMiB, file.Close()
	}
	var p pageCacheProbe
	var err error
	if p.newPages, err = write(os.O_WRONLY | os.O_CREATE | os.O_TRUNC); err != nil {
		return p, fmt.Errorf("page cache probe: %w", err)
	}
	if p.overwrite, err = write(os.O_WRONLY); err != nil {
		return p, fmt.Errorf("page cache probe: %w", err)
	}
	return p, nil
}

func (p pageCacheProbe) String() string {
	return fmt.Sprintf("writing %d MiB to new page-cache pages cost %.2f ms of CPU per MiB, over the same pages %.2f ms (%.1f×; the cold pass's cache files are new pages)",
		pageCacheProbeMiB, p.newPages, p.overwrite, p.newPages/max(p.overwrite, 0.001))
}
