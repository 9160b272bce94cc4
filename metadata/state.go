package metadata

import (
	"maps"
	"slices"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"github.com/strata-log/strata/authz"
)

// Partition is the replicated state of one partition of a topic.
type Partition struct {
	// Index is the partition number, 0..n-1 within its topic.
	Index int32
	// Replicas is the ordered replica set (broker ids); the first is the
	// preferred leader.
	Replicas []int32
	// Leader is the broker id of the current leader, or -1 for none.
	Leader int32
	// LeaderEpoch increases every time the leader changes; it may also
	// increase with the same leader (ChangePartition's bump, an import of
	// tiered segments written at higher epochs).
	LeaderEpoch int32
	// ISR is the in-sync replica set, a subset of Replicas.
	ISR []int32
	// PartitionEpoch increases on every change of this partition's state.
	PartitionEpoch int32
	// AddingReplicas and RemovingReplicas are the replicas a reassignment
	// in progress adds and removes (KIP-455); Replicas holds both. Nil
	// when none is in progress (commands_reassign.go).
	AddingReplicas, RemovingReplicas []int32
}

// Topic is the replicated state of one topic.
//
// A Topic obtained from a State is shared with every other reader of that
// State: treat its slices and map as read-only. The state machine never
// modifies a Topic in place; a change creates a new one.
type Topic struct {
	Name string
	// ID is the topic's UUID (Kafka's topic id), never all zeros.
	ID [16]byte
	// Configs holds the topic configs set explicitly (Kafka names, e.g.
	// "retention.ms"), as strings validated by the caller. Configs that are
	// not set take the broker default. Nil when none are set.
	Configs map[string]string
	// Partitions is indexed by partition number.
	Partitions []Partition
	// Internal marks topics Strata manages itself, e.g. __consumer_offsets.
	Internal bool
	// CreatedAtUnixMilli is the creation time proposed with the command.
	CreatedAtUnixMilli int64
}

// clone returns a deep copy of t, so that the copy can be changed without
// touching a Topic that readers may hold.
func (t Topic) clone() Topic {
	t.Configs = cloneConfigs(t.Configs)
	partitions := make([]Partition, len(t.Partitions))
	for i, partition := range t.Partitions {
		partitions[i] = partition.clone()
	}
	t.Partitions = partitions
	return t
}

func (p Partition) clone() Partition {
	p.Replicas = cloneInt32s(p.Replicas)
	p.ISR = cloneInt32s(p.ISR)
	p.AddingReplicas = cloneInt32s(p.AddingReplicas)
	p.RemovingReplicas = cloneInt32s(p.RemovingReplicas)
	return p
}

// cloneInt32s copies values, normalizing empty to nil.
func cloneInt32s(values []int32) []int32 {
	if len(values) == 0 {
		return nil
	}
	return slices.Clone(values)
}

// cloneConfigs copies configs, normalizing empty to nil.
func cloneConfigs(configs map[string]string) map[string]string {
	if len(configs) == 0 {
		return nil
	}
	return maps.Clone(configs)
}

// State is one immutable version of the replicated metadata. Every method is
// safe to call from any goroutine; a State never changes once published. A
// change to the metadata produces a new State that shares all untouched
// structure with the previous one, so taking a State (or a snapshot of it)
// costs O(1).
type State struct {
	// appliedIndex is the Raft index of the last log entry reflected in
	// this state.
	appliedIndex uint64
	// clusterID is set once by the first command after bootstrap.
	clusterID string
	// topics maps a topic name to its topic.
	topics *iradix.Tree[*Topic]
	// topicNames maps a topic id (16 raw bytes) to its topic name.
	topicNames *iradix.Tree[string]
	// nextProducerID is the first producer id of the next block handed out.
	nextProducerID int64
	// brokers maps a broker id (brokerKey) to its registration.
	brokers *iradix.Tree[*Broker]
	// segments maps a partition (segmentPartitionKey: topic id, partition)
	// to its tiered-segment manifest; segmentCount is the number of entries
	// of all partitions.
	segments     *iradix.Tree[*partitionSegments]
	segmentCount int
	// scram maps scramKey(user, mechanism) to a SCRAM credential.
	scram *iradix.Tree[*ScramCredential]
	// acls maps an ACL binding's encoding (aclKey) to the binding.
	acls *iradix.Tree[authz.Binding]
	// quotas maps a quota entity's encoding (quotaKey) to its quotas.
	quotas *iradix.Tree[*ClientQuota]
	// brokerConfigs maps brokerConfigKey(id) to a broker's dynamic configs.
	brokerConfigs *iradix.Tree[map[string]string]
	// logStarts maps a partition (segmentPartitionKey) to the log start
	// offset DeleteRecords set in the quorum (commands_log_start.go).
	logStarts *iradix.Tree[int64]
}

// emptyState is the state before any log entry.
func emptyState() *State {
	return &State{
		topics:     iradix.New[*Topic](),
		topicNames: iradix.New[string](),
		brokers:    iradix.New[*Broker](),
		segments:   iradix.New[*partitionSegments](),
		scram:      iradix.New[*ScramCredential](),
		acls:       iradix.New[authz.Binding](),
		quotas:     iradix.New[*ClientQuota](),

		brokerConfigs: iradix.New[map[string]string](),
		logStarts:     iradix.New[int64](),
	}
}

// AppliedIndex returns the Raft log index of the last entry reflected in s.
func (s *State) AppliedIndex() uint64 { return s.appliedIndex }

// ClusterID returns the cluster id, or "" before the cluster is initialized.
func (s *State) ClusterID() string { return s.clusterID }

// NextProducerID returns the first producer id of the next block.
func (s *State) NextProducerID() int64 { return s.nextProducerID }

// Topic returns the topic with the given name.
func (s *State) Topic(name string) (Topic, bool) {
	topic, ok := s.topics.Get([]byte(name))
	if !ok {
		return Topic{}, false
	}
	return *topic, true
}

// TopicByID returns the topic with the given id.
func (s *State) TopicByID(id [16]byte) (Topic, bool) {
	name, ok := s.topicNames.Get(id[:])
	if !ok {
		return Topic{}, false
	}
	return s.Topic(name)
}

// TopicCount returns the number of topics.
func (s *State) TopicCount() int { return s.topics.Len() }

// Topics returns every topic sorted by name.
func (s *State) Topics() []Topic {
	topics := make([]Topic, 0, s.topics.Len())
	s.EachTopic(func(topic Topic) bool {
		topics = append(topics, topic)
		return true
	})
	return topics
}

// EachTopic calls fn for every topic in name order until fn returns false.
func (s *State) EachTopic(fn func(Topic) bool) {
	iterator := s.topics.Root().Iterator()
	for _, topic, ok := iterator.Next(); ok; _, topic, ok = iterator.Next() {
		if !fn(*topic) {
			return
		}
	}
}

// stateBuilder accumulates the changes of one command on top of a base
// State. Only the FSM goroutine uses it.
type stateBuilder struct {
	base *State
	// index is the Raft log index of the command being applied: the same
	// on every node, so commands may use it as a deterministic counter
	// (e.g. broker epochs).
	index          uint64
	clusterID      string
	topics         *iradix.Txn[*Topic]
	topicNames     *iradix.Txn[string]
	nextProducerID int64
	brokers        *iradix.Txn[*Broker]
	segments       *iradix.Txn[*partitionSegments]
	segmentCount   int
	scram          *iradix.Txn[*ScramCredential]
	acls           *iradix.Txn[authz.Binding]
	quotas         *iradix.Txn[*ClientQuota]
	brokerConfigs  *iradix.Txn[map[string]string]
	logStarts      *iradix.Txn[int64]
}

func newStateBuilder(base *State, index uint64) *stateBuilder {
	return &stateBuilder{
		base:           base,
		index:          index,
		clusterID:      base.clusterID,
		topics:         base.topics.Txn(),
		topicNames:     base.topicNames.Txn(),
		nextProducerID: base.nextProducerID,
		brokers:        base.brokers.Txn(),
		segments:       base.segments.Txn(),
		segmentCount:   base.segmentCount,
		scram:          base.scram.Txn(),
		acls:           base.acls.Txn(),
		quotas:         base.quotas.Txn(),
		brokerConfigs:  base.brokerConfigs.Txn(),
		logStarts:      base.logStarts.Txn(),
	}
}

func (b *stateBuilder) topic(name string) (*Topic, bool) {
	return b.topics.Get([]byte(name))
}

func (b *stateBuilder) topicNameByID(id [16]byte) (string, bool) {
	return b.topicNames.Get(id[:])
}

// putTopic inserts or replaces a topic; the caller must not change topic
// afterwards.
func (b *stateBuilder) putTopic(topic *Topic) {
	b.topics.Insert([]byte(topic.Name), topic)
	b.topicNames.Insert(topic.ID[:], topic.Name)
}

func (b *stateBuilder) deleteTopic(topic *Topic) {
	b.topics.Delete([]byte(topic.Name))
	b.topicNames.Delete(topic.ID[:])
	b.deleteLogStarts(topic.ID)
}

// build returns the new State at appliedIndex.
func (b *stateBuilder) build(appliedIndex uint64) *State {
	return &State{
		appliedIndex:   appliedIndex,
		clusterID:      b.clusterID,
		topics:         b.topics.CommitOnly(),
		topicNames:     b.topicNames.CommitOnly(),
		nextProducerID: b.nextProducerID,
		brokers:        b.brokers.CommitOnly(),
		segments:       b.segments.CommitOnly(),
		segmentCount:   b.segmentCount,
		scram:          b.scram.CommitOnly(),
		acls:           b.acls.CommitOnly(),
		quotas:         b.quotas.CommitOnly(),
		brokerConfigs:  b.brokerConfigs.CommitOnly(),
		logStarts:      b.logStarts.CommitOnly(),
	}
}

// withAppliedIndex returns s at a later applied index, sharing everything.
func (s *State) withAppliedIndex(index uint64) *State {
	next := *s
	next.appliedIndex = index
	return &next
}

// HasPartition reports whether the topic has partition index (false for the
// zero Topic a failed lookup returns).
func (t Topic) HasPartition(index int32) bool {
	return index >= 0 && int(index) < len(t.Partitions)
}
