package tiermanager

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// uploadEligible uploads, oldest first, each sealed segment entirely below
// the last stable offset (so below the high watermark, and holding no
// transaction that may still be aborted or committed: the bucket only ever
// holds settled data, and its .txnindex is final) that is not in the
// manifest yet.
//
// Uploads are pipelined: up to the tier's UploadConcurrency segments of
// the partition are being written at once, each after its "copy started"
// is committed, while "copy finished" is committed strictly in offset
// order: a segment's only after every earlier one's. A failed upload
// stops the pass; the later uploads are cancelled and their entries stay
// "copy started" (the next pass deletes them with their objects and
// uploads again), so the manifest's end never passes a segment not
// uploaded.
func (m *Manager) uploadEligible(ctx context.Context, p *partition.Partition, t *task, epoch int32) (int, error) {
	name := p.Name()
	next := p.LogStartOffset()
	state := m.store.State()
	if _, end, ok := state.RemoteLogOffsets(name.TopicID, name.Partition); ok {
		if end+1 < next {
			// Records DeleteRecords removed leave no gap worth a
			// warning.
			if deleted, _ := state.LogStartOffset(name.TopicID, name.Partition); deleted < next {
				p.Logger().Warn("local log starts after the uploaded data: the remote log has a gap (local data expired while uploads were disabled)",
					"remote_log_end_offset", end, "local_log_start_offset", next)
			}
		} else {
			next = end + 1
		}
	}
	uploadCtx, cancel := context.WithCancel(ctx)
	var pipeline []*pendingUpload   // oldest first
	var unfinished []*pendingUpload // started, "copy finished" not committed
	var finishErr error
	defer func() {
		cancel()
		for _, u := range pipeline {
			<-u.done
		}
		m.deleteUploadsOfDeletedTopic(ctx, name, unfinished, errors.Is(finishErr, metadata.ErrUnknownTopic))
	}()
	window := max(m.tier.UploadConcurrency(), 1)
	uploaded := 0
	var startErr error // stops starting uploads; the pipeline drains
	for {
		for startErr == nil && len(pipeline) < window && ctx.Err() == nil {
			if !m.stillLeads(p, epoch) {
				return uploaded, nil
			}
			candidate, ok := nextUpload(p.Segments(), next, p.LastStableOffset())
			if !ok {
				break
			}
			u, err := m.startUpload(ctx, uploadCtx, p, t, epoch, candidate, max(next, candidate.BaseOffset))
			if err != nil {
				startErr = err
				break
			}
			pipeline = append(pipeline, u)
			unfinished = append(unfinished, u)
			next = candidate.EndOffset
		}
		if len(pipeline) == 0 {
			if startErr != nil {
				return uploaded, startErr
			}
			return uploaded, ctx.Err()
		}
		head := pipeline[0]
		<-head.done
		pipeline = pipeline[1:]
		if head.err != nil {
			// The entry stays "copy started": the next pass deletes
			// whatever objects were written and the entry, then
			// uploads again.
			return uploaded, head.err
		}
		if finishErr = m.finishUpload(ctx, p, head); finishErr != nil {
			return uploaded, finishErr
		}
		unfinished = slices.DeleteFunc(unfinished, func(u *pendingUpload) bool { return u == head })
		uploaded++
	}
}

// deleteUploadsOfDeletedTopic deletes the objects of a pass's uploads
// whose "copy finished" was not committed, once their topic is deleted
// (refused: a "copy finished" was refused for it; else as this broker's
// metadata says, read after the uploads ended): the deleted-topics cleanup
// may have deleted their entries and listed the partition's objects before
// they were written, and no later cleanup looks for a topic without
// entries. (The topic id never comes back.) Best effort: what a failure
// leaves is reported by scrub.
func (m *Manager) deleteUploadsOfDeletedTopic(ctx context.Context, name metadata.TopicPartition, unfinished []*pendingUpload, refused bool) {
	if len(unfinished) == 0 {
		return
	}
	if _, exists := m.store.State().TopicByID(name.TopicID); exists && !refused {
		return // the next pass deletes them with their "copy started" entries
	}
	for _, u := range unfinished {
		if err := m.tier.DeleteSegment(ctx, name, u.entry); err != nil {
			m.log.Warn("deleting an upload into a deleted topic failed", "topic", name.Topic, "partition", name.Partition, "base_offset", u.entry.BaseOffset, "err", err)
		}
	}
}

// nextUpload picks the segment to upload next from a log's segments
// (oldest first): the first non-empty one ending after next, the first
// offset not uploaded yet, provided it is sealed and entirely below
// stableEnd (the last stable offset). Segments are uploaded in order, so a
// later one never qualifies while an earlier one does not.
func nextUpload(segments []segment.SegmentInfo, next, stableEnd int64) (segment.SegmentInfo, bool) {
	for _, info := range segments {
		if info.Active || info.EndOffset > stableEnd {
			break
		}
		if info.EndOffset > next && info.Size > 0 {
			return info, true
		}
	}
	return segment.SegmentInfo{}, false
}

// pendingUpload is a segment whose "copy started" is committed and whose
// objects are being written.
type pendingUpload struct {
	entry   metadata.SegmentManifest
	end     int64 // the local segment's end offset
	started time.Time
	done    chan struct{} // closed when the upload has returned
	err     error         // the upload's, set before done closes
}

// startUpload prepares the offsets from..info.EndOffset of one sealed
// segment (a segment that starts below from, because this leader rolled
// its segments elsewhere than the previous uploader, is uploaded from a
// trimmed copy, so manifest entries never overlap), commits "copy
// started" and starts writing the objects under uploadCtx.
func (m *Manager) startUpload(ctx, uploadCtx context.Context, p *partition.Partition, t *task, epoch int32, info segment.SegmentInfo, from int64) (_ *pendingUpload, err error) {
	name := p.Name()
	// The staging directory holds a trimmed copy only (rare: after a
	// leadership change); the producer snapshot and the .txnindex are
	// uploaded from memory.
	staging := ""
	defer func() {
		if staging != "" && err != nil {
			os.RemoveAll(staging)
		}
	}()
	files := tiering.SegmentFiles{Partition: name, BaseOffset: info.BaseOffset,
		LogPath: info.LogPath, OffsetIndexPath: info.OffsetIndexPath, TimeIndexPath: info.TimeIndexPath}
	if from > info.BaseOffset {
		if staging, err = os.MkdirTemp(m.cfg.StagingDir, fmt.Sprintf("%s-%d-*", name.Topic, name.Partition)); err != nil {
			return nil, err
		}
		trimmed, err := copySegmentRange(p, filepath.Join(staging, "trimmed"), from, info.EndOffset, p.Logger())
		if err != nil {
			return nil, fmt.Errorf("trimmed copy of segment %d from %d: %w", info.BaseOffset, from, err)
		}
		// The copy starts with the batch holding from: from may fall inside
		// a batch (a log start DeleteRecords moved there).
		files.BaseOffset, files.LogPath, files.OffsetIndexPath, files.TimeIndexPath = trimmed.BaseOffset, trimmed.LogPath, trimmed.OffsetIndexPath, trimmed.TimeIndexPath
	}
	snapshot, err := m.producerSnapshot(ctx, p, t, files.BaseOffset, info.EndOffset)
	if err != nil {
		return nil, err
	}
	files.ProducerSnapshot = snapshot
	if aborted := segmentAbortedTxns(p, files.BaseOffset, info.EndOffset); len(aborted) > 0 {
		files.TxnIndex = segment.EncodeTxnIndex(aborted)
	}
	entry, err := tiering.DescribeSegment(files)
	if err != nil {
		return nil, err
	}
	if entry.LastOffset != info.EndOffset-1 {
		return nil, fmt.Errorf("segment %d: its batches end at %d, the log says %d", info.BaseOffset, entry.LastOffset, info.EndOffset-1)
	}
	if entry.MaxTimestamp < 0 {
		// Without timestamps the segment's age is its last modification,
		// as for local retention: the remote copy expires by it too, as
		// Kafka copies LogSegment.largestTimestamp into the remote
		// segment's metadata.
		entry.MaxTimestamp = info.LargestTimestamp
	}
	entry.LeaderEpoch = epoch
	u := &pendingUpload{entry: entry, end: info.EndOffset, started: time.Now(), done: make(chan struct{})}
	if err := m.store.StartSegmentCopy(ctx, name.TopicID, name.Partition, entry); err != nil {
		return nil, fmt.Errorf("commit copy started of segment %d: %w", entry.BaseOffset, err)
	}
	// The state at the end of this segment is the next one's start,
	// whether or not this upload succeeds (it is the local log's).
	t.producers, t.producersEnd = snapshot, info.EndOffset
	go func() {
		defer close(u.done)
		if staging != "" {
			defer os.RemoveAll(staging)
		}
		u.err = m.tier.UploadDescribed(uploadCtx, files, entry)
	}()
	return u, nil
}

// finishUpload commits "copy finished" of an uploaded segment, after every
// earlier one's.
func (m *Manager) finishUpload(ctx context.Context, p *partition.Partition, u *pendingUpload) error {
	name := p.Name()
	entry := u.entry
	ref := metadata.SegmentRef{TopicID: name.TopicID, Partition: name.Partition, BaseOffset: entry.BaseOffset, SegmentID: entry.SegmentID, LeaderEpoch: entry.LeaderEpoch}
	if err := m.store.FinishSegmentCopy(ctx, ref); err != nil {
		return fmt.Errorf("commit copy finished of segment %d: %w", entry.BaseOffset, err)
	}
	// Local disk holds no more than local retention and the upload
	// backlog: what local retention already covers goes now, not at the
	// next retention pass (log.retention.check.interval.ms).
	if p.RefreshRetentionLimit(m.store.State()) {
		p.EnforceRetention()
	}
	m.metrics.uploadedSegments.WithLabelValues(name.Topic).Inc()
	m.metrics.uploadedBytes.WithLabelValues(name.Topic).Add(float64(entry.SizeBytes))
	m.metrics.setLag(name, m.lag(p))
	p.Logger().Info("uploaded segment", "base_offset", entry.BaseOffset, "last_offset", entry.LastOffset,
		"bytes", entry.SizeBytes, "segment_id", uuid.UUID(entry.SegmentID), "leader_epoch", entry.LeaderEpoch, "took", time.Since(u.started).Round(time.Millisecond))
	return nil
}

// segmentAbortedTxns returns the aborted transactions whose ABORT marker is
// in from..end-1, in marker order: the uploaded range's .txnindex (a
// trimmed copy leaves out the entries of markers before from, which the
// previous upload holds).
func segmentAbortedTxns(p *partition.Partition, from, end int64) []segment.AbortedTxn {
	var out []segment.AbortedTxn
	for _, t := range p.AbortedTransactions(from, end) {
		if t.LastOffset >= from && t.LastOffset < end {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b segment.AbortedTxn) int { return cmp.Compare(a.LastOffset, b.LastOffset) })
	return out
}

// producerSnapshot returns the producer-state snapshot at end: the state at
// base (the end of the previous upload, kept by the task or read from the
// previous remote segment's .producers object) with the batches from base
// to end applied. Without a previous upload ending at base (the first one,
// or the first after uploads resumed past a gap) it is the local replica's
// state at end, which holds the producers known only from records local
// retention deleted before they could be uploaded.
func (m *Manager) producerSnapshot(ctx context.Context, p *partition.Partition, t *task, base, end int64) ([]byte, error) {
	name := p.Name()
	var data []byte
	previous := t.producersEnd == base
	switch {
	case previous:
		data = t.producers
	case base > 0:
		if segment, ok := m.store.State().SegmentContaining(name.TopicID, name.Partition, base-1); ok && segment.LastOffset == base-1 {
			previous = true
			var err error
			if data, err = m.tier.ReadProducerSnapshot(ctx, name, segment); err != nil {
				return nil, fmt.Errorf("producer state of the previous remote segment: %w", err)
			}
		}
	}
	var state *producer.State
	if previous {
		state = producer.NewState()
		if len(data) > 0 {
			var err error
			if state, err = producer.ReadSnapshot(bytes.NewReader(data)); err != nil {
				return nil, fmt.Errorf("producer state at %d: %w", base, err)
			}
		}
		if err := p.ReplayProducers(state, base, end); err != nil {
			return nil, fmt.Errorf("producer state from %d to %d: %w", base, end, err)
		}
	} else {
		var err error
		if state, err = p.ProducerStateAt(end); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := state.WriteSnapshot(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copySegmentRange writes the batches of src from the one holding from (a
// log start set by DeleteRecords may fall inside a batch) up to to (a batch
// boundary) as one segment of a new log in dir and returns its files: its
// base offset is that batch's.
func copySegmentRange(src interface {
	Read(offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error)
}, dir string, from, to int64, log *slog.Logger) (segment.SegmentInfo, error) {
	var dst *segment.Log
	defer func() {
		if dst != nil {
			dst.Close()
		}
	}()
	for offset := from; offset < to; offset = dst.EndOffset() {
		data, err := src.Read(offset, 4<<20, to, true)
		if err != nil {
			return segment.SegmentInfo{}, err
		}
		if len(data) == 0 {
			return segment.SegmentInfo{}, fmt.Errorf("no batches at offset %d below %d", offset, to)
		}
		spans, err := recordbatch.Split(data)
		if err != nil {
			return segment.SegmentInfo{}, err
		}
		batches := make([]segment.AppendBatch, len(spans))
		for i, span := range spans {
			h, err := recordbatch.ParseHeader(data[span.Position:])
			if err != nil {
				return segment.SegmentInfo{}, err
			}
			batches[i] = segment.AppendBatch{Position: int32(span.Position), Length: int32(span.Length),
				LastOffsetDelta: h.LastOffsetDelta, MaxTimestamp: h.MaxTimestamp, Records: h.NumRecords}
			if dst == nil {
				if dst, err = segment.Open(dir, h.BaseOffset, segment.Config{SegmentBytes: math.MaxInt32, SegmentAge: time.Duration(math.MaxInt64),
					RetentionAge: -1, RetentionBytes: -1, Logger: log}); err != nil {
					return segment.SegmentInfo{}, err
				}
			}
		}
		if _, _, err := dst.Append(data, batches); err != nil {
			return segment.SegmentInfo{}, err
		}
	}
	if dst == nil {
		return segment.SegmentInfo{}, fmt.Errorf("no batches from offset %d below %d", from, to)
	}
	if err := dst.Flush(); err != nil {
		return segment.SegmentInfo{}, err
	}
	infos := dst.Segments()
	if len(infos) != 1 || infos[0].EndOffset != to {
		return segment.SegmentInfo{}, fmt.Errorf("trimmed copy holds %d segments ending at %d, want one ending at %d", len(infos), dst.EndOffset(), to)
	}
	return infos[0], nil
}
