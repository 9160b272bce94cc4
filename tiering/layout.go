package tiering

import (
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/google/uuid"
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

	// manifestName is the per-partition manifest snapshot object, next to
	// the partition's segment objects.
	manifestName = "manifest"
)

// segmentSuffixes lists a segment's objects in upload order: the log, which
// holds the data, first; deleted in the reverse order so that a partial
// delete leaves the log, which a scrub reports.
var segmentSuffixes = []string{suffixLog, suffixOffsetIndex, suffixTimeIndex, suffixEpochs, suffixProducers}

// Partition names one partition of one topic incarnation. The topic id keeps
// a re-created topic's objects apart from the old one's.
type Partition struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
}

func (p Partition) String() string {
	return fmt.Sprintf("%s-%x/%d", p.Topic, p.TopicID, p.Partition)
}

// EpochRange says that offsets from StartOffset on (up to the next range's
// start) were written by the leader of Epoch.
type EpochRange struct {
	Epoch       int32
	StartOffset int64
}

// RemoteSegment describes one segment in the object store: what the Raft
// manifest entry holds and what a remote read needs.
type RemoteSegment struct {
	Partition      Partition
	ID             uuid.UUID // unique per upload attempt of a segment
	BaseOffset     int64     // offset of the first batch
	LastOffset     int64     // last offset of the last batch
	Size           int64     // bytes of the .log object
	FirstTimestamp int64     // smallest firstTimestamp of any batch, -1 without timestamps
	MaxTimestamp   int64     // largest maxTimestamp of any batch, -1 without timestamps
	LeaderEpochs   []EpochRange
}

// layout turns partitions and segments into object keys under a prefix.
type layout struct {
	prefix string // without trailing slash; "" for the bucket root
}

// partitionPrefix returns "<prefix>/<topic>-<topic id hex>/<partition>/".
func (l layout) partitionPrefix(p Partition) string {
	dir := p.Topic + "-" + hex.EncodeToString(p.TopicID[:]) + "/" + strconv.FormatInt(int64(p.Partition), 10) + "/"
	if l.prefix == "" {
		return dir
	}
	return l.prefix + "/" + dir
}

// segmentKey returns the key of one of a segment's objects.
func (l layout) segmentKey(segment RemoteSegment, suffix string) string {
	return l.partitionPrefix(segment.Partition) + segmentStem(segment.BaseOffset, segment.ID) + suffix
}

func (l layout) manifestKey(p Partition) string {
	return l.partitionPrefix(p) + manifestName
}

// segmentStem is "<base offset, 20 digits>-<uuid>".
func segmentStem(baseOffset int64, id uuid.UUID) string {
	return fmt.Sprintf("%0*d-%s", baseOffsetDigits, baseOffset, id.String())
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
