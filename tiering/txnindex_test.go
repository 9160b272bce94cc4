package tiering_test

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// TestTxnIndexObject: a segment's aborted-transaction index is uploaded as
// its .txnindex object in Kafka's format (pinned by txnindex.golden), read
// back by ReadAbortedTxns, deleted with the segment; a segment uploaded
// without one (before transactions) reads as having none.
func TestTxnIndexObject(t *testing.T) {
	dir := t.TempDir()
	bucket := openBucket(t, "file://"+dir)
	local := buildLocalLog(t, 400, 512<<10, 0, 7)
	tier := newTier(t, tiering.Config{Bucket: bucket, Prefix: "p"})
	ctx := context.Background()
	info := local.sealed[0]
	entries := []segment.AbortedTxn{
		{ProducerID: 4242, FirstOffset: 1, LastOffset: 3, LastStableOffset: 2},
		{ProducerID: 7, FirstOffset: 2, LastOffset: 5, LastStableOffset: 6},
	}
	files := local.files(t, info)
	files.TxnIndex = segment.EncodeTxnIndex(entries)
	remote, err := tier.Upload(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/%020d-%s.txnindex", info.BaseOffset, uuid.UUID(remote.SegmentID))
	object, ok := filesUnder(t, dir)[key]
	if !ok {
		t.Fatalf("no %s in the bucket", key)
	}
	dump := hex.Dump(object)
	golden := filepath.Join("testdata", "txnindex.golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" { // format_test.go's -update
		if err := os.WriteFile(golden, []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(golden); err != nil || string(want) != dump {
		t.Fatalf("the .txnindex object changed: the format is fixed (doc.go); got\n%s\nwant\n%s (%v)", dump, want, err)
	}
	if remote.TxnIndex != metadata.TxnIndexNotEmpty {
		t.Fatalf("manifest entry of a segment with aborted transactions: txn index %s, want NotEmpty", remote.TxnIndex)
	}
	got, err := tier.ReadAbortedTxns(ctx, testPartition, remote)
	if err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, entries)
	}

	// Uploaded without aborted transactions: an empty object.
	plain, err := tier.Upload(ctx, local.files(t, local.sealed[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tier.ReadAbortedTxns(ctx, testPartition, plain); err != nil || len(got) != 0 || plain.TxnIndex != metadata.TxnIndexEmpty {
		t.Fatalf("segment without aborted transactions: %+v, %v, txn index %s (want Empty)", got, err, plain.TxnIndex)
	}
	// An empty (not nil) index: the same.
	emptyFiles := local.files(t, local.sealed[2])
	emptyFiles.TxnIndex = []byte{}
	if described, err := tiering.DescribeSegment(emptyFiles); err != nil || described.TxnIndex != metadata.TxnIndexEmpty {
		t.Fatalf("segment described with an empty .txnindex: txn index %s, %v; want Empty", described.TxnIndex, err)
	}
	// Uploaded by an older version: no object at all.
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(fmt.Sprintf("p/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/%020d-%s.txnindex", plain.BaseOffset, uuid.UUID(plain.SegmentID))))); err != nil {
		t.Fatal(err)
	}
	fresh := newTier(t, tiering.Config{Bucket: bucket, Prefix: "p"})
	if got, err := fresh.ReadAbortedTxns(ctx, testPartition, plain); err != nil || len(got) != 0 {
		t.Fatalf("segment without a .txnindex object: %+v, %v", got, err)
	}
	// A recovery from the bucket learns each entry's txn index from the
	// listing: not empty from its size, unknown without an object.
	if err := tier.PutManifestSnapshot(ctx, tiering.ManifestSnapshot{Partition: testPartition, Segments: []metadata.SegmentManifest{remote, plain}, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	snapshots, err := fresh.ManifestSnapshots(ctx)
	if err != nil || len(snapshots) != 1 || len(snapshots[0].Segments) != 2 {
		t.Fatalf("manifest snapshots: %+v, %v", snapshots, err)
	}
	if recovered := snapshots[0].Segments; recovered[0].TxnIndex != metadata.TxnIndexNotEmpty || recovered[1].TxnIndex != metadata.TxnIndexUnknown {
		t.Fatalf("recovered txn indexes %s and %s, want NotEmpty and Unknown", recovered[0].TxnIndex, recovered[1].TxnIndex)
	}
	if err := tier.DeleteSegment(ctx, testPartition, remote); err != nil {
		t.Fatal(err)
	}
	if _, ok := filesUnder(t, dir)[key]; ok {
		t.Fatalf("%s left after the segment's deletion", key)
	}
}
