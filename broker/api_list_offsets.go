package broker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// ListOffsets v0 (the "offsets before" form older tools such as Burrow
// still send) through v11, Kafka 4.2's newest: v1 a single offset and its
// timestamp (kafka-python), v4 its leader epoch (KIP-320, as Kafka answers
// it: offsetForTimestamp), v7 max timestamp (KIP-734), v8 earliest local
// (-4), v9 latest tiered (-5) (KIP-405, KIP-1005), v10 a timeout for
// remote lookups (KIP-1075; Strata's own bound, remoteFetchTimeout,
// applies), v11 earliest pending upload (-6, KIP-1023).
func init() { register(0, 11, handleListOffsets) }

// Special ListOffsets timestamps.
const (
	listLatest        = -1
	listEarliest      = -2
	listMaxTimestamp  = -3
	listEarliestLocal = -4
	listLatestTiered  = -5
	// listEarliestPendingUpload is the first offset not in the object
	// store yet (v11): the remote log end plus one, the local log start
	// while nothing is uploaded, -1 on a topic that is not tiered.
	listEarliestPendingUpload = -6
)

func handleListOffsets(c *clientConn, h requestHeader, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	state := s.cfg.Metadata.State()
	if s.afterRequestState != nil {
		s.afterRequestState(req.Key())
	}
	// A replica id is a follower's (not held back by KIP-207 below) only
	// from a connection that may replicate (interbroker.go); anyone
	// else's request is answered as a consumer's.
	replicaID := req.ReplicaID
	if replicaID >= 0 && !c.replicaAllowed(replicaID) {
		replicaID = -1
	}
	for _, rt := range req.Topics {
		out := kmsg.NewListOffsetsResponseTopic()
		out.Topic = rt.Topic
		topic, _ := state.Topic(rt.Topic) // the zero Topic when it does not exist
		described := c.authorized(authz.OpDescribe, authz.ResourceTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			p.Timestamp = -1
			p.Offset = -1
			switch part, code := s.leaderPartition(topic, rp.Partition, rp.CurrentLeaderEpoch); {
			case !described:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case part == nil:
				p.ErrorCode = code
			default:
				// A failed log (an fsync or a write failed) is offline on
				// this broker, as a replica in a failed log directory is in
				// Kafka: its high watermark is frozen at what it had fsynced
				// while the partition moves on on another replica, and its
				// metadata may be stalled by the same disk (so it may still
				// think it leads), so no offset it answers can be trusted.
				if part.LogFailed() != nil {
					p.ErrorCode = kerr.KafkaStorageError.Code
					break
				}
				available := part.OffsetsAvailable()
				if code := offsetsNotAvailable(req.Version, replicaID, rp.Timestamp, -1, 0, available); code != 0 {
					p.ErrorCode = code
					break
				}
				// The log starts and the remote data from the metadata
				// read after the local log start, not state (read before:
				// it may lack an upload whose local copies local retention
				// has deleted since).
				starts := part.ReadLogStarts(s.cfg.Metadata.State)
				if s.afterLogStarts != nil {
					s.afterLogStarts(req.Key())
				}
				if req.Version == 0 {
					p.OldStyleOffsets = legacyOffsets(part.Segments(), starts.Log, part.HighWatermark(), rp.Timestamp, rp.MaxNumOffsets, time.Now().UnixMilli())
					break
				}
				offset, ts, epoch, err := s.offsetForTimestamp(starts, part, rp.Timestamp)
				if err != nil {
					part.Logger().Error("list offsets failed", "timestamp", rp.Timestamp, "err", err)
					p.ErrorCode = kerr.KafkaStorageError.Code
					break
				}
				if code := offsetsNotAvailable(req.Version, replicaID, rp.Timestamp, offset, part.HighWatermark(), available); code != 0 {
					p.ErrorCode = code
					break
				}
				if req.Version >= 2 && req.IsolationLevel == 1 {
					offset, ts = readCommittedOffset(part.LastStableOffsetFrom(starts.Log), rp.Timestamp, offset, ts)
				}
				if offset < 0 {
					epoch = -1 // nothing found, or not stable yet: no epoch, as Kafka
				}
				p.Offset, p.Timestamp, p.LeaderEpoch = offset, ts, epoch
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// readCommittedOffset is a READ_COMMITTED answer (v2+, isolation level 1),
// as Kafka's: the latest offset is the last stable offset, and an offset
// found by timestamp (or max timestamp) counts only below it; the log
// start answers stay.
func readCommittedOffset(lastStable, requested, offset, timestamp int64) (int64, int64) {
	switch {
	case requested == listLatest:
		return lastStable, -1
	case (requested >= 0 || requested == listMaxTimestamp) && offset >= lastStable:
		return -1, -1
	}
	return offset, timestamp
}

// offsetsNotAvailable is the error a leader answers a client's ListOffsets
// with while its high watermark has not reached the log end it had when it
// started leading (KIP-207; available: partition.OffsetsAvailable), as
// Kafka does: OFFSET_NOT_AVAILABLE from v5 on, LEADER_NOT_AVAILABLE before
// (both retriable). It is asked before the answer is looked up (offset -1)
// and after, with the answer's offset and the high watermark: the latest
// offset and any v0 answer are refused, and another answer (a timestamp's,
// the latest tiered) when it is not below the high watermark; so the
// latest offset never goes backwards when leadership moves or the leader
// restarts, and no offset answered exceeds the high watermark. Replicas
// are not held back. 0 when the answer may go out.
func offsetsNotAvailable(version int16, replicaID int32, timestamp, offset, highWatermark int64, available bool) int16 {
	switch {
	case available || replicaID >= 0:
		return 0
	case version > 0 && timestamp != listLatest && (offset < 0 || offset < highWatermark):
		return 0
	case version >= 5:
		return kerr.OffsetNotAvailable.Code
	}
	return kerr.LeaderNotAvailable.Code
}

// legacyOffsets answers ListOffsets v0 for one partition as Kafka's
// "offsets before" does: the candidate offsets are each segment's base
// offset (at least the log start), stamped with the segment's newest
// timestamp, then the log end stamped now; latest (-1) starts from the
// newest candidate, earliest (-2) is the first alone, any other timestamp
// starts from the newest candidate stamped at or before it. Up to
// maxOffsets offsets are returned, newest first, and none above the high
// watermark: the high watermark takes the place of those above it.
// (Kafka stamps a segment with its file's modification time; the newest
// record's timestamp is the portable equivalent. Tiered segments are not
// candidates, but the log start includes them.)
func legacyOffsets(segments []segment.SegmentInfo, logStart, highWatermark, timestamp int64, maxOffsets int32, now int64) []int64 {
	type candidate struct{ offset, stamp int64 }
	candidates := make([]candidate, 0, len(segments)+1)
	for _, seg := range segments {
		candidates = append(candidates, candidate{max(seg.BaseOffset, logStart), seg.MaxTimestamp})
	}
	if n := len(segments); n > 0 && segments[n-1].Size > 0 {
		candidates = append(candidates, candidate{segments[n-1].EndOffset, now})
	}
	start := len(candidates) - 1
	switch timestamp {
	case listLatest:
	case listEarliest:
		start = min(start, 0)
	default:
		for start >= 0 && candidates[start].stamp > timestamp {
			start--
		}
	}
	count := max(min(int(maxOffsets), start+1), 0)
	offsets := make([]int64, 0, count+1)
	for i := start; i > start-count; i-- {
		offsets = append(offsets, candidates[i].offset)
	}
	slices.SortFunc(offsets, func(a, b int64) int { return cmp.Compare(b, a) })
	if slices.ContainsFunc(offsets, func(o int64) bool { return o > highWatermark }) {
		kept := slices.DeleteFunc(offsets, func(o int64) bool { return o > highWatermark })
		offsets = append([]int64{highWatermark}, kept...)
	}
	return offsets
}

// offsetForTimestamp answers ListOffsets for one partition: the offset and
// timestamp for the special values, else the first record with a timestamp
// at or after ts below the high watermark, or (-1, -1) when there is none;
// with the leader epoch Kafka answers (v4+): for the special offsets but
// the latest, the epoch covering the offset in p's epoch cache
// (Partition.EpochAt, Kafka's epochForOffset), which holds the epochs of
// the remote records too; the latest's and a found record's as
// Partition.OffsetForTimestamp — for a record in the object store, its
// batch's partitionLeaderEpoch as read there.
// Earliest and timestamps include the data in the object store. starts
// are p's (ReadLogStarts); a timestamp is searched with log starts read
// after its local search.
func (s *Server) offsetForTimestamp(starts partition.LogStarts, p *partition.Partition, ts int64) (offset, timestamp int64, epoch int32, err error) {
	state := starts.State
	// The local log start never below the log start, as Kafka's: a
	// replica's may lag the quorum's until it follows it
	// (FollowQuorumLogStart), and the records in between are deleted.
	localStart := max(starts.Local, starts.Log)
	switch ts {
	case listEarliest:
		return starts.Log, -1, p.EpochAt(starts.Log), nil
	case listEarliestLocal:
		return localStart, -1, p.EpochAt(localStart), nil
	case listLatestTiered:
		// The end of the readable remote data, -1 without any: also once
		// retention deleted every remote segment, where Kafka answers the
		// highest offset it ever copied (docs/architecture.md, "Tiered
		// storage"; replica.restartFromTier relies on this meaning).
		if _, end, ok := state.RemoteLogOffsets(p.TopicID(), p.Index()); ok {
			return end, -1, p.EpochAt(end), nil
		}
		return -1, -1, -1, nil
	case listEarliestPendingUpload:
		switch _, end, ok := state.RemoteLogOffsets(p.TopicID(), p.Index()); {
		case !p.Config().RemoteStorage:
			return -1, -1, -1, nil
		case ok:
			return end + 1, -1, p.EpochAt(end + 1), nil
		default:
			return localStart, -1, p.EpochAt(localStart), nil
		}
	}
	if ts >= 0 && s.cfg.RemoteReader != nil {
		// The local log first, then the remote segments below the local
		// log start read after it (ReadLogStarts): local retention deletes
		// only uploaded segments, so one the local search did not see is
		// in the state read after. The other way round (or with starts), a
		// segment uploaded and deleted locally between the two searches
		// was in neither, and a later offset was answered.
		localOffset, localTimestamp, localEpoch, localErr := p.OffsetForTimestamp(ts, starts.Log)
		if offset, timestamp, epoch, found, err := s.remoteOffsetForTimestamp(p.ReadLogStarts(s.cfg.Metadata.State), p, ts); err != nil || found {
			return offset, timestamp, epoch, err
		}
		return localOffset, localTimestamp, localEpoch, localErr
	}
	return p.OffsetForTimestamp(ts, starts.Log)
}

// remoteOffsetForTimestamp looks for ts in the remote segments below the
// local log start: the first segment whose largest timestamp reaches ts,
// read batch by batch from where its time index points. epoch is the
// found record's batch's partitionLeaderEpoch.
func (s *Server) remoteOffsetForTimestamp(starts partition.LogStarts, p *partition.Partition, ts int64) (offset, timestamp int64, epoch int32, found bool, err error) {
	localStart, logStart := starts.Local, starts.Log
	ctx, cancel := context.WithTimeout(s.ctx, remoteFetchTimeout)
	defer cancel()
	// The first segment whose largest timestamp reaches ts holds the
	// answer, unless only records below the log start reach it there:
	// then the next such segment.
	for from := logStart; ; {
		var target *metadata.SegmentManifest
		starts.State.EachSegment(p.TopicID(), p.Index(), from, func(e metadata.SegmentManifest) bool {
			if e.BaseOffset >= localStart {
				return false
			}
			// Records below the log start (DeleteRecords) are not searched.
			if e.State == metadata.SegmentCopyFinished && e.MaxTimestamp >= ts && e.LastOffset >= from {
				target = &e
				return false
			}
			return true
		})
		if target == nil {
			return -1, -1, -1, false, nil
		}
		if offset, timestamp, epoch, found, err = s.remoteSegmentOffsetForTimestamp(ctx, p, *target, logStart, ts); err != nil || found {
			return offset, timestamp, epoch, found, err
		}
		from = target.LastOffset + 1
	}
}

// remoteSegmentOffsetForTimestamp looks for ts in one remote segment, at
// or after logStart.
func (s *Server) remoteSegmentOffsetForTimestamp(ctx context.Context, p *partition.Partition, target metadata.SegmentManifest, logStart, ts int64) (offset, timestamp int64, epoch int32, found bool, err error) {
	// The remote time index says where to start; batches are read from
	// there, not from the segment's start.
	next, err := s.cfg.RemoteReader.TimestampStart(ctx, p.Name(), target, ts)
	if err != nil {
		return -1, -1, -1, false, err
	}
	next = max(next, logStart)
	for next <= target.LastOffset {
		batches, err := s.cfg.RemoteReader.Read(ctx, p.Name(), target, next, 1<<20, true)
		if err != nil {
			return -1, -1, -1, false, err
		}
		// A search by timestamp is rare: one copy, so that each batch
		// is one slice for RecordAtTimestamp.
		data := batches.AppendTo(nil)
		batches.Release()
		spans, err := recordbatch.Split(data)
		if err != nil || len(spans) == 0 {
			return -1, -1, -1, false, fmt.Errorf("remote segment %d at offset %d: %d batches, %v", target.BaseOffset, next, len(spans), err)
		}
		for _, sp := range spans {
			batch := data[sp.Position : sp.Position+sp.Length]
			h, err := recordbatch.ParseHeader(batch)
			if err != nil {
				return -1, -1, -1, false, err
			}
			next = h.LastOffset() + 1
			if h.MaxTimestamp < ts {
				continue
			}
			// A batch may straddle the log start: nothing below it.
			offset, timestamp, err := recordbatch.RecordAtTimestamp(batch, h, ts, false, logStart)
			if err != nil || offset >= 0 {
				return offset, timestamp, h.PartitionLeaderEpoch, err == nil, err
			}
		}
	}
	return -1, -1, -1, false, nil
}
