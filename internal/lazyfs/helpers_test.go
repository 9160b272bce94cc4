package lazyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/lazyfs/fusetest"
)

// mountTest mounts a fresh lost-page-cache file system, served by the test
// process itself, and returns its mount point and the mount; it is
// unmounted when the test ends. Do not map its files into memory: a page
// fault on a file served by the faulting process can deadlock the Go
// runtime. Such tests run the daemon (startDaemon) instead.
func mountTest(t *testing.T) (string, *Mount) {
	t.Helper()
	fusetest.Require(t)
	backing, dir := t.TempDir(), t.TempDir()
	lfs, err := New(Config{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	m, err := MountFS(lfs, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir, m
}

func drop(t *testing.T, m *Mount) {
	t.Helper()
	if err := m.Drop(); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if s := m.FS().Stats(); s.DropErrors != 0 {
		t.Fatalf("drop logged %d inconsistencies", s.DropErrors)
	}
}

func create(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func writeAt(t *testing.T, f *os.File, data string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
}

func fsync(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func fsyncDir(t *testing.T, dir string) {
	t.Helper()
	if err := atomicfile.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

// writeDurably creates path with content, fsyncs it and its directory.
func writeDurably(t *testing.T, path, content string) {
	t.Helper()
	f := create(t, path)
	writeAt(t, f, content, 0)
	fsync(t, f)
	f.Close()
	fsyncDir(t, filepath.Dir(path))
}

// openDurable writes path durably with content and opens it for reading
// and writing.
func openDurable(t *testing.T, path, content string) *os.File {
	t.Helper()
	writeDurably(t, path, content)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func requireContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("%s holds %q, want %q", filepath.Base(path), got, want)
	}
}

func requireMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: want it gone, stat says %v", path, err)
	}
}
