package partition

import (
	"log/slog"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// TopicID is the id of the topic the directory belongs to.
func (p *Partition) TopicID() [16]byte { return p.topicID }

// Index is the partition's number within its topic.
func (p *Partition) Index() int32 { return p.index }

// Name is the partition's topic, topic id and index: what its tiered
// segments are stored under.
func (p *Partition) Name() metadata.TopicPartition {
	return metadata.TopicPartition{Topic: p.topic, TopicID: p.topicID, Partition: p.index}
}

// Logger logs with the partition's topic and index.
func (p *Partition) Logger() *slog.Logger { return p.log }

// Leading reports whether this broker leads the partition (as of the last
// ApplyAssignment).
func (p *Partition) Leading() bool { return p.leading.Load() }

// LeaderEpoch is the leader epoch of the last ApplyAssignment.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// HighWatermark is the offset below which records are committed:
// consumers read below it.
func (p *Partition) HighWatermark() int64 { return p.highWatermark.Load() }

// LogStartOffset is the first offset of the local log.
func (p *Partition) LogStartOffset() int64 { return p.segments.StartOffset() }

// LogEndOffset is the offset the next append gets.
func (p *Partition) LogEndOffset() int64 { return p.segments.EndOffset() }

// Size is the bytes of the local log's segments.
func (p *Partition) Size() int64 { return p.segments.Size() }

// Config is the topic's resolved configs as last set.
func (p *Partition) Config() topicconfig.Values { return *p.config.Load() }

// Segments describes the local log's segments, oldest first.
func (p *Partition) Segments() []segment.SegmentInfo { return p.segments.Segments() }

// Read returns whole batches from offset, at most maxBytes of them (the
// first whole even when larger, with minOneBatch, as KIP-74 asks) and none
// at or past upTo (the high watermark for consumers, the log end for
// followers).
func (p *Partition) Read(offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error) {
	return p.segments.Read(offset, maxBytes, upTo, minOneBatch)
}

// ReadBuffered is Read into a buffer lent by bufs, which the caller gives
// back once nothing refers to the result (segment.Log.ReadBuffered).
func (p *Partition) ReadBuffered(bufs segment.Buffers, offset int64, maxBytes int32, upTo int64, minOneBatch bool) ([]byte, error) {
	return p.segments.ReadBuffered(bufs, offset, maxBytes, upTo, minOneBatch)
}

// Special ListOffsets timestamps OffsetForTimestamp answers (Kafka's).
const (
	LatestTimestamp     = -1
	EarliestTimestamp   = -2
	MaxTimestamp        = -3
	EarliestLocalOffset = -4
)

// OffsetForTimestamp answers ListOffsets from the local log: the offset
// (and its timestamp) for the special timestamps above, else the first
// record with a timestamp at or after ts below the high watermark and at
// or after logStart, or (-1, -1) when there is none; with the leader epoch
// Kafka's ListOffsets v4+ answers with it: the current leader epoch for the
// latest offset, the epoch covering the offset for the log starts
// (EpochAt), and for a record found by timestamp (or max timestamp) its
// batch's partitionLeaderEpoch (-1 when not found). logStart is the log
// start committed in the quorum (ReadLogStarts; 0 when none), which this
// replica's local log start may lag until it follows it
// (FollowQuorumLogStart): no record below either is answered.
func (p *Partition) OffsetForTimestamp(ts, logStart int64) (offset, timestamp int64, epoch int32, err error) {
	highWatermark := p.HighWatermark()
	switch ts {
	case LatestTimestamp:
		return highWatermark, -1, p.LeaderEpoch(), nil
	case EarliestTimestamp, EarliestLocalOffset:
		start := p.segments.StartOffset()
		return start, -1, p.EpochAt(start), nil
	case MaxTimestamp:
		batch, found, err := p.segments.MaxTimestampBatch()
		return recordBelow(batch, found, err, highWatermark, -1, true, max(p.segments.StartOffset(), logStart))
	}
	if ts < 0 {
		return -1, -1, -1, nil
	}
	batch, found, err := p.segments.FindTimestamp(ts, logStart)
	for {
		// The log start read after the search (it only moves up): the
		// batch found may straddle it (DeleteRecords inside a batch), and
		// no record below it is answered, as in Kafka.
		offset, timestamp, epoch, err = recordBelow(batch, found, err, highWatermark, ts, false, max(p.segments.StartOffset(), logStart))
		if err != nil || offset >= 0 || !found {
			return offset, timestamp, epoch, err
		}
		var h recordbatch.Header
		if h, err = recordbatch.ParseHeader(batch); err != nil || h.BaseOffset >= highWatermark {
			return -1, -1, -1, err
		}
		// Only records below the log start reach ts in this batch: the
		// search goes on after it.
		batch, found, err = p.segments.FindTimestamp(ts, h.LastOffset()+1)
	}
}

// recordBelow finds the record of a batch the log found (at timestamp ts,
// or -1 for the batch's max timestamp; exact as RecordAtTimestamp) when
// the batch starts below the high watermark, at or after logStart, with
// the batch's leader epoch, else (-1, -1, -1).
func recordBelow(batch []byte, found bool, err error, highWatermark, ts int64, exact bool, logStart int64) (offset, timestamp int64, epoch int32, _ error) {
	if err != nil || !found {
		return -1, -1, -1, err
	}
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return -1, -1, -1, err
	}
	if h.BaseOffset >= highWatermark {
		return -1, -1, -1, nil
	}
	if ts < 0 {
		ts = h.MaxTimestamp
	}
	offset, timestamp, err = recordbatch.RecordAtTimestamp(batch, h, ts, exact, logStart)
	if offset < 0 {
		return offset, timestamp, -1, err
	}
	return offset, timestamp, h.PartitionLeaderEpoch, err
}
