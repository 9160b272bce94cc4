package tiering_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// TestAcceptance runs the same checks against every backend: memory, a
// local directory and a real S3 server process (versitygw).
func TestAcceptance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("BucketContract", func(t *testing.T) { testBucketContract(t, b) })
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, b) })
			t.Run("ManifestSnapshotAndScrub", func(t *testing.T) { testManifestSnapshotAndScrub(t, b) })
			t.Run("DeposedSnapshotWriter", func(t *testing.T) { testDeposedSnapshotWriter(t, b) })
		})
	}
}

// testBucketContract checks the Bucket interface's promises on a backend:
// streaming upload and overwrite, ranged reads, sizes, listing order,
// not-found classification, idempotent delete.
func testBucketContract(t *testing.T, b backend) {
	url, _ := b.open(t)
	bucket := openBucket(t, url)
	ctx := context.Background()
	if err := tiering.CreateBucket(ctx, url); err != nil {
		t.Fatalf("creating an existing bucket again: %v", err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16+3) // > one 5 MiB part: multipart on S3
	objects := map[string][]byte{"p/a/1": []byte("one"), "p/a/2": big, "p/b/3": []byte("three"), "q/4": []byte("four")}
	for _, key := range sortedKeys(objects) {
		if err := bucket.Upload(ctx, key, bytes.NewReader(objects[key]), 5<<20); err != nil {
			t.Fatalf("upload %s: %v", key, err)
		}
	}
	if err := bucket.Upload(ctx, "p/a/1", strings.NewReader("uno"), 5<<20); err != nil {
		t.Fatal(err)
	}
	objects["p/a/1"] = []byte("uno")

	for key, want := range objects {
		size, err := bucket.Size(ctx, key)
		if err != nil || size != int64(len(want)) {
			t.Fatalf("size %s = %d, %v; want %d", key, size, err, len(want))
		}
	}
	for _, r := range []struct{ offset, length int64 }{{0, -1}, {0, 10}, {5<<20 - 3, 7}, {int64(len(big)) - 5, -1}, {1 << 20, 1 << 20}} {
		reader, err := bucket.Get(ctx, "p/a/2", r.offset, r.length)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(reader)
		reader.Close()
		end := int64(len(big))
		if r.length >= 0 {
			end = r.offset + r.length
		}
		if err != nil || !bytes.Equal(got, big[r.offset:end]) {
			t.Fatalf("range %+v: %d bytes, %v", r, len(got), err)
		}
	}
	var listed []string
	if err := bucket.Iter(ctx, "p/", func(key string, size int64) error {
		if size != int64(len(objects[key])) {
			t.Errorf("listed %s with size %d, want %d", key, size, len(objects[key]))
		}
		listed = append(listed, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(listed, ","), "p/a/1,p/a/2,p/b/3"; got != want {
		t.Fatalf("listed %s, want %s", got, want)
	}
	if _, err := bucket.Get(ctx, "p/missing", 0, -1); !errors.Is(err, tiering.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := bucket.Size(ctx, "p/missing"); !errors.Is(err, tiering.ErrNotFound) || tiering.IsRetriable(err) {
		t.Fatalf("size missing: %v, want ErrNotFound only", err)
	}
	for range 2 {
		if err := bucket.Delete(ctx, "p/b/3"); err != nil {
			t.Fatalf("delete (idempotent): %v", err)
		}
	}
	if _, err := bucket.Size(ctx, "p/b/3"); !errors.Is(err, tiering.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
}

// testRoundTrip uploads real segments, checks the objects with an
// independent client, and reads every offset back, comparing with local
// reads byte for byte.
func testRoundTrip(t *testing.T, b backend) {
	url, view := b.open(t)
	bucket := openBucket(t, url)
	local := buildLocalLog(t, 400, 512<<10, 1000, 1)
	tier := newTier(t, tiering.Config{Bucket: bucket, Prefix: "cluster-a/tiered", ChunkBytes: 64 << 10, CacheBytes: 1 << 20})
	segments := local.uploadAll(t, tier)
	ctx := context.Background()

	for i, remote := range segments {
		info := local.sealed[i]
		if remote.BaseOffset != info.BaseOffset || remote.LastOffset != info.EndOffset-1 || remote.SizeBytes != info.Size || remote.MaxTimestamp != info.MaxTimestamp {
			t.Fatalf("segment %d described as %+v, local %+v", i, remote, info)
		}
		snapshot, err := tier.ReadProducerSnapshot(ctx, testPartition, remote)
		if want := local.files(t, info).ProducerSnapshot; err != nil || !bytes.Equal(snapshot, want) {
			t.Fatalf("producer snapshot of segment %d: %q, %v; want %q", i, snapshot, err, want)
		}
		epochs, err := tier.ReadEpochs(ctx, testPartition, remote)
		if err != nil || fmt.Sprint(epochs) != fmt.Sprint(remote.EpochRanges) || len(epochs) == 0 {
			t.Fatalf("epochs of segment %d: %v, %v; want %v", i, epochs, err, remote.EpochRanges)
		}
	}

	// What is in the bucket, seen by another client (or the file system).
	if view != nil {
		objects := view(t)
		want := map[string][]byte{}
		for i, remote := range segments {
			info := local.sealed[i]
			files := local.files(t, info)
			stem := fmt.Sprintf("cluster-a/tiered/orders-5e1f002a9b3c4d5e6f708192a3b4c5d6/3/%020d-%s", info.BaseOffset, uuid.UUID(remote.SegmentID))
			want[stem+".log"] = readFile(t, info.LogPath)
			want[stem+".index"] = readFile(t, info.OffsetIndexPath)
			want[stem+".timeindex"] = readFile(t, info.TimeIndexPath)
			want[stem+".producers"] = files.ProducerSnapshot
			want[stem+".txnindex"] = nil // no aborted transaction
			if _, ok := objects[stem+".epochs"]; !ok {
				t.Fatalf("no %s.epochs; bucket holds %v", stem, sortedKeys(objects))
			}
			want[stem+".epochs"] = objects[stem+".epochs"]
		}
		if got, wantKeys := strings.Join(sortedKeys(objects), "\n"), strings.Join(sortedKeys(want), "\n"); got != wantKeys {
			t.Fatalf("bucket holds\n%s\nwant\n%s", got, wantKeys)
		}
		for key, data := range want {
			if !bytes.Equal(objects[key], data) {
				t.Fatalf("%s: %s", key, describeDiff(objects[key], data))
			}
		}
	}

	// Every offset, with a budget below one batch, a medium and a large one.
	reads := 0
	for i, remote := range segments {
		info := local.sealed[i]
		for offset := info.BaseOffset; offset < info.EndOffset; offset++ {
			for _, maxBytes := range []int{1, 20 << 10, 300 << 10} {
				if maxBytes == 300<<10 && offset%7 != 0 {
					continue
				}
				got, err := readBytes(tier, ctx, testPartition, remote, offset, maxBytes)
				if err != nil {
					t.Fatalf("remote read of %d (max %d): %v", offset, maxBytes, err)
				}
				if want := local.localRead(t, info, offset, maxBytes); !bytes.Equal(got, want) {
					t.Fatalf("remote read of %d (max %d): %s", offset, maxBytes, describeDiff(got, want))
				}
				reads++
			}
		}
		for _, offset := range []int64{info.BaseOffset - 1, info.EndOffset} {
			if _, err := readBytes(tier, ctx, testPartition, remote, offset, 1<<20); !errors.Is(err, tiering.ErrOffsetOutOfRange) {
				t.Fatalf("read at %d outside the segment: %v", offset, err)
			}
		}
	}

	// One fetch over several partitions' (here: segments') data at once:
	// concurrent reads.
	results := make([][]byte, len(segments))
	errs := make([]error, len(segments))
	var readers sync.WaitGroup
	for i, remote := range segments {
		readers.Go(func() {
			results[i], errs[i] = readBytes(tier, ctx, testPartition, remote, local.sealed[i].BaseOffset+3, 100<<10)
		})
	}
	readers.Wait()
	for i := range segments {
		want := local.localRead(t, local.sealed[i], local.sealed[i].BaseOffset+3, 100<<10)
		if errs[i] != nil || !bytes.Equal(results[i], want) {
			t.Fatalf("concurrent read %d: %v, %s", i, errs[i], describeDiff(results[i], want))
		}
	}
	stats := tier.Stats()
	t.Logf("%d segments, %d reads; stats %+v", len(segments), reads, stats)
	if stats.CacheBytes > 1<<20 {
		t.Fatalf("chunk cache holds %d bytes, bound is %d", stats.CacheBytes, 1<<20)
	}
}

// withoutTxnIndex is m as its object holds it: without the segments'
// TxnIndex (which ManifestSnapshots sets from the bucket listing).
func withoutTxnIndex(m tiering.ManifestSnapshot) tiering.ManifestSnapshot {
	m.Segments = slices.Clone(m.Segments)
	for i := range m.Segments {
		m.Segments[i].TxnIndex = metadata.TxnIndexUnknown
	}
	return m
}

// testManifestSnapshotAndScrub: manifest snapshot round trip; scrub finds orphans
// and missing objects; delete is idempotent.
func testManifestSnapshotAndScrub(t *testing.T, b backend) {
	url, _ := b.open(t)
	bucket := openBucket(t, url)
	local := buildLocalLog(t, 150, 256<<10, 0, 2)
	tier := newTier(t, tiering.Config{Bucket: bucket})
	ctx := context.Background()
	segments := local.uploadAll(t, tier)
	manifest := tiering.ManifestSnapshot{Partition: testPartition, Segments: segments, Epoch: 3}
	if _, err := tier.GetManifestSnapshot(ctx, testPartition); !errors.Is(err, tiering.ErrNotFound) {
		t.Fatalf("manifest before any: %v", err)
	}
	if err := tier.PutManifestSnapshot(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	got, err := tier.GetManifestSnapshot(ctx, testPartition)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(withoutTxnIndex(manifest)) {
		t.Fatalf("manifest read back: %v\n%+v\nwant\n%+v", err, got, manifest)
	}
	// Recovery's view: each segment's TxnIndex from its listed .txnindex.
	all, err := tier.ManifestSnapshots(ctx)
	if err != nil || len(all) != 1 || fmt.Sprint(all[0]) != fmt.Sprint(manifest) {
		t.Fatalf("Manifests: %v, %d manifests", err, len(all))
	}
	report, err := tier.ScrubPartition(ctx, manifest)
	if err != nil || !report.Clean() || report.Objects != 6*len(segments)+1 {
		t.Fatalf("scrub of a consistent partition: %v %+v", err, report)
	}

	// The same segment uploaded again under its id overwrites; under a new
	// id it is an orphan until a manifest names it.
	files := local.files(t, local.sealed[0])
	files.ID = segments[0].SegmentID
	if _, err := tier.Upload(ctx, files); err != nil {
		t.Fatal(err)
	}
	files.ID = [16]byte{}
	orphan, err := tier.Upload(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	// An entry whose index object was lost.
	lost := segments[1]
	if err := bucket.Delete(ctx, strings.TrimSuffix(objectKey(t, bucket, uuid.UUID(lost.SegmentID).String(), ".log"), ".log")+".index"); err != nil {
		t.Fatal(err)
	}
	report, err = tier.Scrub(ctx, []tiering.ManifestSnapshot{manifest})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Orphans) != 6 || !strings.Contains(report.Orphans[0], uuid.UUID(orphan.SegmentID).String()) {
		t.Fatalf("orphans %v, want the 6 objects of %s", report.Orphans, uuid.UUID(orphan.SegmentID))
	}
	if len(report.Missing) != 1 || report.Missing[0].Segment.SegmentID != lost.SegmentID || !strings.HasSuffix(report.Missing[0].Key, ".index") {
		t.Fatalf("missing %+v, want the index of %s", report.Missing, uuid.UUID(lost.SegmentID))
	}
	// (A read from the segment's base offset starts at byte 0 and needs no
	// index; one from inside it does.)
	if _, err := readBytes(tier, ctx, testPartition, lost, lost.LastOffset, 1000); !errors.Is(err, tiering.ErrNotFound) || tiering.IsRetriable(err) {
		t.Fatalf("read of a segment without index: %v, want ErrNotFound", err)
	}

	for range 2 {
		if err := tier.DeleteSegment(ctx, testPartition, orphan); err != nil {
			t.Fatalf("delete (idempotent): %v", err)
		}
	}
	report, err = tier.ScrubPartition(ctx, manifest)
	if err != nil || len(report.Orphans) != 0 || len(report.Missing) != 1 {
		t.Fatalf("after deleting the orphan: %v %+v", err, report)
	}
}

// testDeposedSnapshotWriter: the manifest snapshot object is named by the
// writer's leader epoch, so a deposed or paused leader's late snapshot
// (epoch 4, written after the new leader's at epoch 5) does not replace
// the newer one: readers and recovery take the highest epoch, scrub
// reports the late one as an orphan, and the newer leader's next snapshot
// deletes it. A snapshot under the name older versions wrote ("manifest")
// is read while it is the only one, and deleted by the first snapshot
// with an epoch.
func testDeposedSnapshotWriter(t *testing.T, b backend) {
	url, _ := b.open(t)
	bucket := openBucket(t, url)
	tier := newTier(t, tiering.Config{Bucket: bucket})
	ctx := context.Background()
	segments := buildLocalLog(t, 60, 256<<10, 0, 2).uploadAll(t, tier)
	older := tiering.ManifestSnapshot{Partition: testPartition, Segments: segments[:1], Epoch: -1}
	newer := tiering.ManifestSnapshot{Partition: testPartition, Segments: segments, Epoch: 5}

	legacy, err := tiering.MarshalManifestSnapshot(older)
	if err != nil {
		t.Fatal(err)
	}
	legacyKey := fmt.Sprintf("%s-%x/%d/manifest", testPartition.Topic, testPartition.TopicID[:], testPartition.Partition)
	if err := bucket.Upload(ctx, legacyKey, bytes.NewReader(legacy), 5<<20); err != nil {
		t.Fatal(err)
	}
	if got, err := tier.GetManifestSnapshot(ctx, testPartition); err != nil || fmt.Sprint(got) != fmt.Sprint(withoutTxnIndex(older)) {
		t.Fatalf("legacy manifest snapshot read back: %v %+v", err, got)
	}

	if err := tier.PutManifestSnapshot(ctx, newer); err != nil { // the new leader
		t.Fatal(err)
	}
	late := older
	late.Epoch = 4
	if err := tier.PutManifestSnapshot(ctx, late); err != nil { // the deposed one, late
		t.Fatal(err)
	}
	if got, err := tier.GetManifestSnapshot(ctx, testPartition); err != nil || fmt.Sprint(got) != fmt.Sprint(withoutTxnIndex(newer)) {
		t.Fatalf("after a deposed leader's late snapshot: %v, read %d segments, want the newer leader's %d", err, len(got.Segments), len(newer.Segments))
	}
	all, err := tier.ManifestSnapshots(ctx)
	if err != nil || len(all) != 1 || fmt.Sprint(all[0]) != fmt.Sprint(newer) {
		t.Fatalf("recovery's snapshots: %v %+v", err, all)
	}
	report, err := tier.ScrubPartition(ctx, newer)
	if err != nil || len(report.Orphans) != 1 || !strings.HasSuffix(report.Orphans[0], "/manifest-0000000004") || len(report.Missing) != 0 {
		t.Fatalf("scrub with the late snapshot: %v %+v, want it as the only orphan", err, report)
	}
	if err := tier.PutManifestSnapshot(ctx, newer); err != nil { // the new leader's next pass
		t.Fatal(err)
	}
	report, err = tier.ScrubPartition(ctx, newer)
	if err != nil || !report.Clean() || report.Objects != 6*len(segments)+1 {
		t.Fatalf("scrub after the newer leader's next snapshot: %v %+v", err, report)
	}
	if err := tier.DeleteManifestSnapshot(ctx, testPartition); err != nil {
		t.Fatal(err)
	}
	if _, err := tier.GetManifestSnapshot(ctx, testPartition); !errors.Is(err, tiering.ErrNotFound) {
		t.Fatalf("after DeleteManifestSnapshot: %v", err)
	}
}

// objectKey finds the key containing id and ending in suffix.
func objectKey(t testing.TB, bucket tiering.BucketReader, id, suffix string) string {
	t.Helper()
	var found string
	err := bucket.Iter(context.Background(), "", func(key string, size int64) error {
		if strings.Contains(key, id) && strings.HasSuffix(key, suffix) {
			found = key
		}
		return nil
	})
	if err != nil || found == "" {
		t.Fatalf("no object %s*%s: %v", id, suffix, err)
	}
	return found
}
