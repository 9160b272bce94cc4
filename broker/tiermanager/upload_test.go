package tiermanager

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

func TestNextUpload(t *testing.T) {
	// Segments [0,10) [10,20) [20,20) (empty) [20,30) and the active one
	// [30,35).
	segments := []segment.SegmentInfo{
		{BaseOffset: 0, EndOffset: 10, Size: 100},
		{BaseOffset: 10, EndOffset: 20, Size: 100},
		{BaseOffset: 20, EndOffset: 20, Size: 0},
		{BaseOffset: 20, EndOffset: 30, Size: 100},
		{BaseOffset: 30, EndOffset: 35, Size: 50, Active: true},
	}
	for _, c := range []struct {
		name                string
		next, highWatermark int64
		want                int64 // base offset of the pick, -1 for none
	}{
		{"nothing uploaded", 0, 35, 0},
		{"the oldest not uploaded", 10, 35, 10},
		{"resumes inside a segment (trimmed copy)", 15, 35, 10},
		{"skips empty segments", 20, 35, 20},
		{"never the active segment", 30, 35, -1},
		{"only below the high watermark", 10, 19, -1},
		{"the high watermark at a segment's end", 10, 20, 10},
		{"a later segment waits for an earlier one", 0, 9, -1},
		{"everything uploaded", 40, 35, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := nextUpload(segments, c.next, c.highWatermark)
			switch {
			case c.want < 0 && ok:
				t.Fatalf("picked %+v, want none", got)
			case c.want >= 0 && (!ok || got.BaseOffset != c.want || got.Size == 0):
				t.Fatalf("picked %+v (%t), want the segment at %d", got, ok, c.want)
			}
		})
	}
}

// TestTrimmedCopyWhenSegmentsAreCutElsewhere: a new leader whose local
// segments are cut elsewhere than the previous uploader's uploads the
// straddling segment from the manifest's end, so entries never overlap and
// every offset reads back the same.
func TestTrimmedCopyWhenSegmentsAreCutElsewhere(t *testing.T) {
	f := newFixture(t, 30)
	epoch := f.topic.Partitions[0].LeaderEpoch
	// The same 30 batches (about 2.1 KiB each): three per segment in the
	// previous leader's log, four per segment in ours, so the previous
	// leader's first segment ends inside our first.
	previous := openReplica(t, f.topic, tiered("segment.bytes", fmt.Sprint(3*2200)))
	appendBatches(t, previous, 30, 42)
	f.part = openReplica(t, f.topic, tiered("segment.bytes", fmt.Sprint(4*2200)))
	appendBatches(t, f.part, 30, 42)
	first := previous.Segments()[0]
	files := tiering.SegmentFiles{Partition: f.part.Name(), BaseOffset: first.BaseOffset,
		LogPath: first.LogPath, OffsetIndexPath: first.OffsetIndexPath, TimeIndexPath: first.TimeIndexPath}
	uploaded, err := f.tier.Upload(f.ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	uploaded.LeaderEpoch = epoch
	if err := f.store.StartSegmentCopy(f.ctx, f.topic.ID, 0, uploaded); err != nil {
		t.Fatal(err)
	}
	if err := f.store.FinishSegmentCopy(f.ctx, metadata.SegmentRef{TopicID: f.topic.ID, BaseOffset: uploaded.BaseOffset, SegmentID: uploaded.SegmentID, LeaderEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	ours := f.sealed()
	if ours[0].EndOffset <= first.EndOffset {
		t.Fatalf("our first segment ends at %d, the previous leader's at %d: not straddling", ours[0].EndOffset, first.EndOffset)
	}

	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	entries := f.entries()
	if len(entries) != len(ours)+1 || entries[1].BaseOffset != first.EndOffset || entries[1].LastOffset != ours[0].EndOffset-1 {
		t.Fatalf("entries %+v: want the previous leader's, then ours from %d (trimmed) to %d, then one per sealed segment", entries, first.EndOffset, ours[0].EndOffset-1)
	}
	for i, e := range entries {
		if e.State != metadata.SegmentCopyFinished || (i > 0 && e.BaseOffset != entries[i-1].LastOffset+1) {
			t.Fatalf("entry %d %+v: not finished or not contiguous", i, e)
		}
		for offset := e.BaseOffset; offset <= e.LastOffset; offset += 5 {
			batches, err := f.tier.Read(f.ctx, f.part.Name(), e, offset, 1<<20, true)
			if err != nil {
				t.Fatal(err)
			}
			remote := batches.AppendTo(nil)
			batches.Release()
			local, err := f.part.Read(offset, int32(len(remote)), e.LastOffset+1, true)
			if err != nil || !bytes.Equal(remote, local) {
				t.Fatalf("offset %d of entry %d: remote read differs from local (%v)", offset, i, err)
			}
		}
	}
	report, err := Scrub(f.ctx, f.tier, f.store.State())
	if err != nil || !report.Clean() {
		t.Fatalf("scrub: %v %+v", err, report)
	}
}

// TestProducerStateCarriesOver: the producer snapshot uploaded with a
// segment is the state at its end, including producers seen only in
// earlier segments, whether the previous upload's state is kept by the
// task or read back from the previous segment's .producers object.
func TestProducerStateCarriesOver(t *testing.T) {
	f := newFixture(t, 10) // producer 42
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	producerAt := func(e metadata.SegmentManifest) []producer.Producer {
		t.Helper()
		data, err := f.tier.ReadProducerSnapshot(f.ctx, f.part.Name(), e)
		if err != nil {
			t.Fatal(err)
		}
		state, err := producer.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return state.Producers()
	}
	entries := f.entries()
	last := entries[len(entries)-1]
	if producers := producerAt(last); len(producers) != 1 || producers[0].ProducerID != 42 || producers[0].LastOffset != last.LastOffset {
		t.Fatalf("producers at the end of segment %d: %+v", last.BaseOffset, producers)
	}
	producer42End := f.part.LogEndOffset() - 1 // its last batch is in the active segment

	for _, restart := range []bool{false, true} {
		if restart {
			f.manager = f.newManager() // the state comes from the bucket
		}
		appendBatches(t, f.part, 3, -1) // no producer in the new segments
		if err := f.work(); err != nil {
			t.Fatal(err)
		}
		entries := f.entries()
		last := entries[len(entries)-1]
		if producers := producerAt(last); len(producers) != 1 || producers[0].ProducerID != 42 || producers[0].LastOffset != producer42End {
			t.Fatalf("restart %t: producers at the end of segment %d: %+v, want producer 42 last at %d", restart, last.BaseOffset, producers, producer42End)
		}
	}
}

// TestUploadsStageNothingOnDisk: a segment's producer snapshot and
// .txnindex are uploaded from memory. While each object is being
// uploaded the staging directory is empty (it used to hold a directory
// per segment with the snapshot written to a file and read back: a
// mkdir, a create, a write, an open and a recursive delete per segment),
// and the .producers objects still hold each segment's end state.
func TestUploadsStageNothingOnDisk(t *testing.T) {
	f := newFixture(t, 12)
	staging := f.manager.cfg.StagingDir
	var mu sync.Mutex
	staged := map[string][]string{} // object key → what the staging dir held
	f.faults.BeforeUpload(func(key string) {
		var names []string
		filepath.WalkDir(staging, func(path string, d fs.DirEntry, err error) error {
			if err == nil && path != staging {
				names = append(names, strings.TrimPrefix(path, staging))
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		staged[key] = names
	})
	sealed := f.sealed()
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	producers := 0
	for key, names := range staged {
		if len(names) > 0 {
			t.Errorf("while %s was uploaded the staging dir held %v", key, names)
		}
		if strings.HasSuffix(key, ".producers") {
			producers++
		}
	}
	if producers != len(sealed) {
		t.Fatalf("%d .producers objects uploaded, want one per sealed segment (%d)", producers, len(sealed))
	}
	for _, entry := range f.entries() {
		snapshot, err := f.tier.ReadProducerSnapshot(f.ctx, f.part.Name(), entry)
		if err != nil {
			t.Fatal(err)
		}
		state, err := producer.ReadSnapshot(bytes.NewReader(snapshot))
		if err != nil {
			t.Fatalf("producer snapshot of segment %d: %v", entry.BaseOffset, err)
		}
		if _, ok := state.Lookup(42); !ok {
			t.Fatalf("producer snapshot of segment %d has no producer 42", entry.BaseOffset)
		}
	}
}

// TestFirstUploadKeepsProducersOfDeletedRecords: when uploads start
// (tiering switched on) or resume past a gap (remote.log.copy.disable
// switched off) after local retention deleted a producer's records, the
// producer snapshot uploaded with the next segment still holds that
// producer, as the local replica does (KIP-360 keeps it until
// producer.id.expiration.ms): a replica restarting from the tier starts
// from it, and without it a retried batch of the producer would be
// appended twice once that replica leads.
func TestFirstUploadKeepsProducersOfDeletedRecords(t *testing.T) {
	tests := []struct {
		name string
		// deleteProducer leaves a log whose segments 0..9 and 10..19,
		// producer 42's, are deleted locally and not in the bucket
		// after offset 9.
		deleteProducer func(f *fixture)
	}{
		{"tiering switched on after local retention", func(f *fixture) {
			f.setConfigs(map[string]string{"segment.bytes": "4400", "retention.bytes": "10000"})
			appendBatches(t, f.part, 4, 42) // segments 0..9 and 10..19
			appendBatches(t, f.part, 6, -1)
			f.part.EnforceRetention()
		}},
		{"uploads resumed after a gap", func(f *fixture) {
			appendBatches(t, f.part, 4, 42)
			if err := f.work(); err != nil { // uploads 0..9
				t.Fatal(err)
			}
			f.setConfigs(tiered("remote.log.copy.disable", "true", "retention.bytes", "10000"))
			appendBatches(t, f.part, 6, -1)
			f.part.EnforceRetention()
		}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			f := newFixture(t, 0)
			test.deleteProducer(f)
			if start := f.part.LogStartOffset(); start != 20 {
				t.Fatalf("local log start %d, want 20 (producer 42's segments deleted)", start)
			}
			f.setConfigs(tieredConfigs)
			if err := f.work(); err != nil {
				t.Fatal(err)
			}
			var first *metadata.SegmentManifest
			for _, e := range f.entries() {
				if e.BaseOffset == 20 {
					first = &e
				}
			}
			if first == nil {
				t.Fatalf("entries %+v, none at 20", f.entries())
			}
			data, err := f.tier.ReadProducerSnapshot(f.ctx, f.part.Name(), *first)
			if err != nil {
				t.Fatal(err)
			}
			state, err := producer.ReadSnapshot(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if producers := state.Producers(); len(producers) != 1 || producers[0].ProducerID != 42 || producers[0].LastOffset != 19 {
				t.Fatalf("producers uploaded with segment 20: %+v, want producer 42 last at 19", producers)
			}
		})
	}
}
