package tiermanager

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/tiering"
)

// TestOrphanSweep: a deposed or paused uploader's late objects (a copy
// whose "copy started" entry the next leader already deleted), temporary
// files of writes that never finished and a manifest snapshot
// older than the newest are deleted by the leader's sweep; objects of
// entries in every state (finished, and a copy still being written) and
// the newest snapshot stay, and names tiering does not write are left for
// scrub. A broker that no longer leads at its epoch deletes nothing: the
// sweep proves its leadership with a fenced Raft command after listing.
func TestOrphanSweep(t *testing.T) {
	f := newFixture(t, 30)
	sealed := f.sealed()
	epoch := f.topic.Partitions[0].LeaderEpoch
	f.pass()
	f.checkCoversSealed(sealed, epoch)
	files := func(info segment.SegmentInfo) tiering.SegmentFiles {
		return tiering.SegmentFiles{Partition: f.part.Name(), BaseOffset: info.BaseOffset,
			LogPath: info.LogPath, OffsetIndexPath: info.OffsetIndexPath, TimeIndexPath: info.TimeIndexPath}
	}

	// A copy in flight: "copy started" committed, objects written.
	appendBatches(t, f.part, 10, 42)
	next := f.sealed()[len(sealed)]
	inFlight, err := tiering.DescribeSegment(files(next))
	if err != nil {
		t.Fatal(err)
	}
	inFlight.LeaderEpoch = epoch
	if err := f.store.StartSegmentCopy(f.ctx, f.topic.ID, 0, inFlight); err != nil {
		t.Fatal(err)
	}
	if err := f.tier.UploadDescribed(f.ctx, files(next), inFlight); err != nil {
		t.Fatal(err)
	}
	before := f.objects()

	// What a deposed uploader wrote late, under a copy id no entry names.
	late, err := f.tier.Upload(f.ctx, files(sealed[0]))
	if err != nil {
		t.Fatal(err)
	}
	var lateKeys []string
	for _, key := range f.objects() {
		if strings.Contains(key, uuid.UUID(late.SegmentID).String()) {
			lateKeys = append(lateKeys, key)
		}
	}
	prefix := lateKeys[0][:strings.LastIndexByte(lateKeys[0], '/')+1]
	unfinished := lateKeys[0] + ".18f3a2b4c5d6e7f8.tmp"
	unfinishedSnapshot := prefix + "manifest-0000000000.18f3a2b4c5d6e7f9.tmp"
	olderSnapshot := prefix + "manifest" // as written before epochs named snapshots
	stray := prefix + "notes.txt"
	for _, key := range []string{unfinished, unfinishedSnapshot, olderSnapshot, stray} {
		if err := f.faults.Upload(f.ctx, key, strings.NewReader("x"), 5<<20); err != nil {
			t.Fatal(err)
		}
	}
	orphans := append(slices.Clone(lateKeys), unfinished, unfinishedSnapshot, olderSnapshot)

	// Swept by a broker that does not lead at epoch+1: nothing goes.
	if err := f.manager.sweepOrphans(f.ctx, f.part, epoch+1, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, key := range orphans {
		if !slices.Contains(f.objects(), key) {
			t.Fatalf("%s deleted by a sweep at an epoch the partition is not at", key)
		}
	}

	if err := f.manager.sweepOrphans(f.ctx, f.part, epoch, time.Now()); err != nil {
		t.Fatal(err)
	}
	after := f.objects()
	for _, key := range orphans {
		if slices.Contains(after, key) {
			t.Fatalf("orphan %s left by the sweep", key)
		}
	}
	want := append(slices.Clone(before), stray)
	slices.Sort(want)
	if !slices.Equal(after, want) {
		t.Fatalf("after the sweep the bucket holds\n%v\nwant\n%v", after, want)
	}
	if got := testutil.ToFloat64(f.manager.metrics.orphansDeleted.WithLabelValues(f.topic.Name)); got != float64(len(orphans)) {
		t.Fatalf("strata_tiering_orphans_deleted_total %v, want %d", got, len(orphans))
	}
}

// TestSweepDue: a partition is swept on the first pass of each leadership,
// then every sweepEvery intervals.
func TestSweepDue(t *testing.T) {
	m := &Manager{cfg: Config{Interval: time.Second}}
	now := time.Now()
	task := &task{sweptEpoch: -1}
	if !m.sweepDue(task, 3, now) {
		t.Fatal("no sweep on the first pass")
	}
	task.sweptEpoch, task.sweptAt = 3, now
	if m.sweepDue(task, 3, now.Add(sweepEvery*time.Second-time.Millisecond)) {
		t.Fatal("swept again too soon")
	}
	if !m.sweepDue(task, 3, now.Add(sweepEvery*time.Second)) || !m.sweepDue(task, 4, now) {
		t.Fatal("no sweep after sweepEvery intervals, or at a new leader epoch")
	}
}
