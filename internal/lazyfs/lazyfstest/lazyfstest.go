// Package lazyfstest mounts a lost-page-cache file system (package
// internal/lazyfs) for the tests of other packages, so that each package
// can check on a simulated power loss that what it writes and relies on
// after a restart is durable.
//
// Mount serves the file system from the test process itself: fine for
// code that reads and writes files. Code that maps a file into memory
// (bbolt, which holds the Raft log) must run on Daemon's mount instead: a
// page fault on a file served by the faulting process can deadlock the Go
// runtime.
package lazyfstest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/internal/lazyfs"
	"github.com/strata-log/strata/internal/lazyfs/fusetest"
)

// Mounted is a mounted lost-page-cache file system.
type Mounted struct {
	// Dir is the mount point, an empty directory at first.
	Dir  string
	drop func(t testing.TB)
}

// Drop forgets everything that was not made durable, as a power loss
// would, and fails the test if the file system met an inconsistency.
// Close the files of the "crashed" code after Drop, not before: a power
// loss gives it no chance to write more.
func (m *Mounted) Drop(t testing.TB) {
	t.Helper()
	m.drop(t)
}

// Mount mounts a fresh file system served by the test process; it is
// unmounted when the test ends. Do not map its files into memory (see the
// package doc).
func Mount(t testing.TB) *Mounted {
	t.Helper()
	fusetest.Require(t)
	backing, dir := t.TempDir(), t.TempDir()
	lfs, err := lazyfs.New(lazyfs.Config{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	m, err := lazyfs.MountFS(lfs, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("lazyfstest: unmount: %v", err)
		}
	})
	return &Mounted{Dir: dir, drop: func(t testing.TB) {
		t.Helper()
		if err := m.Drop(); err != nil {
			t.Fatalf("lazyfstest: drop: %v", err)
		}
		if s := m.FS().Stats(); s.DropErrors != 0 {
			t.Fatalf("lazyfstest: drop logged %d inconsistencies", s.DropErrors)
		}
	}}
}

// Daemon mounts a fresh file system served by a strata-lazyfs process
// (built into the test's temporary directory; the build cache makes that
// quick), for code that maps files into memory. The process is killed and
// the mount removed when the test ends.
func Daemon(t testing.TB) *Mounted {
	t.Helper()
	fusetest.Require(t)
	binary := filepath.Join(t.TempDir(), "strata-lazyfs")
	build := exec.Command("go", "build", "-o", binary, "github.com/strata-log/strata/e2e/cmd/strata-lazyfs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("lazyfstest: go build strata-lazyfs: %v\n%s", err, out)
	}
	dir := t.TempDir()
	mount, control := filepath.Join(dir, "mount"), filepath.Join(dir, "control.sock")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--backing", t.TempDir(), "--mount", mount, "--control", control)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		exec.Command("fusermount3", "-uz", mount).Run()
		<-exited
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { cmd.Wait(); close(exited) }()
	if err != nil || line != "ready\n" {
		t.Fatalf("lazyfstest: strata-lazyfs printed %q (%v), want ready", line, err)
	}
	return &Mounted{Dir: mount, drop: func(t testing.TB) {
		t.Helper()
		conn, err := net.Dial("unix", control)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("drop\n")); err != nil {
			t.Fatal(err)
		}
		answer, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || answer != "ok\n" {
			t.Fatalf("lazyfstest: drop answered %q (%v), want ok", strings.TrimSuffix(answer, "\n"), err)
		}
	}}
}
