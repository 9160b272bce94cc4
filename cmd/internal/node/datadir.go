package node

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/strata-log/strata/internal/fsperm"
)

// restrictDataDir makes an existing data dir owner-only. Everything Strata
// creates under it is owner-only already (internal/fsperm), but a data dir
// from an earlier version was created 0755 with 0644 files below it; the
// top-level directory is what keeps other local users out of all of them.
// A directory the process may not chmod (owned by someone else, e.g. a
// mount point) is left as it is, with a warning: refusing to start over it
// would take the node down for what is an operator's decision.
func restrictDataDir(dir string, log *slog.Logger) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Mode().Perm()&fsperm.GroupOther == 0) {
		return
	}
	if err == nil {
		err = os.Chmod(dir, fsperm.Dir)
	}
	if err != nil {
		log.Warn("data dir is open to other local users and could not be restricted: make it owner-only (chmod 700) yourself", "data_dir", dir, "error", err)
		return
	}
	log.Info("restricted the data dir to its owner (it was open to other local users)", "data_dir", dir, "mode_was", info.Mode().Perm().String(), "mode", fsperm.Dir.String())
}
