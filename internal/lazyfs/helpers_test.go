package lazyfs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireFUSE skips the test where FUSE is missing, or fails it under CI
// (env CI set), where a skipped power-loss test would hide a regression.
func requireFUSE(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("FUSE is needed and missing here: %v (CI is set, so this fails instead of skipping)", missing)
	}
	t.Skipf("skipping: FUSE is missing here: %v (install fuse3 and load the fuse module to run the lost-page-cache tests)", missing)
}

// mountTest mounts a fresh lost-page-cache file system, served by the test
// process itself, and returns its mount point and the mount; it is
// unmounted when the test ends. Do not map its files into memory: a page
// fault on a file served by the faulting process can deadlock the Go
// runtime. Such tests run the daemon (startDaemon) instead.
func mountTest(t *testing.T) (string, *Mount) {
	t.Helper()
	requireFUSE(t)
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
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
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
