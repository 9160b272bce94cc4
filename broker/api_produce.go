package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	switch {
	case req.Version < minServedProduceVersion:
		requestErr, requestMsg = kerr.UnsupportedVersion.Code, "Produce v0-v2 (message formats v0/v1) is not supported; use a client that sends record batches (Produce v3+)"
		c.log.Warn("refusing old-format produce", "version", req.Version, "client", h.clientID)
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		requestErr, requestMsg = kerr.InvalidRequiredAcks.Code, "acks must be -1 (all), 0 or 1"
	case req.TransactionID != nil:
		requestErr, requestMsg = kerr.InvalidRequest.Code, transactionsUnsupported
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
			}
			p.Partition = rp.Partition
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
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
