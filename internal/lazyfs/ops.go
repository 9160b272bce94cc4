package lazyfs

import (
	"path/filepath"
	"strconv"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// write writes data at off, first saving the synced bytes it overwrites.
func (lfs *FS) write(fd int, data []byte, off int64) (uint32, syscall.Errno) {
	state, st, err := lfs.lockedFileStat(fd)
	if err != nil {
		return 0, fusefs.ToErrno(err)
	}
	defer state.mu.Unlock()
	end := off + int64(len(data))
	if end > st.Size && lfs.refuseGrowth() {
		return 0, syscall.ENOSPC
	}
	if err := state.saveLocked(fd, off, end, st.Size); err != nil {
		lfs.logger.Error("lazyfs: save before write", "err", err)
		return 0, syscall.EIO
	}
	written, err := unix.Pwrite(fd, data, off)
	if err != nil {
		return 0, fusefs.ToErrno(err)
	}
	return uint32(written), 0
}

// truncate sets the file's length, first saving the synced bytes it cuts.
func (lfs *FS) truncate(fd int, size int64) syscall.Errno {
	state, st, err := lfs.lockedFileStat(fd)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	defer state.mu.Unlock()
	if err := state.saveLocked(fd, size, st.Size, st.Size); err != nil {
		lfs.logger.Error("lazyfs: save before truncate", "err", err)
		return syscall.EIO
	}
	return fusefs.ToErrno(unix.Ftruncate(fd, size))
}

// allocate is fallocate: allocating keeps the content (a drop cuts what
// grew past the synced length); punching, zeroing, collapsing or inserting
// a range changes bytes, which are saved first.
func (lfs *FS) allocate(fd int, off, size int64, mode uint32) syscall.Errno {
	state, st, err := lfs.lockedFileStat(fd)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	defer state.mu.Unlock()
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_COLLAPSE_RANGE) == 0 && lfs.refuseGrowth() {
		return syscall.ENOSPC
	}
	changedEnd := int64(0)
	switch {
	case mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0:
		changedEnd = st.Size // the tail moves
	case mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0:
		changedEnd = off + size
	}
	if err := state.saveLocked(fd, off, changedEnd, st.Size); err != nil {
		lfs.logger.Error("lazyfs: save before fallocate", "err", err)
		return syscall.EIO
	}
	return fusefs.ToErrno(unix.Fallocate(fd, mode, off, size))
}

// syncFile is fsync and fdatasync of a file: its content and length now
// are what a drop keeps.
func (lfs *FS) syncFile(fd int) syscall.Errno {
	state, err := lfs.lockedFileState(fd)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	defer state.mu.Unlock()
	if err := unix.Fsync(fd); err != nil {
		return fusefs.ToErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fusefs.ToErrno(err)
	}
	lfs.fsyncs.Add(1)
	state.syncedSize = st.Size
	state.saved = nil
	return 0
}

// create creates the file dir/name; until dir is fsynced a drop removes it,
// and its durable content is empty until it is fsynced.
func (lfs *FS) create(dir, name string, flags, mode uint32, st *unix.Stat_t) (int, syscall.Errno) {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	if _, err := lfs.recordDirLocked(dir); err != nil {
		return -1, fusefs.ToErrno(err)
	}
	fd, err := openReadable(filepath.Join(dir, name), openFlags(flags)|unix.O_CREAT|unix.O_EXCL, mode)
	if err != nil {
		return -1, fusefs.ToErrno(err)
	}
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return -1, fusefs.ToErrno(err)
	}
	lfs.forgetIfGoneLocked(st.Ino, false) // a reused inode number
	lfs.retireLocked(st.Ino)
	lfs.files[st.Ino] = &fileState{}
	return fd, 0
}

// mkdir creates the directory dir/name, whose durable listing is empty.
func (lfs *FS) mkdir(dir, name string, mode uint32, st *unix.Stat_t) syscall.Errno {
	return lfs.makeEntry(dir, name, st, func(path string) error { return unix.Mkdir(path, mode) }, func(ino uint64) {
		lfs.dirs[ino] = map[string]dirEntry{}
	})
}

func (lfs *FS) symlink(dir, name, target string, st *unix.Stat_t) syscall.Errno {
	return lfs.makeEntry(dir, name, st, func(path string) error { return unix.Symlink(target, path) }, func(uint64) {})
}

// makeEntry creates dir/name with mk (until dir is fsynced a drop removes
// it) and fills st with its attributes; record, called under lfs.mu,
// starts the state of the new inode.
func (lfs *FS) makeEntry(dir, name string, st *unix.Stat_t, mk func(path string) error, record func(ino uint64)) syscall.Errno {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	if _, err := lfs.recordDirLocked(dir); err != nil {
		return fusefs.ToErrno(err)
	}
	path := filepath.Join(dir, name)
	if err := mk(path); err != nil {
		return fusefs.ToErrno(err)
	}
	if err := unix.Lstat(path, st); err != nil {
		return fusefs.ToErrno(err)
	}
	lfs.forgetIfGoneLocked(st.Ino, false)
	lfs.retireLocked(st.Ino)
	record(st.Ino)
	return 0
}

// remove is unlink and rmdir: the object goes to the graveyard while a
// durable listing names it.
func (lfs *FS) remove(dir, name string, isDir bool) syscall.Errno {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	path := filepath.Join(dir, name)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fusefs.ToErrno(err)
	}
	if (st.Mode&unix.S_IFMT == unix.S_IFDIR) != isDir {
		if isDir {
			return syscall.ENOTDIR
		}
		return syscall.EISDIR
	}
	if isDir {
		// Refuse a non-empty directory before anything moves.
		entries, err := readListing(path, false)
		if err != nil {
			return fusefs.ToErrno(err)
		}
		if len(entries) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	if _, err := lfs.recordDirLocked(dir); err != nil {
		return fusefs.ToErrno(err)
	}
	moved, err := lfs.buryLocked(path, st.Ino, isDir)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	if isDir || st.Nlink <= 1 {
		lfs.retireLocked(st.Ino) // its last name: dead to the kernel
	}
	if moved {
		return 0
	}
	if isDir {
		err = unix.Rmdir(path)
	} else {
		err = unix.Unlink(path)
	}
	if err != nil {
		return fusefs.ToErrno(err)
	}
	lfs.forgetIfGoneLocked(st.Ino, lfs.graveyardEntries[st.Ino] || (!isDir && st.Nlink > 1))
	return 0
}

// rename renames; a replaced target goes to the graveyard while a durable
// listing names it.
func (lfs *FS) rename(oldDir, oldName, newDir, newName string, flags uint32) syscall.Errno {
	lfs.mu.Lock()
	defer lfs.mu.Unlock()
	var renamed error // the rename's own result
	oldPath, newPath := filepath.Join(oldDir, oldName), filepath.Join(newDir, newName)
	var source unix.Stat_t
	if err := unix.Lstat(oldPath, &source); err != nil {
		return fusefs.ToErrno(err)
	}
	var target unix.Stat_t
	targetExists := unix.Lstat(newPath, &target) == nil
	if targetExists && target.Ino == source.Ino {
		return 0 // rename(2) does nothing when both names are one file
	}
	if _, err := lfs.recordDirLocked(oldDir); err != nil {
		return fusefs.ToErrno(err)
	}
	if _, err := lfs.recordDirLocked(newDir); err != nil {
		return fusefs.ToErrno(err)
	}
	replaced := targetExists && flags&(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) == 0
	if replaced {
		targetIsDir := target.Mode&unix.S_IFMT == unix.S_IFDIR
		if targetIsDir {
			if source.Mode&unix.S_IFMT != unix.S_IFDIR {
				return syscall.EISDIR
			}
			entries, err := readListing(newPath, false)
			if err != nil {
				return fusefs.ToErrno(err)
			}
			if len(entries) > 0 {
				return syscall.ENOTEMPTY
			}
		}
		moved, err := lfs.buryLocked(newPath, target.Ino, targetIsDir)
		if err != nil {
			return fusefs.ToErrno(err)
		}
		if moved {
			// The replaced directory is in the graveyard already; if the
			// rename fails (say, a directory into itself), it goes back.
			defer func() {
				if renamed != nil {
					buried := filepath.Join(lfs.graveyard, strconv.FormatUint(target.Ino, 10))
					if err := unix.Rename(buried, newPath); err != nil {
						lfs.logger.Error("lazyfs: put back the target of a failed rename", "path", newPath, "err", err)
						return
					}
					delete(lfs.graveyardEntries, target.Ino)
				}
			}()
		}
	}
	if renamed = unix.Renameat2(unix.AT_FDCWD, oldPath, unix.AT_FDCWD, newPath, uint(flags)); renamed != nil {
		return fusefs.ToErrno(renamed)
	}
	if replaced {
		lastName := target.Mode&unix.S_IFMT == unix.S_IFDIR || target.Nlink <= 1
		if lastName {
			lfs.retireLocked(target.Ino) // dead to the kernel
		}
		lfs.forgetIfGoneLocked(target.Ino, lfs.graveyardEntries[target.Ino] || !lastName)
	}
	return 0
}
