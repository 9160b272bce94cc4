package lazyfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Drop forgets everything not made durable, as a power loss would: every
// file returns to its content and length as of its last fsync, and every
// directory changed since its last fsync to its listing as of then. The
// caller has stopped the processes using the mount (their open files keep
// working, on the restored content). Inconsistencies (a bug here, or a
// change to the backing directory behind the mount's back) are logged,
// counted in Stats.DropErrors and skipped, and make Drop return an error
// after finishing, so that a test cannot miss them.
func (lfs *FS) Drop() (err error) {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	for _, state := range lfs.files {
		state.mu.Lock()
	}
	defer func() {
		for ino, state := range lfs.files {
			state.dead = true
			state.mu.Unlock()
			delete(lfs.files, ino)
		}
		clear(lfs.dirs)
		clear(lfs.graveyardEntries)
	}()
	lfs.drops++
	errorsBefore := lfs.dropErrors
	defer func() {
		if inconsistencies := lfs.dropErrors - errorsBefore; inconsistencies > 0 && err == nil {
			err = fmt.Errorf("lazyfs: drop: %d inconsistencies, logged and skipped", inconsistencies)
		}
	}()

	locations, err := lfs.locate()
	if err != nil {
		return err
	}
	lfs.undoContentLocked(locations)
	if err := lfs.undoNamespaceLocked(locations); err != nil {
		return err
	}
	return lfs.resetGraveyard()
}

// locate maps every backing inode to one backing path, a name outside the
// graveyard when it has one.
func (lfs *FS) locate() (map[uint64]string, error) {
	locations := map[uint64]string{}
	err := filepath.WalkDir(lfs.backing, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if _, known := locations[st.Ino]; known && lfs.inGraveyard(path) {
			return nil
		}
		locations[st.Ino] = path
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: drop: walk backing directory: %w", err)
	}
	return locations, nil
}

func (lfs *FS) inGraveyard(path string) bool {
	return path == lfs.graveyard || strings.HasPrefix(path, lfs.graveyard+string(filepath.Separator))
}

func (lfs *FS) dropErrorLocked(msg string, args ...any) {
	lfs.dropErrors++
	lfs.logger.Error("lazyfs: drop: "+msg, args...)
}

// undoContentLocked puts every changed file back to its synced content
// and length.
func (lfs *FS) undoContentLocked(locations map[uint64]string) {
	for ino, state := range lfs.files {
		path, ok := locations[ino]
		if !ok {
			continue // no name left: nobody can open it after the drop
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		lfs.droppedBytes += state.savedBytes() + max(0, st.Size-state.syncedSize)
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			lfs.dropErrorLocked("open file to restore", "path", path, "err", err)
			continue
		}
		if err := state.restoreLocked(fd); err != nil {
			lfs.dropErrorLocked("restore file", "path", path, "err", err)
		}
		unix.Close(fd)
	}
}

// pathFD is an O_PATH descriptor: it follows its object through renames,
// and /proc/self/fd/N names the object wherever it is now.
type pathFD int

func openPath(path string, flags int) (pathFD, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	return pathFD(fd), err
}

func (fd pathFD) proc() string { return "/proc/self/fd/" + strconv.Itoa(int(fd)) }

func (fd pathFD) currentPath() (string, error) { return os.Readlink(fd.proc()) }

// undoNamespaceLocked gives every changed directory its durable listing
// back: first every name not in it moves to the graveyard, then every
// durable name missing is put back from wherever its object is now.
func (lfs *FS) undoNamespaceLocked(locations map[uint64]string) error {
	dirFDs := map[uint64]pathFD{}
	objectFDs := map[uint64]pathFD{}
	defer func() {
		for _, fd := range dirFDs {
			unix.Close(int(fd))
		}
		for _, fd := range objectFDs {
			unix.Close(int(fd))
		}
	}()
	for dirIno, listing := range lfs.dirs {
		path, ok := locations[dirIno]
		if !ok {
			continue // gone for good: no durable listing names it
		}
		fd, err := openPath(path, unix.O_DIRECTORY)
		if err != nil {
			lfs.dropErrorLocked("open changed directory", "path", path, "err", err)
			continue
		}
		dirFDs[dirIno] = fd
		for name, entry := range listing {
			if _, done := objectFDs[entry.ino]; done {
				continue
			}
			objectPath, ok := locations[entry.ino]
			if !ok {
				lfs.dropErrorLocked("durable entry has no object", "dir", path, "name", name, "ino", entry.ino)
				continue
			}
			objectFD, err := openPath(objectPath, 0)
			if err != nil {
				lfs.dropErrorLocked("open durable entry", "path", objectPath, "err", err)
				continue
			}
			objectFDs[entry.ino] = objectFD
		}
	}
	// Phase 1: move every name that is not durable out of the way.
	graveyardFD, err := openPath(lfs.graveyard, unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("lazyfs: drop: open graveyard: %w", err)
	}
	defer unix.Close(int(graveyardFD))
	// Every changed directory gets its durable listing back, even one that
	// goes away itself (it is in the graveyard at the end), because a
	// directory in the graveyard may be one that comes back: a rename
	// undone, or one inside a directory whose rename is undone.
	type movedAside struct {
		from pathFD // the directory the name was in
		ino  uint64
	}
	var asides []movedAside
	for dirIno, dirFD := range dirFDs {
		dirPath, err := dirFD.currentPath()
		if err != nil {
			lfs.dropErrorLocked("locate changed directory", "err", err)
			continue
		}
		current, err := readListing(dirPath, dirPath == lfs.backing)
		if err != nil {
			lfs.dropErrorLocked("list changed directory", "path", dirPath, "err", err)
			continue
		}
		durable := lfs.dirs[dirIno]
		for name, entry := range current {
			if durable[name] == entry {
				continue
			}
			if err := unix.Renameat(int(dirFD), name, int(graveyardFD), "aside-"+strconv.Itoa(len(asides))); err != nil {
				lfs.dropErrorLocked("move name aside", "dir", dirPath, "name", name, "err", err)
				continue
			}
			asides = append(asides, movedAside{from: dirFD, ino: entry.ino})
		}
	}
	// Phase 2: put back every durable name that is missing.
	putBack := map[uint64]bool{}
	for dirIno, dirFD := range dirFDs {
		for name, entry := range lfs.dirs[dirIno] {
			var st unix.Stat_t
			if err := unix.Fstatat(int(dirFD), name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
				if st.Ino != entry.ino {
					lfs.dropErrorLocked("durable name taken", "name", name, "ino", st.Ino, "want", entry.ino)
				}
				continue
			}
			objectFD, ok := objectFDs[entry.ino]
			if !ok {
				continue // logged above
			}
			objectPath, err := objectFD.currentPath()
			if err != nil {
				lfs.dropErrorLocked("locate durable entry", "name", name, "err", err)
				continue
			}
			if entry.isDir() {
				if !lfs.inGraveyard(objectPath) {
					// Durable in another listing too (the directory it was
					// renamed into was fsynced): it stays there.
					continue
				}
				err = unix.Renameat(unix.AT_FDCWD, objectPath, int(dirFD), name)
			} else {
				err = unix.Linkat(unix.AT_FDCWD, objectFD.proc(), int(dirFD), name, unix.AT_SYMLINK_FOLLOW)
			}
			if err != nil {
				lfs.dropErrorLocked("put back durable name", "name", name, "from", objectPath, "err", err)
				continue
			}
			if objectPath == filepath.Join(lfs.graveyard, strconv.FormatUint(entry.ino, 10)) {
				lfs.undoneUnlinks++ // removed at run time, kept in the graveyard
			}
			putBack[entry.ino] = true
		}
	}
	// Count what was taken from directories that survive: a name whose
	// object came back under its durable name is a rename undone, else a
	// create undone.
	for _, aside := range asides {
		if from, err := aside.from.currentPath(); err != nil || lfs.inGraveyard(from) {
			continue
		}
		if putBack[aside.ino] {
			lfs.undoneRenames++
		} else {
			lfs.undoneCreates++
		}
	}
	return nil
}
