package tiermanager

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// sweepEvery is how many Intervals pass between two orphan sweeps of a
// partition (a sweep lists the partition's objects: on S3, LIST requests),
// and how old a multipart upload must be to be aborted.
const sweepEvery = 10

// sweepDue reports whether the partition's orphans are swept in this pass
// at epoch: on the first pass of a leadership, then every sweepEvery
// Intervals.
func (m *Manager) sweepDue(t *task, epoch int32, now time.Time) bool {
	return t.sweptEpoch != epoch || now.Sub(t.sweptAt) >= sweepEvery*m.cfg.Interval
}

// sweepOrphans deletes what the bucket holds under the partition's prefix
// that its manifest does not name and no writer can still need: objects of
// segments with no manifest entry (in any state: a copy-started entry may
// still be writing, a delete-started one is being deleted by its
// leader) — a deposed or paused uploader's late objects, written after the
// next leader deleted its unfinished copy, and temporary files of a write
// that never finished — manifest snapshot objects older than the newest,
// and multipart uploads started more than sweepEvery Intervals ago. Names
// this package does not write are left for `strata tiering scrub` to
// report.
//
// It is safe against a newer leader the local state does not know yet: the
// bucket is listed first, then (only when the local state finds something
// to delete) a fenced Raft command proves this broker
// still leads at epoch (a no-op: it names no entry, so it fails with
// ErrUnknownSegment after passing the leader-epoch fence, or with
// ErrFencedLeaderEpoch, and then nothing is deleted), then the local state,
// which has applied that command, is read. Every listed object was written
// after its entry's "copy started" committed, before the listing, so
// before the fenced command: the state read holds every entry a listed
// object can belong to. A newer leader commits and writes only after the
// fenced command, so nothing of it was listed.
func (m *Manager) sweepOrphans(ctx context.Context, p *partition.Partition, epoch int32, now time.Time) error {
	name := p.Name()
	listed, err := m.tier.ListPartition(ctx, name)
	if err != nil {
		return err
	}
	// Nothing to delete by the local state, which may lag: no Raft round
	// trip. Else the fenced no-op, and the state that has applied it.
	orphans := orphansOf(listed, m.store.State(), name)
	if len(orphans) > 0 {
		if err := m.fence(ctx, name, epoch); err != nil {
			p.Logger().Debug("tiering: orphan sweep skipped, this broker may no longer lead", "err", err)
			return nil
		}
		orphans = orphansOf(listed, m.store.State(), name)
	}
	if len(orphans) > 0 {
		if err := m.tier.DeleteObjects(ctx, orphans); err != nil {
			return err
		}
		m.metrics.orphansDeleted.WithLabelValues(name.Topic).Add(float64(len(orphans)))
		p.Logger().Info("tiering: deleted objects no manifest entry names (a deposed uploader's late writes, unfinished writes, older manifest snapshots)", "objects", len(orphans), "keys", orphans)
	}
	if len(listed.Others) > 0 {
		p.Logger().Warn("tiering: objects of unknown names under the partition's prefix; left alone (strata tiering scrub lists them)", "keys", listed.Others)
	}
	// An aborted upload fails and its writer, if it still leads, retries
	// it: no fence needed, and only uploads older than any a pass of this
	// leader runs are aborted.
	aborted, err := m.tier.AbortMultipartUploads(ctx, name, now.Add(-sweepEvery*m.cfg.Interval))
	if aborted > 0 {
		m.metrics.uploadsAborted.WithLabelValues(name.Topic).Add(float64(aborted))
		p.Logger().Info("tiering: aborted abandoned multipart uploads", "uploads", aborted)
	}
	return err
}

// orphansOf returns the listed objects of the partition that state does
// not need: temporary files (no write of this leader's runs during its
// sweep), objects of segment ids no entry names in any state, and
// manifest snapshot objects older than the newest.
func orphansOf(listed tiering.PartitionObjects, state *metadata.State, name metadata.TopicPartition) []string {
	known := map[uuid.UUID]bool{}
	state.EachSegment(name.TopicID, name.Partition, 0, func(e metadata.SegmentManifest) bool {
		known[e.SegmentID] = true
		return true
	})
	orphans := slices.Clone(listed.Temporary)
	for id, keys := range listed.Segments {
		if !known[id] {
			orphans = append(orphans, keys...)
		}
	}
	if n := len(listed.Snapshots); n > 0 {
		for _, snapshot := range listed.Snapshots[:n-1] {
			if snapshot.Epoch < listed.Snapshots[n-1].Epoch {
				orphans = append(orphans, snapshot.Key)
			}
		}
	}
	return orphans
}
