package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

func init() {
	register(0, 7, handleCreateTopics)
	register(0, 6, handleDeleteTopics)
	register(0, 3, handleCreatePartitions)
}

// adminContext bounds an admin request by its own timeout (at least a
// second, at most a minute) and by the server's life.
func (s *Server) adminContext(timeoutMillis int32) (context.Context, context.CancelFunc) {
	timeout := time.Duration(timeoutMillis) * time.Millisecond
	timeout = min(max(timeout, time.Second), time.Minute)
	return context.WithTimeout(s.ctx, timeout)
}

// adminCommitErrorCode is the answer to an admin change (client quotas,
// ACLs, SCRAM credentials) the quorum did not commit: INVALID_REQUEST when
// its state machine refused the change as invalid (err is invalid; nil
// when it refuses none), REQUEST_TIMED_OUT when
// the request's time ran out or the quorum was between leaders
// (metadata.ErrNotLeader) — retriable, as CreateTopics, DeleteTopics,
// CreatePartitions and AlterConfigs answer it, and as Kafka's forwarding
// broker answers when the controller does not answer in time —, and
// UNKNOWN_SERVER_ERROR otherwise.
func adminCommitErrorCode(err, invalid error) int16 {
	switch {
	case errors.Is(err, invalid):
		return kerr.InvalidRequest.Code
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, metadata.ErrNotLeader):
		return kerr.RequestTimedOut.Code
	default:
		return kerr.UnknownServerError.Code
	}
}

// awaitPropagation is the end of CreateTopics, CreatePartitions and
// DeleteTopics, as in Kafka: with a timeout of 0 or less the request
// answers at once and the change goes on (REQUEST_TIMED_OUT, the change
// committed); otherwise it waits until every live broker has acted on the
// metadata this node has applied, so whichever broker a client asks next
// agrees (REQUEST_TIMED_OUT when the timeout ends first).
func (s *Server) awaitPropagation(ctx context.Context, timeoutMillis int32) (int16, string) {
	if timeoutMillis <= 0 {
		return kerr.RequestTimedOut.Code, "committed; with timeout_ms 0 the request does not wait for every broker to see the change"
	}
	if err := s.cfg.Metadata.WaitPropagated(ctx, s.cfg.Metadata.State().AppliedIndex()); err != nil {
		s.metrics.propagationTimeouts.Inc()
		s.log.Warn("a metadata change did not reach every live broker within the request's timeout", "timeout_ms", timeoutMillis, "err", err)
		return kerr.RequestTimedOut.Code, "committed, but not yet visible on every broker: " + err.Error()
	}
	return 0, ""
}

func handleCreateTopics(c *clientConn, h requestHeader, req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	given := repeats[string]{}
	for _, rt := range req.Topics {
		given.add(rt.Topic)
	}
	budget := maxPartitionsPerRequest // shared by every topic of the request
	var created []int                 // indexes into resp.Topics
	for _, rt := range req.Topics {
		out := kmsg.NewCreateTopicsResponseTopic()
		out.Topic = rt.Topic
		setErr := func(code int16, msg string) {
			out.ErrorCode = code
			if msg != "" {
				out.ErrorMessage = &msg
			}
		}
		if repeated, answer := given.repeated(rt.Topic); repeated {
			if answer {
				setErr(kerr.InvalidRequest.Code, "topic '"+rt.Topic+"' appears more than once in the request")
				resp.Topics = append(resp.Topics, out)
			}
			continue
		}
		if !c.authorizedCreateTopic(rt.Topic) {
			setErr(kerr.TopicAuthorizationFailed.Code, "not authorized to CREATE topic '"+rt.Topic+"' (needs CREATE on the cluster or the topic)")
			resp.Topics = append(resp.Topics, out)
			continue
		}
		if code, msg := c.undescribableConflict(rt.Topic); code != 0 {
			setErr(code, msg)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		if budget <= 0 {
			setErr(kerr.InvalidPartitions.Code, fmt.Sprintf("one request may create at most %d partitions", maxPartitionsPerRequest))
			resp.Topics = append(resp.Topics, out)
			continue
		}
		tc := topicCreation{
			name:              rt.Topic,
			partitions:        rt.NumPartitions,
			replicationFactor: rt.ReplicationFactor,
			validateOnly:      req.ValidateOnly,
			maxPartitions:     budget,
		}
		if len(rt.ReplicaAssignment) > budget {
			setErr(kerr.InvalidPartitions.Code, fmt.Sprintf("one request may create at most %d partitions", maxPartitionsPerRequest))
			resp.Topics = append(resp.Topics, out)
			continue
		}
		if len(rt.ReplicaAssignment) > 0 {
			tc.assignments = make([][]int32, len(rt.ReplicaAssignment))
			ok := true
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(tc.assignments) || tc.assignments[a.Partition] != nil {
					ok = false
					break
				}
				tc.assignments[a.Partition] = a.Replicas
			}
			if !ok {
				setErr(kerr.InvalidReplicaAssignment.Code, "replica assignment partitions must be 0..n-1, each once")
				resp.Topics = append(resp.Topics, out)
				continue
			}
		}
		if len(rt.Configs) > 0 {
			tc.configs = make(map[string]string, len(rt.Configs))
			var nulls []string
			for _, cfg := range rt.Configs {
				if cfg.Value == nil {
					nulls = append(nulls, cfg.Name)
					continue
				}
				tc.configs[cfg.Name] = *cfg.Value
			}
			if len(nulls) > 0 {
				// As Kafka: leave a config out to get its default.
				setErr(kerr.InvalidConfig.Code, "null value not supported for topic configs: "+strings.Join(nulls, ", "))
				resp.Topics = append(resp.Topics, out)
				continue
			}
		}
		t, code, msg := s.createTopic(ctx, tc)
		if code != 0 {
			setErr(code, msg)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		s.log.Info("created topic", "topic", rt.Topic, "validate_only", req.ValidateOnly, "client", h.clientID)
		out.TopicID = t.ID
		var partitions int32
		var replicationFactor int16
		if req.ValidateOnly {
			assignments, _, _ := s.placeReplicas(tc.partitions, tc.replicationFactor, tc.assignments)
			partitions, replicationFactor = int32(len(assignments)), int16(len(assignments[0]))
		} else {
			partitions, replicationFactor = int32(len(t.Partitions)), int16(len(t.Partitions[0].Replicas))
			created = append(created, len(resp.Topics))
		}
		// Validated partitions count too: a validate-only request does the
		// same placement work, so it gets the same bound.
		budget -= int(partitions)
		if !c.authorized(authz.OpDescribeConfigs, authz.ResourceTopic, rt.Topic) {
			// As Kafka: the topic's configs, partition count and
			// replication factor are told only to a client that may
			// DESCRIBE_CONFIGS it.
			out.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, out)
			continue
		}
		out.NumPartitions, out.ReplicationFactor = partitions, replicationFactor
		for _, entry := range s.describeTopicConfigs(tc.configs, nil, false, false) {
			out.Configs = append(out.Configs, kmsg.CreateTopicsResponseTopicConfig{
				Name:        entry.Name,
				Value:       entry.Value,
				ReadOnly:    entry.ReadOnly,
				Source:      int8(entry.Source),
				IsSensitive: entry.IsSensitive,
			})
		}
		resp.Topics = append(resp.Topics, out)
	}
	if len(created) > 0 {
		if code, msg := s.awaitPropagation(ctx, req.TimeoutMillis); code != 0 {
			for _, i := range created {
				resp.Topics[i].ErrorCode, resp.Topics[i].ErrorMessage = code, &msg
			}
		}
	}
	return resp, nil
}

// undescribableConflict is the answer to creating a topic that exists, or
// whose name collides with one that exists, when the client may not
// DESCRIBE the existing one: TOPIC_AUTHORIZATION_FAILED for the topic
// itself, and a collision that does not name the other topic, so a client
// does not learn the names of topics it may not DESCRIBE by trying to
// create them. 0 when there is no such conflict.
func (c *clientConn) undescribableConflict(name string) (int16, string) {
	if _, exists := c.server.cfg.Metadata.State().Topic(name); exists {
		if !c.authorized(authz.OpDescribe, authz.ResourceTopic, name) {
			return kerr.TopicAuthorizationFailed.Code, "not authorized to DESCRIBE topic '" + name + "'"
		}
		return 0, ""
	}
	if other, collides := c.server.collidingTopic(name); collides && !c.authorized(authz.OpDescribe, authz.ResourceTopic, other) {
		return kerr.InvalidTopicException.Code, "topic '" + name + "' collides with an existing topic: '.' and '_' are the same in metric names"
	}
	return 0, ""
}

func handleDeleteTopics(c *clientConn, h requestHeader, req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, 0, max(len(req.Topics), len(req.TopicNames))) // one per request entry: no regrowth
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version < 6 {
		targets = make([]target, len(req.TopicNames))
		for i := range req.TopicNames {
			targets[i].name = &req.TopicNames[i]
		}
	} else {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	}
	// As Kafka's controller (ControllerApis.deleteTopics), an entry that
	// names a topic by both name and id, or by neither, and a name or id
	// that appears more than once, are refused with INVALID_REQUEST
	// (deleting nothing for them; a repeated name or id answered once, as
	// Kafka's response is keyed by name and librdkafka refuses a topic
	// answered twice); the other entries are carried out.
	names, ids := repeats[string]{}, repeats[[16]byte]{}
	for _, tg := range targets {
		switch {
		case tg.name != nil && tg.id == [16]byte{}:
			names.add(*tg.name)
		case tg.name == nil && tg.id != [16]byte{}:
			ids.add(tg.id)
		}
	}
	// The names of the topics entries name by id, resolved before any is
	// deleted: an entry naming one of them by name is refused too.
	namedByID := map[string]bool{}
	for id := range ids {
		if topic, ok := s.cfg.Metadata.State().TopicByID(id); ok {
			namedByID[topic.Name] = true
		}
	}
	var deleted []int // indexes into resp.Topics
	// As Kafka's controller: DELETE on the cluster allows deleting every
	// topic, else DELETE on the topic.
	clusterDelete := c.authorizedCluster(authz.OpDelete)
	mayDelete := func(name string) bool {
		return clusterDelete || c.authorized(authz.OpDelete, authz.ResourceTopic, name)
	}
	for _, tg := range targets {
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic = tg.name
		out.TopicID = tg.id
		setErr := func(code int16, msg string) {
			out.ErrorCode = code
			out.ErrorMessage = &msg
		}
		switch {
		case tg.name != nil && tg.id != [16]byte{}:
			setErr(kerr.InvalidRequest.Code, "name a topic by its name or by its id, not both")
		case tg.name == nil && tg.id == [16]byte{}:
			setErr(kerr.InvalidRequest.Code, "neither a topic name nor a topic id was given")
		case tg.name != nil:
			if repeated, answer := names.repeated(*tg.name); repeated && !answer {
				continue
			} else if repeated {
				setErr(kerr.InvalidRequest.Code, "topic '"+*tg.name+"' appears more than once in the request")
			}
		default:
			if repeated, answer := ids.repeated(tg.id); repeated && !answer {
				continue
			} else if repeated {
				setErr(kerr.InvalidRequest.Code, "a topic id appears more than once in the request")
			}
		}
		if out.ErrorCode != 0 {
			resp.Topics = append(resp.Topics, out)
			continue
		}
		var (
			topic  metadata.Topic
			exists bool
		)
		state := s.cfg.Metadata.State()
		if tg.name != nil {
			topic, exists = state.Topic(*tg.name)
		} else {
			topic, exists = state.TopicByID(tg.id)
		}
		// Authorized first, so that a client that may not delete a topic
		// does not learn whether it exists.
		deleteAllowed := (tg.name != nil && mayDelete(*tg.name)) || (tg.name == nil && exists && mayDelete(topic.Name))
		switch {
		case !deleteAllowed && (exists || tg.name != nil):
			setErr(kerr.TopicAuthorizationFailed.Code, "not authorized to DELETE the topic")
		case tg.name != nil && namedByID[*tg.name]:
			setErr(kerr.InvalidRequest.Code, "topic '"+*tg.name+"' is also named by its id in the request")
		case !exists && tg.name == nil:
			setErr(kerr.UnknownTopicID.Code, "no topic with that id")
		case !exists:
			setErr(kerr.UnknownTopicOrPartition.Code, "topic '"+*tg.name+"' does not exist")
		case topic.Internal:
			setErr(kerr.InvalidRequest.Code, "internal topic '"+topic.Name+"' cannot be deleted")
		default:
			name := topic.Name
			out.Topic = &name
			out.TopicID = topic.ID
			if _, err := s.cfg.Metadata.DeleteTopic(ctx, topic.Name); err != nil {
				if errors.Is(err, metadata.ErrUnknownTopic) {
					setErr(kerr.UnknownTopicOrPartition.Code, "topic '"+topic.Name+"' does not exist")
				} else {
					setErr(kerr.RequestTimedOut.Code, "deleting topic: "+err.Error())
				}
				break
			}
			// The pass also has the group coordinators drop the topic's
			// committed offsets (onTopicsDeleted).
			if err := s.partitions.reconcile(); err != nil {
				s.log.Error("removing partitions of a deleted topic failed", "topic", topic.Name, "err", err)
			}
			s.log.Info("deleted topic", "topic", topic.Name, "client", h.clientID)
			deleted = append(deleted, len(resp.Topics))
		}
		resp.Topics = append(resp.Topics, out)
	}
	if len(deleted) > 0 {
		if code, msg := s.awaitPropagation(ctx, req.TimeoutMillis); code != 0 {
			for _, i := range deleted {
				resp.Topics[i].ErrorCode, resp.Topics[i].ErrorMessage = code, &msg
			}
		}
	}
	return resp, nil
}

func handleCreatePartitions(c *clientConn, h requestHeader, req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	resp.Topics = make([]kmsg.CreatePartitionsResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	ctx, cancel := s.adminContext(req.TimeoutMillis)
	defer cancel()
	given := repeats[string]{}
	for _, rt := range req.Topics {
		given.add(rt.Topic)
	}
	budget := int32(maxPartitionsPerRequest) // shared by every topic of the request
	var grown []int                          // indexes into resp.Topics
	for _, rt := range req.Topics {
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		setErr := func(code int16, msg string) {
			out.ErrorCode = code
			out.ErrorMessage = &msg
		}
		repeated, answer := given.repeated(rt.Topic)
		if repeated && !answer {
			continue
		}
		topic, exists := s.cfg.Metadata.State().Topic(rt.Topic)
		current := int32(len(topic.Partitions))
		switch {
		case repeated:
			setErr(kerr.InvalidRequest.Code, "topic '"+rt.Topic+"' appears more than once in the request")
		case !c.authorized(authz.OpAlter, authz.ResourceTopic, rt.Topic):
			setErr(kerr.TopicAuthorizationFailed.Code, "not authorized to ALTER topic '"+rt.Topic+"'")
		case !exists:
			setErr(kerr.UnknownTopicOrPartition.Code, "topic '"+rt.Topic+"' does not exist")
		case rt.Count <= current:
			setErr(kerr.InvalidPartitions.Code, "topic '"+rt.Topic+"' has "+itoa(int(current))+" partitions; the new count must be larger")
		case rt.Count-current > budget:
			setErr(kerr.InvalidPartitions.Code, fmt.Sprintf("one request may create at most %d partitions (this topic asks for %d more, %d left in this request)", maxPartitionsPerRequest, rt.Count-current, budget))
		case rt.Assignment != nil && int32(len(rt.Assignment)) != rt.Count-current:
			setErr(kerr.InvalidReplicaAssignment.Code, "the assignment must name replicas for exactly the new partitions")
		default:
			budget -= rt.Count - current // asked for, whatever becomes of them
			rf := int16(len(topic.Partitions[0].Replicas))
			var manual [][]int32
			for _, a := range rt.Assignment {
				if len(a.Replicas) != int(rf) {
					setErr(kerr.InvalidReplicaAssignment.Code, "every new partition needs "+itoa(int(rf))+" replicas")
					break
				}
				manual = append(manual, a.Replicas)
			}
			if out.ErrorCode != 0 {
				break
			}
			var assignments [][]int32
			var code int16
			var msg string
			if manual != nil {
				assignments, code, msg = s.placeReplicas(-1, -1, manual)
			} else {
				assignments, code, msg = s.placeReplicas(rt.Count-current, rf, nil)
			}
			if code != 0 {
				setErr(code, msg)
				break
			}
			if code, msg := s.admitPartitions(assignments); code != 0 {
				setErr(code, msg)
				break
			}
			if req.ValidateOnly {
				break
			}
			if err := s.cfg.Metadata.CreatePartitions(ctx, rt.Topic, rt.Count, assignments); err != nil {
				switch {
				case errors.Is(err, metadata.ErrUnknownTopic):
					setErr(kerr.UnknownTopicOrPartition.Code, err.Error())
				case errors.Is(err, metadata.ErrInvalidPartitions):
					setErr(kerr.InvalidPartitions.Code, err.Error())
				default:
					setErr(kerr.RequestTimedOut.Code, "creating partitions: "+err.Error())
				}
				break
			}
			reconcileErr := s.partitions.reconcile()
			if grownTopic, ok := s.cfg.Metadata.State().Topic(rt.Topic); ok {
				if failed := s.unopenedPartitions(grownTopic, current); len(failed) > 0 {
					// Kafka cannot take partitions back: they stay, offline,
					// and the client is told, never a success.
					s.log.Error("new partitions could not be opened and are offline", "topic", rt.Topic, "partitions", len(failed), "err", reconcileErr)
					setErr(kerr.KafkaStorageError.Code, fmt.Sprintf("%d of the new partitions (%s) could not be opened on broker %d: %s; they stay offline until it can open them (e.g. after raising its file limit and restarting it)",
						len(failed), partitionList(rt.Topic, failed), s.cfg.NodeID, firstLine(reconcileErr)))
					break
				}
			}
			if reconcileErr != nil {
				s.log.Error("applying metadata after creating partitions", "topic", rt.Topic, "err", reconcileErr)
			}
			s.log.Info("created partitions", "topic", rt.Topic, "count", rt.Count, "client", h.clientID)
			grown = append(grown, len(resp.Topics))
		}
		resp.Topics = append(resp.Topics, out)
	}
	if len(grown) > 0 {
		if code, msg := s.awaitPropagation(ctx, req.TimeoutMillis); code != 0 {
			for _, i := range grown {
				resp.Topics[i].ErrorCode, resp.Topics[i].ErrorMessage = code, &msg
			}
		}
	}
	return resp, nil
}

// repeats counts the names (or ids) a batch request gives, so that one
// given more than once is refused, and answered once: Kafka's responses
// to CreateTopics and DeleteTopics are keyed by name (librdkafka refuses a
// topic answered twice), and its controller answers each repeated name of
// CreatePartitions once too.
type repeats[K comparable] map[K]int

func (r repeats[K]) add(k K) { r[k]++ }

// repeated reports whether k is given more than once, and if so whether
// this is the occurrence to answer (the first asked about).
func (r repeats[K]) repeated(k K) (repeated, answer bool) {
	switch n := r[k]; {
	case n < 0:
		return true, false
	case n > 1:
		r[k] = -1
		return true, true
	}
	return false, false
}
