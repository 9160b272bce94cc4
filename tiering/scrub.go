package tiering

import (
	"context"
	"fmt"
	"path"
	"sort"

	"github.com/strata-log/strata/metadata"
)

// ScrubReport lists the differences between the objects in the bucket and
// the manifest they were checked against.
type ScrubReport struct {
	// Objects is how many objects were listed.
	Objects int
	// Orphans are keys with no manifest entry: objects of segments the
	// manifest does not name (a failed or unfinished upload, a delete that
	// stopped half way) and names this package does not write.
	Orphans []string
	// Missing are objects that a manifest entry needs and the bucket does
	// not hold.
	Missing []MissingObject
	// SizeMismatches are .log objects whose size differs from the entry's.
	SizeMismatches []string
}

// MissingObject is one object a manifest entry needs that is not there.
type MissingObject struct {
	Partition metadata.TopicPartition
	Segment   metadata.SegmentManifest
	Key       string
}

// Clean reports whether the scrub found nothing wrong.
func (r ScrubReport) Clean() bool {
	return len(r.Orphans) == 0 && len(r.Missing) == 0 && len(r.SizeMismatches) == 0
}

// ScrubPartition compares the objects under the partition's prefix with its
// manifest (a snapshot of it, with entries in every state). The newest
// manifest snapshot object is expected, not an orphan; older ones are
// orphans.
func (t *Tier) ScrubPartition(ctx context.Context, m ManifestSnapshot) (ScrubReport, error) {
	return t.scrub(ctx, t.layout.partitionPrefix(m.Partition), []ManifestSnapshot{m})
}

// Scrub compares every object under the configured prefix with the given
// snapshots of the partitions' manifests: objects of partitions without a
// snapshot here are orphans.
func (t *Tier) Scrub(ctx context.Context, snapshots []ManifestSnapshot) (ScrubReport, error) {
	listPrefix := ""
	if t.config.Prefix != "" {
		listPrefix = t.config.Prefix + "/"
	}
	return t.scrub(ctx, listPrefix, snapshots)
}

func (t *Tier) scrub(ctx context.Context, listPrefix string, snapshots []ManifestSnapshot) (ScrubReport, error) {
	type expectation struct {
		partition metadata.TopicPartition
		segment   metadata.SegmentManifest
		suffix    string
	}
	expected := make(map[string]expectation)
	// Each partition's newest manifest snapshot object is expected; older
	// ones (a deposed uploader's late one, one whose deletion failed) are
	// orphans.
	newestSnapshot := make(map[string]*SnapshotObject) // by partition prefix
	var staleSnapshots []string
	for _, m := range snapshots {
		newestSnapshot[t.layout.partitionPrefix(m.Partition)] = nil
		for _, segment := range m.Segments {
			for _, suffix := range segmentSuffixes {
				expected[t.layout.segmentKey(m.Partition, segment, suffix)] = expectation{partition: m.Partition, segment: segment, suffix: suffix}
			}
		}
	}
	var report ScrubReport
	seen := make(map[string]bool)
	err := t.bucket.Iter(ctx, listPrefix, func(key string, size int64) error {
		report.Objects++
		if e, ok := expected[key]; ok {
			seen[key] = true
			if e.suffix == suffixLog && size != e.segment.SizeBytes {
				report.SizeMismatches = append(report.SizeMismatches, fmt.Sprintf("%s: %d bytes, manifest says %d", key, size, e.segment.SizeBytes))
			}
			return nil
		}
		if epoch, ok := parseManifestSnapshotObject(key); ok {
			if newest, known := newestSnapshot[path.Dir(key)+"/"]; known {
				switch {
				case newest == nil:
					newestSnapshot[path.Dir(key)+"/"] = &SnapshotObject{Key: key, Epoch: epoch}
				case epoch > newest.Epoch:
					staleSnapshots = append(staleSnapshots, newest.Key)
					*newest = SnapshotObject{Key: key, Epoch: epoch}
				default:
					staleSnapshots = append(staleSnapshots, key)
				}
				return nil
			}
		}
		report.Orphans = append(report.Orphans, key)
		return nil
	})
	if err != nil {
		return ScrubReport{}, fmt.Errorf("tiering: scrub %q: %w", listPrefix, err)
	}
	report.Orphans = append(report.Orphans, staleSnapshots...)
	for key, e := range expected {
		if !seen[key] && e.suffix != suffixTxnIndex { // optional: see suffixTxnIndex
			report.Missing = append(report.Missing, MissingObject{Partition: e.partition, Segment: e.segment, Key: key})
		}
	}
	sort.Strings(report.Orphans)
	sort.Slice(report.Missing, func(i, j int) bool { return report.Missing[i].Key < report.Missing[j].Key })
	return report, nil
}
