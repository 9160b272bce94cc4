package lazyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDropUndoesSharedMappingWrites writes through a shared writable
// mapping without msync: a drop must undo those bytes too (they are
// written back to the file system when the drop invalidates the kernel's
// cache, then undone), and the mapping then shows the synced content.
// Against the daemon: see TestBoltRecoversCommittedTransactions.
func TestDropUndoesSharedMappingWrites(t *testing.T) {
	d := startDaemon(t)
	path := filepath.Join(d.mount, "mapped")
	synced := bytes.Repeat([]byte("A"), 8192)
	writeDurably(t, path, string(synced))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mapping, err := unix.Mmap(int(f.Fd()), 0, len(synced), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mapping)
	copy(mapping[100:], "unsynced through the mapping")
	copy(mapping[5000:], "and on the second page")

	if got := d.command(t, "drop"); got != "ok" {
		t.Fatalf("drop: %s", got)
	}
	if differ := differingBytes(mapping, synced); differ != 0 {
		t.Fatalf("the mapping after drop differs from the synced content in %d bytes", differ)
	}
	requireContent(t, path, string(synced))
}

func differingBytes(a, b []byte) int {
	differ := 0
	for i := range a {
		if a[i] != b[i] {
			differ++
		}
	}
	return differ
}
