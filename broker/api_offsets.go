package broker

import (
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/metadata"
)

// Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete, stored as
// records in __consumer_offsets by the group's coordinator shard.
//
// OffsetCommit v0 (ZooKeeper-era in Kafka) is served like v1 with no
// generation or member: a commit outside group membership. OffsetFetch v0
// likewise reads the same offsets as v1. v9 of both (KIP-848's member
// epoch, OffsetFetch's member id) changes nothing for the classic groups
// Strata coordinates: the generation is checked as before and OffsetFetch's
// member is not. v10 (Kafka 4.2's newest) names topics by id: an id the
// cluster does not know answers UNKNOWN_TOPIC_ID.
func init() {
	register(0, 10, handleOffsetCommit)
	register(0, 10, handleOffsetFetch)
	register(0, 0, handleOffsetDelete)
}

// resolveTopicIDs names the topics of a request that gives them by id
// (v10+ of OffsetCommit and OffsetFetch): the name of each id, "" for an
// id the cluster does not know.
func resolveTopicIDs(state *metadata.State, ids [][16]byte) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		if topic, ok := state.TopicByID(id); ok {
			names[i] = topic.Name
		}
	}
	return names
}

func handleOffsetCommit(c *clientConn, h requestHeader, req *kmsg.OffsetCommitRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	// v10 names topics by id: the request goes on by name, and the topics
	// whose id is unknown are answered UNKNOWN_TOPIC_ID. The shard writes
	// the others only while each id is still its topic's (TopicIDs): one
	// deleted and re-created under its name since is answered so too.
	state := s.cfg.Metadata.State()
	unknownIDs := map[int]bool{}
	var namedIDs map[string][16]byte
	if req.Version >= 10 {
		ids := make([][16]byte, len(req.Topics))
		for i, rt := range req.Topics {
			ids[i] = rt.TopicID
		}
		namedIDs = map[string][16]byte{}
		for i, name := range resolveTopicIDs(state, ids) {
			req.Topics[i].Topic = name
			unknownIDs[i] = name == ""
			if name != "" {
				namedIDs[name] = ids[i]
			}
		}
	}
	// Every partition gets code unless it is 0, then its own check.
	answer := func(code int16, perPartition func(rt kmsg.OffsetCommitRequestTopic, rp kmsg.OffsetCommitRequestTopicPartition) int16) kmsg.Response {
		for i, rt := range req.Topics {
			t := kmsg.NewOffsetCommitResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetCommitResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = code
				switch {
				case code == 0 && unknownIDs[i]:
					p.ErrorCode = kerr.UnknownTopicID.Code
				case code == 0 && perPartition != nil:
					p.ErrorCode = perPartition(rt, rp)
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
	if req.Group == "" {
		return answer(kerr.InvalidGroupID.Code, nil), nil
	}
	if !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group) {
		return answer(kerr.GroupAuthorizationFailed.Code, nil), nil
	}
	sh, kerrCode := s.groups.ShardFor(req.Group)
	if kerrCode != nil {
		return answer(kerrCode.Code, nil), nil
	}
	generation, memberID := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	committer := group.OffsetCommitRequest{
		GroupID:         req.Group,
		GenerationID:    generation,
		MemberID:        memberID,
		GroupInstanceID: deref(req.InstanceID),
		TopicIDs:        namedIDs,
	}
	// Checked here for the whole request, and again as the commits are
	// written: the group may rebalance in between.
	if err := sh.Coordinator().ValidateOffsetCommit(committer); err != nil {
		return answer(group.ErrorCode(err), nil), nil
	}
	now := time.Now().UnixMilli()
	commits := newOffsetCommits(c, state)
	for i, rt := range req.Topics {
		if unknownIDs[i] {
			continue
		}
		for _, rp := range rt.Partitions {
			co := group.CommittedOffset{Offset: rp.Offset, LeaderEpoch: -1, Metadata: deref(rp.Metadata), Timestamp: now}
			if req.Version >= 6 {
				co.LeaderEpoch = rp.LeaderEpoch
			}
			if req.Version == 1 && rp.Timestamp > 0 {
				co.Timestamp = rp.Timestamp
			}
			commits.add(group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, co)
		}
	}
	// A refusal of topics named by ids no longer theirs wrote nothing: the
	// others are committed again without them.
	var writeCode int16
	for len(commits.valid) > 0 {
		if s.beforeOffsetCommit != nil {
			s.beforeOffsetCommit(req.Group)
		}
		err := sh.CommitOffsets(committer, commits.valid)
		var replaced *group.UnknownTopicIDError
		if !errors.As(err, &replaced) {
			writeCode = group.ErrorCode(err)
			break
		}
		commits.refuseTopics(replaced.Topics, kerr.UnknownTopicID.Code)
	}
	return answer(0, func(rt kmsg.OffsetCommitRequestTopic, rp kmsg.OffsetCommitRequestTopicPartition) int16 {
		return commits.code(group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, writeCode)
	}), nil
}

// offsetCommits is the partitions of one OffsetCommit or TxnOffsetCommit,
// checked one by one: the valid commits, written together, and the codes
// of the refused ones (TOPIC_AUTHORIZATION_FAILED without READ on the
// topic, UNKNOWN_TOPIC_OR_PARTITION, OFFSET_METADATA_TOO_LARGE), which keep
// their own code whatever the write's.
type offsetCommits struct {
	c       *clientConn
	state   *metadata.State
	valid   map[group.TopicPartition]group.CommittedOffset
	refused map[group.TopicPartition]int16
}

func newOffsetCommits(c *clientConn, state *metadata.State) *offsetCommits {
	return &offsetCommits{c: c, state: state, valid: map[group.TopicPartition]group.CommittedOffset{}, refused: map[group.TopicPartition]int16{}}
}

// add checks the commit of a partition and keeps it, or its refusal.
func (o *offsetCommits) add(tp group.TopicPartition, co group.CommittedOffset) {
	topic, exists := o.state.Topic(tp.Topic)
	switch {
	case !o.c.authorized(authz.OpRead, authz.ResourceTopic, tp.Topic):
		o.refused[tp] = kerr.TopicAuthorizationFailed.Code
	case !exists || !topic.HasPartition(tp.Partition):
		o.refused[tp] = kerr.UnknownTopicOrPartition.Code
	case len(co.Metadata) > group.OffsetMetadataMaxBytes:
		o.refused[tp] = kerr.OffsetMetadataTooLarge.Code
	default:
		o.valid[tp] = co
	}
}

// refuseTopics moves the valid commits of topics to the refused ones,
// with code.
func (o *offsetCommits) refuseTopics(topics []string, code int16) {
	for tp := range o.valid {
		if slices.Contains(topics, tp.Topic) {
			delete(o.valid, tp)
			o.refused[tp] = code
		}
	}
}

// code is a partition's answer once the valid commits were written (or
// not) with writeCode.
func (o *offsetCommits) code(tp group.TopicPartition, writeCode int16) int16 {
	if code, ok := o.refused[tp]; ok {
		return code
	}
	return writeCode
}

// offsetFetchGroup answers one group's OffsetFetch: the asked partitions
// (nil: every committed one). Partitions without a commit answer offset -1
// without error, as Kafka does. Only committed offsets are answered: with
// requireStable (v7+, KIP-447), a partition with a transactional commit
// pending answers UNSTABLE_OFFSET_COMMIT instead (the client retries until
// the transaction ends), as Kafka does, partition by partition.
func offsetFetchGroup(c *clientConn, groupID string, topics []kmsg.OffsetFetchRequestTopic, all, requireStable bool) ([]kmsg.OffsetFetchResponseTopic, int16) {
	if groupID == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	// Kafka: DESCRIBE on the group, and on each topic (all topics: those
	// it may not describe are left out).
	if !c.authorized(authz.OpDescribe, authz.ResourceGroup, groupID) {
		return nil, kerr.GroupAuthorizationFailed.Code
	}
	described := func(topic string) bool { return c.authorized(authz.OpDescribe, authz.ResourceTopic, topic) }
	sh, kerrCode := c.server.groups.ShardFor(groupID)
	if kerrCode != nil {
		return nil, kerrCode.Code
	}
	fill := func(p *kmsg.OffsetFetchResponseTopicPartition, tp group.TopicPartition, co group.CommittedOffset, ok bool) {
		p.Offset, p.LeaderEpoch, p.Metadata = -1, -1, strPtr("")
		switch {
		case requireStable && sh.PendingTxnOffset(groupID, tp):
			p.ErrorCode = kerr.UnstableOffsetCommit.Code
		case ok:
			p.Offset, p.LeaderEpoch, p.Metadata = co.Offset, co.LeaderEpoch, strPtr(co.Metadata)
		}
	}
	var out []kmsg.OffsetFetchResponseTopic
	if all {
		byTopic := map[string][]int32{}
		offsets := sh.GroupOffsets(groupID)
		for tp := range offsets {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		names := make([]string, 0, len(byTopic))
		for name := range byTopic {
			if described(name) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = name
			parts := byTopic[name]
			slices.Sort(parts)
			for _, idx := range parts {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				p.Partition = idx
				tp := group.TopicPartition{Topic: name, Partition: idx}
				co, ok := offsets[tp]
				fill(&p, tp, co, ok)
				t.Partitions = append(t.Partitions, p)
			}
			out = append(out, t)
		}
		return out, 0
	}
	for _, rt := range topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			p := kmsg.NewOffsetFetchResponseTopicPartition()
			p.Partition = idx
			tp := group.TopicPartition{Topic: rt.Topic, Partition: idx}
			if !described(rt.Topic) {
				p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, strPtr(""), kerr.TopicAuthorizationFailed.Code
				t.Partitions = append(t.Partitions, p)
				continue
			}
			co, ok := sh.FetchOffset(groupID, tp)
			fill(&p, tp, co, ok)
			t.Partitions = append(t.Partitions, p)
		}
		out = append(out, t)
	}
	return out, 0
}

func handleOffsetFetch(c *clientConn, h requestHeader, req *kmsg.OffsetFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		state := c.server.cfg.Metadata.State()
		for _, rg := range req.Groups {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = rg.Group
			var topics []kmsg.OffsetFetchRequestTopic
			// v10: topics by id; an unknown id answers UNKNOWN_TOPIC_ID.
			var unknown []kmsg.OffsetFetchResponseGroupTopic
			for _, rt := range rg.Topics {
				name := rt.Topic
				if req.Version >= 10 {
					if topic, ok := state.TopicByID(rt.TopicID); ok {
						name = topic.Name
					} else {
						gt := kmsg.NewOffsetFetchResponseGroupTopic()
						gt.TopicID = rt.TopicID
						for _, idx := range rt.Partitions {
							gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
							gp.Partition, gp.Offset, gp.Metadata, gp.ErrorCode = idx, -1, strPtr(""), kerr.UnknownTopicID.Code
							gt.Partitions = append(gt.Partitions, gp)
						}
						unknown = append(unknown, gt)
						continue
					}
				}
				topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: name, Partitions: rt.Partitions})
			}
			out, code := offsetFetchGroup(c, rg.Group, topics, rg.Topics == nil, req.RequireStable)
			g.ErrorCode = code
			for _, t := range out {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t.Topic
				if req.Version >= 10 {
					topic, ok := state.Topic(t.Topic)
					if !ok {
						continue // deleted since: it has no id to name it by
					}
					gt.TopicID = topic.ID
				}
				for _, p := range t.Partitions {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata, gp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					gt.Partitions = append(gt.Partitions, gp)
				}
				g.Topics = append(g.Topics, gt)
			}
			if code == 0 {
				g.Topics = append(g.Topics, unknown...)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil
	}
	all := req.Version >= 2 && req.Topics == nil
	out, code := offsetFetchGroup(c, req.Group, req.Topics, all, req.RequireStable)
	if code == 0 {
		resp.Topics = out
		return resp, nil
	}
	if req.Version >= 2 {
		resp.ErrorCode = code
	}
	// v0-v1 have no top-level error: every partition carries it (and v2+
	// clients read the top level).
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			p := kmsg.NewOffsetFetchResponseTopicPartition()
			p.Partition, p.Offset, p.Metadata, p.ErrorCode = idx, -1, strPtr(""), code
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

func handleOffsetDelete(c *clientConn, h requestHeader, req *kmsg.OffsetDeleteRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	resp.Topics = make([]kmsg.OffsetDeleteResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if !c.authorized(authz.OpDelete, authz.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	sh, kerrCode := s.groups.ShardFor(req.Group)
	if kerrCode != nil {
		resp.ErrorCode = kerrCode.Code
		return resp, nil
	}
	// The handler refuses the partitions it may not touch or that do not
	// exist; the group decides on the others from its state (which topics
	// it subscribes to) as it deletes them, as Kafka does under the
	// group's lock.
	state := s.cfg.Metadata.State()
	var del []group.TopicPartition
	codes := map[group.TopicPartition]int16{}
	for _, rt := range req.Topics {
		topic, exists := state.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			tp := group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
			switch {
			case !c.authorized(authz.OpRead, authz.ResourceTopic, rt.Topic):
				codes[tp] = kerr.TopicAuthorizationFailed.Code
			case !exists || !topic.HasPartition(rp.Partition):
				codes[tp] = kerr.UnknownTopicOrPartition.Code
			default:
				del = append(del, tp)
			}
		}
	}
	if s.beforeOffsetDelete != nil {
		s.beforeOffsetDelete(req.Group)
	}
	refused, err := sh.DeleteOffsets(req.Group, del)
	if err != nil {
		resp.ErrorCode = group.ErrorCode(err)
		return resp, nil
	}
	for tp, err := range refused {
		codes[tp] = group.ErrorCode(err)
	}
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetDeleteResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetDeleteResponseTopicPartition()
			p.Partition = rp.Partition
			p.ErrorCode = codes[group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
