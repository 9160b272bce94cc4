package segment

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// TestDeleteSurvivesPowerLoss runs a log on a lost-page-cache file system
// (internal/lazyfs): once Delete returns, a power loss does not bring the
// deleted partition's directory back. (Before, its removal was never
// fsynced and the whole directory came back; and on a file system that
// keeps some unlinks of an unsynced directory, it could come back without
// its partition.metadata, which no later start would remove or reuse.)
func TestDeleteSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	dir := filepath.Join(mount.Dir, "orders-0")
	l, err := Open(dir, 0, Config{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePartitionMetadata(dir, [16]byte{7}); err != nil {
		t.Fatal(err)
	}
	var m model
	for i := range 20 {
		m.append(t, l, makeBatch(3, 1000, 500, byte(i))) // several segments
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("the deleted log's directory after a power loss: stat says %v, holding %d files; want it gone", err, len(entries))
	}
}
