package lazyfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDropKeepsSyncedPrefix(t *testing.T) {
	dir, m := mountTest(t)
	path := filepath.Join(dir, "log")
	f := create(t, path)
	defer f.Close()
	fsyncDir(t, dir)
	writeAt(t, f, "synced.", 0)
	fsync(t, f)
	writeAt(t, f, "lost", 7)
	requireContent(t, path, "synced.lost")
	drop(t, m)
	// A descriptor open across the drop reads the restored file, not the
	// kernel's cached pages or length.
	buffer := make([]byte, 64)
	if n, err := f.ReadAt(buffer, 0); string(buffer[:n]) != "synced." || !errors.Is(err, io.EOF) {
		t.Fatalf("read through the open descriptor after drop: %q, %v; want %q, EOF", buffer[:n], err, "synced.")
	}
	requireContent(t, path, "synced.")
	if got := m.FS().Stats().DroppedBytes; got != 4 {
		t.Fatalf("dropped_bytes = %d, want 4", got)
	}
	// The mount stays usable, and the old descriptor sees the restored file.
	writeAt(t, f, "again", 7)
	fsync(t, f)
	drop(t, m)
	requireContent(t, path, "synced.again")
}

func TestDropUndoesOverwriteInPlace(t *testing.T) {
	dir, m := mountTest(t)
	path := filepath.Join(dir, "data")
	f := openDurable(t, path, "0123456789")
	defer f.Close()
	writeAt(t, f, "ab", 2)
	writeAt(t, f, "XYZ", 1) // overlaps the first overwrite: the synced bytes are kept once
	writeAt(t, f, "tail", 8)
	requireContent(t, path, "0XYZ4567tail")
	drop(t, m)
	requireContent(t, path, "0123456789")
}

func TestDropUndoesTruncate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		truncate func(t *testing.T, path string)
	}{
		{"ftruncate", func(t *testing.T, path string) {
			if err := os.Truncate(path, 3); err != nil {
				t.Fatal(err)
			}
		}},
		{"O_TRUNC", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			writeAt(t, f, "new", 0)
			f.Close()
		}},
		{"truncate then regrow", func(t *testing.T, path string) {
			if err := os.Truncate(path, 2); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 20); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := mountTest(t)
			path := filepath.Join(dir, "data")
			writeDurably(t, path, "durable content")
			tc.truncate(t, path)
			drop(t, m)
			requireContent(t, path, "durable content")
		})
	}
}

func TestDropUndoesCreateWithoutDirFsync(t *testing.T) {
	dir, m := mountTest(t)
	kept := filepath.Join(dir, "kept")
	empty := filepath.Join(dir, "empty")
	lost := filepath.Join(dir, "lost")

	f := create(t, kept)
	writeAt(t, f, "data", 0)
	fsync(t, f)
	f.Close()
	f = create(t, empty) // never fsynced: comes back empty
	writeAt(t, f, "unsynced", 0)
	f.Close()
	fsyncDir(t, dir)
	f = create(t, lost) // fsynced, but its name is not durable
	writeAt(t, f, "data", 0)
	fsync(t, f)
	f.Close()
	if err := os.MkdirAll(filepath.Join(dir, "newdir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	drop(t, m)
	requireContent(t, kept, "data")
	requireContent(t, empty, "")
	requireMissing(t, lost)
	requireMissing(t, filepath.Join(dir, "newdir"))
	if got := m.FS().Stats().UndoneCreates; got != 2 {
		t.Fatalf("undone_creates = %d, want 2 (lost, newdir)", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	if got := strings.Join(names, ","); got != "empty,kept" {
		t.Fatalf("listing after drop: %s, want empty,kept", got)
	}
}

// replaceAtomically is atomicfile's sequence: write a temporary file, fsync
// it, rename it over the target, and (if syncDir) fsync the directory.
func replaceAtomically(t *testing.T, path, content string, syncDir bool) {
	t.Helper()
	f := create(t, path+".tmp")
	writeAt(t, f, content, 0)
	fsync(t, f)
	f.Close()
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if syncDir {
		fsyncDir(t, filepath.Dir(path))
	}
}

func TestDropAtomicReplace(t *testing.T) {
	t.Run("with dir fsync the new file survives", func(t *testing.T) {
		dir, m := mountTest(t)
		path := filepath.Join(dir, "checkpoint")
		writeDurably(t, path, "old")
		replaceAtomically(t, path, "new", true)
		drop(t, m)
		requireContent(t, path, "new")
		requireMissing(t, path+".tmp")
	})
	t.Run("without dir fsync the old file comes back", func(t *testing.T) {
		dir, m := mountTest(t)
		path := filepath.Join(dir, "checkpoint")
		writeDurably(t, path, "old")
		replaceAtomically(t, path, "new", false)
		requireContent(t, path, "new")
		drop(t, m)
		requireContent(t, path, "old")
		requireMissing(t, path+".tmp") // its create was not durable either
	})
	t.Run("rename between directories without fsync is undone", func(t *testing.T) {
		dir, m := mountTest(t)
		for _, sub := range []string{"a", "b"} {
			if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fsyncDir(t, dir)
		writeDurably(t, filepath.Join(dir, "a", "f"), "content")
		if err := os.Rename(filepath.Join(dir, "a", "f"), filepath.Join(dir, "b", "g")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "c")); err != nil {
			t.Fatal(err)
		}
		drop(t, m)
		requireContent(t, filepath.Join(dir, "a", "f"), "content")
		requireMissing(t, filepath.Join(dir, "b", "g"))
		requireMissing(t, filepath.Join(dir, "c"))
	})
}

// TestDropDirectoryNeverFsynced is hashicorp/raft's snapshot sequence: a
// temporary directory, files in it fsynced, the directory renamed and its
// parent fsynced, but the directory itself never: its name survives a
// drop, and the names in it do not.
func TestDropDirectoryNeverFsynced(t *testing.T) {
	dir, m := mountTest(t)
	snapshots := filepath.Join(dir, "snapshots")
	if err := os.Mkdir(snapshots, 0o755); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir)
	temporary := filepath.Join(snapshots, "1-10.tmp")
	if err := os.Mkdir(temporary, 0o755); err != nil {
		t.Fatal(err)
	}
	f := create(t, filepath.Join(temporary, "state.bin"))
	writeAt(t, f, "state", 0)
	fsync(t, f)
	f.Close()
	if err := os.Rename(temporary, filepath.Join(snapshots, "1-10")); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, snapshots)

	drop(t, m)
	entries, err := os.ReadDir(filepath.Join(snapshots, "1-10"))
	if err != nil {
		t.Fatalf("the renamed directory's name was made durable: %v", err)
	}
	if len(entries) != 0 {
		t.Fatalf("the directory was never fsynced, yet %d names in it survived", len(entries))
	}
	requireMissing(t, temporary)
}

func TestDropUndoesUnlink(t *testing.T) {
	dir, m := mountTest(t)
	path := filepath.Join(dir, "segment")
	f := openDurable(t, path, "synced")
	writeAt(t, f, "+unsynced", 6)
	f.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir)
	writeDurably(t, filepath.Join(sub, "inner"), "inner")
	if err := os.Remove(filepath.Join(sub, "inner")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	requireMissing(t, path) // the unlink happened; only the dir fsync made... the earlier state durable

	drop(t, m)
	// The dir fsync after the unlink made the unlink durable.
	requireMissing(t, path)
	requireContent(t, filepath.Join(sub, "inner"), "inner")

	writeDurably(t, path, "again")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	drop(t, m)
	requireContent(t, path, "again")
	if got := m.FS().Stats().UndoneUnlinks; got != 3 {
		t.Fatalf("undone_unlinks = %d, want 3 (sub/inner, sub, segment)", got)
	}
}

func TestENOSPC(t *testing.T) {
	dir, m := mountTest(t)
	path := filepath.Join(dir, "data")
	f := openDurable(t, path, "0123456789")
	defer f.Close()

	m.FS().SetENOSPC(true)
	if _, err := f.WriteAt([]byte("grow"), 8); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("growing write with enospc on: %v, want ENOSPC", err)
	}
	writeAt(t, f, "ab", 0) // an overwrite needs no space
	if _, err := os.Create(filepath.Join(dir, "new")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create with enospc on: %v, want ENOSPC", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "newdir"), 0o755); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("mkdir with enospc on: %v, want ENOSPC", err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, 1<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fallocate with enospc on: %v, want ENOSPC", err)
	}
	requireContent(t, path, "ab23456789")
	var full syscall.Statfs_t
	if err := syscall.Statfs(dir, &full); err != nil {
		t.Fatal(err)
	}
	if full.Bavail != 0 || full.Bfree != 0 {
		t.Fatalf("statfs with enospc on: %d blocks free, %d available, want 0", full.Bfree, full.Bavail)
	}

	m.FS().SetENOSPC(false)
	writeAt(t, f, "grow", 8)
	requireContent(t, path, "ab234567grow")
	nf, err := os.Create(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatalf("create with enospc off: %v", err)
	}
	nf.Close()
	if got := m.FS().Stats().ENOSPCRefusals; got != 4 {
		t.Fatalf("enospc_refusals = %d, want 4", got)
	}
}

func TestFsyncError(t *testing.T) {
	dir, m := mountTest(t)
	path := filepath.Join(dir, "f")
	f := openDurable(t, path, "synced")
	defer f.Close()
	writeAt(t, f, "+written", 6)
	m.FS().SetFsyncError(true)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with fsync-error on: %v, want EIO", err)
	}
	if err := syscall.Fdatasync(int(f.Fd())); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fdatasync with fsync-error on: %v, want EIO", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "g"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("directory fsync with fsync-error on: %v, want EIO", err)
	}
	drop(t, m) // nothing became durable
	requireContent(t, path, "synced")
	requireMissing(t, filepath.Join(dir, "g"))

	m.FS().SetFsyncError(false)
	writeAt(t, f, "+written", 6)
	fsync(t, f)
	drop(t, m)
	requireContent(t, path, "synced+written")
	if got := m.FS().Stats().FsyncErrors; got != 3 {
		t.Fatalf("fsync_errors = %d, want 3", got)
	}
}

func TestFsyncDelay(t *testing.T) {
	dir, m := mountTest(t)
	f := create(t, filepath.Join(dir, "f"))
	defer f.Close()
	const delay = 200 * time.Millisecond
	m.FS().SetFsyncDelay(delay)
	for _, sync := range []struct {
		name string
		call func() error
	}{
		{"fsync", f.Sync},
		{"fdatasync", func() error {
			// A raw system call: a signal (the Go runtime's preemption)
			// during the delayed FUSE request interrupts it (EINTR), and
			// it is made again, as os.File.Sync does.
			for {
				if err := syscall.Fdatasync(int(f.Fd())); !errors.Is(err, syscall.EINTR) {
					return err
				}
			}
		}},
		{"directory fsync", func() error {
			d, err := os.Open(dir)
			if err != nil {
				return err
			}
			defer d.Close()
			return d.Sync()
		}},
	} {
		start := time.Now()
		if err := sync.call(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < delay {
			t.Fatalf("%s took %v with fsync-delay %v", sync.name, took, delay)
		}
	}
	m.FS().SetFsyncDelay(0)
	fsync(t, f)
}

func TestExecute(t *testing.T) {
	dir, m := mountTest(t)
	writeDurably(t, filepath.Join(dir, "f"), "x")
	for _, tc := range []struct{ command, answer string }{
		{"enospc on", "ok"},
		{"enospc off", "ok"},
		{"enospc maybe", "error: "},
		{"fsync-delay 5", "ok"},
		{"fsync-delay -1", "error: "},
		{"fsync-delay 0", "ok"},
		{"fsync-error on", "ok"},
		{"fsync-error off", "ok"},
		{"fsync-error 1", "error: "},
		{"drop", "ok"},
		{"stats", "fsyncs=1 dir_fsyncs=1 drops=1 "},
		{"", "error: "},
		{"reboot", "error: "},
	} {
		if got := Execute(m, tc.command); !strings.HasPrefix(got, tc.answer) {
			t.Errorf("%q answered %q, want %q...", tc.command, got, tc.answer)
		}
	}
}

func TestSymlinks(t *testing.T) {
	dir, m := mountTest(t)
	writeDurably(t, filepath.Join(dir, "target"), "x")
	if err := os.Symlink("target", filepath.Join(dir, "durable")); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir)
	if err := os.Symlink("target", filepath.Join(dir, "lost")); err != nil {
		t.Fatal(err)
	}
	drop(t, m)
	requireMissing(t, filepath.Join(dir, "lost"))
	requireContent(t, filepath.Join(dir, "durable"), "x")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if entry.Name() == "durable" && entry.Type() != os.ModeSymlink {
			t.Fatalf("readdir says %s is %v, want a symlink", entry.Name(), entry.Type())
		}
	}
	if err := os.Link(filepath.Join(dir, "target"), filepath.Join(dir, "hard")); !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("hard link: %v, want ENOTSUP", err)
	}
}

// TestFailedRenameKeepsTarget renames a directory over a durable empty
// directory inside itself, which fails: the target, moved aside first so a
// drop could bring it back, must stay where it was. (The kernel refuses this
// rename before asking a FUSE file system, so FS is called directly: it
// stands for any rename the backing file system refuses.)
func TestFailedRenameKeepsTarget(t *testing.T) {
	backing := t.TempDir()
	lfs, err := New(Config{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(backing, "parent")
	target := filepath.Join(parent, "target")
	for _, d := range []string{parent, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if errno := lfs.rename(backing, "parent", parent, "target", 0); errno != syscall.EINVAL {
		t.Fatalf("rename a directory into itself: %v, want EINVAL", errno)
	}
	if info, err := os.Stat(target); err != nil || !info.IsDir() {
		t.Fatalf("the target after the failed rename: %v", err)
	}
	if err := lfs.Drop(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(target); err != nil || !info.IsDir() {
		t.Fatalf("the target after a drop: %v", err)
	}
}

// TestDropReportsInconsistencies removes, behind the file system's back,
// the graveyard link that keeps an unlinked file for a drop: the drop
// finishes, counts the inconsistency and returns an error.
func TestDropReportsInconsistencies(t *testing.T) {
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "f"), []byte("durable"), 0o644); err != nil {
		t.Fatal(err)
	}
	lfs, err := New(Config{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	if errno := lfs.remove(backing, "f", false); errno != 0 {
		t.Fatal(errno)
	}
	if err := os.RemoveAll(lfs.graveyard); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lfs.graveyard, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := lfs.Drop(); err == nil || !strings.Contains(err.Error(), "1 inconsistencies") {
		t.Fatalf("drop: %v, want an error counting 1 inconsistency", err)
	}
	if got := lfs.Stats().DropErrors; got != 1 {
		t.Fatalf("drop_errors = %d, want 1", got)
	}
	if err := lfs.Drop(); err != nil {
		t.Fatalf("the next drop: %v", err)
	}
}
