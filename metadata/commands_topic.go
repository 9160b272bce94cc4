package metadata

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxTopicNameLength is Kafka's limit on topic names.
const maxTopicNameLength = 249

// ValidateTopicName checks a topic name against Kafka's rules: 1..249
// characters from [a-zA-Z0-9._-], and neither "." nor "..". The Store checks
// it before proposing CreateTopic, and the state machine again when it
// applies one (validateTopic).
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: name %q is not allowed", ErrInvalidTopic, name)
	case len(name) > maxTopicNameLength:
		return fmt.Errorf("%w: name is %d characters long, the limit is %d", ErrInvalidTopic, len(name), maxTopicNameLength)
	}
	for _, character := range []byte(name) {
		switch {
		case 'a' <= character && character <= 'z',
			'A' <= character && character <= 'Z',
			'0' <= character && character <= '9',
			character == '.', character == '_', character == '-':
		default:
			return fmt.Errorf("%w: name %q contains %q; only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidTopic, name, character)
		}
	}
	return nil
}

// validateTopic checks the invariants the state machine relies on. It runs
// before a command is proposed and again when it is applied, whoever
// proposed it: a name that breaks Kafka's rules (a path separator, "..")
// never enters the state, so no broker builds a directory from it.
func validateTopic(topic *Topic) error {
	if err := ValidateTopicName(topic.Name); err != nil {
		return err
	}
	if topic.ID == ([16]byte{}) {
		return fmt.Errorf("%w: topic %q has a zero topic id", ErrInvalidTopic, topic.Name)
	}
	if len(topic.Partitions) == 0 {
		return fmt.Errorf("%w: topic %q has no partitions", ErrInvalidPartitions, topic.Name)
	}
	if len(topic.Partitions) > MaxPartitionsPerTopic {
		return fmt.Errorf("%w: topic %q: %d partitions, more than %d", ErrInvalidPartitions, topic.Name, len(topic.Partitions), MaxPartitionsPerTopic)
	}
	if err := validateConfigs(topic.Configs); err != nil {
		return fmt.Errorf("topic %q: %w", topic.Name, err)
	}
	return validatePartitions(topic.Name, topic.Partitions, 0)
}

// Bounds the state machine puts on what one command may bring, whoever
// proposed it: a topic's partitions, and its configs (Kafka's config names
// are lower case words with dots; values are short strings).
const (
	MaxPartitionsPerTopic  = 100_000
	maxTopicConfigs        = 256
	maxTopicConfigNameLen  = 255
	maxTopicConfigValueLen = 32 << 10
)

// validateConfigs checks the shape of a topic's configs. Their values are
// checked against each config's rules by the broker before it proposes them
// (broker/topicconfig), not here: those rules change between versions, and
// nodes of two versions applying the same entry must agree on its result.
// A broker that acts on a value it does not accept uses the default.
func validateConfigs(configs map[string]string) error {
	if len(configs) > maxTopicConfigs {
		return fmt.Errorf("%w: %d configs, more than %d", ErrInvalidTopicConfig, len(configs), maxTopicConfigs)
	}
	for name, value := range configs {
		if name == "" || len(name) > maxTopicConfigNameLen || strings.IndexFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
		}) >= 0 {
			return fmt.Errorf("%w: config name %.300q is not a config name", ErrInvalidTopicConfig, name)
		}
		if len(value) > maxTopicConfigValueLen || !utf8.ValidString(value) {
			return fmt.Errorf("%w: config %s: a value of %d bytes that is not short UTF-8 text", ErrInvalidTopicConfig, name, len(value))
		}
	}
	return nil
}

// validatePartitions checks partitions numbered from firstIndex on.
func validatePartitions(topicName string, partitions []Partition, firstIndex int) error {
	for i, partition := range partitions {
		if err := validatePartition(partition); err != nil {
			return fmt.Errorf("topic %q partition %d: %w", topicName, firstIndex+i, err)
		}
	}
	return nil
}

// checkReplicasRegistered refuses new partitions (numbered from firstIndex
// on) with a replica that is not a registered broker: it would never get a
// leader. It runs when CreateTopic and CreatePartitions are applied, whoever
// proposed them, and reads only the state they apply to, so every node
// reaches the same result for the same entry. Proposers check nothing more
// before: their own state may lag behind the one the command applies to
// (brokers choose replicas among the live brokers they know, and get
// ErrInvalidPartitions from here if one unregistered meanwhile). A fenced
// broker counts: it is registered, and the controller moves leaderships
// off it as off any fenced replica. Only new partitions are checked:
// unregistering a broker leaves the partitions it holds as they are.
//
// Internal topics are not checked: builds before this check created
// __consumer_offsets on the node itself when it had not registered yet, and
// such an entry can still be in the log after an upgrade. Refusing it on
// replay would drop the committed offsets' topic on the upgraded node only
// (the nodes that had snapshotted past it keep it): nodes must reach the
// same result for an entry whatever build first applied it.
func checkReplicasRegistered(b *stateBuilder, topicName string, partitions []Partition, firstIndex int) error {
	for i, partition := range partitions {
		for _, replica := range partition.Replicas {
			if _, ok := b.broker(replica); !ok {
				return fmt.Errorf("topic %q partition %d: %w: replica %d is not a registered broker", topicName, firstIndex+i, ErrInvalidPartitions, replica)
			}
		}
	}
	return nil
}

func validatePartition(partition Partition) error {
	if len(partition.Replicas) == 0 {
		return fmt.Errorf("%w: no replicas", ErrInvalidPartitions)
	}
	for i, replica := range partition.Replicas {
		if replica < 0 {
			return fmt.Errorf("%w: negative replica id %d", ErrInvalidPartitions, replica)
		}
		if slices.Contains(partition.Replicas[:i], replica) {
			return fmt.Errorf("%w: replica %d appears twice", ErrInvalidPartitions, replica)
		}
	}
	if partition.Leader != -1 && !slices.Contains(partition.Replicas, partition.Leader) {
		return fmt.Errorf("%w: leader %d is not a replica", ErrInvalidPartitions, partition.Leader)
	}
	for i, replica := range partition.ISR {
		if !slices.Contains(partition.Replicas, replica) {
			return fmt.Errorf("%w: in-sync replica %d is not a replica", ErrInvalidPartitions, replica)
		}
		if slices.Contains(partition.ISR[:i], replica) {
			return fmt.Errorf("%w: in-sync replica %d appears twice", ErrInvalidPartitions, replica)
		}
	}
	for _, replica := range append(slices.Clone(partition.AddingReplicas), partition.RemovingReplicas...) {
		if !slices.Contains(partition.Replicas, replica) {
			return fmt.Errorf("%w: reassigned replica %d is not a replica", ErrInvalidPartitions, replica)
		}
	}
	for _, replica := range partition.AddingReplicas {
		if slices.Contains(partition.RemovingReplicas, replica) {
			return fmt.Errorf("%w: replica %d is both added and removed", ErrInvalidPartitions, replica)
		}
	}
	if partition.LeaderEpoch < 0 || partition.PartitionEpoch < 0 {
		return fmt.Errorf("%w: negative epoch", ErrInvalidPartitions)
	}
	return nil
}

// newPartitions builds the initial state of partitions firstIndex,
// firstIndex+1, … from their replica assignments: the first replica leads,
// every replica is in sync, epochs start at 0.
func newPartitions(firstIndex int32, assignments [][]int32) []Partition {
	partitions := make([]Partition, len(assignments))
	for i, replicas := range assignments {
		leader := int32(-1)
		if len(replicas) > 0 {
			leader = replicas[0]
		}
		partitions[i] = Partition{
			Index:    firstIndex + int32(i),
			Replicas: cloneInt32s(replicas),
			Leader:   leader,
			ISR:      cloneInt32s(replicas),
		}
	}
	return partitions
}

// encodePartition writes a partition without its index, which is its
// position in the list.
func encodePartition(e *encoder, partition Partition) {
	e.int32s(partition.Replicas)
	e.int32(partition.Leader)
	e.int32(partition.LeaderEpoch)
	e.int32s(partition.ISR)
	e.int32(partition.PartitionEpoch)
}

func decodePartition(d *decoder, index int32) Partition {
	return Partition{
		Index:          index,
		Replicas:       d.int32s(),
		Leader:         d.int32(),
		LeaderEpoch:    d.int32(),
		ISR:            d.int32s(),
		PartitionEpoch: d.int32(),
	}
}

// minimumPartitionSize is the fewest bytes an encoded partition takes.
const minimumPartitionSize = 1 + 4 + 4 + 1 + 4

func encodePartitions(e *encoder, partitions []Partition) {
	e.uvarint(uint64(len(partitions)))
	for _, partition := range partitions {
		encodePartition(e, partition)
	}
}

func decodePartitions(d *decoder, firstIndex int32) []Partition {
	n := d.length(minimumPartitionSize)
	if n == 0 {
		return nil
	}
	partitions := make([]Partition, n)
	for i := range partitions {
		partitions[i] = decodePartition(d, firstIndex+int32(i))
	}
	return partitions
}

// encodeTopic writes a topic; shared by CreateTopic v1 and the snapshot's
// topic record v1.
func encodeTopic(e *encoder, topic *Topic) {
	e.string(topic.Name)
	e.uuid(topic.ID)
	e.bool(topic.Internal)
	e.int64(topic.CreatedAtUnixMilli)
	e.stringMap(topic.Configs)
	encodePartitions(e, topic.Partitions)
}

func decodeTopic(d *decoder) *Topic {
	return &Topic{
		Name:               d.string(),
		ID:                 d.uuid(),
		Internal:           d.bool(),
		CreatedAtUnixMilli: d.int64(),
		Configs:            d.stringMap(),
		Partitions:         decodePartitions(d, 0),
	}
}

// createTopicCommand creates a topic with fully specified partitions.
type createTopicCommand struct {
	topic Topic
}

func (c *createTopicCommand) commandType() commandType { return commandCreateTopic }
func (c *createTopicCommand) encode(e *encoder)        { encodeTopic(e, &c.topic) }

func decodeCreateTopic(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &createTopicCommand{topic: *decodeTopic(d)}, true
}

func (c *createTopicCommand) apply(b *stateBuilder) (any, error) {
	topic := c.topic.clone()
	for i := range topic.Partitions {
		topic.Partitions[i].Index = int32(i)
	}
	if err := validateTopic(&topic); err != nil {
		return nil, err
	}
	if !topic.Internal {
		if err := checkReplicasRegistered(b, topic.Name, topic.Partitions, 0); err != nil {
			return nil, err
		}
	}
	if _, ok := b.topic(topic.Name); ok {
		return nil, fmt.Errorf("topic %q: %w", topic.Name, ErrTopicExists)
	}
	if name, ok := b.topicNameByID(topic.ID); ok {
		return nil, fmt.Errorf("topic %q: id %s is used by topic %q: %w", topic.Name, formatTopicID(topic.ID), name, ErrTopicIDExists)
	}
	if b.hasSegmentsOfTopic(topic.ID) {
		// A deleted topic's tiered segments still wait for deletion under
		// this id; a new topic must not inherit them.
		return nil, fmt.Errorf("topic %q: id %s still has tiered segments of a deleted topic: %w", topic.Name, formatTopicID(topic.ID), ErrTopicIDExists)
	}
	b.putTopic(&topic)
	return topic, nil
}

// lookupTopic finds a topic by name and, when id is not zero, requires the id
// to match, so a command aimed at a deleted topic never hits a re-created
// one of the same name.
func lookupTopic(b *stateBuilder, name string, id [16]byte) (*Topic, error) {
	topic, ok := b.topic(name)
	if !ok {
		return nil, fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	if id != ([16]byte{}) && topic.ID != id {
		return nil, fmt.Errorf("topic %q has id %s, not %s: %w", name, formatTopicID(topic.ID), formatTopicID(id), ErrUnknownTopic)
	}
	return topic, nil
}

// deleteTopicCommand deletes a topic by name, optionally only if its id
// matches.
type deleteTopicCommand struct {
	name string
	id   [16]byte // zero: any id
}

func (c *deleteTopicCommand) commandType() commandType { return commandDeleteTopic }
func (c *deleteTopicCommand) encode(e *encoder) {
	e.string(c.name)
	e.uuid(c.id)
}

func decodeDeleteTopic(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &deleteTopicCommand{name: d.string(), id: d.uuid()}, true
}

func (c *deleteTopicCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupTopic(b, c.name, c.id)
	if err != nil {
		return nil, err
	}
	b.deleteTopic(topic)
	return *topic, nil
}

// alterTopicConfigsCommand replaces the whole set of explicitly set configs
// of a topic, guarded by the topic id (zero: any). From version 2 on it
// may carry the set the proposer computed the change from (AlterConfigs
// validates against it; IncrementalAlterConfigs applies its operations to
// it): the change is refused (ErrStaleTopicConfigs) unless that is still
// the topic's set, so that of two concurrent changes neither is lost.
//
// Payload, version 2 (version 1 ends after the configs):
//
//	string name | uuid topic id | string map configs |
//	bool checked | string map from (checked: the expected current set)
type alterTopicConfigsCommand struct {
	name    string
	id      [16]byte // zero: any id
	configs map[string]string
	// checked: the change applies only to a topic whose configs are from.
	checked bool
	from    map[string]string
}

func (c *alterTopicConfigsCommand) commandType() commandType { return commandAlterTopicConfigs }
func (c *alterTopicConfigsCommand) encode(e *encoder) {
	e.string(c.name)
	e.uuid(c.id)
	e.stringMap(c.configs)
	e.bool(c.checked)
	e.stringMap(c.from)
}

func decodeAlterTopicConfigs(version uint8, d *decoder) (command, bool) {
	if version != 1 && version != 2 {
		return nil, false
	}
	c := &alterTopicConfigsCommand{name: d.string(), id: d.uuid(), configs: d.stringMap()}
	if version >= 2 {
		c.checked = d.bool()
		c.from = d.stringMap()
	}
	return c, true
}

func (c *alterTopicConfigsCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupTopic(b, c.name, c.id)
	if err != nil {
		return nil, err
	}
	if c.checked && !maps.Equal(topic.Configs, c.from) {
		return nil, fmt.Errorf("topic %q: %w", c.name, ErrStaleTopicConfigs)
	}
	if err := validateConfigs(c.configs); err != nil {
		return nil, fmt.Errorf("topic %q: %w", c.name, err)
	}
	changed := *topic
	changed.Configs = cloneConfigs(c.configs)
	b.putTopic(&changed)
	return nil, nil
}

// createPartitionsCommand grows a topic to total partitions; partitions holds
// the state of the new ones (indexes current..total-1).
type createPartitionsCommand struct {
	name       string
	id         [16]byte // zero: any id
	total      int32
	partitions []Partition
}

func (c *createPartitionsCommand) commandType() commandType { return commandCreatePartitions }
func (c *createPartitionsCommand) encode(e *encoder) {
	e.string(c.name)
	e.uuid(c.id)
	e.int32(c.total)
	encodePartitions(e, c.partitions)
}

func decodeCreatePartitions(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &createPartitionsCommand{name: d.string(), id: d.uuid(), total: d.int32()}
	c.partitions = decodePartitions(d, 0)
	return c, true
}

func (c *createPartitionsCommand) apply(b *stateBuilder) (any, error) {
	topic, err := lookupTopic(b, c.name, c.id)
	if err != nil {
		return nil, err
	}
	current := int32(len(topic.Partitions))
	if c.total <= current {
		return nil, fmt.Errorf("topic %q has %d partitions, cannot change to %d: %w", c.name, current, c.total, ErrInvalidPartitions)
	}
	if int64(len(c.partitions)) != int64(c.total)-int64(current) {
		return nil, fmt.Errorf("topic %q: growing from %d to %d partitions needs %d assignments, got %d: %w",
			c.name, current, c.total, c.total-current, len(c.partitions), ErrInvalidPartitions)
	}
	if c.total > MaxPartitionsPerTopic {
		return nil, fmt.Errorf("topic %q: %d partitions, more than %d: %w", c.name, c.total, MaxPartitionsPerTopic, ErrInvalidPartitions)
	}
	if err := validatePartitions(c.name, c.partitions, int(current)); err != nil {
		return nil, err
	}
	if !topic.Internal {
		if err := checkReplicasRegistered(b, c.name, c.partitions, int(current)); err != nil {
			return nil, err
		}
	}
	changed := *topic
	changed.Partitions = slices.Grow(slices.Clip(topic.Partitions), len(c.partitions))
	for i, partition := range c.partitions {
		partition = partition.clone()
		partition.Index = current + int32(i)
		changed.Partitions = append(changed.Partitions, partition)
	}
	b.putTopic(&changed)
	return nil, nil
}
