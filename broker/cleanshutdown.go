package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// cleanShutdownFile (in the data dir) is Kafka's .kafka_cleanshutdown: an
// empty file written, fsynced, with its directory fsynced, after a stop
// that flushed and closed every partition log, and removed (the directory
// fsynced) when the next process starts, before it writes to any log. A
// start that finds it knows every log holds what the previous process
// acknowledged; one that does not (a crash, a power loss, a kill) must
// assume unsynced tails are gone, and registers as such: the controller
// takes it out of every ISR (metadata.BrokerRegistration.CleanShutdown).
// Part of the format: do not change.
const cleanShutdownFile = ".strata_cleanshutdown"

// takeCleanShutdownMarker reports whether the previous process on dataDir
// stopped cleanly, and removes the marker durably, so that a crash of this
// process is never taken for a clean stop.
func takeCleanShutdownMarker(dataDir string) (clean bool, err error) {
	path := filepath.Join(dataDir, cleanShutdownFile)
	switch err := os.Remove(path); {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("broker: remove the clean-shutdown marker: %w", err)
	}
	if err := atomicfile.SyncDir(dataDir); err != nil {
		return false, fmt.Errorf("broker: remove the clean-shutdown marker: %w", err)
	}
	return true, nil
}

// writeCleanShutdownMarker records a clean stop: called once every
// partition log is flushed and closed.
func writeCleanShutdownMarker(dataDir string) error {
	if err := atomicfile.WriteFile(filepath.Join(dataDir, cleanShutdownFile), nil, fsperm.File); err != nil {
		return fmt.Errorf("broker: write the clean-shutdown marker: %w", err)
	}
	return nil
}
