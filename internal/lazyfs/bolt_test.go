package lazyfs

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltRecoversCommittedTransactions runs bbolt, which holds the Raft
// log under metadata/ (it reads through a shared read-only mapping and
// writes with pwrite and fdatasync), on the mount: a transaction committed
// with fdatasync survives a drop, one committed without it (NoSync) is
// lost, and the reopened database is consistent.
//
// The file system runs in the daemon process, not in the test's: a page
// fault on a mapping of a file served by the faulting process itself can
// deadlock the Go runtime (a stop-the-world waits for the faulting thread,
// which waits for the FUSE server goroutines).
func TestBoltRecoversCommittedTransactions(t *testing.T) {
	d := startDaemon(t)
	dir := d.mount
	path := filepath.Join(dir, "raft.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir) // the caller makes the new file's name durable
	put := func(db *bolt.DB, from, to int) {
		t.Helper()
		err := db.Update(func(tx *bolt.Tx) error {
			bucket, err := tx.CreateBucketIfNotExists([]byte("logs"))
			if err != nil {
				return err
			}
			for i := from; i < to; i++ {
				// 1 KiB values: the file grows past its first mapping.
				if err := bucket.Put(fmt.Appendf(nil, "%08d", i), make([]byte, 1024)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(db, 0, 2000)
	db.NoSync = true
	put(db, 2000, 4000)
	// Power loss: the process is gone; its descriptor is closed after the
	// drop only (bbolt's Close writes nothing more).
	if got := d.command(t, "drop"); got != "ok" {
		t.Fatalf("drop: %s", got)
	}
	db.Close()

	reopened, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("reopen after drop: %v", err)
	}
	defer reopened.Close()
	err = reopened.View(func(tx *bolt.Tx) error {
		bucket := tx.Bucket([]byte("logs"))
		if bucket == nil {
			return fmt.Errorf("bucket gone")
		}
		if got := bucket.Stats().KeyN; got != 2000 {
			return fmt.Errorf("%d keys after drop, want the 2000 committed with fdatasync", got)
		}
		for err := range tx.Check() {
			t.Errorf("consistency check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats := d.command(t, "stats"); !strings.Contains(stats, " drop_errors=0 ") {
		t.Fatalf("stats after drop: %s", stats)
	}
}
