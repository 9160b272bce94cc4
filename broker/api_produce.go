package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// Produce v0-2 carry the old message formats (magic 0/1). They are advertised
// because librdkafka only enables gzip/snappy when it sees Produce v0 in the
// range, and answered with UNSUPPORTED_VERSION per partition. v3-v9 are
// served completely (v10+ add leader-discovery tags and topic ids).
const minServedProduceVersion = 3

func init() { register(0, 9, handleProduce) }

func handleProduce(c *clientConn, h requestHeader, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
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
	var pending []pendingAck // acks=all appends waiting for the high watermark
	switch {
	case req.Version < minServedProduceVersion:
		requestErr, requestMsg = kerr.UnsupportedVersion.Code, "Produce v0-v2 (message formats v0/v1) is not supported; use a client that sends record batches (Produce v3+)"
		c.log.Warn("refusing old-format produce", "version", req.Version, "client", h.clientID)
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		requestErr, requestMsg = kerr.InvalidRequiredAcks.Code, "acks must be -1 (all), 0 or 1"
	case req.TransactionID != nil:
		requestErr, requestMsg = kerr.InvalidRequest.Code, transactionsUnsupported
	default:
		var throttle time.Duration
		throttle, requestErr, requestMsg = s.diskPressure()
		resp.ThrottleMillis = int32(throttle.Milliseconds())
	}
	for _, rt := range req.Topics {
		out := kmsg.NewProduceResponseTopic()
		out.Topic = rt.Topic
		topic, _ := s.cfg.Metadata.State().Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			var p kmsg.ProduceResponseTopicPartition
			switch {
			case requestErr != 0:
				p = partitionError(requestErr, requestMsg)
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
				if isr, need := int32(len(topic.Partitions[rp.Partition].ISR)), part.config.Load().MinInsyncReplicas; req.Acks == -1 && isr < need {
					p = partitionError(kerr.NotEnoughReplicas.Code, fmt.Sprintf("%d in-sync replicas, min.insync.replicas is %d", isr, need))
					break
				}
				base, appendTime, err := part.appendBatch(rp.Records, req.Version, now)
				if err != nil {
					var pe *produceError
					if errors.As(err, &pe) && pe.code > 0 {
						p = partitionError(pe.code, pe.message)
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
				p.LogStartOffset = part.segments.StartOffset()
				if req.Acks == -1 {
					h, _ := recordbatch.ParseHeader(rp.Records)
					pending = append(pending, pendingAck{part: part, end: base + int64(h.LastOffsetDelta) + 1,
						topicIndex: len(resp.Topics), partitionIndex: len(out.Partitions)})
				}
			}
			p.Partition = rp.Partition
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	if len(pending) > 0 {
		s.awaitCommitted(pending, resp, req.Version, now.Add(time.Duration(req.TimeoutMillis)*time.Millisecond))
	}
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
// end; the indexes locate its response partition.
type pendingAck struct {
	part                       *partition
	end                        int64
	topicIndex, partitionIndex int
}

// awaitCommitted waits until every pending append is below its partition's
// high watermark (in every in-sync replica), or answers for those that
// cannot be: REQUEST_TIMED_OUT at the deadline, NOT_ENOUGH_REPLICAS_AFTER_APPEND
// when the ISR shrank below min.insync.replicas, NOT_LEADER_OR_FOLLOWER when
// leadership moved. The records stay in the log either way (as in Kafka).
func (s *Server) awaitCommitted(pending []pendingAck, resp *kmsg.ProduceResponse, version int16, deadline time.Time) {
	fail := func(a pendingAck, code int16, msg string) {
		p := &resp.Topics[a.topicIndex].Partitions[a.partitionIndex]
		p.ErrorCode, p.BaseOffset = code, -1
		if version >= 8 {
			p.ErrorMessage = &msg
		}
	}
	// settle drops the appends that are committed or failed.
	settle := func() {
		waiting := pending[:0]
		for _, a := range pending {
			done, code, msg := a.part.commitStatus(a.end)
			switch {
			case code != 0:
				fail(a, code, msg)
			case !done:
				waiting = append(waiting, a)
			}
		}
		pending = waiting
	}
	// Usually committed already (a leader alone in its ISR): no waiting
	// set up on the produce path then.
	if settle(); len(pending) == 0 {
		return
	}
	wake := make(chan struct{}, 1)
	for _, a := range pending {
		a.part.addWaiter(wake)
		defer a.part.removeWaiter(wake)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	// Re-check after registering: the high watermark may have moved in
	// between.
	for settle(); len(pending) > 0; settle() {
		select {
		case <-wake:
		case <-timer.C:
			for _, a := range pending {
				fail(a, kerr.RequestTimedOut.Code, "the write did not reach every in-sync replica within the request timeout")
			}
			return
		case <-s.ctx.Done():
			for _, a := range pending {
				fail(a, kerr.RequestTimedOut.Code, "the broker is shutting down")
			}
			return
		}
	}
}

// commitStatus tells an acks=all append ending at end whether it is
// committed (below the high watermark, with at least min.insync.replicas
// in sync, as Kafka checks), still waiting, or failed with a Kafka error
// code: leadership moved, or the ISR shrank below min.insync.replicas.
func (p *partition) commitStatus(end int64) (done bool, code int16, msg string) {
	p.appendMu.Lock()
	isr, leading := len(p.assignment.ISR), p.leading.Load()
	p.appendMu.Unlock()
	need := int(p.config.Load().MinInsyncReplicas)
	switch {
	case p.highWatermark() >= end && isr >= need:
		return true, 0, ""
	case !leading:
		return false, kerr.NotLeaderForPartition.Code, "leadership moved before the write was replicated"
	case isr < need:
		return false, kerr.NotEnoughReplicasAfterAppend.Code, fmt.Sprintf("written to the leader, but the ISR shrank to %d, below min.insync.replicas %d", isr, need)
	}
	return false, 0, ""
}

// awaitCommitted waits until an append ending at end is committed, for at
// most timeout; it returns the Kafka error code when it cannot be.
func (p *partition) awaitCommitted(end int64, timeout time.Duration) int16 {
	if done, code, _ := p.commitStatus(end); done || code != 0 {
		return code
	}
	wake := make(chan struct{}, 1)
	p.addWaiter(wake)
	defer p.removeWaiter(wake)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		done, code, _ := p.commitStatus(end)
		if done || code != 0 {
			return code
		}
		select {
		case <-wake:
		case <-timer.C:
			return kerr.RequestTimedOut.Code
		}
	}
}
