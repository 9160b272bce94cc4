package lazyfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// cacheTimeout is how long the kernel may trust a looked-up name or a
// file's attributes. Every change passes through this mount, and a drop
// invalidates what it changes, so it only bounds staleness if an
// invalidation is ever missed.
const cacheTimeout = time.Second

// Mount is a mounted lost-page-cache file system.
type Mount struct {
	lfs    *FS
	dir    string
	root   *node
	server *fuse.Server
}

// MountFS mounts lfs at dir (an existing directory). The caller must
// Unmount it on every exit path; if the process dies instead, run
// `fusermount3 -uz dir`.
func MountFS(lfs *FS, dir string, debug bool) (*Mount, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	var rootStat unix.Stat_t
	if err := unix.Stat(lfs.backing, &rootStat); err != nil {
		return nil, fmt.Errorf("lazyfs: stat backing: %w", err)
	}
	root := &node{lazy: lfs}
	timeout := cacheTimeout
	server, err := fusefs.Mount(dir, root, &fusefs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		RootStableAttr:  &fusefs.StableAttr{Ino: rootStat.Ino, Mode: unix.S_IFDIR},
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:        lfs.backing,
			Name:          "strata-lazyfs",
			DisableXAttrs: true,
			Debug:         debug,
			Logger:        slog.NewLogLogger(lfs.logger.Handler(), slog.LevelDebug),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w", dir, err)
	}
	return &Mount{lfs: lfs, dir: dir, root: root, server: server}, nil
}

// FS returns the file system's state.
func (m *Mount) FS() *FS { return m.lfs }

// Drop is FS.Drop with the kernel's caches of the mount invalidated before
// (so that pages dirtied through a shared mapping reach the file system
// first) and after (so that nothing read before the drop is served after
// it).
func (m *Mount) Drop() error {
	m.invalidate()
	err := m.lfs.Drop()
	m.invalidate()
	return err
}

// invalidate makes the kernel forget the cached pages and attributes of
// every file it knows and every name of every directory it knows, and
// removes from the go-fuse tree the names whose backing object changed.
func (m *Mount) invalidate() {
	m.invalidateDir(&m.root.Inode)
}

func (m *Mount) invalidateDir(dir *fusefs.Inode) {
	dirPath := filepath.Join(m.lfs.backing, dir.Path(&m.root.Inode))
	names := map[string]bool{}
	if listing, err := readListing(dirPath, dir == &m.root.Inode); err == nil {
		for name := range listing {
			names[name] = true
		}
	}
	for name, child := range dir.Children() {
		names[name] = true
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dirPath, name), &st); err != nil || st.Ino != child.StableAttr().Ino {
			dir.RmChild(name)
		}
		if child.IsDir() {
			m.invalidateDir(child)
		} else {
			child.NotifyContent(0, 0)
		}
	}
	for name := range names {
		dir.NotifyEntry(name)
	}
}

// Unmount unmounts and waits until the server has stopped. If the mount is
// busy (files still open on it), it detaches it lazily (`fusermount3 -uz`)
// and returns at once: the server keeps answering for the open files until
// they are closed or the process exits, which ends the connection. Waiting
// for them instead could wait forever, for files held open by the caller's
// own process.
func (m *Mount) Unmount() error {
	err := m.server.Unmount()
	if err == nil {
		return nil
	}
	m.lfs.logger.Warn("lazyfs: mount busy, detaching it lazily", "mount", m.dir, "err", err)
	if out, lazyErr := exec.Command("fusermount3", "-uz", m.dir).CombinedOutput(); lazyErr != nil {
		return errors.Join(err, fmt.Errorf("fusermount3 -uz %s: %w: %s", m.dir, lazyErr, out))
	}
	return nil
}

// Wait returns when the server stops (for instance after an external
// fusermount3 -u).
func (m *Mount) Wait() { m.server.Wait() }
