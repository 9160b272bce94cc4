package lazyfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// GraveyardName is the hidden directory under the backing root that keeps
// removed files and directories whose removal is not durable yet, so that
// a drop can bring them back. It is never visible through the mount, and a
// mount starts by emptying it (whatever is there was not durable).
const GraveyardName = ".strata-lazyfs"

// Config configures a file system. Backing is required.
type Config struct {
	Backing string       // directory whose content the mount shows
	Logger  *slog.Logger // nil: slog.Default()
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Backing == "" {
		return errors.New("lazyfs: no backing directory")
	}
	info, err := os.Stat(c.Backing)
	if err != nil {
		return fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("lazyfs: backing %s is not a directory", c.Backing)
	}
	return nil
}

// Stats are the counters the control command "stats" prints.
type Stats struct {
	Fsyncs         int64 // fsync/fdatasync of files
	DirFsyncs      int64 // fsync of directories
	Drops          int64 // drop commands
	DroppedBytes   int64 // unsynced bytes undone by drops (written past the synced length, or overwritten/cut below it)
	UndoneCreates  int64 // names created and not made durable, removed by drops
	UndoneRenames  int64 // renames undone by drops
	UndoneUnlinks  int64 // removed names brought back by drops
	UndoBytes      int64 // undo memory held now (synced bytes that were overwritten since)
	DropErrors     int64 // inconsistencies a drop logged and skipped
	ENOSPCRefusals int64 // operations refused while enospc was on
	FsyncErrors    int64 // fsyncs failed while fsync-error was on
}

// String is the one-line form of the control protocol.
func (s Stats) String() string {
	return fmt.Sprintf("fsyncs=%d dir_fsyncs=%d drops=%d dropped_bytes=%d undone_creates=%d undone_renames=%d undone_unlinks=%d undo_bytes=%d drop_errors=%d enospc_refusals=%d fsync_errors=%d",
		s.Fsyncs, s.DirFsyncs, s.Drops, s.DroppedBytes, s.UndoneCreates, s.UndoneRenames, s.UndoneUnlinks, s.UndoBytes, s.DropErrors, s.ENOSPCRefusals, s.FsyncErrors)
}

// dirEntry is one name of a directory listing: the backing inode it names.
type dirEntry struct {
	ino  uint64
	kind uint32 // the S_IFMT bits of the inode's mode
}

func (e dirEntry) isDir() bool { return e.kind == unix.S_IFDIR }

// FS is the state of one lost-page-cache file system: what was made
// durable, and what a drop must undo. Its methods are safe for concurrent
// use; the FUSE nodes call them.
type FS struct {
	backing   string
	graveyard string
	logger    *slog.Logger

	enospc      atomic.Bool
	fsyncError  atomic.Bool
	fsyncDelay  atomic.Int64 // nanoseconds
	fsyncs      atomic.Int64
	dirFsyncs   atomic.Int64
	enospcCount atomic.Int64
	fsyncErrors atomic.Int64

	// mu guards files, dirs, graveyardEntries and the drop counters below,
	// and is held across every namespace change (create, mkdir, unlink,
	// rmdir, rename, symlink) so that a directory's durable listing is
	// recorded before its first change. Lock order: mu, then a fileState's mu.
	mu sync.Mutex
	// files holds the undo state of each regular file (by backing inode)
	// changed since its last fsync; a file without one is as durable as
	// its content is now.
	files map[uint64]*fileState
	// dirs holds, for each directory (by backing inode) changed since its
	// last fsync, its listing as of that fsync: what a drop restores. A
	// directory without one is durable as it is.
	dirs map[uint64]map[string]dirEntry
	// graveyardEntries are the inodes kept in the graveyard (by name
	// strconv(ino)) because a durable listing still names them.
	graveyardEntries map[uint64]bool
	// generations counts, per backing inode number, the objects that
	// had it and lost their last name (removed or replaced: dead to the
	// kernel) or were created: the mount's inode is (number, generation).
	// A directory the kernel saw die must come back as a new inode
	// when a drop restores it from the graveyard, or when a new object
	// reuses its number: the kernel, which may still hold the dead one,
	// would otherwise be handed it again and refuse to list it
	// ("readdirent: no such file or directory").
	generations   map[uint64]uint64
	drops         int64
	droppedBytes  int64
	undoneCreates int64
	undoneRenames int64
	undoneUnlinks int64
	dropErrors    int64
}

// New prepares the backing directory (an empty graveyard) and returns the
// file system's state, everything in the backing directory counted durable.
func New(cfg Config) (*FS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	backing, err := filepath.Abs(cfg.Backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	lfs := &FS{
		backing:          backing,
		graveyard:        filepath.Join(backing, GraveyardName),
		logger:           logger,
		files:            map[uint64]*fileState{},
		dirs:             map[uint64]map[string]dirEntry{},
		graveyardEntries: map[uint64]bool{},
		generations:      map[uint64]uint64{},
	}
	if err := lfs.resetGraveyard(); err != nil {
		return nil, err
	}
	return lfs, nil
}

func (lfs *FS) resetGraveyard() error {
	if err := os.RemoveAll(lfs.graveyard); err != nil {
		return fmt.Errorf("lazyfs: empty graveyard: %w", err)
	}
	if err := os.Mkdir(lfs.graveyard, 0o700); err != nil {
		return fmt.Errorf("lazyfs: create graveyard: %w", err)
	}
	return nil
}

// SetENOSPC turns the full-disk fault on or off.
func (lfs *FS) SetENOSPC(on bool) { lfs.enospc.Store(on) }

// SetFsyncError turns the failing-disk fault on or off: while on, every
// fsync and fdatasync fails with EIO and makes nothing durable.
func (lfs *FS) SetFsyncError(on bool) { lfs.fsyncError.Store(on) }

// SetFsyncDelay makes every fsync take at least d (0: no delay).
func (lfs *FS) SetFsyncDelay(d time.Duration) { lfs.fsyncDelay.Store(int64(d)) }

// Stats returns the counters.
func (lfs *FS) Stats() Stats {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	s := Stats{
		Fsyncs:         lfs.fsyncs.Load(),
		DirFsyncs:      lfs.dirFsyncs.Load(),
		Drops:          lfs.drops,
		DroppedBytes:   lfs.droppedBytes,
		UndoneCreates:  lfs.undoneCreates,
		UndoneRenames:  lfs.undoneRenames,
		UndoneUnlinks:  lfs.undoneUnlinks,
		DropErrors:     lfs.dropErrors,
		ENOSPCRefusals: lfs.enospcCount.Load(),
		FsyncErrors:    lfs.fsyncErrors.Load(),
	}
	for _, state := range lfs.files {
		state.mu.Lock()
		s.UndoBytes += state.savedBytes()
		state.mu.Unlock()
	}
	return s
}

// refuseGrowth reports whether the full-disk fault refuses an operation
// that allocates space.
func (lfs *FS) refuseGrowth() bool {
	if lfs.enospc.Load() {
		lfs.enospcCount.Add(1)
		return true
	}
	return false
}

// lockedFileStat is lockedFileState, and the file's attributes as they
// are once its state is locked.
func (lfs *FS) lockedFileStat(fd int) (*fileState, unix.Stat_t, error) {
	var st unix.Stat_t
	state, err := lfs.lockedFileState(fd)
	if err != nil {
		return nil, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		state.mu.Unlock()
		return nil, st, err
	}
	return state, st, nil
}

// lockedFileState returns the undo state of the file open as fd, locked,
// creating it (synced length = the length now) if the file has none.
func (lfs *FS) lockedFileState(fd int) (*fileState, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	for {
		lfs.mu.Lock()
		state := lfs.files[st.Ino]
		if state == nil {
			if err := unix.Fstat(fd, &st); err != nil {
				lfs.mu.Unlock()
				return nil, err
			}
			state = &fileState{syncedSize: st.Size}
			lfs.files[st.Ino] = state
		}
		lfs.mu.Unlock()
		state.mu.Lock()
		if !state.dead {
			return state, nil
		}
		state.mu.Unlock()
	}
}

// recordDirLocked records the listing of the directory at path as durable
// before its first change since its last fsync. It returns the directory's
// inode.
func (lfs *FS) recordDirLocked(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if _, ok := lfs.dirs[st.Ino]; ok {
		return st.Ino, nil
	}
	listing, err := readListing(path, path == lfs.backing)
	if err != nil {
		return 0, err
	}
	lfs.dirs[st.Ino] = listing
	return st.Ino, nil
}

// readListing lists a backing directory by name and inode, without the
// graveyard when it is the backing root.
func readListing(path string, isRoot bool) (map[string]dirEntry, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	listing := make(map[string]dirEntry, len(entries))
	for _, entry := range entries {
		if isRoot && entry.Name() == GraveyardName {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(path, entry.Name()), &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, err
		}
		listing[entry.Name()] = dirEntry{ino: st.Ino, kind: st.Mode & unix.S_IFMT}
	}
	return listing, nil
}

// durablyNamedLocked reports whether some recorded durable listing names
// the inode, so that a drop needs it back.
func (lfs *FS) durablyNamedLocked(ino uint64) bool {
	for _, listing := range lfs.dirs {
		for _, entry := range listing {
			if entry.ino == ino {
				return true
			}
		}
	}
	return false
}

// buryLocked keeps the object at path (inode ino) in the graveyard if a
// durable listing names it, before the caller removes or replaces its
// name. A file gets a second link; a directory (empty: it is being
// removed or replaced) is moved, and moved reports that the caller must
// not remove it any more.
func (lfs *FS) buryLocked(path string, ino uint64, isDir bool) (moved bool, err error) {
	if !lfs.durablyNamedLocked(ino) {
		return false, nil
	}
	target := filepath.Join(lfs.graveyard, strconv.FormatUint(ino, 10))
	if lfs.graveyardEntries[ino] {
		return false, nil
	}
	if isDir {
		if err := unix.Rename(path, target); err != nil {
			return false, err
		}
		lfs.graveyardEntries[ino] = true
		return true, nil
	}
	if err := unix.Link(path, target); err != nil {
		return false, err
	}
	lfs.graveyardEntries[ino] = true
	return false, nil
}

// retireLocked ends the current object of inode number ino for the
// mount: its next lookup is a new inode (generations).
func (lfs *FS) retireLocked(ino uint64) { lfs.generations[ino]++ }

// generation is the generation of the object of inode number ino.
func (lfs *FS) generation(ino uint64) uint64 {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	return lfs.generations[ino]
}

// forgetIfGoneLocked discards the state of an inode that has no name left
// (its number may be reused by a new file).
func (lfs *FS) forgetIfGoneLocked(ino uint64, stillLinked bool) {
	if stillLinked {
		return
	}
	if state := lfs.files[ino]; state != nil {
		state.mu.Lock()
		state.dead = true
		state.mu.Unlock()
		delete(lfs.files, ino)
	}
	delete(lfs.dirs, ino)
}

// syncDir makes the listing of the directory (inode ino) durable, then
// empties the graveyard of what no durable listing names any more.
func (lfs *FS) syncDir(ino uint64) {
	lfs.dirFsyncs.Add(1)
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	if _, dirty := lfs.dirs[ino]; !dirty {
		return
	}
	delete(lfs.dirs, ino)
	for buried := range lfs.graveyardEntries {
		if lfs.durablyNamedLocked(buried) {
			continue
		}
		path := filepath.Join(lfs.graveyard, strconv.FormatUint(buried, 10))
		var st unix.Stat_t
		linked := false
		if err := unix.Lstat(path, &st); err == nil {
			linked = st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1
		}
		if err := os.RemoveAll(path); err != nil {
			lfs.logger.Warn("lazyfs: remove graveyard entry", "path", path, "err", err)
			continue
		}
		delete(lfs.graveyardEntries, buried)
		lfs.forgetIfGoneLocked(buried, linked)
	}
}
