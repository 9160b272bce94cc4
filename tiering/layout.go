package tiering

import (
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// Object names. Part of the bucket format, do not change.
const (
	// baseOffsetDigits is the width of the zero-padded base offset in a
	// segment object's name, as in local segment file names.
	baseOffsetDigits = 20

	suffixLog         = ".log"
	suffixOffsetIndex = ".index"
	suffixTimeIndex   = ".timeindex"
	suffixEpochs      = ".epochs"
	suffixProducers   = ".producers"
	// suffixTxnIndex is the segment's aborted-transaction index (Kafka's
	// .txnindex format, broker/segment/txnindex.go): the transactions
	// aborted by an ABORT marker in the uploaded range, in marker order;
	// empty when none. Segments uploaded by versions before transactions
	// have none (they could hold no transactional data): a missing one
	// reads as empty, and scrub does not report it.
	suffixTxnIndex = ".txnindex"

	// manifestSnapshotName is the per-partition manifest snapshot object,
	// next to the partition's segment objects, as written before the
	// uploader's leader epoch joined its name: still read (as older than
	// any epoch's), never written.
	manifestSnapshotName = "manifest"
	// manifestSnapshotEpochPrefix starts the name of a manifest snapshot
	// object written at a leader epoch: "manifest-<epoch, 10 digits>"
	// (e.g. manifest-0000000007), zero-padded so names sort as epochs do.
	// A deposed or paused uploader cannot replace a newer leader's
	// snapshot (object stores without conditional PUT, file buckets among
	// them, would let the last writer win a shared name): readers take the
	// highest epoch, the writer deletes the lower ones after writing.
	manifestSnapshotEpochPrefix = manifestSnapshotName + "-"
	manifestSnapshotEpochDigits = 10
)

// segmentSuffixes lists a segment's objects in upload order: the log, which
// holds the data, first; deleted in the reverse order so that a partial
// delete leaves the log, which a scrub reports.
var segmentSuffixes = []string{suffixLog, suffixOffsetIndex, suffixTimeIndex, suffixEpochs, suffixProducers, suffixTxnIndex}

// layout turns partitions and segments into object keys under a prefix.
type layout struct {
	prefix string // without trailing slash; "" for the bucket root
}

// partitionPrefix returns "<prefix>/<topic>-<topic id hex>/<partition>/".
func (l layout) partitionPrefix(p metadata.TopicPartition) string {
	dir := p.Topic + "-" + hex.EncodeToString(p.TopicID[:]) + "/" + strconv.FormatInt(int64(p.Partition), 10) + "/"
	if l.prefix == "" {
		return dir
	}
	return l.prefix + "/" + dir
}

// segmentKey returns the key of one of a partition's segment's objects.
func (l layout) segmentKey(p metadata.TopicPartition, segment metadata.SegmentManifest, suffix string) string {
	return l.partitionPrefix(p) + segmentStem(segment.BaseOffset, segment.SegmentID) + suffix
}

// manifestSnapshotKey returns the key of the partition's manifest
// snapshot written at leader epoch (epoch >= 0).
func (l layout) manifestSnapshotKey(p metadata.TopicPartition, epoch int32) string {
	return fmt.Sprintf("%s%s%0*d", l.partitionPrefix(p), manifestSnapshotEpochPrefix, manifestSnapshotEpochDigits, epoch)
}

// legacyManifestSnapshotKey returns the key of the partition's manifest
// snapshot as written before epochs were in the name.
func (l layout) legacyManifestSnapshotKey(p metadata.TopicPartition) string {
	return l.partitionPrefix(p) + manifestSnapshotName
}

// parseManifestSnapshotObject reports whether key names a manifest
// snapshot object and at which leader epoch: -1 for the legacy name.
func parseManifestSnapshotObject(key string) (epoch int32, ok bool) {
	name := path.Base(key)
	if name == manifestSnapshotName {
		return -1, true
	}
	digits, found := strings.CutPrefix(name, manifestSnapshotEpochPrefix)
	if !found || len(digits) != manifestSnapshotEpochDigits || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	value, err := strconv.ParseInt(digits, 10, 32)
	if err != nil || value < 0 {
		return 0, false
	}
	return int32(value), true
}

// segmentStem is "<base offset, 20 digits>-<uuid>".
func segmentStem(baseOffset int64, id [16]byte) string {
	return fmt.Sprintf("%0*d-%s", baseOffsetDigits, baseOffset, uuid.UUID(id).String())
}

// parseSegmentObject splits the last element of a segment object's key into
// base offset, segment id and suffix; ok is false for other names.
func parseSegmentObject(key string) (baseOffset int64, id uuid.UUID, suffix string, ok bool) {
	name := path.Base(key)
	dot := strings.IndexByte(name, '.')
	if dot < 0 {
		return 0, uuid.UUID{}, "", false
	}
	stem, suffix := name[:dot], name[dot:]
	known := false
	for _, s := range segmentSuffixes {
		known = known || s == suffix
	}
	if !known || len(stem) != baseOffsetDigits+1+36 || stem[baseOffsetDigits] != '-' {
		return 0, uuid.UUID{}, "", false
	}
	baseOffset, err := strconv.ParseInt(stem[:baseOffsetDigits], 10, 64)
	if err != nil {
		return 0, uuid.UUID{}, "", false
	}
	id, err = uuid.Parse(stem[baseOffsetDigits+1:])
	if err != nil {
		return 0, uuid.UUID{}, "", false
	}
	return baseOffset, id, suffix, true
}
