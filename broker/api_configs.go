package broker

import (
	"errors"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

func init() {
	register(0, 4, handleDescribeConfigs)
	register(0, 2, handleAlterConfigs)
	register(0, 1, handleIncrementalAlterConfigs)
}

// Kafka's config resource types.
const (
	resourceTopic  int8 = 2
	resourceBroker int8 = 4
)

// validateTopicConfigs checks a topic's complete explicit config set: each
// value, then the resolved set together. current is the topic's set before
// the change (nil for a new topic): a tiered topic leaves tiering only with
// remote.log.delete.on.disable=true, as in Kafka (its remote data is then
// deleted).
func (s *Server) validateTopicConfigs(configs, current map[string]string) (int16, string) {
	if err := topicconfig.Validate(configs); err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if err := topicconfig.CheckCombined(s.cfg.TopicDefaults, configs); err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	tiered := topicconfig.Typed(s.cfg.TopicDefaults, configs).RemoteStorage
	if tiered && s.cfg.RemoteReader == nil {
		return kerr.InvalidConfig.Code, "remote.storage.enable=true needs an object store: start the brokers with --object-store"
	}
	if tiered && (current == nil || !topicconfig.Typed(s.cfg.TopicDefaults, current).RemoteStorage) {
		if err := s.UnsharedObjectStore(); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
	}
	if current != nil {
		before, after := topicconfig.Typed(s.cfg.TopicDefaults, current), topicconfig.Typed(s.cfg.TopicDefaults, configs)
		if before.RemoteStorage && !after.RemoteStorage && !after.RemoteLogDeleteOnDisable {
			return kerr.InvalidConfig.Code, "turning remote.storage.enable off deletes the topic's remote data: set remote.log.delete.on.disable=true in the same request to confirm, or use remote.log.copy.disable=true to stop uploads and keep the data"
		}
	}
	return 0, ""
}

// UnsharedObjectStore returns an error saying why this broker must not
// tier: its object store is node-local (Config.ObjectStoreNodeLocal) and
// the cluster has another node (a registered broker or a Raft member
// other than this node). Every broker checks its own store, so
// remote.storage.enable=true is refused whichever node receives the
// request (each node of a cluster started without --object-store has a
// private one), and the tier manager of such a node does not upload (a
// second node joined a one-node cluster that tiers to its data dir). nil
// when tiering is safe.
func (s *Server) UnsharedObjectStore() error {
	if !s.cfg.ObjectStoreNodeLocal {
		return nil
	}
	others := 0
	s.cfg.Metadata.State().EachBroker(func(b metadata.Broker) bool {
		if b.ID != s.cfg.NodeID {
			others++
		}
		return true
	})
	if voters, err := s.cfg.Metadata.Voters(); err == nil {
		for _, v := range voters {
			if v.NodeID != s.cfg.NodeID {
				others++
			}
		}
	}
	if others == 0 {
		return nil
	}
	return errors.New("remote.storage.enable=true needs an object store every broker shares, and this broker's is node-local (the default file://<data-dir>/bucket, or a file:// or mem:// store not declared shared) in a cluster of more than one node: the other replicas would drop their local copies of segments only this node's directory holds. Start every broker with the same --object-store s3://..., or a file:// directory all of them mount, with --object-store-shared")
}

// configSynonym is one source of a config's value (DescribeConfigs v1+).
type configSynonym = kmsg.DescribeConfigsResponseResourceConfigConfigSynonym

func newSynonym(name, value string, source kmsg.ConfigSource) configSynonym {
	return configSynonym{Name: name, Value: &value, Source: source}
}

// describedConfig is the DescribeConfigs entry of a config given the
// sources that set it, its synonyms, in Kafka's precedence order: a topic's
// own value; a broker's dynamic value, the dynamic cluster default, the
// static config, the built-in default. As in Kafka (ConfigHelper), the
// first one is the config's value and source, and a config without any is
// fallback, DEFAULT_CONFIG. The synonyms are listed when asked for.
func describedConfig(name string, synonyms []configSynonym, fallback string, includeSynonyms bool) kmsg.DescribeConfigsResponseResourceConfig {
	entry := kmsg.NewDescribeConfigsResponseResourceConfig()
	entry.Name = name
	value, source := fallback, kmsg.ConfigSourceDefaultConfig
	if len(synonyms) > 0 {
		value, source = *synonyms[0].Value, synonyms[0].Source
	}
	entry.Value, entry.Source = &value, source
	entry.IsDefault = source == kmsg.ConfigSourceDefaultConfig
	if includeSynonyms {
		entry.ConfigSynonyms = synonyms
	}
	return entry
}

// brokerSynonyms are the synonyms of a static broker config (a static
// one of staticBrokerConfigs or a topic config's broker synonym): one
// the operator did not set is its built-in default, DEFAULT_CONFIG; one
// set is STATIC_BROKER_CONFIG, then its default (def, nil for none: this
// broker's identity, as Kafka's node.id).
func brokerSynonyms(name, value string, set bool, def *string) []configSynonym {
	if !set {
		return []configSynonym{newSynonym(name, value, kmsg.ConfigSourceDefaultConfig)}
	}
	out := []configSynonym{newSynonym(name, value, kmsg.ConfigSourceStaticBrokerConfig)}
	if def != nil {
		out = append(out, newSynonym(name, *def, kmsg.ConfigSourceDefaultConfig))
	}
	return out
}

// describeTopicConfigs lists a topic's effective configs (all, or the named
// ones) with their sources and, when asked, synonyms and documentation.
func (s *Server) describeTopicConfigs(topic map[string]string, names []string, synonyms, docs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, def := range topicconfig.All() {
		if names != nil && !contains(names, def.Name) {
			continue
		}
		var all []configSynonym
		if v, ok := topic[def.Name]; ok {
			all = append(all, newSynonym(def.Name, v, kmsg.ConfigSourceDynamicTopicConfig))
		}
		if def.BrokerName != "" { // topic-only configs have no broker synonym
			v, set := s.cfg.TopicDefaults.Value(def.Name)
			all = append(all, brokerSynonyms(def.BrokerName, v, set, &def.Default)...)
		}
		entry := describedConfig(def.Name, all, def.Default, synonyms)
		entry.ConfigType = kmsg.ConfigType(def.Type)
		if docs {
			doc := def.Doc
			entry.Documentation = &doc
		}
		out = append(out, entry)
	}
	return out
}

// staticBrokerConfigs are the static broker configs DescribeConfigs shows
// besides the topic configs' broker synonyms (log.retention.ms, ...), each
// with its value on a server. A config's built-in default is its value on
// a server of a Config left zero (setDefaults); the identity of a broker
// (noDefault) has none.
var staticBrokerConfigs = map[string]struct {
	value     func(s *Server) string
	noDefault bool
}{
	"node.id":                      {func(s *Server) string { return strconv.Itoa(int(s.cfg.NodeID)) }, true},
	"broker.id":                    {func(s *Server) string { return strconv.Itoa(int(s.cfg.NodeID)) }, true},
	"log.dirs":                     {func(s *Server) string { return s.cfg.DataDir }, true},
	"num.partitions":               {func(s *Server) string { return strconv.Itoa(int(s.cfg.NumPartitions)) }, false},
	"default.replication.factor":   {func(s *Server) string { return strconv.Itoa(int(s.cfg.DefaultReplicationFactor)) }, false},
	"auto.create.topics.enable":    {func(s *Server) string { return strconv.FormatBool(!s.cfg.DisableAutoCreateTopics) }, false},
	"socket.request.max.bytes":     {func(s *Server) string { return strconv.Itoa(int(s.cfg.MaxRequestBytes)) }, false},
	"connections.max.idle.ms":      {func(s *Server) string { return strconv.FormatInt(s.cfg.IdleTimeout.Milliseconds(), 10) }, false},
	"producer.id.expiration.ms":    {func(s *Server) string { return strconv.FormatInt(s.cfg.ProducerIDExpiration.Milliseconds(), 10) }, false},
	"group.min.session.timeout.ms": {func(s *Server) string { return strconv.FormatInt(s.cfg.GroupMinSessionTimeout.Milliseconds(), 10) }, false},
	"group.max.session.timeout.ms": {func(s *Server) string { return strconv.FormatInt(s.cfg.GroupMaxSessionTimeout.Milliseconds(), 10) }, false},
	"group.max.size":               {func(s *Server) string { return strconv.Itoa(int(s.cfg.GroupMaxSize)) }, false},
	"listeners": {func(s *Server) string {
		var listeners []string
		for _, l := range s.cfg.Listeners {
			listeners = append(listeners, l.Name+"://"+l.Address)
		}
		return strings.Join(listeners, ",")
	}, false},
	"advertised.listeners": {func(s *Server) string { // as bound: port 0 is the one picked
		var advertised []string
		for _, l := range s.listeners {
			advertised = append(advertised, l.Name+"://"+net.JoinHostPort(l.advertiseHost, strconv.Itoa(int(l.advertisePort))))
		}
		return strings.Join(advertised, ",")
	}, true},
}

// serverOfDefaults is a server of a Config left zero, whose values are the
// built-in defaults of staticBrokerConfigs.
var serverOfDefaults = sync.OnceValue(func() *Server {
	var cfg Config
	cfg.setDefaults()
	return &Server{cfg: cfg}
})

// describeBrokerConfigs lists broker id's configs (all, or the named ones;
// the dynamic cluster defaults for metadata.ClusterDefaultBroker) with
// their sources and, when asked, synonyms and documentation. Only the
// dynamic configs are not read-only.
func (s *Server) describeBrokerConfigs(state *metadata.State, id int32, names []string, synonyms, docs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	type config struct {
		synonyms []configSynonym
		dynamic  bool
		doc      string
	}
	all := map[string]config{}
	for name, doc := range dynamicBrokerConfigDocs {
		all[name] = config{dynamicBrokerConfigSynonyms(state, id, name), true, doc}
	}
	if id != metadata.ClusterDefaultBroker {
		for name, c := range staticBrokerConfigs {
			var def *string
			if !c.noDefault {
				v := c.value(serverOfDefaults())
				def = &v
			}
			all[name] = config{synonyms: brokerSynonyms(name, c.value(s), slices.Contains(s.cfg.StaticConfigs, name), def)}
		}
		for _, def := range topicconfig.All() {
			if def.BrokerName == "" {
				continue // topic-only
			}
			v, set := s.cfg.TopicDefaults.Value(def.Name)
			all[def.BrokerName] = config{synonyms: brokerSynonyms(def.BrokerName, v, set, &def.Default)}
		}
	}
	keys := make([]string, 0, len(all))
	for name := range all {
		if names == nil || contains(names, name) {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(keys))
	for _, name := range keys {
		c := all[name]
		entry := describedConfig(name, c.synonyms, "", synonyms)
		entry.ReadOnly = !c.dynamic
		if docs && c.doc != "" {
			doc := c.doc
			entry.Documentation = &doc
		}
		out = append(out, entry)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func handleDescribeConfigs(c *clientConn, h requestHeader, req *kmsg.DescribeConfigsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	resp.Resources = make([]kmsg.DescribeConfigsResponseResource, 0, len(req.Resources)) // one per request entry: no regrowth
	state := s.cfg.Metadata.State()
	for _, r := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType = kmsg.ConfigResourceType(r.ResourceType)
		out.ResourceName = r.ResourceName
		setErr := func(code int16, msg string) {
			out.ErrorCode = code
			out.ErrorMessage = &msg
		}
		// As Kafka (ConfigHelper): no config names, null or an empty
		// list, asks for every config.
		names := r.ConfigNames
		if len(names) == 0 {
			names = nil
		}
		switch int8(r.ResourceType) {
		case resourceTopic:
			if !c.authorized(authz.OpDescribeConfigs, authz.ResourceTopic, r.ResourceName) {
				setErr(kerr.TopicAuthorizationFailed.Code, "not authorized to DESCRIBE_CONFIGS of topic '"+r.ResourceName+"'")
				break
			}
			t, ok := state.Topic(r.ResourceName)
			if !ok {
				setErr(kerr.UnknownTopicOrPartition.Code, "topic '"+r.ResourceName+"' does not exist")
				break
			}
			out.Configs = s.describeTopicConfigs(t.Configs, names, req.IncludeSynonyms, req.IncludeDocumentation)
		case resourceBroker:
			if !c.authorizedCluster(authz.OpDescribeConfigs) {
				setErr(kerr.ClusterAuthorizationFailed.Code, "not authorized to DESCRIBE_CONFIGS of the cluster")
				break
			}
			id := s.cfg.NodeID
			if r.ResourceName == "" {
				// The cluster-wide dynamic defaults (kafka-configs
				// --entity-default).
				id = metadata.ClusterDefaultBroker
			} else if r.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				setErr(kerr.InvalidRequest.Code, "broker "+r.ResourceName+" is not this broker ("+strconv.Itoa(int(s.cfg.NodeID))+")")
				break
			}
			out.Configs = s.describeBrokerConfigs(state, id, names, req.IncludeSynonyms, req.IncludeDocumentation)
		default:
			setErr(kerr.InvalidRequest.Code, "unsupported resource type "+strconv.Itoa(int(r.ResourceType)))
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

// alterTopicConfigs validates and stores a topic's complete new config
// set, which compute makes from the current one (without changing it).
// The store refuses the set if the topic's configs changed since they
// were read (another AlterConfigs or IncrementalAlterConfigs came first,
// on any broker), and the set is computed again from the new ones, so
// that neither change is lost; a topic deleted and created again meanwhile
// is not changed (the topic id differs).
func (s *Server) alterTopicConfigs(topic string, compute func(current map[string]string) (map[string]string, int16, string), validateOnly bool, timeoutMillis int32) (int16, string) {
	ctx, cancel := s.adminContext(timeoutMillis)
	defer cancel()
	var configs map[string]string
	for {
		t, ok := s.cfg.Metadata.State().Topic(topic)
		if !ok {
			return kerr.UnknownTopicOrPartition.Code, "topic '" + topic + "' does not exist"
		}
		var code int16
		var msg string
		if configs, code, msg = compute(t.Configs); code != 0 {
			return code, msg
		}
		if code, msg := s.validateTopicConfigs(configs, t.Configs); code != 0 {
			return code, msg
		}
		if validateOnly {
			return 0, ""
		}
		if s.beforeConfigsStored != nil {
			s.beforeConfigsStored(topic)
		}
		err := s.cfg.Metadata.SetTopicConfigs(ctx, t, configs)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, metadata.ErrStaleTopicConfigs) && ctx.Err() == nil:
			// This node's state has the change that came first (the
			// refused entry is applied here before the answer).
			continue
		case errors.Is(err, metadata.ErrUnknownTopic):
			if now, ok := s.cfg.Metadata.State().Topic(topic); ok && now.ID != t.ID && ctx.Err() == nil {
				continue // deleted and created again: computed again for the new topic
			}
			return kerr.UnknownTopicOrPartition.Code, "topic '" + topic + "' does not exist"
		}
		return kerr.RequestTimedOut.Code, "storing configs: " + err.Error()
	}
	if err := s.partitions.reconcile(); err != nil {
		s.log.Error("applying new topic configs failed", "topic", topic, "err", err)
	}
	s.log.Info("altered topic configs", "topic", topic)
	s.warnDeprecatedConfigs(topic, configs)
	return 0, ""
}

// warnDeprecatedConfigs logs each deprecated config a topic sets: stored
// and described as Kafka does, but without effect.
func (s *Server) warnDeprecatedConfigs(topic string, configs map[string]string) {
	for name, why := range topicconfig.DeprecatedIn(configs) {
		s.peerLog.Warn("topic config is deprecated and has no effect; remove it", "topic", topic, "config", name, "value", configs[name], "why", why)
	}
}

// alterResource dispatches one AlterConfigs/IncrementalAlterConfigs
// resource: topics to alterTopic (with ALTER_CONFIGS on the topic); broker
// configs are static (and need ALTER_CONFIGS on the cluster to be told so).
func (c *clientConn) alterResource(resourceType kmsg.ConfigResourceType, name string, alterTopic, alterBroker func() (int16, string)) (int16, string) {
	switch int8(resourceType) {
	case resourceTopic:
		if !c.authorized(authz.OpAlterConfigs, authz.ResourceTopic, name) {
			return kerr.TopicAuthorizationFailed.Code, "not authorized to ALTER_CONFIGS of topic '" + name + "'"
		}
		return alterTopic()
	case resourceBroker:
		if !c.authorizedCluster(authz.OpAlterConfigs) {
			return kerr.ClusterAuthorizationFailed.Code, "not authorized to ALTER_CONFIGS of the cluster"
		}
		return alterBroker() // dynamic broker configs: replication_throttle.go
	default:
		return kerr.InvalidRequest.Code, "unsupported resource type " + strconv.Itoa(int(resourceType))
	}
}

// resourceKey identifies a config resource within one request.
type resourceKey struct {
	kind kmsg.ConfigResourceType
	name string
}

// repeatedResources counts how often each resource appears in a request.
// As in Kafka (ConfigAdminManager.preprocess), a resource named more than
// once is refused with INVALID_REQUEST at every occurrence and not applied.
func repeatedResources[R any](resources []R, key func(R) resourceKey) map[resourceKey]bool {
	count := make(map[resourceKey]int, len(resources))
	for _, r := range resources {
		count[key(r)]++
	}
	repeated := map[resourceKey]bool{}
	for k, n := range count {
		if n > 1 {
			repeated[k] = true
		}
	}
	return repeated
}

const resourceRepeatedMessage = "each resource must appear at most once in a request"

// checkAlterConfigEntries refuses, as Kafka does, an AlterConfigs resource
// that names a config twice or gives one a null value (AlterConfigs replaces
// the whole set, so a config is unset by leaving it out).
func checkAlterConfigEntries(configs []kmsg.AlterConfigsRequestResourceConfig) (int16, string) {
	seen := make(map[string]bool, len(configs))
	var nulls []string
	for _, cfg := range configs {
		if seen[cfg.Name] {
			return kerr.InvalidRequest.Code, "config '" + cfg.Name + "' appears more than once"
		}
		seen[cfg.Name] = true
		if cfg.Value == nil {
			nulls = append(nulls, cfg.Name)
		}
	}
	if len(nulls) > 0 {
		return kerr.InvalidRequest.Code, "null value not supported for: " + strings.Join(nulls, ", ")
	}
	return 0, ""
}

func handleAlterConfigs(c *clientConn, h requestHeader, req *kmsg.AlterConfigsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	resp.Resources = make([]kmsg.AlterConfigsResponseResource, 0, len(req.Resources)) // one per request entry: no regrowth
	repeated := repeatedResources(req.Resources, func(r kmsg.AlterConfigsRequestResource) resourceKey {
		return resourceKey{r.ResourceType, r.ResourceName}
	})
	for _, r := range req.Resources {
		out := kmsg.NewAlterConfigsResponseResource()
		out.ResourceType = r.ResourceType
		out.ResourceName = r.ResourceName
		var code int16
		var msg string
		if repeated[resourceKey{r.ResourceType, r.ResourceName}] {
			code, msg = kerr.InvalidRequest.Code, resourceRepeatedMessage
		} else if code, msg = checkAlterConfigEntries(r.Configs); code == 0 {
			code, msg = c.alterResource(r.ResourceType, r.ResourceName, func() (int16, string) {
				// AlterConfigs replaces the whole set: unnamed configs revert to defaults.
				configs := make(map[string]string, len(r.Configs))
				for _, cfg := range r.Configs {
					configs[cfg.Name] = *cfg.Value
				}
				return s.alterTopicConfigs(r.ResourceName, func(map[string]string) (map[string]string, int16, string) {
					return configs, 0, ""
				}, req.ValidateOnly, 30000)
			}, func() (int16, string) {
				// AlterConfigs replaces the broker's dynamic set.
				return s.alterBrokerConfigs(r.ResourceName, req.ValidateOnly, func(configs map[string]string) (int16, string) {
					clear(configs)
					for _, cfg := range r.Configs {
						configs[cfg.Name] = *cfg.Value
					}
					return 0, ""
				})
			})
		}
		if code != 0 {
			out.ErrorCode = code
			out.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

// Incremental alter operations.
const (
	opSet      int8 = 0
	opDelete   int8 = 1
	opAppend   int8 = 2
	opSubtract int8 = 3
)

func handleIncrementalAlterConfigs(c *clientConn, h requestHeader, req *kmsg.IncrementalAlterConfigsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	resp.Resources = make([]kmsg.IncrementalAlterConfigsResponseResource, 0, len(req.Resources)) // one per request entry: no regrowth
	repeated := repeatedResources(req.Resources, func(r kmsg.IncrementalAlterConfigsRequestResource) resourceKey {
		return resourceKey{r.ResourceType, r.ResourceName}
	})
	for _, r := range req.Resources {
		out := kmsg.NewIncrementalAlterConfigsResponseResource()
		out.ResourceType = r.ResourceType
		out.ResourceName = r.ResourceName
		if repeated[resourceKey{r.ResourceType, r.ResourceName}] {
			msg := resourceRepeatedMessage
			out.ErrorCode, out.ErrorMessage = kerr.InvalidRequest.Code, &msg
			resp.Resources = append(resp.Resources, out)
			continue
		}
		code, msg := c.alterResource(r.ResourceType, r.ResourceName, func() (int16, string) {
			return s.alterTopicConfigs(r.ResourceName, func(current map[string]string) (map[string]string, int16, string) {
				configs := maps.Clone(current)
				if configs == nil {
					configs = map[string]string{}
				}
				code, msg := applyIncremental(s, configs, r.Configs)
				return configs, code, msg
			}, req.ValidateOnly, 30000)
		}, func() (int16, string) {
			return s.alterBrokerConfigs(r.ResourceName, req.ValidateOnly, func(configs map[string]string) (int16, string) {
				return incrementalBrokerConfigs(configs, r.Configs)
			})
		})
		if code != 0 {
			out.ErrorCode = code
			out.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp, nil
}

func applyIncremental(s *Server, configs map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (int16, string) {
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Name] {
			return kerr.InvalidRequest.Code, "config '" + op.Name + "' appears more than once"
		}
		seen[op.Name] = true
		def, known := topicconfig.Lookup(op.Name)
		if !known && int8(op.Op) == opDelete {
			// Kafka validates the configs a change leaves, so deleting a
			// name that is not set (or not a config at all) is a no-op.
			delete(configs, op.Name)
			continue
		}
		if !known {
			return kerr.InvalidConfig.Code, "unknown topic config '" + op.Name + "'"
		}
		switch int8(op.Op) {
		case opSet:
			if op.Value == nil {
				return kerr.InvalidRequest.Code, "SET of '" + op.Name + "' needs a value"
			}
			configs[op.Name] = *op.Value
		case opDelete:
			delete(configs, op.Name)
		case opAppend, opSubtract:
			if def.Type != topicconfig.TypeList {
				return kerr.InvalidConfig.Code, "'" + op.Name + "' is not a list; APPEND and SUBTRACT need a list config"
			}
			if op.Value == nil {
				return kerr.InvalidRequest.Code, "APPEND/SUBTRACT of '" + op.Name + "' needs a value"
			}
			current, _ := topicconfig.Resolve(s.cfg.TopicDefaults, configs, op.Name)
			items := splitList(current)
			for _, v := range splitList(*op.Value) {
				if int8(op.Op) == opAppend {
					if !contains(items, v) {
						items = append(items, v)
					}
				} else {
					items = removeAll(items, v)
				}
			}
			configs[op.Name] = strings.Join(items, ",")
		default:
			return kerr.InvalidRequest.Code, "unknown config operation " + strconv.Itoa(int(op.Op))
		}
	}
	return 0, ""
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func removeAll(list []string, v string) []string {
	out := list[:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
