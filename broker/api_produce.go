package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// Produce v0-2 carry the old message formats (magic 0/1). They are advertised
// because librdkafka only enables gzip/snappy when it sees Produce v0 in the
// range, and answered with UNSUPPORTED_VERSION per partition. v3-v12 are
// served completely: v10 adds the new leader's id, epoch and address to a
// NOT_LEADER_OR_FOLLOWER answer (KIP-951), v11 lets the answer be
// TRANSACTION_ABORTABLE, v12 is Transactions V2 (a transactional batch
// adds its partition to the transaction: txn_verify.go), v13 names topics
// by id (KIP-516): the handler resolves the ids to names first
// (topicNameByID) and the rest is the one path by name; an id
// the metadata does not know answers UNKNOWN_TOPIC_ID, and the response
// names each topic by its id (a v13 response has no name field).
const minServedProduceVersion = 3

// produceTopicIDsVersion is the first Produce version that names topics by
// id.
const produceTopicIDsVersion = 13

func init() { register(0, 13, handleProduce) }

func handleProduce(c *clientConn, h requestHeader, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.Topics = make([]kmsg.ProduceResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	now := time.Now()
	failed := false
	partitionError := func(code int16, msg string) kmsg.ProduceResponseTopicPartition {
		failed = true
		p := kmsg.NewProduceResponseTopicPartition()
		p.ErrorCode = code
		p.BaseOffset = -1
		if msg != "" && req.Version >= 8 {
			p.ErrorMessage = &msg
		}
		return p
	}
	var requestErr int16
	var requestMsg string
	var pending []pendingAck // acks=all appends waiting for the high watermark, acks=1 ones of durable partitions for the leader's fsync
	switch {
	case req.Version < minServedProduceVersion:
		requestErr, requestMsg = kerr.UnsupportedVersion.Code, "Produce v0-v2 (message formats v0/v1) is not supported; use a client that sends record batches (Produce v3+)"
		c.log.Warn("refusing old-format produce", "version", req.Version, "client", h.clientID)
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		requestErr, requestMsg = kerr.InvalidRequiredAcks.Code, "acks must be -1 (all), 0 or 1"
	case req.TransactionID != nil && !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, *req.TransactionID):
		requestErr, requestMsg = kerr.TransactionalIDAuthorizationFailed.Code, "not authorized to WRITE transactional id "+*req.TransactionID
	default:
		var throttle time.Duration
		throttle, requestErr, requestMsg = s.diskPressure()
		// Throttled as a client over its quota is: told, and muted,
		// so that a client ignoring throttle_time_ms is held back too.
		c.throttle(throttle)
		resp.ThrottleMillis = int32(throttle.Milliseconds())
	}
	if req.Version >= produceTopicIDsVersion {
		state := s.cfg.Metadata.State()
		for i := range req.Topics {
			req.Topics[i].Topic = topicNameByID(state, req.Topics[i].TopicID)
		}
	}
	var verified map[string]map[int32]int16
	if requestErr == 0 && req.TransactionID != nil {
		verified = s.verifyTransaction(*req.TransactionID, req, now)
	}
	var holds []func()
	if requestErr == 0 {
		holds = s.holdAppendWakeups(req)
	}
	releaseHolds := func() {
		for _, release := range holds {
			release()
		}
		holds = nil
	}
	defer releaseHolds() // on a panic too: a hold never outlives the request
	for _, rt := range req.Topics {
		out := kmsg.NewProduceResponseTopic()
		out.Topic, out.TopicID = rt.Topic, rt.TopicID // v13+ carries only the id, v0-12 only the name
		out.Partitions = make([]kmsg.ProduceResponseTopicPartition, 0, len(rt.Partitions))
		topic, exists := s.cfg.Metadata.State().Topic(rt.Topic)
		writeAllowed := requestErr != 0 || c.authorized(authz.OpWrite, authz.ResourceTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			var p kmsg.ProduceResponseTopicPartition
			switch {
			case requestErr != 0:
				p = partitionError(requestErr, requestMsg)
			case req.Version >= produceTopicIDsVersion && (!exists || topic.ID != rt.TopicID):
				// An id the metadata does not know (or no longer
				// knows by this name: the topic was deleted and
				// recreated since it was resolved).
				p = partitionError(kerr.UnknownTopicID.Code, "unknown topic id")
			case !writeAllowed:
				p = partitionError(kerr.TopicAuthorizationFailed.Code, "not authorized to WRITE to topic "+rt.Topic)
			case !topic.HasPartition(rp.Partition):
				p = partitionError(kerr.UnknownTopicOrPartition.Code, "unknown topic or partition")
			case topic.Internal:
				// As Kafka: clients cannot write to internal topics.
				p = partitionError(kerr.InvalidTopicException.Code, "cannot append to internal topic "+rt.Topic)
			default:
				part := s.partitions.get(topic, rp.Partition)
				if part == nil {
					p = partitionError(kerr.NotLeaderForPartition.Code, "this broker does not lead the partition")
					break
				}
				if req.TransactionID == nil && isTransactional(rp.Records) {
					// As Kafka: transactional records need the producer's
					// transactional id (which an ACL could then check).
					p = partitionError(kerr.TransactionalIDAuthorizationFailed.Code, "transactional records in a produce request without a transactional id")
					break
				}
				if code := verified[rt.Topic][rp.Partition]; code != 0 {
					p = partitionError(code, "the transaction coordinator did not verify that the partition is in the producer's transaction")
					break
				}
				if isr, need := int32(len(topic.Partitions[rp.Partition].ISR)), part.Config().MinInsyncReplicas; req.Acks == -1 && isr < need {
					p = partitionError(kerr.NotEnoughReplicas.Code, fmt.Sprintf("%d in-sync replicas, min.insync.replicas is %d", isr, need))
					break
				}
				// The term the append is made in: an acks=all (or durable
				// acks=1) wait fails once it ends (partition.Pending).
				leaderEpoch := part.LeaderEpoch()
				base, appendTime, err := part.Append(rp.Records, req.Version, now)
				if err != nil {
					var pe *partition.Error
					if errors.As(err, &pe) && pe.Code > 0 {
						p = partitionError(pe.Code, pe.Message)
					} else {
						p = partitionError(kerr.UnknownServerError.Code, err.Error())
					}
					c.log.Debug("produce rejected", "topic", rt.Topic, "partition", rp.Partition, "err", err)
					s.metrics.produceErrors.WithLabelValues(rt.Topic).Inc()
					break
				}
				s.metrics.bytesIn.WithLabelValues(rt.Topic).Add(float64(len(rp.Records)))
				p = kmsg.NewProduceResponseTopicPartition()
				p.BaseOffset = base
				p.LogAppendTime = appendTime
				p.LogStartOffset = part.LogStartOffset()
				if req.Acks == -1 || (req.Acks == 1 && part.Durable()) {
					h, _ := recordbatch.ParseHeader(rp.Records)
					pending = append(pending, pendingAck{part: part, end: base + int64(h.LastOffsetDelta) + 1, leaderEpoch: leaderEpoch, leaderOnly: req.Acks == 1,
						topicIndex: len(resp.Topics), partitionIndex: len(out.Partitions)})
				}
			}
			p.Partition = rp.Partition
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	releaseHolds()
	if req.Version >= 10 {
		s.addLeaderHints(c.listener, resp)
	}
	if len(pending) > 0 {
		// The records are appended: waiting for the followers does not
		// need the request's bytes, and must not hold the request memory
		// that the followers' own Fetch requests need to be read.
		c.releaseRequestMemory()
		s.awaitCommitted(pending, resp, req.Version, now.Add(time.Duration(req.TimeoutMillis)*time.Millisecond))
	}
	// Client quotas: the request's bytes, whatever became of them (as
	// Kafka); acks=0 requests get no response but are muted all the same.
	quotaThrottle := s.quotas.Record(s.cfg.Metadata.State(), quota.Produce, c.quotaClient(h), int64(h.frameSize))
	c.throttle(quotaThrottle)
	resp.ThrottleMillis = max(resp.ThrottleMillis, int32(quotaThrottle.Milliseconds()))
	if req.Acks == 0 {
		if failed {
			// Kafka closes the connection so that an acks=0 producer, which
			// reads no responses, notices and refreshes its metadata.
			return nil, errCloseConnection
		}
		return nil, nil
	}
	return resp, nil
}

// topicNameByID is the name the metadata knows a topic id under, or ""
// (which no topic has) for an id it does not know. The requests that name
// topics by id (Produce v13+, TxnOffsetCommit v6+) resolve them with it
// first, so that the rest of their handler is the one path by name.
func topicNameByID(state *metadata.State, id [16]byte) string {
	topic, _ := state.TopicByID(id)
	return topic.Name
}

// verifyTransaction runs KIP-890 part 1 for a transactional produce: the
// partitions whose transactional batch would open a transaction here are
// verified with (Produce v12+, Transactions V2: added to the transaction
// by) the transactional id's coordinator (StartTxnVerification before
// each question, so a marker landing meanwhile voids the verification).
// It returns
// the produce error code of each partition that failed (absent or 0:
// append).
func (s *Server) verifyTransaction(transactionalID string, req *kmsg.ProduceRequest, now time.Time) map[string]map[int32]int16 {
	state := s.cfg.Metadata.State()
	toVerify := map[string][]int32{}
	var parts []*partition.Partition
	producerID, producerEpoch := int64(-1), int16(-1)
	for _, rt := range req.Topics {
		topic, ok := state.Topic(rt.Topic)
		if !ok || topic.Internal {
			continue
		}
		for _, rp := range rt.Partitions {
			if !topic.HasPartition(rp.Partition) {
				continue
			}
			part := s.partitions.get(topic, rp.Partition)
			h, err := recordbatch.ParseHeader(rp.Records)
			if part == nil || err != nil || !h.IsTransactional() || !h.HasProducerID() || !part.NeedsTxnVerification(h.ProducerID, h.ProducerEpoch) {
				continue // Append answers (or the batch needs no verification)
			}
			producerID, producerEpoch = h.ProducerID, h.ProducerEpoch
			toVerify[rt.Topic] = append(toVerify[rt.Topic], rp.Partition)
			parts = append(parts, part)
		}
	}
	if len(toVerify) == 0 {
		return nil
	}
	ctx, cancel := context.WithDeadline(s.ctx, now.Add(time.Duration(max(req.TimeoutMillis, 1000))*time.Millisecond))
	defer cancel()
	codes := s.txnVerifier.verify(ctx, state, transactionalID, producerID, producerEpoch, toVerify, req.Version, func() {
		for _, part := range parts {
			part.StartTxnVerification(producerID, producerEpoch)
		}
	})
	for topicName, byIndex := range codes {
		topic, _ := state.Topic(topicName)
		for index, code := range byIndex {
			if part := s.partitions.get(topic, index); code != 0 && part != nil {
				part.AbandonTxnVerification(producerID)
			}
		}
	}
	return codes
}

// addLeaderHints fills, for each partition answered NOT_LEADER_OR_FOLLOWER,
// the leader and leader epoch the metadata knows, and the leaders' addresses
// on the client's listener (KIP-951, Produce v10+): the client moves to the
// new leader without a metadata round trip.
func (s *Server) addLeaderHints(l *boundListener, resp *kmsg.ProduceResponse) {
	hints := s.newLeaderHints(l)
	for ti := range resp.Topics {
		rt := &resp.Topics[ti]
		topic, ok := hints.topic(rt.Topic, rt.TopicID)
		if !ok {
			continue
		}
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
				continue
			}
			if leader, ok := hints.leader(topic, rp.Partition, false); ok {
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader.Leader, leader.LeaderEpoch
			}
		}
	}
	for _, b := range hints.brokers {
		out := kmsg.NewProduceResponseBroker()
		out.NodeID, out.Host, out.Port, out.Rack = b.NodeID, b.Host, b.Port, b.Rack
		resp.Brokers = append(resp.Brokers, out)
	}
}

// leaderHints gathers KIP-951's answers to a client that asked the wrong
// broker, or at a stale leader epoch: each partition's current leader and
// epoch, and the leaders' addresses on the client's listener, each once.
type leaderHints struct {
	server   *Server
	listener *boundListener
	state    *metadata.State
	brokers  []kmsg.MetadataResponseBroker
	listed   map[int32]bool
}

func (s *Server) newLeaderHints(l *boundListener) *leaderHints {
	return &leaderHints{server: s, listener: l, state: s.cfg.Metadata.State(), listed: map[int32]bool{}}
}

// topic finds a response's topic by name, or by id when it has one.
func (h *leaderHints) topic(name string, id [16]byte) (metadata.Topic, bool) {
	if id != ([16]byte{}) {
		return h.state.TopicByID(id)
	}
	return h.state.Topic(name)
}

// leader returns the partition's leader assignment when its address is
// known on the listener, and lists that address once. This broker counts
// only with includeSelf (a stale leader epoch asked of the leader itself).
func (h *leaderHints) leader(topic metadata.Topic, partition int32, includeSelf bool) (metadata.Partition, bool) {
	if !topic.HasPartition(partition) {
		return metadata.Partition{}, false
	}
	mp := topic.Partitions[partition]
	if mp.Leader < 0 || (mp.Leader == h.server.cfg.NodeID && !includeSelf) {
		return metadata.Partition{}, false
	}
	host, port, ok := h.server.brokerAddress(h.listener, mp.Leader)
	if !ok {
		return metadata.Partition{}, false
	}
	if !h.listed[mp.Leader] {
		h.listed[mp.Leader] = true
		b := kmsg.MetadataResponseBroker{NodeID: mp.Leader, Host: host, Port: port}
		if registered, ok := h.state.Broker(mp.Leader); ok && registered.Rack != "" {
			rack := registered.Rack
			b.Rack = &rack
		}
		h.brokers = append(h.brokers, b)
	}
	return mp, true
}

// isTransactional reports whether records start with a transactional
// batch (Append refuses anything else that does not parse).
func isTransactional(records []byte) bool {
	h, err := recordbatch.ParseHeader(records)
	return err == nil && h.IsTransactional()
}

// diskPressure applies --local-disk-limit-bytes to a produce request: from
// 90% of the limit a throttle time growing to a second, at the limit a
// retriable error.
func (s *Server) diskPressure() (time.Duration, int16, string) {
	limit := s.cfg.LocalDiskLimit
	if limit <= 0 {
		return 0, 0, ""
	}
	used := s.partitions.localBytes.Load()
	switch {
	case used >= limit:
		s.metrics.diskRefusals.Inc()
		return 0, kerr.KafkaStorageError.Code, fmt.Sprintf("local logs hold %d bytes, the broker's limit is %d (--local-disk-limit-bytes): tiering is behind (is the object store reachable?); retry later", used, limit)
	case used*10 >= limit*9:
		return time.Duration(float64(time.Second) * float64(used*10-limit*9) / float64(limit)), 0, ""
	}
	return 0, 0, ""
}

// pendingAck is an acks=all append waiting until the high watermark passes
// end, or (leaderOnly) an acks=1 append of a durable partition waiting
// until the leader fsynced it; the indexes locate its response partition.
type pendingAck struct {
	part                       *partition.Partition
	end                        int64
	leaderEpoch                int32
	leaderOnly                 bool
	topicIndex, partitionIndex int
}

// awaitCommitted waits until every pending append is committed, or answers
// for those that cannot be (partition.WaitAll): REQUEST_TIMED_OUT at the
// deadline, NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below
// min.insync.replicas, NOT_LEADER_OR_FOLLOWER when leadership moved,
// KAFKA_STORAGE_ERROR when a durable partition's fsync failed.
// holdAppendWakeups holds the append wakeups of the local partitions a
// produce request appends to, when it appends to more than one
// (partition.HoldAppendWakeups): a follower's fetch woken by the first
// append then takes all of the request's records in one round trip. The
// caller releases each once the request's appends are done.
func (s *Server) holdAppendWakeups(req *kmsg.ProduceRequest) []func() {
	count := 0
	for _, rt := range req.Topics {
		count += len(rt.Partitions)
	}
	if count < 2 {
		return nil
	}
	state := s.cfg.Metadata.State()
	var holds []func()
	for _, rt := range req.Topics {
		topic, ok := state.Topic(rt.Topic)
		if !ok {
			continue
		}
		for _, rp := range rt.Partitions {
			if !topic.HasPartition(rp.Partition) {
				continue
			}
			if part := s.partitions.get(topic, rp.Partition); part != nil {
				holds = append(holds, part.HoldAppendWakeups())
			}
		}
	}
	return holds
}

func (s *Server) awaitCommitted(pending []pendingAck, resp *kmsg.ProduceResponse, version int16, deadline time.Time) {
	waits := make([]partition.Pending, len(pending))
	for i, a := range pending {
		waits[i] = partition.Pending{Partition: a.part, End: a.end, LeaderEpoch: a.leaderEpoch, LeaderOnly: a.leaderOnly}
	}
	for i, outcome := range partition.WaitAll(waits, deadline, s.ctx.Done()) {
		if outcome.Code == 0 {
			continue
		}
		a := pending[i]
		p := &resp.Topics[a.topicIndex].Partitions[a.partitionIndex]
		p.ErrorCode, p.BaseOffset = outcome.Code, -1
		if version >= 8 {
			msg := outcome.Message
			p.ErrorMessage = &msg
		}
	}
}
