package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is one file, directory or symlink of the mount; its backing path is
// the backing root joined with its path in the go-fuse tree.
type node struct {
	fusefs.Inode
	lazy *FS
}

// The operations a node implements, and only those: go-fuse answers the
// rest (mknod, xattrs, copy_file_range, passthrough, ...) with an error, so
// no write can reach the backing file system around the undo bookkeeping.
var (
	_ fusefs.NodeLookuper   = (*node)(nil)
	_ fusefs.NodeGetattrer  = (*node)(nil)
	_ fusefs.NodeSetattrer  = (*node)(nil)
	_ fusefs.NodeOpener     = (*node)(nil)
	_ fusefs.NodeCreater    = (*node)(nil)
	_ fusefs.NodeMkdirer    = (*node)(nil)
	_ fusefs.NodeRmdirer    = (*node)(nil)
	_ fusefs.NodeUnlinker   = (*node)(nil)
	_ fusefs.NodeRenamer    = (*node)(nil)
	_ fusefs.NodeSymlinker  = (*node)(nil)
	_ fusefs.NodeReadlinker = (*node)(nil)
	_ fusefs.NodeLinker     = (*node)(nil)
	_ fusefs.NodeReaddirer  = (*node)(nil)
	_ fusefs.NodeFsyncer    = (*node)(nil)
	_ fusefs.NodeStatfser   = (*node)(nil)
)

func (n *node) path() string {
	return filepath.Join(n.lazy.backing, n.Path(n.Root()))
}

func (n *node) isRoot() bool { return &n.Inode == n.Root() }

// hidden reports whether name in this directory is the graveyard.
func (n *node) hidden(name string) bool { return n.isRoot() && name == GraveyardName }

func (n *node) newChild(ctx context.Context, st *unix.Stat_t, out *fuse.EntryOut) *fusefs.Inode {
	child := n.NewInode(ctx, &node{lazy: n.lazy}, fusefs.StableAttr{Mode: st.Mode & unix.S_IFMT, Ino: st.Ino, Gen: n.lazy.generation(st.Ino)})
	out.Attr.FromStat(toSyscallStat(st))
	return child
}

func toSyscallStat(st *unix.Stat_t) *syscall.Stat_t {
	return &syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec(st.Atim), Mtim: syscall.Timespec(st.Mtim), Ctim: syscall.Timespec(st.Ctim),
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.ENOENT
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(n.path(), name), &st); err != nil {
		return nil, fusefs.ToErrno(err)
	}
	return n.newChild(ctx, &st, out), 0
}

func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Getattr(ctx, out)
	}
	var st unix.Stat_t
	if err := unix.Lstat(n.path(), &st); err != nil {
		return fusefs.ToErrno(err)
	}
	out.FromStat(toSyscallStat(&st))
	return 0
}

func (n *node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	path := n.path()
	if mode, ok := in.GetMode(); ok {
		if err := unix.Chmod(path, mode); err != nil {
			return fusefs.ToErrno(err)
		}
	}
	uid, uidOK := in.GetUID()
	gid, gidOK := in.GetGID()
	if uidOK || gidOK {
		newUID, newGID := -1, -1
		if uidOK {
			newUID = int(uid)
		}
		if gidOK {
			newGID = int(gid)
		}
		if err := unix.Fchownat(unix.AT_FDCWD, path, newUID, newGID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fusefs.ToErrno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		fd, owned := -1, false
		if h, isHandle := f.(*handle); isHandle {
			fd = h.fd
		} else {
			var err error
			if fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
				return fusefs.ToErrno(err)
			}
			owned = true
		}
		errno := n.lazy.truncate(fd, int64(size))
		if owned {
			unix.Close(fd)
		}
		if errno != 0 {
			return errno
		}
	}
	mtime, mtimeOK := in.GetMTime()
	atime, atimeOK := in.GetATime()
	if mtimeOK || atimeOK {
		times := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if atimeOK {
			times[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mtimeOK {
			times[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fusefs.ToErrno(err)
		}
	}
	return n.Getattr(ctx, f, out)
}

// openFlags are the flags a backing open gets: O_APPEND would make pwrite
// ignore the offsets the kernel computes, O_DIRECT is the kernel's business,
// and O_TRUNC is done by the caller, so that the truncate is undoable.
func openFlags(flags uint32) int {
	return int(flags)&^(unix.O_APPEND|unix.O_DIRECT|unix.O_TRUNC|unix.O_CREAT|unix.O_EXCL|fuse.FMODE_EXEC) | unix.O_CLOEXEC
}

// openReadable opens a file for writing also for reading, when the
// permissions let it: saving the synced bytes a write overwrites reads them.
func openReadable(path string, flags int, mode uint32) (int, error) {
	if flags&unix.O_ACCMODE == unix.O_WRONLY {
		fd, err := unix.Open(path, flags&^unix.O_ACCMODE|unix.O_RDWR, mode)
		if err != unix.EACCES {
			return fd, err
		}
	}
	return unix.Open(path, flags, mode)
}

func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return n.lazy.open(n.path(), flags)
}

func (lfs *FS) open(path string, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	fd, err := openReadable(path, openFlags(flags), 0)
	if err != nil {
		return nil, 0, fusefs.ToErrno(err)
	}
	if flags&unix.O_TRUNC != 0 && int(flags)&unix.O_ACCMODE != unix.O_RDONLY {
		if errno := lfs.truncate(fd, 0); errno != 0 {
			unix.Close(fd)
			return nil, 0, errno
		}
	}
	// No FOPEN_KEEP_CACHE: the kernel drops its cached pages of the file at
	// every open, so nothing cached survives a drop into a new open.
	return &handle{lazy: lfs, fd: fd}, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if n.hidden(name) {
		return nil, nil, 0, syscall.EPERM
	}
	dir := n.path()
	path := filepath.Join(dir, name)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil {
		// The name exists (the kernel did not know): an open, not a create.
		if flags&unix.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		h, fuseFlags, errno := n.lazy.open(path, flags)
		if errno != 0 {
			return nil, nil, 0, errno
		}
		if err := unix.Fstat(h.(*handle).fd, &st); err != nil {
			h.(*handle).Release(ctx)
			return nil, nil, 0, fusefs.ToErrno(err)
		}
		return n.newChild(ctx, &st, out), h, fuseFlags, 0
	}
	if n.lazy.refuseGrowth() {
		return nil, nil, 0, syscall.ENOSPC
	}
	fd, errno := n.lazy.create(dir, name, flags, mode, &st)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return n.newChild(ctx, &st, out), &handle{lazy: n.lazy, fd: fd}, 0, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	if n.lazy.refuseGrowth() {
		return nil, syscall.ENOSPC
	}
	var st unix.Stat_t
	if errno := n.lazy.mkdir(n.path(), name, mode, &st); errno != 0 {
		return nil, errno
	}
	return n.newChild(ctx, &st, out), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	if n.lazy.refuseGrowth() {
		return nil, syscall.ENOSPC
	}
	var st unix.Stat_t
	if errno := n.lazy.symlink(n.path(), name, target, &st); errno != 0 {
		return nil, errno
	}
	return n.newChild(ctx, &st, out), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	buf := make([]byte, unix.PathMax)
	size, err := unix.Readlink(n.path(), buf)
	if err != nil {
		return nil, fusefs.ToErrno(err)
	}
	return buf[:size], 0
}

// Link refuses hard links: nothing in Strata makes them, and a file with
// two durable names would complicate the undo of its removal for no use.
func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.hidden(name) {
		return syscall.ENOENT
	}
	return n.lazy.remove(n.path(), name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.hidden(name) {
		return syscall.ENOENT
	}
	return n.lazy.remove(n.path(), name, true)
}

func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	target, ok := newParent.(*node)
	if !ok || target.lazy != n.lazy {
		return syscall.EXDEV
	}
	if n.hidden(name) || target.hidden(newName) {
		return syscall.EPERM
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return syscall.EINVAL
	}
	return n.lazy.rename(n.path(), name, target.path(), newName, flags)
}

func (n *node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	listing, err := readListing(n.path(), n.isRoot())
	if err != nil {
		return nil, fusefs.ToErrno(err)
	}
	entries := make([]fuse.DirEntry, 0, len(listing))
	for name, entry := range listing {
		entries = append(entries, fuse.DirEntry{Name: name, Ino: entry.ino, Mode: entry.kind})
	}
	return fusefs.NewListDirStream(entries), 0
}

// Fsync makes a file's content or a directory's listing durable. The
// backing fsync is passed through (the cost stays realistic), after the
// configured delay.
func (n *node) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	if errno := n.lazy.delayFsync(ctx); errno != 0 {
		return errno
	}
	if n.lazy.fsyncError.Load() {
		// A disk that failed to write: nothing becomes durable. (Linux
		// reports a writeback error once and may have dropped the pages;
		// here the data stays in the file, and a drop undoes it.)
		n.lazy.fsyncErrors.Add(1)
		return syscall.EIO
	}
	if n.StableAttr().Mode&unix.S_IFMT == unix.S_IFDIR {
		fd, err := unix.Open(n.path(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fusefs.ToErrno(err)
		}
		defer unix.Close(fd)
		if err := unix.Fsync(fd); err != nil {
			return fusefs.ToErrno(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fusefs.ToErrno(err)
		}
		n.lazy.syncDir(st.Ino)
		return 0
	}
	h, ok := f.(*handle)
	if !ok {
		return syscall.EBADF
	}
	return n.lazy.syncFile(h.fd)
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.lazy.backing, &st); err != nil {
		return fusefs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	if n.lazy.enospc.Load() {
		out.Bfree, out.Bavail = 0, 0 // a full disk says so
	}
	return 0
}

func (lfs *FS) delayFsync(ctx context.Context) syscall.Errno {
	delay := time.Duration(lfs.fsyncDelay.Load())
	if delay <= 0 {
		return 0
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return 0
	case <-ctx.Done():
		return syscall.EINTR
	}
}

// handle is an open regular file: a backing descriptor.
type handle struct {
	lazy *FS
	fd   int
}

var (
	_ fusefs.FileReader    = (*handle)(nil)
	_ fusefs.FileWriter    = (*handle)(nil)
	_ fusefs.FileGetattrer = (*handle)(nil)
	_ fusefs.FileAllocater = (*handle)(nil)
	_ fusefs.FileReleaser  = (*handle)(nil)
	_ fusefs.FileFlusher   = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := unix.Pread(h.fd, dest, off)
	if err != nil {
		return nil, fusefs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.lazy.write(h.fd, data, off)
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return fusefs.ToErrno(err)
	}
	out.FromStat(toSyscallStat(&st))
	return 0
}

func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return h.lazy.allocate(h.fd, int64(off), int64(size), mode)
}

func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	return fusefs.ToErrno(unix.Close(h.fd))
}
