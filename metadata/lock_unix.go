//go:build unix

package metadata

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/strata-log/strata/internal/fsperm"
)

// lockDirectory takes an exclusive, non-blocking flock on path (created if
// needed) and returns the function that releases it. The lock also guards
// the Raft log's bolt file, whose own lock would block forever instead of
// failing.
func lockDirectory(path string) (unlock func() error, err error) {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fsperm.File)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		file.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrDataDirLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return file.Close, nil
}
