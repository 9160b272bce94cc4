package tiering

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// SegmentFiles names the local files of one sealed segment to upload.
type SegmentFiles struct {
	Partition metadata.TopicPartition
	// ID names this copy of the segment in the bucket. Zero: Upload
	// generates one. Uploading again with the same ID overwrites the same
	// objects, so a retried copy leaves no orphans.
	ID uuid.UUID
	// BaseOffset is the segment's base offset (its file name); the first
	// batch must start there.
	BaseOffset      int64
	LogPath         string // .log, record batches v2 (broker/segment format)
	OffsetIndexPath string // .index
	TimeIndexPath   string // .timeindex
	// ProducerSnapshot is the producer-state snapshot at the segment's
	// end offset (broker/producer format), uploaded as it is; empty
	// uploads an empty .producers object (no producer state). Both it and
	// TxnIndex are small and built in memory by the caller: they are sent
	// from memory, not staged in files.
	ProducerSnapshot []byte
	// TxnIndex is the segment's aborted-transaction entries whose ABORT
	// marker is in the uploaded range, in the .txnindex format
	// (broker/segment), uploaded as it is; empty uploads an empty
	// .txnindex object (no aborted transaction).
	TxnIndex []byte
}

// Upload copies one sealed segment to the bucket: its .log, .index and
// .timeindex as they are on disk, an .epochs object with the leader-epoch
// ranges read from the batch headers, the producer snapshot and the
// aborted-transaction index. Each
// object is streamed (multipart on S3) and retried with backoff on
// retriable failures. At most Config.UploadConcurrency segments are
// uploaded at once; Upload waits for a slot. The segment must be sealed:
// its files may not change during the upload.
//
// The returned entry is what the manifest records (the caller adds its
// LeaderEpoch and State). Only after
// that entry is committed may the local copy go; a failed Upload may leave
// some of the objects behind (a later Upload with the same ID overwrites
// them, DeleteSegment removes them, Scrub reports them).
func (t *Tier) Upload(ctx context.Context, files SegmentFiles) (metadata.SegmentManifest, error) {
	segment, err := DescribeSegment(files)
	if err != nil {
		return metadata.SegmentManifest{}, err
	}
	return segment, t.UploadDescribed(ctx, files, segment)
}

// UploadDescribed is Upload of a segment already described by
// DescribeSegment (its SegmentID names the objects), so its batch headers are not
// read a second time: the broker commits "copy started" with the
// description, then uploads.
func (t *Tier) UploadDescribed(ctx context.Context, files SegmentFiles, segment metadata.SegmentManifest) error {
	if t.closed.Load() {
		return ErrClosed
	}
	// KIP-956: wait while the copy quota is exceeded (quota.go).
	if err := t.quotas.copy.WaitAndRecord(ctx, segment.SizeBytes); err != nil {
		return err
	}
	select {
	case t.uploadSlots <- struct{}{}:
		defer func() { <-t.uploadSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	logFile, err := os.Open(files.LogPath)
	if err != nil {
		return fmt.Errorf("tiering: upload: %w", err)
	}
	defer logFile.Close()
	if info, err := logFile.Stat(); err != nil || info.Size() != segment.SizeBytes {
		return fmt.Errorf("tiering: upload %s: %d bytes described, the file has changed (%v)", files.LogPath, segment.SizeBytes, err)
	}

	sources := map[string]func() (io.Reader, func(), error){
		suffixLog: func() (io.Reader, func(), error) {
			return io.NewSectionReader(logFile, 0, segment.SizeBytes), func() {}, nil
		},
		suffixOffsetIndex: openSource(files.OffsetIndexPath),
		suffixTimeIndex:   openSource(files.TimeIndexPath),
		suffixEpochs:      memorySource(marshalEpochs(segment.EpochRanges)),
		suffixProducers:   memorySource(files.ProducerSnapshot),
		suffixTxnIndex:    memorySource(files.TxnIndex),
	}
	for _, suffix := range segmentSuffixes {
		key := t.layout.segmentKey(files.Partition, segment, suffix)
		err := t.retry(ctx, t.config.UploadAttempts, "upload "+key, func() error {
			reader, done, err := sources[suffix]()
			if err != nil {
				return err
			}
			defer done()
			return t.bucket.Upload(ctx, key, reader, t.config.UploadPartBytes)
		})
		if err != nil {
			return fmt.Errorf("tiering: upload segment %d of %s: %w", files.BaseOffset, files.Partition, err)
		}
	}
	t.stats.segmentUploads.Add(1)
	return nil
}

// UploadConcurrency is Config.UploadConcurrency: how many segments are
// uploaded at once; a caller pipelining one partition's uploads keeps at
// most that many in flight.
func (t *Tier) UploadConcurrency() int { return t.config.UploadConcurrency }

// memorySource returns a function reading data from its start for each
// attempt (a SizedReaderAt, as every upload source).
func memorySource(data []byte) func() (io.Reader, func(), error) {
	return func() (io.Reader, func(), error) { return bytes.NewReader(data), func() {}, nil }
}

// openSource returns a function opening path afresh for each attempt; ""
// stands for an empty object. The reader is a SizedReaderAt, as every
// upload source, so the bucket sends it without buffering it.
func openSource(path string) func() (io.Reader, func(), error) {
	return func() (io.Reader, func(), error) {
		if path == "" {
			return bytes.NewReader(nil), func() {}, nil
		}
		file, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		info, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, nil, err
		}
		return io.NewSectionReader(file, 0, info.Size()), func() { file.Close() }, nil
	}
}

// DescribeSegment reads the batch headers of a sealed segment's .log and
// returns its manifest entry (offsets, size, timestamps, leader-epoch
// ranges, whether its .txnindex holds entries; LeaderEpoch and State are
// the caller's) with SegmentID files.ID
// (a new one when zero), without
// uploading anything: the broker commits "copy started" with it before
// Upload writes the objects under the same ID.
func DescribeSegment(files SegmentFiles) (metadata.SegmentManifest, error) {
	logFile, err := os.Open(files.LogPath)
	if err != nil {
		return metadata.SegmentManifest{}, fmt.Errorf("tiering: describe: %w", err)
	}
	defer logFile.Close()
	info, err := logFile.Stat()
	if err != nil {
		return metadata.SegmentManifest{}, fmt.Errorf("tiering: describe: %w", err)
	}
	segment, err := describeSegment(logFile, info.Size(), files.BaseOffset)
	if err != nil {
		return metadata.SegmentManifest{}, fmt.Errorf("tiering: describe %s: %w", files.LogPath, err)
	}
	segment.TxnIndex = describeTxnIndex(files.TxnIndex)
	segment.SegmentID = files.ID
	if files.ID == uuid.Nil {
		segment.SegmentID = uuid.New()
	}
	return segment, nil
}

// describeSegment walks the batch headers of a .log of size bytes and
// returns its offsets, timestamps and leader-epoch ranges. It checks the
// framing (magic, lengths, dense offsets starting at baseOffset), not the
// CRCs: readers verify those on every read.
func describeSegment(file io.ReaderAt, size, baseOffset int64) (metadata.SegmentManifest, error) {
	segment := metadata.SegmentManifest{BaseOffset: baseOffset, SizeBytes: size, FirstTimestamp: -1, MaxTimestamp: -1}
	if size == 0 {
		return metadata.SegmentManifest{}, errors.New("empty segment")
	}
	header := make([]byte, recordbatch.HeaderSize)
	next := baseOffset
	for position := int64(0); position < size; {
		if size-position < recordbatch.HeaderSize {
			return metadata.SegmentManifest{}, fmt.Errorf("torn batch header at byte %d", position)
		}
		if _, err := file.ReadAt(header, position); err != nil {
			return metadata.SegmentManifest{}, fmt.Errorf("read batch header at byte %d: %w", position, err)
		}
		h, err := recordbatch.ParseHeader(header)
		if err != nil {
			return metadata.SegmentManifest{}, fmt.Errorf("batch at byte %d: %w", position, err)
		}
		if h.BaseOffset != next {
			return metadata.SegmentManifest{}, fmt.Errorf("batch at byte %d has base offset %d, want %d", position, h.BaseOffset, next)
		}
		if position+h.Size() > size {
			return metadata.SegmentManifest{}, fmt.Errorf("batch at byte %d runs past the end (%d bytes)", position, size)
		}
		if n := len(segment.EpochRanges); n == 0 || h.PartitionLeaderEpoch != segment.EpochRanges[n-1].Epoch {
			if n > 0 && h.PartitionLeaderEpoch < segment.EpochRanges[n-1].Epoch {
				return metadata.SegmentManifest{}, fmt.Errorf("batch at byte %d: leader epoch %d after %d", position, h.PartitionLeaderEpoch, segment.EpochRanges[n-1].Epoch)
			}
			segment.EpochRanges = append(segment.EpochRanges, metadata.EpochRange{Epoch: h.PartitionLeaderEpoch, StartOffset: h.BaseOffset})
		}
		// A batch the log cleaner stamped holds its delete horizon in
		// firstTimestamp (KIP-534), not a record's time: skip it.
		if _, stamped := h.DeleteHorizon(); !stamped && h.NumRecords > 0 && h.FirstTimestamp >= 0 && (segment.FirstTimestamp < 0 || h.FirstTimestamp < segment.FirstTimestamp) {
			segment.FirstTimestamp = h.FirstTimestamp
		}
		segment.MaxTimestamp = max(segment.MaxTimestamp, h.MaxTimestamp)
		next = h.LastOffset() + 1
		position += h.Size()
	}
	segment.LastOffset = next - 1
	return segment, nil
}

// DeleteSegment removes a segment's objects, the .log last. Objects
// already gone are fine, so a repeated delete succeeds. Retriable failures
// are retried like uploads.
func (t *Tier) DeleteSegment(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) error {
	for i := len(segmentSuffixes) - 1; i >= 0; i-- {
		key := t.layout.segmentKey(p, segment, segmentSuffixes[i])
		if err := t.retry(ctx, t.config.UploadAttempts, "delete "+key, func() error { return t.bucket.Delete(ctx, key) }); err != nil {
			return fmt.Errorf("tiering: delete segment %d of %s: %w", segment.BaseOffset, p, err)
		}
	}
	// Marked first: a read under way that brings back the segment's
	// chunks or indexes after the caches dropped them leaves them out.
	t.deleted.add(segment.SegmentID)
	t.indexes.remove(segment.SegmentID)
	t.txnIndexes.remove(segment.SegmentID)
	t.cache.removeSegment(segment.SegmentID)
	return nil
}

// PutManifestSnapshot writes the partition's manifest snapshot object of
// leader epoch m.Epoch (the uploader's: manifest-<epoch>), then deletes the
// partition's snapshot objects of lower epochs. A deposed uploader's late
// snapshot thus never replaces a newer leader's (readers take the highest
// epoch), and is deleted by the newer leader's next snapshot. An error
// after the object is written (its predecessors not all deleted) leaves
// the new snapshot in force.
func (t *Tier) PutManifestSnapshot(ctx context.Context, m ManifestSnapshot) error {
	epoch := m.Epoch
	if epoch < 0 {
		return fmt.Errorf("tiering: manifest snapshot of %s: leader epoch %d", m.Partition, epoch)
	}
	data, err := MarshalManifestSnapshot(m)
	if err != nil {
		return err
	}
	key := t.layout.manifestSnapshotKey(m.Partition, epoch)
	err = t.retry(ctx, t.config.UploadAttempts, "upload "+key, func() error {
		return t.bucket.Upload(ctx, key, bytes.NewReader(data), t.config.UploadPartBytes)
	})
	if err != nil {
		return err
	}
	snapshots, err := t.manifestSnapshotObjects(ctx, m.Partition)
	if err != nil {
		return err
	}
	for _, old := range snapshots {
		if old.Epoch < epoch {
			if err := t.deleteObject(ctx, old.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// SnapshotObject is one manifest snapshot object of a partition.
type SnapshotObject struct {
	Key string
	// Epoch is the leader epoch in its name; -1 for the name without
	// one ("manifest", written by older versions).
	Epoch int32
}

// manifestSnapshotObjects lists the partition's manifest snapshot objects,
// lowest epoch first.
func (t *Tier) manifestSnapshotObjects(ctx context.Context, p metadata.TopicPartition) ([]SnapshotObject, error) {
	var objects []SnapshotObject
	err := t.bucket.Iter(ctx, t.layout.legacyManifestSnapshotKey(p), func(key string, _ int64) error {
		if path.Dir(key)+"/" != t.layout.partitionPrefix(p) {
			return nil
		}
		if epoch, ok := parseManifestSnapshotObject(key); ok {
			objects = append(objects, SnapshotObject{Key: key, Epoch: epoch})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tiering: list manifest snapshots of %s: %w", p, err)
	}
	slices.SortFunc(objects, func(a, b SnapshotObject) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return objects, nil
}

// deleteObject deletes one object with the upload retry policy; a
// missing one counts as deleted.
func (t *Tier) deleteObject(ctx context.Context, key string) error {
	return t.retry(ctx, t.config.UploadAttempts, "delete "+key, func() error {
		err := t.bucket.Delete(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
}

// DeleteManifestSnapshot removes the partition's manifest snapshot objects
// (its topic was deleted); missing ones count as deleted.
func (t *Tier) DeleteManifestSnapshot(ctx context.Context, p metadata.TopicPartition) error {
	snapshots, err := t.manifestSnapshotObjects(ctx, p)
	if err != nil {
		return err
	}
	for _, snapshot := range snapshots {
		if err := t.deleteObject(ctx, snapshot.Key); err != nil {
			return err
		}
	}
	return nil
}

// GetManifestSnapshot reads the partition's newest manifest snapshot
// object (the highest leader epoch in its name): ErrNotFound when there is
// none, a *CorruptError when it does not decode.
func (t *Tier) GetManifestSnapshot(ctx context.Context, p metadata.TopicPartition) (ManifestSnapshot, error) {
	snapshots, err := t.manifestSnapshotObjects(ctx, p)
	if err != nil {
		return ManifestSnapshot{}, err
	}
	if len(snapshots) == 0 {
		return ManifestSnapshot{}, fmt.Errorf("tiering: manifest snapshot of %s: %w", p, ErrNotFound)
	}
	key := snapshots[len(snapshots)-1].Key
	data, err := t.getAll(ctx, key)
	if err != nil {
		return ManifestSnapshot{}, fmt.Errorf("tiering: manifest snapshot of %s: %w", p, err)
	}
	m, err := UnmarshalManifestSnapshot(key, data)
	if err != nil {
		return ManifestSnapshot{}, err
	}
	if m.Partition != p {
		return ManifestSnapshot{}, corruptf(key, -1, "manifest snapshot names partition %s", m.Partition)
	}
	m.Epoch = snapshots[len(snapshots)-1].Epoch
	return m, nil
}

// ReadEpochs reads a remote segment's leader-epoch ranges from its .epochs
// object (a follower rebuilding its leader-epoch cache from the bucket).
func (t *Tier) ReadEpochs(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]metadata.EpochRange, error) {
	key := t.layout.segmentKey(p, segment, suffixEpochs)
	data, err := t.getAll(ctx, key)
	if err != nil {
		return nil, err
	}
	return unmarshalEpochs(key, data)
}

// getAll reads a whole object with the read retry policy.
func (t *Tier) getAll(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := t.retry(ctx, t.config.ReadAttempts, "get "+key, func() error {
		reader, err := t.bucket.Get(ctx, key, 0, -1)
		if err != nil {
			return err
		}
		defer reader.Close()
		data, err = io.ReadAll(reader)
		return err
	})
	return data, err
}

// ReadProducerSnapshot returns a remote segment's .producers object (the
// producer-state snapshot uploaded with it; empty when it had none), for a
// replica rebuilding its producer state from the bucket.
func (t *Tier) ReadProducerSnapshot(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]byte, error) {
	return t.getAll(ctx, t.layout.segmentKey(p, segment, suffixProducers))
}

// ManifestSnapshots reads every partition's newest manifest snapshot object
// (the highest leader epoch in its name) under the prefix: what a cluster
// rebuilt from the bucket alone starts from. Each segment's TxnIndex is
// set from the size of its .txnindex object in the same listing
// (TxnIndexUnknown when it is not there). An object that does not
// decode fails the call with its *CorruptError.
func (t *Tier) ManifestSnapshots(ctx context.Context) ([]ManifestSnapshot, error) {
	listPrefix := ""
	if t.config.Prefix != "" {
		listPrefix = t.config.Prefix + "/"
	}
	// The newest snapshot object of each partition directory.
	newest := map[string]SnapshotObject{}
	var dirs []string
	txnIndexes := txnIndexListing{}
	err := t.bucket.Iter(ctx, listPrefix, func(key string, size int64) error {
		txnIndexes.add(key, size)
		epoch, ok := parseManifestSnapshotObject(key)
		if !ok {
			return nil
		}
		dir := path.Dir(key)
		if current, seen := newest[dir]; !seen || epoch > current.Epoch {
			if !seen {
				dirs = append(dirs, dir)
			}
			newest[dir] = SnapshotObject{Key: key, Epoch: epoch}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tiering: list manifest snapshots: %w", err)
	}
	manifests := make([]ManifestSnapshot, 0, len(dirs))
	for _, dir := range dirs {
		key := newest[dir].Key
		data, err := t.getAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("tiering: list manifest snapshots: %w", err)
		}
		m, err := UnmarshalManifestSnapshot(key, data)
		if err != nil {
			return nil, err
		}
		if want := t.layout.partitionPrefix(m.Partition); want != dir+"/" {
			return nil, corruptf(key, -1, "manifest snapshot of %s stored under another partition's name", m.Partition)
		}
		m.Epoch = newest[dir].Epoch
		txnIndexes.mark(m.Segments)
		manifests = append(manifests, m)
	}
	return manifests, nil
}

// TopicName finds the name of a topic incarnation from the bucket listing
// (its partitions' key prefix "<topic>-<topic id hex>/"): for cleaning up
// after a topic whose name the caller no longer knows. ErrNotFound when no
// object of the topic exists.
func (t *Tier) TopicName(ctx context.Context, topicID [16]byte) (string, error) {
	listPrefix := ""
	if t.config.Prefix != "" {
		listPrefix = t.config.Prefix + "/"
	}
	suffix := "-" + hex.EncodeToString(topicID[:])
	var name string
	errFound := errors.New("found")
	err := t.bucket.Iter(ctx, listPrefix, func(key string, _ int64) error {
		dir, _, _ := strings.Cut(strings.TrimPrefix(key, listPrefix), "/")
		if topic, ok := strings.CutSuffix(dir, suffix); ok && topic != "" {
			name = topic
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return name, nil
	case err != nil:
		return "", err
	}
	return "", fmt.Errorf("tiering: no object of topic id %x: %w", topicID, ErrNotFound)
}
