package tiermanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// TestUploadAfterDeleteRecordsInsideABatch: DeleteRecords may move the
// log start of a tiered partition to any offset up to the high watermark,
// inside a batch of a segment not uploaded yet (the broker commits it to
// the quorum, then moves the local log start). The next pass must still
// upload that segment and the ones after it: a copy starting at the log
// start itself has no batch starting there.
func TestUploadAfterDeleteRecordsInsideABatch(t *testing.T) {
	f := newFixture(t, 20) // batches of 5 records: offsets 5..9 are one batch
	const target = 7
	epoch := f.part.LeaderEpoch()
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, epoch, target); err != nil {
		t.Fatal(err)
	}
	if _, err := f.part.DeleteRecordsBefore(target); err != nil {
		t.Fatal(err)
	}
	if got := f.part.LogStartOffset(); got != target {
		t.Fatalf("local log start %d, want %d", got, target)
	}
	if err := f.work(); err != nil {
		t.Fatalf("pass after DeleteRecords before %d: %v", target, err)
	}
	sealed := f.sealed()
	entries := f.entries()
	if len(entries) != len(sealed) {
		t.Fatalf("%d manifest entries, want one per sealed segment (%d): %+v", len(entries), len(sealed), entries)
	}
	for i, e := range entries {
		if e.State != metadata.SegmentCopyFinished || e.BaseOffset > max(target, sealed[i].BaseOffset) || e.LastOffset != sealed[i].EndOffset-1 {
			t.Fatalf("entry %d %+v, want segment %+v from at most the log start", i, e, sealed[i])
		}
	}
	// The log start is served from the bucket as from the local log.
	batches, err := f.tier.Read(f.ctx, f.part.Name(), entries[0], target, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	remote := batches.AppendTo(nil)
	batches.Release()
	local, err := f.part.Read(target, int32(len(remote)), entries[0].LastOffset+1, true)
	if err != nil || !bytes.Equal(remote, local) {
		t.Fatalf("offset %d: remote read (%d bytes) differs from local (%d bytes, %v)", target, len(remote), len(local), err)
	}
	if report, err := Scrub(f.ctx, f.tier, f.store.State()); err != nil || !report.Clean() {
		t.Fatalf("scrub: %v %+v", err, report)
	}
}

// TestExpiredRemoteDataIsNotUploadedAgain: total retention expires every
// remote segment of a partition while their local copies are still there
// (local retention is the total one by default and runs on its own
// schedule). The next pass must not upload those expired segments again:
// what retention deleted stays deleted.
func TestExpiredRemoteDataIsNotUploadedAgain(t *testing.T) {
	f := newFixture(t, 20)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	sealed := f.sealed()
	f.checkCoversSealed(sealed, 0)

	// retention.bytes 1: every remote segment expires (the active
	// segment alone holds more). No local retention pass runs between the
	// tier manager's passes here.
	f.setConfigs(tiered("retention.bytes", "1"))
	if n, err := f.manager.expireRemote(f.ctx, f.part, f.part.LeaderEpoch(), time.Now()); err != nil || n != len(sealed) {
		t.Fatalf("remote retention expired %d segments (%v), want all %d", n, err, len(sealed))
	}
	var uploads atomic.Int32
	f.faults.BeforeUpload(func(key string) {
		if strings.HasSuffix(key, ".log") {
			uploads.Add(1)
		}
	})
	f.pass()
	if n := uploads.Load(); n != 0 {
		t.Fatalf("the pass after remote retention uploaded %d expired segments again (manifest now %+v)", n, f.entries())
	}
}

// lateCommitStore is the metadata store as the tier manager sees it when a
// "copy finished" proposal fails with an unknown outcome (the Raft leader
// lost its leadership, or the forwarding connection broke, after the entry
// was appended): the call fails, but the entry commits later, before any
// proposal made after it, and after the proposer has read its state again.
// landed runs when it commits (another replica's local retention, which
// may run at any time once the copy is finished).
type lateCommitStore struct {
	*metadata.Store
	t       *testing.T
	fail    bool                 // the next "copy finished" of a segment fails and commits late
	pending *metadata.SegmentRef // the late "copy finished"
	landed  func()
}

func (s *lateCommitStore) land(ctx context.Context) {
	if s.pending == nil {
		return
	}
	if err := s.Store.FinishSegmentCopy(ctx, *s.pending); err != nil {
		s.t.Errorf("the late copy finished: %v", err)
	}
	s.pending = nil
	s.landed()
}

func (s *lateCommitStore) StartSegmentCopy(ctx context.Context, topicID [16]byte, partition int32, segment metadata.SegmentManifest) error {
	s.land(ctx)
	return s.Store.StartSegmentCopy(ctx, topicID, partition, segment)
}

func (s *lateCommitStore) FinishSegmentCopy(ctx context.Context, ref metadata.SegmentRef) error {
	if s.fail && ref.BaseOffset >= 0 {
		s.fail, s.pending = false, &ref
		return fmt.Errorf("metadata: SegmentCopyFinished: %w: leadership lost while committing the command", metadata.ErrNotLeader)
	}
	s.land(ctx)
	return s.Store.FinishSegmentCopy(ctx, ref)
}

func (s *lateCommitStore) StartSegmentDelete(ctx context.Context, ref metadata.SegmentRef) error {
	s.land(ctx)
	return s.Store.StartSegmentDelete(ctx, ref)
}

func (s *lateCommitStore) DeleteSegment(ctx context.Context, ref metadata.SegmentRef) error {
	s.land(ctx)
	return s.Store.DeleteSegment(ctx, ref)
}

// TestLateCopyFinishedIsNotDeletedAsUnfinished: a pass's "copy finished"
// fails with an unknown outcome and commits only after the next pass read
// the manifest, where the entry is still "copy started". That pass must not
// delete the entry as an unfinished copy: once it is finished a replica's
// local retention may drop the local copy (here: local.retention.bytes=1),
// and deleting the objects then loses the records for good.
func TestLateCopyFinishedIsNotDeletedAsUnfinished(t *testing.T) {
	f := newFixture(t, 20)
	f.setConfigs(tiered("local.retention.bytes", "1"))
	store := &lateCommitStore{Store: f.store, t: t, fail: true}
	store.landed = func() {
		if f.part.RefreshRetentionLimit(f.store.State()) {
			f.part.EnforceRetention()
		}
	}
	m, err := New(Config{Tier: f.tier, Store: store, NodeID: f.manager.cfg.NodeID,
		Partitions: f.manager.cfg.Partitions, StagingDir: f.manager.cfg.StagingDir, Logger: f.manager.log})
	if err != nil {
		t.Fatal(err)
	}
	f.manager = m
	if err := f.work(); !errors.Is(err, metadata.ErrNotLeader) {
		t.Fatalf("first pass: %v, want its copy finished to fail", err)
	}
	if err := f.work(); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	// Every offset below the log end is still somewhere: on local disk or
	// in a readable remote segment.
	earliest := f.part.LogStartOffset()
	if start, _, ok := f.store.State().RemoteLogOffsets(f.topic.ID, 0); ok {
		earliest = min(earliest, start)
	}
	if earliest != 0 {
		t.Fatalf("offsets 0..%d are gone from local disk and from the manifest (manifest %+v)", earliest-1, f.entries())
	}
}

// TestRemoteRetentionRunsWhileUploadsFail: total retention of the remote
// segments does not wait for uploads: with every PUT failing (a bucket
// policy, a full quota, a segment that cannot be copied), the remote
// segments past retention.bytes are still deleted.
func TestRemoteRetentionRunsWhileUploadsFail(t *testing.T) {
	f := newFixture(t, 20)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	uploaded := f.sealed()
	appendBatches(t, f.part, 4, 42) // two more sealed segments to upload
	// Keep all but the two oldest remote segments' bytes.
	limit := f.part.Size() - uploaded[0].Size - uploaded[1].Size
	f.setConfigs(tiered("retention.bytes", fmt.Sprint(limit)))
	f.faults.FailNext(tieringtest.OpUpload, 1000)
	if err := f.work(); err == nil {
		t.Fatal("the pass succeeded with every upload failing")
	}
	if start, _, ok := f.store.State().RemoteLogOffsets(f.topic.ID, 0); !ok || start != uploaded[2].BaseOffset {
		t.Fatalf("remote log starts at %d (%v) after a pass whose uploads failed, want %d: retention waited for the uploads", start, ok, uploaded[2].BaseOffset)
	}
}
