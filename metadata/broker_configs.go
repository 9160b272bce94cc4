package metadata

import (
	"encoding/binary"
	"fmt"
	"maps"
)

// Dynamic broker configs: Kafka's configs set with IncrementalAlterConfigs
// on a BROKER resource (e.g. leader.replication.throttled.rate), for one
// broker or, with the empty resource name, for every broker (the cluster
// default, ClusterDefaultBroker here). They live in the quorum, so every
// broker sees them and they survive restarts, as in KRaft. Which names are
// dynamic and what their values mean is the broker's business
// (broker/topicconfig); the state machine checks only their shape.

// ClusterDefaultBroker is the broker id of the cluster-wide dynamic broker
// configs (Kafka's BROKER resource with an empty name).
const ClusterDefaultBroker int32 = -1

// brokerConfigKey orders per-broker entries by id, the default last.
func brokerConfigKey(id int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(id)) }

// BrokerConfigs returns the dynamic configs set for broker id (or
// ClusterDefaultBroker), nil when none; the map is shared: read only.
func (s *State) BrokerConfigs(id int32) map[string]string {
	configs, _ := s.brokerConfigs.Get(brokerConfigKey(id))
	return configs
}

// BrokerConfig returns a dynamic config of broker id: its own value, else
// the cluster default's, else false.
func (s *State) BrokerConfig(id int32, name string) (string, bool) {
	if value, ok := s.BrokerConfigs(id)[name]; ok {
		return value, true
	}
	value, ok := s.BrokerConfigs(ClusterDefaultBroker)[name]
	return value, ok
}

// alterBrokerConfigsCommand replaces the dynamic configs of one broker (or
// of ClusterDefaultBroker); an empty map removes them. From version 2 on
// it may carry the set the proposer computed the change from: it is
// refused (ErrStaleBrokerConfigs) unless that is still the broker's set,
// so that of two concurrent changes neither is lost.
//
// Payload, version 2 (version 1 ends after the configs):
//
//	int32 broker id (-1: cluster default) | string map configs |
//	bool checked | string map from (checked: the expected current set)
type alterBrokerConfigsCommand struct {
	broker  int32
	configs map[string]string
	checked bool
	from    map[string]string
}

func (c *alterBrokerConfigsCommand) commandType() commandType { return commandAlterBrokerConfigs }
func (c *alterBrokerConfigsCommand) encode(e *encoder) {
	e.int32(c.broker)
	e.stringMap(c.configs)
	e.bool(c.checked)
	e.stringMap(c.from)
}

func decodeAlterBrokerConfigs(version uint8, d *decoder) (command, bool) {
	if version != 1 && version != 2 {
		return nil, false
	}
	c := &alterBrokerConfigsCommand{broker: d.int32(), configs: d.stringMap()}
	if version >= 2 {
		c.checked = d.bool()
		c.from = d.stringMap()
	}
	return c, true
}

func (c *alterBrokerConfigsCommand) apply(b *stateBuilder) (any, error) {
	if c.broker < ClusterDefaultBroker {
		return nil, fmt.Errorf("%w: broker id %d", ErrInvalidBroker, c.broker)
	}
	if c.checked {
		current, _ := b.brokerConfigs.Get(brokerConfigKey(c.broker))
		if !maps.Equal(current, c.from) {
			return nil, fmt.Errorf("broker %d: %w", c.broker, ErrStaleBrokerConfigs)
		}
	}
	if err := validateConfigs(c.configs); err != nil {
		return nil, fmt.Errorf("broker %d: %w", c.broker, err)
	}
	if len(c.configs) == 0 {
		b.brokerConfigs.Delete(brokerConfigKey(c.broker))
		return nil, nil
	}
	b.brokerConfigs.Insert(brokerConfigKey(c.broker), maps.Clone(c.configs))
	return nil, nil
}

// encodeBrokerConfigsRecord writes one broker's dynamic configs as
// snapshot record recordExtension, kind extensionBrokerConfigs:
//
//	uint8 kind (2) | int32 broker id (-1: cluster default) | string map configs
func encodeBrokerConfigsRecord(e *encoder, id int32, configs map[string]string) {
	e.uint8(extensionBrokerConfigs)
	e.int32(id)
	e.stringMap(configs)
}
