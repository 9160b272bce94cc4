package tiering

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFileBucketSyncsBeforeReturning: a file:// bucket's Upload returns
// only after the object's file, its directory (the rename of fileblob's
// temporary file) and each directory fileblob created for it up to the
// bucket root are fsynced — in that order, so the manifest never commits
// an object a power loss takes back. Directories already made durable are
// not synced again (one fsync of the partition directory per object), a
// Delete syncs the directory, and no torn-prone ".attrs" sidecar is
// written. What a file system keeps without fsync is the lazyfs
// nemesis's to show; this pins the calls.
func TestFileBucketSyncsBeforeReturning(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "bucket")
	if err := CreateBucket(ctx, "file://"+root); err != nil {
		t.Fatal(err)
	}
	bucket, err := OpenBucket(ctx, "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	if bucket.files == nil {
		t.Fatal("a file:// bucket without its syncer")
	}
	var synced []string
	bucket.files.sync = func(path string) error {
		// The object is in place, with its bytes, when it is synced.
		if info, err := os.Stat(path); err != nil || (!info.IsDir() && info.Size() != 5) {
			t.Errorf("fsync of %s before the object is in place: %v", path, err)
		}
		synced = append(synced, path)
		return fsyncPath(path)
	}
	upload := func(key string) {
		t.Helper()
		synced = nil
		if err := bucket.Upload(ctx, key, bytes.NewReader([]byte("bytes")), 5<<20); err != nil {
			t.Fatal(err)
		}
	}

	upload("strata/orders-00/3/a.log")
	partitionDir := filepath.Join(root, "strata", "orders-00", "3")
	want := []string{
		filepath.Join(partitionDir, "a.log"),
		partitionDir,                               // the rename
		filepath.Join(root, "strata", "orders-00"), // the new partition directory's entry
		filepath.Join(root, "strata"),              // the new topic directory's entry
		root,                                       // the new prefix directory's entry
	}
	if !slices.Equal(synced, want) {
		t.Fatalf("first object synced %q, want %q", synced, want)
	}
	upload("strata/orders-00/3/a.index")
	if want := []string{filepath.Join(partitionDir, "a.index"), partitionDir}; !slices.Equal(synced, want) {
		t.Fatalf("second object synced %q, want %q", synced, want)
	}
	if _, err := os.Stat(filepath.Join(partitionDir, "a.log.attrs")); !os.IsNotExist(err) {
		t.Fatalf("a .attrs sidecar was written (%v)", err)
	}
	synced = nil
	if err := bucket.Delete(ctx, "strata/orders-00/3/a.log"); err != nil {
		t.Fatal(err)
	}
	if want := []string{partitionDir}; !slices.Equal(synced, want) {
		t.Fatalf("delete synced %q, want %q", synced, want)
	}
	// fileblob's temporary files (next to the object with no_tmp_dir)
	// are gone once the upload returns.
	entries, err := os.ReadDir(partitionDir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "a.index" {
		t.Fatalf("partition directory holds %v (%v), want only a.index", entries, err)
	}
}
