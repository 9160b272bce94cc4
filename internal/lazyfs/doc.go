// Package lazyfs is a lost-page-cache file system for fault tests, with
// the semantics of LazyFS (Ramos et al., "When Amnesia Strikes", VLDB
// 2024): a FUSE pass-through of a backing directory that can, on command,
// forget everything that was not made durable, as a power loss would. The
// nemesis mounts one (command e2e/cmd/strata-lazyfs) under each broker's
// data directory, kills the broker with SIGKILL, drops, and restarts it.
//
// # What survives a drop
//
// Writes, truncates and namespace changes reach the backing directory at
// once (reads are plain reads), and the package keeps what a drop needs to
// undo them:
//
//   - A regular file returns to its content and length as of its last
//     fsync or fdatasync (the two are the same here): bytes written past
//     that length are cut, and the synced bytes that were overwritten,
//     truncated away or punched since are put back. A truncate, O_TRUNC
//     and fallocate's punch/zero/collapse/insert are undone like writes.
//   - A directory returns to its listing as of its last fsync: a name
//     created since (file, directory or symlink) disappears with what is
//     under it; a name removed since (unlink, rmdir) comes back, naming its
//     object with that object's own durable content; a rename is undone in
//     each directory that was not fsynced after it (the atomic-replace
//     pattern — write tmp, fsync, rename, fsync dir — survives; without
//     the directory fsync the old file comes back). A file whose create was
//     made durable by a directory fsync but which was never fsynced itself
//     comes back empty.
//   - An fsync of a file does not make its name durable, nor an fsync of a
//     directory the content of its files: as POSIX promises, and stricter
//     than ext4 in its default mode, which commits a new file's name with
//     its first fsync.
//   - A drop is a power loss at that instant; it does not lose a sync that
//     returned. A rename between two directories of which only one was
//     fsynced comes back under both names for a file, and stays where it is
//     for a directory.
//
// Hard links are refused (ENOTSUP; nothing in Strata makes them), and so
// are mknod, extended attributes and copy_file_range (the kernel falls back
// to read and write). Open-but-unlinked files work; they have no name after
// a drop either way. Shared writable mappings work (their pages reach the
// file system as writes; a drop first invalidates the kernel's cache so
// that dirty pages are written, and undone, before it). bbolt, which holds
// the Raft log under metadata/, maps its file read-only and writes with
// pwrite and fdatasync.
//
// # How
//
// Undo state is kept per backing inode (fileState): the synced length and
// the synced bytes of ranges changed since the last fsync, saved before
// the first change of each byte. For each directory changed since its last
// fsync, its listing (name -> backing inode) as of that fsync is recorded
// before its first change. An object removed while a recorded listing
// still names it is kept in the hidden directory GraveyardName under the
// backing root (a second hard link for a file; a move for an empty
// directory) until the listings that name it are fsynced. A drop restores
// the files' content, then moves every name of a changed directory that is
// not in its durable listing into the graveyard, puts back every durable
// name that is missing (a link from wherever the object is now, found
// through an O_PATH descriptor), empties the graveyard and forgets all
// state: after a drop everything on the mount is durable.
//
// The undo state lives in the daemon's memory only: a daemon that is
// killed and started again on the same backing directory counts everything
// in it as durable (and empties the graveyard: removals count as durable).
//
// Memory is bounded by what is unsynced: a file costs the synced bytes it
// overwrote or cut since its last fsync (Stats.UndoBytes; appends cost
// nothing), a changed directory its durable listing. A process that
// overwrites a large synced file and never fsyncs it holds that much.
//
// # Kernel caches
//
// Files are opened without FOPEN_DIRECT_IO (bbolt needs MAP_SHARED
// mappings, which direct I/O refuses on kernels without
// FUSE_DIRECT_IO_ALLOW_MMAP) and without FOPEN_KEEP_CACHE, so the kernel
// keeps a page cache per file, written through (no writeback cache: every
// write reaches this package before write(2) returns), and drops a file's
// pages at each open. Names and attributes are cached for a second. A drop
// invalidates, before and after it, the pages and attributes of every file
// the kernel knows and every name of every directory it knows, and removes
// the names whose object changed from go-fuse's tree; so nothing read
// before a drop is served after it, even through a descriptor kept open.
//
// # Control protocol
//
// The daemon listens on a Unix socket; each line is one command, answered
// with one line:
//
//	drop           -> ok | error: <text>   forget everything not durable
//	enospc on|off  -> ok                   while on, writes past the end of a file
//	                                       (the whole write, nothing partial),
//	                                       creates, mkdir, symlink and allocating
//	                                       fallocate fail with ENOSPC, and statfs
//	                                       shows no free space (overwrites,
//	                                       truncates and removals still work)
//	fsync-delay MS -> ok                   every fsync/fdatasync of a file or a
//	                                       directory takes at least MS ms (0: off)
//	fsync-error on|off -> ok               while on, every fsync/fdatasync of a
//	                                       file or a directory fails with EIO and
//	                                       makes nothing durable (a failing disk;
//	                                       an addition to the nemesis contract)
//	stats          -> fsyncs=N dir_fsyncs=N drops=N dropped_bytes=N
//	                  undone_creates=N undone_renames=N undone_unlinks=N
//	                  undo_bytes=N drop_errors=N enospc_refusals=N
//	                  fsync_errors=N
//
// Anything else answers "error: unknown command ...". drop_errors counts
// inconsistencies a drop logged and skipped (the drop then answers
// "error: ..." after finishing); a test should require 0.
//
// # Exit
//
// The daemon unmounts on SIGTERM, SIGINT and every error path after the
// mount; if the mount is busy it detaches it lazily (fusermount3 -uz). If
// the daemon is killed, the kernel fails the requests in flight once
// /dev/fuse is closed, and `fusermount3 -uz MOUNT` removes the mount: no
// process stays blocked. FUSE operations never wait without bound: the
// backing directory is a local file system, and the fsync delay ends early
// when the kernel interrupts the request.
package lazyfs
