package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/replica"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// Fetch v4 (the oldest librdkafka and kafka-python send) through v15
// (v13: topic ids; v14: OFFSET_MOVED_TO_TIERED_STORAGE may be answered to
// followers; v15: a follower names itself in ReplicaState with its broker
// epoch, KIP-903; v12: a follower states the epoch of its last batch,
// LastFetchedEpoch, and is answered DivergingEpoch when its log does not
// agree with this leader's, KIP-595), v16 (KIP-951: a partition answered
// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names its current leader and
// epoch, and the response the leaders' addresses), v17 and v18 (a
// follower's directory id, KIP-853, and high watermark, KIP-1166: tagged
// fields Strata's followers neither send nor need) — Kafka 4.2's range.
// Fetch sessions (KIP-227) are not created: every
// response is a full one with session id 0, which clients treat as "no
// session".
func init() { register(4, 18, handleFetch) }

// leaderPartition returns the local partition when this broker leads it at
// the leader epoch the client knows (-1: any), or the error code to answer:
// UNKNOWN_TOPIC_OR_PARTITION when topic (the zero Topic when it does not
// exist) has no such partition, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH
// or UNKNOWN_LEADER_EPOCH.
func (s *Server) leaderPartition(topic metadata.Topic, index, currentLeaderEpoch int32) (*partition.Partition, int16) {
	if !topic.HasPartition(index) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	part := s.partitions.get(topic, index)
	if part == nil || !part.Leading() {
		return nil, kerr.NotLeaderForPartition.Code
	}
	if code := checkLeaderEpoch(currentLeaderEpoch, part.LeaderEpoch()); code != 0 {
		return nil, code
	}
	return part, 0
}

// checkLeaderEpoch compares a client's idea of the leader epoch with ours
// (KIP-320): an older one is fenced, a newer one is unknown to this leader.
func checkLeaderEpoch(requested, current int32) int16 {
	switch {
	case requested == -1 || requested == current:
		return 0
	case requested < current:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}

type fetchTarget struct {
	topicIndex     int
	partitionIndex int
	part           *partition.Partition
	offset         int64
	maxBytes       int32
	errorCode      int16
	// replica reads up to the log end (a follower), not the high watermark.
	replica bool
	// readCommitted (isolation_level 1, consumers only) reads up to the
	// last stable offset and lists the aborted transactions it returns.
	readCommitted bool
	// remote is set for a consumer's offset below the local log start held
	// by the object store; remoteData or remoteErr is its read, done once
	// before the response is filled. remoteData lies in the remote
	// reader's chunk buffers until released (fetchResponse.release, or
	// handleFetch on any other way out).
	remote     *metadata.SegmentManifest
	remoteData *recordbatch.Batches
	remoteErr  error
	// remoteChunkBytes is what the chunk buffers remoteData lies in hold
	// from where it starts (their capacity), as read (before any cut).
	remoteChunkBytes int64
	// remoteRefused is set while the remote reader's queue is full or
	// the remote fetch quota throttles (answered empty): a long poll
	// asks again (retryRefusedRemote).
	remoteRefused bool
	// remoteAborted are the aborted transactions overlapping remoteData
	// (read_committed).
	remoteAborted []segment.AbortedTxn
	// logStart is the partition's log start offset, remote data included.
	logStart int64
	// localStart is the local log start offset when the Fetch planned its
	// read (localOutOfRange).
	localStart int64
	// diverging is set for a follower whose log does not agree with this
	// leader's below its fetch offset: it is answered this epoch and its
	// end here (DivergingEpoch), and no records.
	diverging *partition.EpochEnd
	// throttle is the leader's replication throttle when the fetching
	// follower is an adding replica of a reassignment (nil: not throttled).
	throttle *replica.Throttle
}

// fetchResponse is a Fetch response whose remote partitions' records are
// not in RecordBatches but held in the remote reader's chunk buffers:
// encodeFetchFrame writes their buffers as separate iovecs, and release,
// which the connection's writer calls once the frame is written (or
// dropped: the connection failed or closed), gives every remote read of
// the Fetch back, those left out of the response too.
type fetchResponse struct {
	*kmsg.FetchResponse
	remote fetchRecords
	// reserved is the room its records, local and remote, hold in the
	// response memory (nil: none); release gives it back too.
	reserved *responseReservation
	release  func()
}

// fetchRecords are the remote records of a Fetch response by topic and
// partition index (only those with bytes).
type fetchRecords map[[2]int]*recordbatch.Batches

func handleFetch(c *clientConn, h requestHeader, req *kmsg.FetchRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.SessionID != 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil
	}
	var targets []fetchTarget
	// The remote reads go back to the reader unless the response that
	// holds them is handed to the connection (which then releases them):
	// a throttled response, a panic or any early return drops them here.
	var handed *fetchResponse
	// reserved is the room the records read, remote and local, hold in
	// the server's response memory (queued.max.response.bytes), given
	// back with the remote reads.
	var reserved *responseReservation
	defer func() {
		if handed == nil {
			releaseRemote(targets)
			reserved.release()
		}
	}()
	state := s.cfg.Metadata.State()
	if s.afterRequestState != nil {
		s.afterRequestState(req.Key())
	}
	// A follower fetching to replicate: Kafka's replica id (v0-14), or
	// ReplicaState with the follower's broker epoch (v15+; -1 before).
	replicaID, replicaEpoch := req.ReplicaID, int64(-1)
	if req.Version >= 15 {
		replicaID, replicaEpoch = req.ReplicaState.ID, req.ReplicaState.Epoch
	}
	// A fetch from an earlier registration of the follower (a stale broker
	// epoch: the broker has registered again since) is served, but its
	// offset counts for nothing: neither the high watermark nor an ISR
	// expansion (KIP-903).
	staleReplica := false
	if replicaID >= 0 && replicaEpoch >= 0 {
		if b, ok := state.Broker(replicaID); ok && replicaEpoch < b.Epoch {
			staleReplica = true
		}
	}
	// A follower's fetch comes from a broker (or, under --authorizer acl,
	// a principal with CLUSTER_ACTION; interbroker.go), a consumer's needs
	// READ on each topic (else TOPIC_AUTHORIZATION_FAILED per partition,
	// and a refused follower's state does not move).
	replicaAllowed := replicaID < 0 || c.replicaAllowed(replicaID)
	now := time.Now()
	for ti, rt := range req.Topics {
		out := kmsg.NewFetchResponseTopic()
		var topic metadata.Topic
		var exists bool
		if req.Version >= 13 {
			out.TopicID = rt.TopicID
			topic, exists = state.TopicByID(rt.TopicID)
		} else {
			out.Topic = rt.Topic
			topic, exists = state.Topic(rt.Topic)
		}
		name := rt.Topic
		if req.Version >= 13 {
			name = topic.Name
		}
		allowed := replicaAllowed && (replicaID >= 0 || c.authorized(authz.OpRead, authz.ResourceTopic, name))
		// As Kafka (KIP-110): a consumer's Fetch older than v10 cannot
		// decode zstd, so a topic with compression.type=zstd answers it
		// UNSUPPORTED_COMPRESSION_TYPE for each partition this broker
		// leads, without reading. Followers fetch with v10+.
		zstdRefused := false
		if req.Version < 10 && replicaID < 0 {
			compression, _ := topicconfig.Resolve(s.cfg.TopicDefaults, topic.Configs, topicconfig.CompressionType)
			zstdRefused = compression == "zstd"
		}
		for pi, rp := range rt.Partitions {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rp.Partition
			t := fetchTarget{topicIndex: ti, partitionIndex: pi, offset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes}
			switch {
			case !exists && req.Version >= 13:
				t.errorCode = kerr.UnknownTopicID.Code
			case !allowed:
				t.errorCode = kerr.TopicAuthorizationFailed.Code
			default:
				t.part, t.errorCode = s.leaderPartition(topic, rp.Partition, rp.CurrentLeaderEpoch)
				if t.part != nil && zstdRefused {
					t.part, t.errorCode = nil, kerr.UnsupportedCompressionType.Code
				}
				if t.part != nil && replicaID >= 0 {
					t.replica = true
					if leaderThrottled(topic, rp.Partition, s.cfg.NodeID, replicaID) {
						t.throttle = s.leaderThrottle
					}
				}
				t.readCommitted = !t.replica && req.IsolationLevel == 1
				position := partition.FetchPosition{Offset: rp.FetchOffset, LastFetchedEpoch: -1}
				if req.Version >= 12 {
					position.LastFetchedEpoch = rp.LastFetchedEpoch
				}
				switch {
				case t.replica && staleReplica:
					// Its offset counts for nothing, but its log is
					// checked all the same: no records on a divergent log.
					var err error
					if t.diverging, err = t.part.DivergingEpoch(position); errors.Is(err, segment.ErrOffsetOutOfRange) {
						t.part, t.errorCode = nil, kerr.OffsetOutOfRange.Code
					}
				case t.replica:
					expand, diverging, err := t.part.FollowerFetchedAt(replicaID, position, replicaEpoch, now)
					t.diverging = diverging
					switch {
					case errors.Is(err, segment.ErrOffsetOutOfRange):
						t.part, t.errorCode = nil, kerr.OffsetOutOfRange.Code
					case err != nil:
						c.log.Debug("replica fetch refused", "topic", topic.Name, "partition", rp.Partition, "replica", replicaID, "err", err)
						t.part, t.errorCode = nil, kerr.NotLeaderForPartition.Code
					case expand != nil:
						s.isr.Expand(t.part, expand)
					}
					if err == nil && req.Version >= 5 {
						t.part.FollowerLogStart(replicaID, rp.LogStartOffset)
					}
				}
			}
			if t.part != nil {
				// The log start and the remote data from the metadata read
				// after the local log start (an atomic load), not state:
				// read before, it may lack an upload whose local copies
				// local retention has deleted since.
				starts := t.part.ReadLogStarts(s.cfg.Metadata.State)
				t.logStart = starts.Log
				if !t.replica && t.errorCode == 0 && t.offset < t.logStart {
					// Deleted records (DeleteRecords) or expired ones.
					t.errorCode = kerr.OffsetOutOfRange.Code
				}
				t.localStart = t.part.LogStartOffset()
				if t.errorCode == 0 && t.diverging == nil && t.offset < t.localStart && s.cfg.RemoteReader != nil {
					remoteState := starts.State
					if t.localStart != starts.Local {
						// Local retention has moved it up since: the
						// metadata read after holds what it deleted.
						remoteState = s.cfg.Metadata.State()
					}
					if e, ok := remoteState.SegmentContaining(topic.ID, rp.Partition, t.offset); ok {
						if t.replica {
							// Followers start from the leader's local log
							// (ListOffsets -4), not from the object store.
							t.part, t.errorCode = nil, kerr.OffsetMovedToTieredStorage.Code
						} else {
							t.remote = &e
						}
					}
				}
			}
			p.ErrorCode = t.errorCode
			out.Partitions = append(out.Partitions, p)
			targets = append(targets, t)
		}
		resp.Topics = append(resp.Topics, out)
	}
	if s.afterLogStarts != nil {
		s.afterLogStarts(req.Key())
	}

	maxBytes := min(req.MaxBytes, s.cfg.FetchMaxBytes)
	if replicaID < 0 {
		// As Kafka: a consumer with a quota gets at most what its quota
		// allows over the window, so that one response can fit in it.
		if window, ok := s.quotas.MaxBytesPerWindow(state, quota.Fetch, c.quotaClient(h)); ok {
			maxBytes = int32(min(int64(maxBytes), max(window, 1)))
		}
	}
	// As Kafka: min bytes beyond what the response may carry (its max
	// bytes, the broker's or a quota's cap) would wait out every max wait.
	minBytes := min(req.MinBytes, maxBytes)
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	reserved = s.readRemoteReserved(c.ctx, targets, maxBytes, !localDataBefore(targets, slices.IndexFunc(targets, func(t fetchTarget) bool { return t.remote != nil })), deadline)
	wake := make(chan struct{}, 1)
	// A diverging follower is answered at once (as Kafka does): it
	// truncates before it can fetch anything.
	waiting := req.MaxWaitMillis > 0 && minBytes > 0 && !slices.ContainsFunc(targets, func(t fetchTarget) bool { return t.diverging != nil })
	if waiting {
		for _, t := range targets {
			if t.part != nil {
				t.part.AddWaiter(wake)
				defer t.part.RemoveWaiter(wake)
			}
		}
	}
	var timer *time.Timer
	var retry refusedRetry
	defer retry.stop()
	remote := make(fetchRecords)
	for {
		var total int
		total, reserved = s.fillFetchReserved(c.ctx, resp, targets, maxBytes, remote, replicaID >= 0, deadline, reserved)
		// Remote records answer at once, as Kafka answers once its
		// delayed remote fetch completes: they are all the remote
		// partitions can bring (read once), waiting for MinBytes adds
		// nothing to them and would hold a replay for the max wait.
		if !waiting || total >= int(minBytes) || len(remote) > 0 || answersError(resp) || movedToTier(targets) || !time.Now().Before(deadline) {
			if replicaID < 0 {
				// A consumer over its quota is answered empty, as Kafka
				// does, and its bytes are not counted.
				if throttle := s.quotas.RecordUnlessThrottled(s.cfg.Metadata.State(), quota.Fetch, c.quotaClient(h), int64(total)); throttle > 0 {
					c.throttle(throttle)
					throttled := req.ResponseKind().(*kmsg.FetchResponse)
					throttled.ThrottleMillis = int32(throttle.Milliseconds())
					return throttled, nil
				}
			}
			for _, t := range targets {
				fromRemote := remote[[2]int{t.topicIndex, t.partitionIndex}].Len()
				if fromRemote > 0 {
					s.metrics.remoteReadBytes.WithLabelValues(t.part.Topic()).Add(float64(fromRemote))
				}
				if n := len(resp.Topics[t.topicIndex].Partitions[t.partitionIndex].RecordBatches) + fromRemote; n > 0 {
					s.metrics.bytesOut.WithLabelValues(t.part.Topic()).Add(float64(n))
					if t.throttle != nil {
						t.throttle.Record(n)
					}
				}
			}
			if req.Version >= 16 {
				s.addFetchLeaderHints(c.listener, req, resp)
			}
			held := reserved
			handed = &fetchResponse{FetchResponse: resp, remote: remote, reserved: held, release: func() {
				releaseRemote(targets)
				held.release()
			}}
			return handed, nil
		}
		// Waiting holds no response memory: the records read go (the
		// next pass reads the local ones again) and so does their room.
		// No remote read is in the response (it would answer now): any
		// that holds chunk buffers (cut to nothing) goes too.
		dropLocalRecords(resp)
		releaseRemote(targets)
		reserved.release()
		reserved = nil
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-retry.after(targets, s.remoteFetchThrottle()):
			retry.fired()
			reserved = s.retryRefusedRemote(c.ctx, targets, maxBytes, deadline)
		case <-timer.C:
			waiting = false // one last pass, then answer
		case <-s.ctx.Done():
			waiting = false
		}
	}
}

// refusedRetry paces a long poll's new attempts at remote reads refused
// because the reader's queue was full: the partition waits within the
// Fetch's max wait for room, as Kafka's delayed remote fetch does, rather
// than being answered empty at once (which a client re-sends at once: a
// storm when a restarted broker's readers are all busy) or only after the
// whole max wait (seconds with franz-go's 5 s). Attempts start
// refusedRetryMin apart and back off to refusedRetryMax. Reads the remote
// fetch quota held back (KIP-956) are tried again when it has room (its
// ThrottleTime, at least refusedRetryMin): a Fetch answered only after
// its max wait left a consumer whose partitions were all throttled idle
// for all of it (5 s with franz-go's default), the quota unused.
type refusedRetry struct {
	timer *time.Timer
	delay time.Duration
	// armed is set while the timer runs for a retry not made yet: the
	// long poll's other wake-ups (appends to its partitions) do not put
	// it off.
	armed bool
}

const (
	refusedRetryMin = 20 * time.Millisecond
	refusedRetryMax = 500 * time.Millisecond
)

// after returns a channel that fires when the refused reads of targets
// should be tried again (nil, never firing, when none was refused), given
// the remote fetch quota's throttle time now (0: not throttling); the
// caller calls fired once it has.
func (r *refusedRetry) after(targets []fetchTarget, throttle time.Duration) <-chan time.Time {
	if !slices.ContainsFunc(targets, func(t fetchTarget) bool { return t.remoteRefused }) {
		return nil
	}
	if !r.armed {
		delay := max(throttle, refusedRetryMin)
		if throttle <= 0 {
			r.delay = min(max(2*r.delay, refusedRetryMin), refusedRetryMax)
			delay = r.delay
		}
		if r.timer == nil {
			r.timer = time.NewTimer(delay)
		} else {
			r.timer.Reset(delay)
		}
		r.armed = true
	}
	return r.timer.C
}

// fired records that the channel after returned has fired: the next
// refusal arms the timer again, backed off.
func (r *refusedRetry) fired() { r.armed = false }

func (r *refusedRetry) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// retryRefusedRemote reads again the remote targets the reader's queue
// refused (readRemoteReserved on them alone, so the others are not read
// twice; no other remote read holds records: the Fetch is answered once
// one does, and drops them before it waits) and returns the room the
// reads hold in the response memory.
func (s *Server) retryRefusedRemote(ctx context.Context, targets []fetchTarget, maxBytes int32, deadline time.Time) *responseReservation {
	var refused []fetchTarget
	var at []int
	for i, t := range targets {
		if t.remoteRefused {
			t.remoteRefused = false
			refused, at = append(refused, t), append(at, i)
		}
	}
	if len(at) == 0 {
		return nil
	}
	reserved := s.readRemoteReserved(ctx, refused, maxBytes, !localDataBefore(targets, at[0]), deadline)
	for j, i := range at {
		targets[i] = refused[j]
	}
	return reserved
}

// readUpTo is the offset a target's read stops before: the log end for a
// follower, the last stable offset for a read_committed consumer, else
// the high watermark (both given: fillFetch reads them in that order).
func (t *fetchTarget) readUpTo(lastStable, highWatermark int64) int64 {
	switch {
	case t.replica:
		return t.part.LogEndOffset()
	case t.readCommitted:
		return lastStable
	}
	return highWatermark
}

// localDataBefore reports whether a local partition before targets[i]
// (none when i < 0) has records to return (its fetch offset below where a
// consumer's read stops): then the first with data is not a remote
// partition from i on, whose read may not return a batch over its limit
// (KIP-74), else read and dropped by fillFetch.
func localDataBefore(targets []fetchTarget, i int) bool {
	if i < 0 {
		return false
	}
	return slices.ContainsFunc(targets[:i], func(t fetchTarget) bool {
		if t.part == nil || t.errorCode != 0 || t.diverging != nil || t.remote != nil || t.offset < t.part.LogStartOffset() {
			return false
		}
		return t.offset < t.readUpTo(t.part.LastStableOffset(), t.part.HighWatermark())
	})
}

// answersError reports whether a partition of resp is answered an error:
// then the Fetch is answered at once, as Kafka does, and not held to its
// max wait. The client acts on the error (a FENCED_LEADER_EPOCH or
// NOT_LEADER_OR_FOLLOWER makes it reload metadata at once, a retriable
// error on every partition makes it back off); held for max_wait, the
// error would stall a consumer that learns of a restarted broker's new
// leader epoch only from it (seconds after the broker is ready).
func answersError(resp *kmsg.FetchResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return true
			}
		}
	}
	return false
}

// readRemote reads the targets served from the object store, all at once
// (one Fetch may replay many partitions; at most remoteReadConcurrency
// reads run together). Each reads at most its partition limit and what
// the remote reads before it leave of the response limit; fillFetch then
// applies the response budget. With minOneBatch (no partition before it
// has records) the first partition read may get a first batch over its
// limit (KIP-74).
func (s *Server) readRemote(targets []fetchTarget, maxBytes int32, minOneBatch bool) {
	ctx, cancel := context.WithTimeout(s.ctx, remoteFetchTimeout)
	defer cancel()
	state := s.cfg.Metadata.State()
	slots := make(chan struct{}, remoteReadConcurrency)
	// The reads run at once, in waves planned against what is left of the
	// response's maxBytes, in request order as fillFetch fills it: a wave
	// takes the partitions whose limits fit what is left (at least one:
	// the first batch of the first comes whole, KIP-74); once it is read,
	// what it returned is taken off and the next wave plans the rest. So
	// a remote partition with no room left is not read at all (answered
	// without data; the consumer asks again) rather than read and thrown
	// away, and one that fits is read even when the limits of those
	// before it were not used up.
	var pending []*fetchTarget
	for i := range targets {
		t := &targets[i]
		if t.remote == nil {
			continue
		}
		if s.remoteFetchThrottle() > 0 {
			// KIP-956: not read now; a long poll reads it once the
			// quota has room, else answered without data (remote_quota.go).
			t.remoteData, t.remoteRefused = nil, true
			continue
		}
		if t.maxBytes <= 0 && (len(pending) > 0 || !minOneBatch) {
			// It asks for nothing: not read, answered without data (only
			// the first may get its first batch whole, KIP-74). Else a
			// later wave would plan no read for it, and try again forever.
			continue
		}
		pending = append(pending, t)
	}
	left := int64(max(maxBytes, 0))
	for first := minOneBatch; len(pending) > 0 && (left > 0 || first); first = false {
		var reads sync.WaitGroup
		planned, n := left, 0
		for _, t := range pending {
			budget := min(int64(max(t.maxBytes, 0)), planned)
			if budget <= 0 && (n > 0 || !first) {
				break
			}
			planned -= budget
			// Only the first partition read may get a first batch over
			// its budget (KIP-74; fillFetch drops it from any other):
			// the others' reads return nothing then, as a local read
			// does without minOneBatch, rather than read what is
			// dropped.
			whole := first && n == 0
			n++
			slots <- struct{}{}
			reads.Go(func() {
				defer func() { <-slots }()
				t.remoteData, t.remoteErr = s.cfg.RemoteReader.Read(ctx, t.part.Name(), *t.remote, t.offset, int(budget), whole)
				t.remoteChunkBytes = 0
				for _, b := range t.remoteData.Buffers() {
					t.remoteChunkBytes += int64(cap(b))
				}
				if t.readCommitted && t.remoteErr == nil && t.remoteData != nil {
					if t.remoteAborted, t.remoteErr = s.committedRemote(ctx, state, t.part, *t.remote, t.offset, t.remoteData); t.remoteErr != nil {
						t.remoteData.Release()
						t.remoteData, t.remoteChunkBytes = nil, 0
					}
				}
			})
		}
		reads.Wait()
		for _, t := range pending[:n] {
			left -= int64(t.remoteData.Len())
		}
		pending = pending[n:]
	}
	for i := range targets {
		t := &targets[i]
		switch {
		case t.remote == nil:
		case remoteQueueFull(t.remoteErr):
			t.remoteData, t.remoteErr = nil, nil // empty: the consumer asks again
			t.remoteRefused = true
		case t.remoteErr != nil:
			s.metrics.remoteReadErrors.WithLabelValues(t.part.Topic()).Inc()
			t.part.Logger().Warn("remote fetch failed; the consumer retries", "offset", t.offset, "segment_base_offset", t.remote.BaseOffset, "err", t.remoteErr)
		}
	}
}

// releaseRemote gives the targets' remote reads back to the reader and
// forgets them (a second call gives nothing back): once the response is
// written or dropped, or before a Fetch waits or reads again, when their
// partitions are answered without remote records.
func releaseRemote(targets []fetchTarget) {
	for i := range targets {
		t := &targets[i]
		t.remoteData.Release()
		t.remoteData, t.remoteErr, t.remoteAborted, t.remoteChunkBytes = nil, nil, nil, 0
	}
}

// readRemoteReserved is readRemote under queued.max.response.bytes, as
// fillFetchReserved is for local records: a response holds the chunk
// buffers its remote records lie in until it is written, for
// connections.max.idle.ms when the client does not read (past the tier's
// memory LRU, which can evict them but not free them). So before it reads
// it reserves room for the reads in the server's response memory — what
// the response may carry, at most what is free, at least responseMinGrant
// (or maxBytes when smaller) — waiting for it until deadline holding
// nothing, and reads at most that much. It keeps room for the records
// read and the chunk buffers holding them (up to what it took), gives
// back the rest at once, and returns the reservation (nil when no read
// holds anything), to be given back once the response is written or
// dropped. Without room by the deadline the remote partitions are not
// read: answered without records, the client asks again. A first batch
// larger than the room taken (KIP-74) takes the difference if it is free
// now; else the reads are dropped, their room given back, and the Fetch
// waits for room for the whole batch and reads again, never waiting while
// it holds room or chunk buffers. Only consumers read remote records.
func (s *Server) readRemoteReserved(ctx context.Context, targets []fetchTarget, maxBytes int32, minOneBatch bool, deadline time.Time) *responseReservation {
	if !slices.ContainsFunc(targets, func(t fetchTarget) bool { return t.remote != nil }) {
		return nil // nothing to read: no room to wait for
	}
	if s.remoteFetchThrottle() > 0 {
		// KIP-956: a throttled remote fetch reads nothing now
		// (readRemote): no room to wait for.
		for i := range targets {
			targets[i].remoteRefused = targets[i].remote != nil
		}
		return nil
	}
	want := int64(max(maxBytes, 1))
	need := min(want, responseMinGrant)
	for attempt := 0; ; attempt++ {
		v := s.responseMemory.reserve(ctx, false, want, need, deadline)
		if v == nil {
			return nil
		}
		s.readRemote(targets, int32(min(int64(maxBytes), v.Size())), minOneBatch)
		var read, chunkBytes int64
		for _, t := range targets {
			read += int64(t.remoteData.Len())
			chunkBytes += t.remoteChunkBytes
		}
		if read == 0 && chunkBytes == 0 {
			v.release()
			return nil
		}
		if read <= v.Size() || v.tryGrow(read-v.Size(), attempt > 0) {
			v.settleRemote(read, chunkBytes)
			return v
		}
		releaseRemote(targets)
		for i := range targets {
			targets[i].remoteRefused = false // read again
		}
		v.release()
		need = read
		want = max(want, need)
	}
}

// readEnd is the offset after the last batch of batches (whole batches,
// as reads return them), or upTo when it cannot tell.
func readEnd(batches *recordbatch.Batches, upTo int64) int64 {
	if next := batches.NextOffset(); next >= 0 {
		return next
	}
	return upTo
}

// remoteFetchTimeout bounds the remote reads of one Fetch; past it the
// partitions not read answer a retriable error.
const remoteFetchTimeout = 30 * time.Second

// fillFetchReserved is fillFetch under queued.max.response.bytes: when a
// local partition has records to read, it first reserves room for them in
// the server's response memory — what the response may carry (maxBytes),
// at most what is free, at least responseMinGrant (or maxBytes when
// smaller) — waiting for it until deadline (the Fetch's max wait) holding
// nothing, and reads at most that much; what the read did not use is
// given back at once, the rest is returned to be given back once the
// response is written. Without room by the deadline the local partitions
// are answered without records (the client asks again). A first batch
// larger than the room taken (KIP-74) takes the difference if it is free
// now; else the read is dropped, its room given back, and the Fetch waits
// for room for the whole batch and reads again, never waiting while it
// holds room. Only a batch larger than the whole budget goes over it.
//
// remoteRoom is the room the Fetch's remote reads hold
// (readRemoteReserved; nil: none), which the response then answers at
// once: the local records take room in the same reservation, only what
// is free now (it never waits while holding room or chunk buffers), and
// a first local batch larger than that is left for the next Fetch.
func (s *Server) fillFetchReserved(ctx context.Context, resp *kmsg.FetchResponse, targets []fetchTarget, maxBytes int32, remote fetchRecords, replica bool, deadline time.Time, remoteRoom *responseReservation) (int, *responseReservation) {
	if !localDataBefore(targets, len(targets)) {
		total, _ := fillFetch(resp, targets, maxBytes, remoteRoom, remote)
		return total, remoteRoom
	}
	want := int64(max(maxBytes, 1))
	need := min(want, responseMinGrant)
	if replica {
		// A follower needs no more than the share consumers cannot
		// take (under 1 MiB when queued.max.response.bytes is under
		// 4 MiB), or consumers that do not read would stop replication.
		need = min(need, replicaShare(s.responseMemory.capacity))
	}
	if v := remoteRoom; v.Size() > 0 {
		// Room for local records beyond the remote reads' (which may
		// be the chunk buffers' more than the records'), up to what
		// the response may carry: fillFetch applies maxBytes.
		v.growUpTo(want - v.localRoom())
		total, local := fillFetch(resp, targets, maxBytes, v, remote)
		if int64(local) > v.localRoom() && !v.tryGrow(int64(local)-v.localRoom(), false) {
			dropLocalRecords(resp)
			v.releaseLocal()
			total, _ = fillFetch(resp, targets, maxBytes, v, remote)
			return total, v
		}
		v.settle(int64(local))
		return total, v
	}
	for attempt := 0; ; attempt++ {
		v := s.responseMemory.reserve(ctx, replica, want, need, deadline)
		total, local := fillFetch(resp, targets, maxBytes, v, remote)
		if int64(local) <= v.Size() {
			v.settle(int64(local))
			return total, v
		}
		if v.tryGrow(int64(local)-v.Size(), attempt > 0) {
			return total, v
		}
		dropLocalRecords(resp)
		v.release()
		need = int64(local)
		want = max(want, need)
	}
}

// dropLocalRecords empties the RecordBatches of resp (the records read
// from local segments; remote ones are held elsewhere).
func dropLocalRecords(resp *kmsg.FetchResponse) {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			resp.Topics[i].Partitions[j].RecordBatches = []byte{}
		}
	}
}

// fillFetch reads every target into resp and returns the bytes gathered,
// and those of them read from local segments, which take at most the
// reservation's room for local records (localRoom; none when it is nil)
// except for a first batch returned whole, into buffers the reservation
// holds (reserved.hold). The response-level maxBytes is shared in request order; the first
// batch of the first partition with data is returned whole even when
// larger than the limits (KIP-74), or the consumer could never make
// progress. The remote reads that go in the response are put in remote
// (emptied first), not in RecordBatches.
func fillFetch(resp *kmsg.FetchResponse, targets []fetchTarget, maxBytes int32, reserved *responseReservation, remote fetchRecords) (total, local int) {
	clear(remote)
	localBudget := reserved.localRoom()
	maxBytes = max(maxBytes, 0)
	remaining := int64(maxBytes)
	for _, t := range targets {
		p := &resp.Topics[t.topicIndex].Partitions[t.partitionIndex]
		// Empty, not null: librdkafka rejects a null record set (size -1).
		p.RecordBatches = []byte{}
		if t.part == nil || t.errorCode != 0 {
			continue
		}
		// The last stable offset first: it is never above the high
		// watermark read after it.
		lastStable := t.part.LastStableOffsetFrom(t.logStart)
		highWatermark := t.part.HighWatermark()
		upTo := t.readUpTo(lastStable, highWatermark)
		start := t.part.LogStartOffset()
		p.HighWatermark = highWatermark
		p.LastStableOffset = lastStable
		p.LogStartOffset = t.logStart
		p.ErrorCode = 0
		if t.diverging != nil {
			p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = t.diverging.Epoch, t.diverging.EndOffset
			continue
		}
		limit := int64(t.maxBytes)
		if remaining < limit {
			limit = remaining
		}
		if t.throttle != nil {
			// An adding replica: at most what leader.replication.throttled.rate
			// allows now, nothing while over it.
			allowance := t.throttle.Allowance()
			if allowance <= 0 {
				continue
			}
			limit = min(limit, allowance)
		}
		if t.remote != nil {
			if t.remoteErr != nil {
				p.ErrorCode = kerr.KafkaStorageError.Code
				continue
			}
			if int64(t.remoteData.Len()) > max(limit, 0) && total > 0 {
				// Over what the partitions before it (local ones, which
				// readRemote cannot plan for) left of the response's
				// budget: the leading batches that fit are served, as a
				// local read is cut there; the rest stays held until
				// release, and the client asks for it again.
				t.remoteData.CutToBytes(int(max(limit, 0)))
			}
			if t.remoteData.Len() > 0 {
				remote[[2]int{t.topicIndex, t.partitionIndex}] = t.remoteData
				if t.readCommitted {
					// Those of the whole read: any past a cut start after
					// the records served, which a consumer never reaches.
					p.AbortedTransactions = fetchAbortedTransactions(t.remoteAborted)
				}
				total += t.remoteData.Len()
				remaining -= int64(t.remoteData.Len())
			}
			continue
		}
		if t.offset < start || t.offset > t.part.LogEndOffset() {
			p.ErrorCode = t.localOutOfRange(start)
			continue
		}
		if limit <= 0 && total > 0 {
			continue
		}
		// Room reserved in the response memory (fillFetchReserved).
		if localBudget-int64(local) <= 0 {
			continue
		}
		limit = min(limit, localBudget-int64(local))
		data, err := t.part.ReadBuffered(reserved.buffers(), t.offset, int32(max(limit, 0)), upTo, total == 0)
		if len(data) > 0 && reserved.buffers() != nil {
			reserved.hold(data)
		}
		if err != nil {
			switch {
			case errors.Is(err, segment.ErrOffsetOutOfRange):
				p.ErrorCode = t.localOutOfRange(t.part.LogStartOffset())
			case errors.Is(err, segment.ErrClosed):
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				t.part.Logger().Error("fetch read failed", "offset", t.offset, "err", err)
				p.ErrorCode = kerr.KafkaStorageError.Code
			}
			continue
		}
		if len(data) > 0 {
			p.RecordBatches = data
			if t.readCommitted {
				// Every aborted transaction overlapping what is returned,
				// by first offset: the consumer drops a producer's
				// records from there to its ABORT marker.
				p.AbortedTransactions = fetchAbortedTransactions(t.part.AbortedTransactions(t.offset, readEnd(recordbatch.NewBatches([][]byte{data}, nil), upTo)))
			}
		}
		total += len(data)
		local += len(data)
		remaining -= int64(len(data))
	}
	return total, local
}

// movedToTier reports whether a local read planned by the Fetch found its
// offset gone from the local log since (localOutOfRange): the Fetch
// answers at once, without records for it, and the client asks again for
// the offset, which the next Fetch plans from the tier, rather than
// waiting out its max wait for appends that cannot bring it.
func movedToTier(targets []fetchTarget) bool {
	return slices.ContainsFunc(targets, func(t fetchTarget) bool {
		return t.part != nil && t.remote == nil && t.errorCode == 0 && t.diverging == nil && t.lostLocally(t.part.LogStartOffset())
	})
}

// lostLocally reports whether the local log start, now start, has passed
// the offset since the Fetch planned a local read of it.
func (t *fetchTarget) lostLocally(start int64) bool {
	return t.localStart <= t.offset && t.offset < start
}

// localOutOfRange is the error code for a local read of t's offset out of
// the local log, whose start is now start: OFFSET_OUT_OF_RANGE, but none
// (answered without records: the client asks for the offset again) when
// the local log start has passed the offset since the Fetch planned a
// local read of it. Local retention deleted its segment, uploaded, in
// between: the next Fetch plans a read from the object store (or answers
// OFFSET_OUT_OF_RANGE if retention or DeleteRecords deleted the records).
func (t *fetchTarget) localOutOfRange(start int64) int16 {
	if t.lostLocally(start) {
		return 0
	}
	return kerr.OffsetOutOfRange.Code
}

// addFetchLeaderHints is addLeaderHints for Fetch v16+ (KIP-951): a
// partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names
// its current leader and epoch, and the response lists the leaders'
// addresses on the client's listener.
func (s *Server) addFetchLeaderHints(l *boundListener, req *kmsg.FetchRequest, resp *kmsg.FetchResponse) {
	hints := s.newLeaderHints(l)
	for ti := range resp.Topics {
		rt := &resp.Topics[ti]
		topic, ok := hints.topic(req.Topics[ti].Topic, req.Topics[ti].TopicID)
		if !ok {
			continue
		}
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			fenced := rp.ErrorCode == kerr.FencedLeaderEpoch.Code
			if rp.ErrorCode != kerr.NotLeaderForPartition.Code && !fenced {
				continue
			}
			if leader, ok := hints.leader(topic, rp.Partition, fenced); ok {
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader.Leader, leader.LeaderEpoch
			}
		}
	}
	for _, b := range hints.brokers {
		out := kmsg.NewFetchResponseBroker()
		out.NodeID, out.Host, out.Port, out.Rack = b.NodeID, b.Host, b.Port, b.Rack
		resp.Brokers = append(resp.Brokers, out)
	}
}
