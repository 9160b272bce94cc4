package broker

import (
	"cmp"
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

// Metadata v0-v13 (Kafka 4.2's range). v13 adds a top-level error code,
// for KIP-1102's REBOOTSTRAP_REQUIRED (a client whose metadata cannot be
// repaired by refreshing it starts over from its bootstrap servers);
// nothing in Strata needs it, so the code is 0.
func init() { register(0, 13, handleMetadata) }

// autoCreatePropagationWait bounds how long a Metadata request that
// auto-created a topic waits for every broker to have it.
const autoCreatePropagationWait = 3 * time.Second

func handleMetadata(c *clientConn, h requestHeader, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Topics = make([]kmsg.MetadataResponseTopic, 0, len(req.Topics)) // one per request entry: no regrowth
	resp.Brokers, resp.ControllerID = s.brokersFor(c.listener)
	clusterID := s.cfg.Metadata.State().ClusterID()
	resp.ClusterID = &clusterID

	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if allTopics {
		for _, t := range s.cfg.Metadata.State().Topics() {
			// Kafka lists only the topics the client may DESCRIBE.
			if c.authorized(authz.OpDescribe, authz.ResourceTopic, t.Name) {
				resp.Topics = append(resp.Topics, s.topicMetadata(t))
			}
		}
		return resp, nil
	}
	// Kafka: auto-creation is allowed for v0-v3 always, v4+ when asked.
	allowCreate := !s.cfg.DisableAutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		var mt kmsg.MetadataResponseTopic
		mt = kmsg.NewMetadataResponseTopic()
		if rt.Topic == nil {
			// v10+: by topic id.
			mt.TopicID = rt.TopicID
			if t, ok := s.cfg.Metadata.State().TopicByID(rt.TopicID); ok {
				if !c.authorized(authz.OpDescribe, authz.ResourceTopic, t.Name) {
					mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
					resp.Topics = append(resp.Topics, mt)
					continue
				}
				resp.Topics = append(resp.Topics, s.topicMetadata(t))
				continue
			}
			mt.ErrorCode = kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		mt.Topic = rt.Topic
		// Whether the topic exists is not told to a client that may not
		// DESCRIBE it.
		if !c.authorized(authz.OpDescribe, authz.ResourceTopic, name) {
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if t, ok := s.cfg.Metadata.State().Topic(name); ok {
			resp.Topics = append(resp.Topics, s.topicMetadata(t))
			continue
		}
		if err := validateTopicName(name); err != nil {
			mt.ErrorCode = kerr.InvalidTopicException.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if !allowCreate {
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if !c.authorizedCreateTopic(name) {
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if internal := s.internalTopic(name); internal != nil {
			// Created as its coordinators need it (internal, its
			// partition count and configs), not as an ordinary topic.
			if t, err := internal.ensure(); err == nil {
				resp.Topics = append(resp.Topics, s.topicMetadata(t))
			} else {
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
				resp.Topics = append(resp.Topics, mt)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		t, kerrCode, msg := s.createTopic(ctx, topicCreation{name: name, partitions: -1, replicationFactor: -1})
		cancel()
		switch kerrCode {
		case 0:
			s.log.Info("auto-created topic", "topic", name, "client", h.clientID)
			// Listed once every broker has it, so a producer's next
			// request finds its partitions wherever they lead; while
			// they settle, clients retry LEADER_NOT_AVAILABLE.
			ctx, cancel := context.WithTimeout(s.ctx, autoCreatePropagationWait)
			err := s.cfg.Metadata.WaitPropagated(ctx, s.cfg.Metadata.State().AppliedIndex())
			cancel()
			if err != nil {
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
				resp.Topics = append(resp.Topics, mt)
				break
			}
			resp.Topics = append(resp.Topics, s.topicMetadata(t))
		case kerr.TopicAlreadyExists.Code: // created concurrently
			if t, ok := s.cfg.Metadata.State().Topic(name); ok {
				resp.Topics = append(resp.Topics, s.topicMetadata(t))
				break
			}
			mt.ErrorCode = kerr.LeaderNotAvailable.Code
			resp.Topics = append(resp.Topics, mt)
		case kerr.InvalidTopicException.Code, kerr.InvalidConfig.Code, kerr.InvalidPartitions.Code, kerr.InvalidReplicationFactor.Code, kerr.PolicyViolation.Code:
			// Not going to succeed on a retry: say why.
			s.peerLog.Warn("auto-creating topic refused", "topic", name, "err", msg)
			mt.ErrorCode = kerrCode
			resp.Topics = append(resp.Topics, mt)
		default:
			s.peerLog.Warn("auto-creating topic failed", "topic", name, "err", msg)
			mt.ErrorCode = kerr.LeaderNotAvailable.Code
			resp.Topics = append(resp.Topics, mt)
		}
	}
	return resp, nil
}

// brokersFor lists the live brokers with their address on the listener the
// client used (this broker always, so a client can bootstrap while it
// registers), and the controller: the metadata leader when it is a live
// broker, else this one (librdkafka needs a live controller id).
func (s *Server) brokersFor(l *boundListener) ([]kmsg.MetadataResponseBroker, int32) {
	self := kmsg.MetadataResponseBroker{NodeID: s.cfg.NodeID, Host: l.advertiseHost, Port: l.advertisePort}
	if s.cfg.Rack != "" {
		self.Rack = &s.cfg.Rack
	}
	brokers := []kmsg.MetadataResponseBroker{self}
	controller := s.cfg.NodeID
	leader, _ := s.cfg.Metadata.Leader()
	for _, b := range liveBrokers(s.cfg.Metadata.State()) {
		if b.ID == leader {
			controller = leader
		}
		if b.ID == s.cfg.NodeID {
			continue
		}
		endpoint, ok := b.Endpoint(l.Name)
		if !ok {
			continue
		}
		mb := kmsg.MetadataResponseBroker{NodeID: b.ID, Host: endpoint.Host, Port: endpoint.Port}
		if b.Rack != "" {
			rack := b.Rack
			mb.Rack = &rack
		}
		brokers = append(brokers, mb)
	}
	return brokers, controller
}

// brokerAddress is where clients of listener l reach broker id.
func (s *Server) brokerAddress(l *boundListener, id int32) (host string, port int32, ok bool) {
	if id == s.cfg.NodeID {
		return l.advertiseHost, l.advertisePort, true
	}
	b, ok := s.cfg.Metadata.State().Broker(id)
	if !ok || b.Fenced {
		return "", -1, false
	}
	endpoint, ok := b.Endpoint(l.Name)
	return endpoint.Host, endpoint.Port, ok
}

// topicMetadata describes a topic; a partition without a leader, or whose
// log this broker leads but has not opened yet, answers
// LEADER_NOT_AVAILABLE, so clients retry while it settles.
func (s *Server) topicMetadata(t metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	ready := true
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = append([]int32(nil), p.Replicas...)
		mp.ISR = append([]int32(nil), p.ISR...)
		switch {
		case p.Leader == -1:
			// Offline (its in-sync replicas are down): the other
			// partitions of the topic stay usable.
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		case p.Leader == s.cfg.NodeID && s.partitions.get(t, p.Index) == nil:
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
			ready = false
		}
		state := s.cfg.Metadata.State()
		for _, r := range p.Replicas {
			if b, ok := state.Broker(r); r != s.cfg.NodeID && (!ok || b.Fenced) {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	if !ready {
		mt.ErrorCode = kerr.LeaderNotAvailable.Code
	}
	return mt
}

// topicCreation is a validated-by-createTopic request to create one topic.
type topicCreation struct {
	name              string
	partitions        int32 // -1: num.partitions
	replicationFactor int16 // -1: default.replication.factor
	assignments       [][]int32
	configs           map[string]string
	validateOnly      bool
	// maxPartitions bounds the partitions this creation may add (what is
	// left of the request's budget); 0 means maxPartitionsPerRequest.
	maxPartitions int
}

// createTopic validates and creates a topic through the metadata quorum and
// opens its local partitions. It answers a Kafka error code and message.
func (s *Server) createTopic(ctx context.Context, tc topicCreation) (metadata.Topic, int16, string) {
	if err := validateTopicName(tc.name); err != nil {
		return metadata.Topic{}, kerr.InvalidTopicException.Code, err.Error()
	}
	if _, exists := s.cfg.Metadata.State().Topic(tc.name); exists {
		return metadata.Topic{}, kerr.TopicAlreadyExists.Code, "topic '" + tc.name + "' already exists"
	}
	if s.internalTopic(tc.name) != nil {
		// Its coordinators create it, internal (internalTopicManager):
		// created here it would be an ordinary topic that clients could
		// produce to, forging the state the coordinators load.
		return metadata.Topic{}, kerr.InvalidRequest.Code, "creation of internal topic '" + tc.name + "' is prohibited: its coordinator creates it on first use"
	}
	if other, collides := s.collidingTopic(tc.name); collides {
		return metadata.Topic{}, kerr.InvalidTopicException.Code, "topic '" + tc.name + "' collides with existing topic '" + other + "': '.' and '_' are the same in metric names"
	}
	assignments, code, msg := s.placeReplicas(tc.partitions, tc.replicationFactor, tc.assignments)
	if code != 0 {
		return metadata.Topic{}, code, msg
	}
	if budget := cmp.Or(tc.maxPartitions, maxPartitionsPerRequest); len(assignments) > budget {
		return metadata.Topic{}, kerr.InvalidPartitions.Code, fmt.Sprintf("one request may create at most %d partitions (this topic asks for %d, %d left in this request)", maxPartitionsPerRequest, len(assignments), budget)
	}
	if code, msg := s.validateTopicConfigs(tc.configs, nil); code != 0 {
		return metadata.Topic{}, code, msg
	}
	if code, msg := s.admitPartitions(assignments); code != 0 {
		return metadata.Topic{}, code, msg
	}
	if tc.validateOnly {
		return metadata.Topic{Name: tc.name}, 0, ""
	}
	t, err := s.cfg.Metadata.CreateTopic(ctx, metadata.TopicSpec{
		Name:        tc.name,
		Assignments: assignments,
		Configs:     tc.configs,
	})
	if err != nil {
		if errors.Is(err, metadata.ErrTopicExists) {
			return metadata.Topic{}, kerr.TopicAlreadyExists.Code, "topic '" + tc.name + "' already exists"
		}
		return metadata.Topic{}, kerr.RequestTimedOut.Code, "creating topic: " + err.Error()
	}
	reconcileErr := s.partitions.reconcile()
	if failed := s.unopenedPartitions(t, 0); len(failed) > 0 {
		// Never answer success for a partition that is not there: the
		// topic is deleted again (its opened partitions and directories
		// with it) and the client told why.
		msg := fmt.Sprintf("%d of the topic's partitions (%s) could not be opened on broker %d: %s; the topic was deleted again",
			len(failed), partitionList(tc.name, failed), s.cfg.NodeID, firstLine(reconcileErr))
		s.log.Error("a new topic's partitions could not be opened; deleting the topic again", "topic", tc.name, "partitions", len(failed), "err", reconcileErr)
		if _, err := s.cfg.Metadata.DeleteTopic(ctx, tc.name); err != nil {
			msg += " — but deleting it failed (" + err.Error() + "); delete it by hand"
		}
		if err := s.partitions.reconcile(); err != nil {
			s.log.Error("removing the partitions of a topic whose creation failed", "topic", tc.name, "err", err)
		}
		return metadata.Topic{}, kerr.KafkaStorageError.Code, msg
	}
	if reconcileErr != nil {
		s.log.Error("applying metadata after creating a topic", "topic", tc.name, "err", reconcileErr)
	}
	s.warnDeprecatedConfigs(tc.name, tc.configs)
	return t, 0, ""
}

// admitPartitions refuses new partitions (with POLICY_VIOLATION and a
// message naming the limit) when this broker's file descriptors cannot
// hold those assigned to it. Each broker can only count its own: replicas
// placed on other brokers are checked there when they open (and stay
// offline, logged, if they do not fit).
func (s *Server) admitPartitions(assignments [][]int32) (int16, string) {
	mine := 0
	for _, replicas := range assignments {
		if containsBroker(replicas, s.cfg.NodeID) {
			mine++
		}
	}
	if mine == 0 {
		return 0, ""
	}
	if ok, msg := s.admissionCheck().admit(s.cfg.NodeID, mine); !ok {
		s.metrics.fdRefusals.Add(float64(mine))
		s.peerLog.Warn("refused new partitions: not enough file descriptors", "partitions", mine, "err", msg)
		return kerr.PolicyViolation.Code, msg
	}
	return 0, ""
}

// unopenedPartitions lists the partitions of t from index from on that
// are assigned to this broker but not open here.
func (s *Server) unopenedPartitions(t metadata.Topic, from int32) []int32 {
	var failed []int32
	for _, p := range t.Partitions {
		if p.Index >= from && containsBroker(p.Replicas, s.cfg.NodeID) && s.partitions.get(t, p.Index) == nil {
			failed = append(failed, p.Index)
		}
	}
	return failed
}

// partitionList names a few partitions: "orders-3, orders-7 and 12 more".
func partitionList(topic string, indexes []int32) string {
	var names []string
	for _, i := range indexes[:min(len(indexes), 3)] {
		names = append(names, fmt.Sprintf("%s-%d", topic, i))
	}
	list := strings.Join(names, ", ")
	if more := len(indexes) - len(names); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	return list
}

// firstLine is the first line of an error joined from many.
func firstLine(err error) string {
	if err == nil {
		return "see the broker log"
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// placeReplicas decides the replica set of each new partition across the
// live (registered, unfenced) brokers.
func (s *Server) placeReplicas(partitions int32, replicationFactor int16, manual [][]int32) ([][]int32, int16, string) {
	live := liveBrokers(s.cfg.Metadata.State())
	var liveIDs []int32
	for _, b := range live {
		liveIDs = append(liveIDs, b.ID)
	}
	if len(manual) > 0 {
		if partitions != -1 || replicationFactor != -1 {
			return nil, kerr.InvalidRequest.Code, "both manual assignments and a partition count or replication factor were given"
		}
		for _, replicas := range manual {
			if len(replicas) == 0 {
				return nil, kerr.InvalidReplicaAssignment.Code, "partition with no replicas"
			}
			seen := map[int32]bool{}
			for _, r := range replicas {
				if seen[r] {
					return nil, kerr.InvalidReplicaAssignment.Code, "duplicate replica in an assignment"
				}
				seen[r] = true
				if !containsBroker(liveIDs, r) {
					return nil, kerr.InvalidReplicaAssignment.Code, "assignment names broker " + itoa(int(r)) + ", which is not a live broker"
				}
			}
		}
		return manual, 0, ""
	}
	if partitions == -1 {
		partitions = s.cfg.NumPartitions
	}
	if replicationFactor == -1 {
		replicationFactor = s.cfg.DefaultReplicationFactor
	}
	if partitions < 1 {
		return nil, kerr.InvalidPartitions.Code, "number of partitions must be at least 1"
	}
	if partitions > maxPartitionsPerRequest {
		return nil, kerr.InvalidPartitions.Code, "number of partitions is too large"
	}
	if replicationFactor < 1 {
		return nil, kerr.InvalidReplicationFactor.Code, "replication factor must be at least 1"
	}
	if int(replicationFactor) > len(live) {
		return nil, kerr.InvalidReplicationFactor.Code, "replication factor is larger than the number of available brokers (" + itoa(len(live)) + ")"
	}
	return placeNew(live, partitions, int(replicationFactor)), 0, ""
}

// maxPartitionsPerRequest bounds what one request can make this node open.
const maxPartitionsPerRequest = 10000

// collidingTopic finds an existing topic whose name differs from name only
// by '.' versus '_' (Kafka refuses such pairs: metric names would clash).
func (s *Server) collidingTopic(name string) (string, bool) {
	if !strings.ContainsAny(name, "._") {
		return "", false
	}
	key := strings.ReplaceAll(name, ".", "_")
	found := ""
	s.cfg.Metadata.State().EachTopic(func(t metadata.Topic) bool {
		if t.Name != name && strings.ReplaceAll(t.Name, ".", "_") == key {
			found = t.Name
			return false
		}
		return true
	})
	return found, found != ""
}

func validateTopicName(name string) error { return metadata.ValidateTopicName(name) }
