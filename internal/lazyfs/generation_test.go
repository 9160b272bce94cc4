package lazyfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDropRestoredDirectoryIsANewInode: a durable directory replaced by a
// rename is dead to the kernel (it refuses to list a dead directory); a
// drop brings the same backing directory back. The kernel must see it as
// a new inode, not the dead one it may still hold (here through an open
// descriptor; under load, its FORGET not sent yet): else listing it
// fails with "readdirent: no such file or directory", the flake of
// TestNamespaceModel/mount under load.
func TestDropRestoredDirectoryIsANewInode(t *testing.T) {
	dir, m := mountTest(t)
	b := filepath.Join(dir, "b")
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir)
	held, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c := filepath.Join(dir, "c")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Rename(c, b); err != nil {
		t.Fatal(err)
	}
	drop(t, m)
	if _, err := os.ReadDir(b); err != nil {
		t.Fatalf("listing a directory a drop brought back: %v", err)
	}
}
