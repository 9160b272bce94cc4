package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

// DescribeTopicPartitions v0 (KIP-966; Kafka 3.7+ admin clients describe
// topics with it): Metadata's view of topics, paginated. Topics come in
// name order; no topic names means every topic the client may DESCRIBE
// (the others are left out, as Metadata does), named topics the client may
// not DESCRIBE answer TOPIC_AUTHORIZATION_FAILED whether they exist or not.
// At most ResponsePartitionLimit partitions (capped at
// maxDescribePartitions, Kafka's max.request.partition.size.limit default)
// are answered; NextCursor names the first partition left out, and the
// client asks again from there (Cursor). Strata has no eligible leader
// replicas (ELR): those lists are empty.
//
// A cursor naming a topic the request's topic list does not name is
// refused as Kafka refuses it (DescribeTopicPartitionsRequestHandler's
// InvalidRequestException): every listed topic answers INVALID_REQUEST,
// with no partitions.
func init() { register(0, 0, handleDescribeTopicPartitions) }

// maxDescribePartitions is Kafka's max.request.partition.size.limit
// default: the most partitions one response describes.
const maxDescribePartitions = 2000

func handleDescribeTopicPartitions(c *clientConn, h requestHeader, req *kmsg.DescribeTopicPartitionsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	state := s.cfg.Metadata.State()
	limit := int(req.ResponsePartitionLimit)
	if limit <= 0 || limit > maxDescribePartitions {
		limit = maxDescribePartitions
	}
	var names []string
	listed := len(req.Topics) > 0
	if listed {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
	} else {
		for _, t := range state.Topics() {
			names = append(names, t.Name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if listed && req.Cursor != nil {
		if _, found := slices.BinarySearch(names, req.Cursor.Topic); !found {
			return invalidTopicPartitionsCursor(req, resp), nil
		}
	}
	firstPartition := int32(0)
	if req.Cursor != nil {
		// From the cursor's topic on (without a list, a cursor topic
		// that is gone starts at the next name).
		i, _ := slices.BinarySearch(names, req.Cursor.Topic)
		names = names[i:]
		if len(names) > 0 && names[0] == req.Cursor.Topic {
			firstPartition = max(req.Cursor.Partition, 0)
		}
	}
	for i, name := range names {
		out := kmsg.NewDescribeTopicPartitionsResponseTopic()
		out.Topic = kmsg.StringPtr(name)
		described := c.authorized(authz.OpDescribe, authz.ResourceTopic, name)
		topic, exists := state.Topic(name)
		switch {
		case !described && !listed:
			continue
		case !described:
			out.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case !exists:
			out.ErrorCode = kerr.UnknownTopicOrPartition.Code
		default:
			from := int32(0)
			if i == 0 {
				from = firstPartition
			}
			out, limit = s.describeTopicPartitions(topic, from, limit)
			if limit == 0 {
				resp.Topics = append(resp.Topics, out)
				next := int32(from) + int32(len(out.Partitions))
				if int(next) < len(topic.Partitions) {
					resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: next}
					return resp, nil
				}
				// The next topic of the page after: without a list,
				// only one the client may DESCRIBE (as Kafka, whose
				// cursor walks the authorized topics), so that a cursor
				// never names a topic the client may not know of.
				for _, after := range names[i+1:] {
					if listed || c.authorized(authz.OpDescribe, authz.ResourceTopic, after) {
						resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: after, Partition: 0}
						break
					}
				}
				return resp, nil
			}
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// invalidTopicPartitionsCursor is the answer to a request whose cursor
// names a topic its list does not: Kafka's error response, each requested
// topic with INVALID_REQUEST.
func invalidTopicPartitionsCursor(req *kmsg.DescribeTopicPartitionsRequest, resp *kmsg.DescribeTopicPartitionsResponse) *kmsg.DescribeTopicPartitionsResponse {
	for _, t := range req.Topics {
		out := kmsg.NewDescribeTopicPartitionsResponseTopic()
		out.Topic = kmsg.StringPtr(t.Topic)
		out.ErrorCode = kerr.InvalidRequest.Code
		out.Partitions = []kmsg.DescribeTopicPartitionsResponseTopicPartition{}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// describeTopicPartitions describes topic's partitions from index from on,
// at most limit of them, and returns what is left of limit.
func (s *Server) describeTopicPartitions(topic metadata.Topic, from int32, limit int) (kmsg.DescribeTopicPartitionsResponseTopic, int) {
	described := s.topicMetadata(topic)
	out := kmsg.NewDescribeTopicPartitionsResponseTopic()
	out.Topic = described.Topic
	out.TopicID = described.TopicID
	out.IsInternal = described.IsInternal
	out.ErrorCode = described.ErrorCode
	for _, p := range described.Partitions {
		if p.Partition < from {
			continue
		}
		if limit == 0 {
			break
		}
		dp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
		dp.ErrorCode, dp.Partition, dp.LeaderID, dp.LeaderEpoch = p.ErrorCode, p.Partition, p.Leader, p.LeaderEpoch
		dp.Replicas, dp.ISR, dp.OfflineReplicas = p.Replicas, p.ISR, p.OfflineReplicas
		// Empty, not null: Kafka always sends both lists, and the Java
		// admin client reads them without a null check.
		dp.EligibleLeaderReplicas, dp.LastKnownELR = []int32{}, []int32{}
		out.Partitions = append(out.Partitions, dp)
		limit--
	}
	return out, limit
}
