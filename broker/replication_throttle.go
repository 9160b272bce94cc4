package broker

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// Dynamic broker configs: Kafka's replication throttles, set with
// IncrementalAlterConfigs (or AlterConfigs) on a BROKER resource — a broker
// id for that broker, the empty name for every broker — and stored in the
// metadata quorum (metadata.State.BrokerConfig). They apply to the
// replicas a reassignment adds while outside the ISR (the leader counts what it sends them
// against leader.replication.throttled.rate, each adding replica what it
// fetches against follower.replication.throttled.rate), and, as in Kafka,
// to the replicas a topic's leader/follower.replication.throttled.replicas
// list (which kafka-reassign-partitions --throttle sets): a leader listed
// as partition:leader throttles what it sends the partition's replicas
// outside the ISR (leaderThrottled), a follower listed as
// partition:follower throttles its own fetching while outside the ISR
// (replica.followerThrottled). Replication of the in-sync replicas is
// never throttled.
const (
	leaderThrottledRate   = "leader.replication.throttled.rate"
	followerThrottledRate = "follower.replication.throttled.rate"
)

// dynamicBrokerConfigDocs are the dynamic broker configs and their docs;
// every other broker config is static (a serve flag).
var dynamicBrokerConfigDocs = map[string]string{
	leaderThrottledRate:   "bytes per second a leader sends to the replicas a reassignment adds (Long.MAX_VALUE: unlimited)",
	followerThrottledRate: "bytes per second a replica being added by a reassignment fetches (Long.MAX_VALUE: unlimited)",
}

// leaderThrottled reports whether the leader self counts what it sends
// replica of topic's partition against leader.replication.throttled.rate:
// replica is outside the ISR and being added by a reassignment, or the
// topic's leader.replication.throttled.replicas names partition:self. An
// in-sync replica is never throttled (Kafka's shouldLeaderThrottle), an
// adding one either: it holds the high watermark from when it joins
// until the reassignment finishes (which waits for every adding replica).
func leaderThrottled(topic metadata.Topic, partition, self, replica int32) bool {
	a := topic.Partitions[partition]
	if slices.Contains(a.ISR, replica) {
		return false
	}
	return slices.Contains(a.AddingReplicas, replica) ||
		topicconfig.ThrottledReplica(topic.Configs[topicconfig.LeaderReplicationThrottledReplicas], partition, self)
}

// parseThrottledRate checks a throttled rate: a long >= 0 (0 lets nothing
// through, as in Kafka).
func parseThrottledRate(value string) (int64, error) {
	rate, err := strconv.ParseInt(value, 10, 64)
	if err != nil || rate < 0 {
		return 0, errors.New("must be a whole number of bytes per second, at least 0")
	}
	return rate, nil
}

// applyReplicationThrottles sets the throttles' rates from the state.
func (s *Server) applyReplicationThrottles(state *metadata.State) {
	for name, throttle := range map[string]interface{ SetRate(int64) }{leaderThrottledRate: s.leaderThrottle, followerThrottledRate: s.followerThrottle} {
		rate := int64(math.MaxInt64)
		if value, ok := state.BrokerConfig(s.cfg.NodeID, name); ok {
			if parsed, err := parseThrottledRate(value); err == nil {
				rate = parsed
			}
		}
		if rate == 0 {
			rate = 1 // nothing through: the smallest rate the throttle has
		}
		throttle.SetRate(rate)
	}
}

// brokerConfigID maps a BROKER resource name to a broker id: "" is the
// cluster default.
func brokerConfigID(name string) (int32, bool) {
	if name == "" {
		return metadata.ClusterDefaultBroker, true
	}
	id, err := strconv.ParseInt(name, 10, 32)
	return int32(id), err == nil && id >= 0
}

// alterBrokerConfigs computes a broker resource's new dynamic configs with
// change (from its current ones) and stores them. The store refuses them
// if the broker's configs changed since they were read (another change
// came first, on any broker), and they are computed again from the new
// ones, so that neither change is lost.
func (s *Server) alterBrokerConfigs(name string, validateOnly bool, change func(configs map[string]string) (int16, string)) (int16, string) {
	id, ok := brokerConfigID(name)
	if !ok {
		return kerr.InvalidRequest.Code, "broker resource name '" + name + "' is neither a broker id nor empty (every broker)"
	}
	ctx, cancel := s.adminContext(30000)
	defer cancel()
	var configs map[string]string
	for {
		from := s.cfg.Metadata.State().BrokerConfigs(id)
		configs = maps.Clone(from)
		if configs == nil {
			configs = map[string]string{}
		}
		if code, msg := change(configs); code != 0 {
			return code, msg
		}
		for config, value := range configs {
			if _, dynamic := dynamicBrokerConfigDocs[config]; !dynamic {
				return kerr.InvalidRequest.Code, "broker config '" + config + "' is not dynamic in Strata: set it with a strata serve flag and restart (dynamic: " + leaderThrottledRate + ", " + followerThrottledRate + ")"
			}
			if _, err := parseThrottledRate(value); err != nil {
				return kerr.InvalidConfig.Code, "'" + config + "' " + err.Error()
			}
		}
		if validateOnly {
			return 0, ""
		}
		if s.beforeConfigsStored != nil {
			s.beforeConfigsStored(name)
		}
		err := s.cfg.Metadata.SetBrokerConfigs(ctx, id, from, configs)
		if err == nil {
			break
		}
		if errors.Is(err, metadata.ErrStaleBrokerConfigs) && ctx.Err() == nil {
			continue // this node's state has the change that came first
		}
		return kerr.RequestTimedOut.Code, "storing broker configs: " + err.Error()
	}
	// Applied here at once (the others apply it with the metadata), so
	// the change holds on this broker when the request returns.
	s.applyReplicationThrottles(s.cfg.Metadata.State())
	s.log.Info("altered dynamic broker configs", "broker", name, "configs", configs)
	return 0, ""
}

// incrementalBrokerConfigs applies IncrementalAlterConfigs operations
// (SET and DELETE; the throttles are not lists) to configs.
func incrementalBrokerConfigs(configs map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (int16, string) {
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Name] {
			return kerr.InvalidRequest.Code, "config '" + op.Name + "' appears more than once"
		}
		seen[op.Name] = true
		switch int8(op.Op) {
		case opSet:
			if op.Value == nil {
				return kerr.InvalidRequest.Code, "SET of '" + op.Name + "' needs a value"
			}
			configs[op.Name] = *op.Value
		case opDelete:
			delete(configs, op.Name)
		default:
			return kerr.InvalidConfig.Code, "'" + op.Name + "' is not a list; only SET and DELETE apply"
		}
	}
	return 0, ""
}

// dynamicBrokerConfigSynonyms are the synonyms of dynamic config name of
// broker id (metadata.ClusterDefaultBroker: the cluster default), in
// Kafka's precedence order: the broker's own value (DYNAMIC_BROKER_CONFIG),
// the cluster default's (DYNAMIC_DEFAULT_BROKER_CONFIG), Kafka's default.
// They are never static (no serve flag).
func dynamicBrokerConfigSynonyms(state *metadata.State, id int32, name string) []configSynonym {
	var out []configSynonym
	if v, ok := state.BrokerConfigs(id)[name]; ok && id != metadata.ClusterDefaultBroker {
		out = append(out, newSynonym(name, v, kmsg.ConfigSourceDynamicBrokerConfig))
	}
	if v, ok := state.BrokerConfigs(metadata.ClusterDefaultBroker)[name]; ok {
		out = append(out, newSynonym(name, v, kmsg.ConfigSourceDynamicDefaultBrokerConfig))
	}
	return append(out, newSynonym(name, strconv.FormatInt(math.MaxInt64, 10), kmsg.ConfigSourceDefaultConfig))
}

// registerReassignmentMetrics exports the partitions this broker leads
// that are being reassigned (Kafka's ReassigningPartitions) and the
// throttled rates in force on this broker.
func (s *Server) registerReassignmentMetrics(registerer prometheus.Registerer) {
	registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "strata", Name: "reassigning_partitions",
		Help: "Partitions this broker leads whose replicas are being reassigned (Kafka's ReassigningPartitions).",
	}, func() float64 {
		n := 0
		for _, r := range s.cfg.Metadata.State().Reassignments() {
			if topic, ok := s.cfg.Metadata.State().TopicByID(r.TopicID); ok && topic.Partitions[r.Partition].Leader == s.cfg.NodeID {
				n++
			}
		}
		return float64(n)
	}))
	for side, throttle := range map[string]interface{ Rate() int64 }{"leader": s.leaderThrottle, "follower": s.followerThrottle} {
		registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Name: "replication_throttled_rate_bytes",
			Help:        "The leader/follower.replication.throttled.rate in force on this broker (label side), bytes per second; 0 is unlimited.",
			ConstLabels: prometheus.Labels{"side": side},
		}, func() float64 { return float64(throttle.Rate()) }))
	}
}
