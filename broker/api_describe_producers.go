package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// DescribeProducers v0 (KIP-664): the producers a partition leader holds
// state for, with each one's open transaction (CurrentTxnStartOffset, -1
// without one) — what kafka-transactions.sh find-hanging and
// describe-producers read.
func init() { register(0, 0, handleDescribeProducers) }

func handleDescribeProducers(c *clientConn, h requestHeader, req *kmsg.DescribeProducersRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	resp.Topics = make([]kmsg.DescribeProducersResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	state := s.cfg.Metadata.State()
	for _, rt := range req.Topics {
		out := kmsg.NewDescribeProducersResponseTopic()
		out.Topic = rt.Topic
		topic, _ := state.Topic(rt.Topic) // the zero Topic when it does not exist
		readable := c.authorized(authz.OpRead, authz.ResourceTopic, rt.Topic)
		for _, index := range rt.Partitions {
			p := kmsg.NewDescribeProducersResponseTopicPartition()
			p.Partition = index
			if !readable {
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
				out.Partitions = append(out.Partitions, p)
				continue
			}
			part, code := s.leaderPartition(topic, index, -1)
			if part == nil {
				p.ErrorCode = code
				out.Partitions = append(out.Partitions, p)
				continue
			}
			for _, producer := range part.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = producer.ProducerID
				ap.ProducerEpoch = int32(producer.Epoch)
				ap.LastSequence = producer.LastSequence
				ap.LastTimestamp = producer.LastTimestamp
				ap.CoordinatorEpoch = producer.CoordinatorEpoch
				ap.CurrentTxnStartOffset = producer.CurrentTxnStartOffset
				p.ActiveProducers = append(p.ActiveProducers, ap)
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}
