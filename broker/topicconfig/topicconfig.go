// Package topicconfig defines the topic-level settings Strata understands,
// under Kafka's names, with their types, defaults and validation.
//
// Topic configs are stored in the metadata state as the explicitly set
// name → string pairs; everything else comes from the broker-level defaults
// (which operators set with serve flags, like Kafka's log.* broker configs).
// A name that is not defined here is refused with INVALID_CONFIG, as Kafka
// does, so a setting that Strata would silently ignore is never accepted.
package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Type is the Kafka DescribeConfigs config type (ConfigType in the protocol).
type Type int8

// Kafka's DescribeConfigs v3+ config types.
const (
	TypeBoolean Type = 1
	TypeString  Type = 2
	TypeInt     Type = 3
	TypeLong    Type = 5
	TypeDouble  Type = 6
	TypeList    Type = 7
)

// Names of the topic configs Strata implements.
const (
	CleanupPolicy          = "cleanup.policy"
	CompressionType        = "compression.type"
	DeleteRetentionMs      = "delete.retention.ms"
	MaxCompactionLagMs     = "max.compaction.lag.ms"
	MinCleanableDirtyRatio = "min.cleanable.dirty.ratio"
	MinCompactionLagMs     = "min.compaction.lag.ms"
	FlushMessages          = "flush.messages"
	FlushMs                = "flush.ms"
	IndexIntervalBytes     = "index.interval.bytes"
	MaxMessageBytes        = "max.message.bytes"
	MessageTimestampType   = "message.timestamp.type"
	// KIP-937: how far a CreateTime record's timestamp may lie behind or
	// ahead of the broker's clock.
	MessageTimestampBeforeMaxMs = "message.timestamp.before.max.ms"
	MessageTimestampAfterMaxMs  = "message.timestamp.after.max.ms"
	MinInsyncReplicas           = "min.insync.replicas"
	RetentionBytes              = "retention.bytes"
	RetentionMs                 = "retention.ms"
	SegmentBytes                = "segment.bytes"
	SegmentIndexBytes           = "segment.index.bytes"
	SegmentMs                   = "segment.ms"
	UncleanLeaderElection       = "unclean.leader.election.enable"
	// Tiered storage (KIP-405, KIP-950).
	RemoteStorageEnable      = "remote.storage.enable"
	LocalRetentionMs         = "local.retention.ms"
	LocalRetentionBytes      = "local.retention.bytes"
	RemoteLogCopyDisable     = "remote.log.copy.disable"
	RemoteLogDeleteOnDisable = "remote.log.delete.on.disable"
	// Replication throttles (kafka-reassign-partitions --throttle): the
	// replicas whose replication counts against the brokers'
	// leader/follower.replication.throttled.rate. Topic-only: no broker
	// default.
	LeaderReplicationThrottledReplicas   = "leader.replication.throttled.replicas"
	FollowerReplicationThrottledReplicas = "follower.replication.throttled.replicas"
	// Deprecated in Kafka 3.x and still accepted by Kafka 3.9: stored,
	// described and ignored.
	MessageFormatVersion        = "message.format.version"
	MessageDownconversionEnable = "message.downconversion.enable"
)

// Definition describes one topic config.
type Definition struct {
	Name string
	Type Type
	// BrokerName is the broker-level synonym (Kafka's log.* name) whose value
	// is the default for topics that do not set Name; empty for the
	// topic-only configs Kafka gives no broker synonym (no serve flag).
	BrokerName string
	// Default is the built-in default, used when the broker does not override it.
	Default string
	Doc     string
	// Deprecated, when set, says why the config is accepted and ignored
	// (Kafka still accepts it, so tools that set it keep working).
	Deprecated string
	validate   func(string) error
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("topicconfig: invalid config")

func longAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func intAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a 32-bit whole number", v)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func doubleBetween(min, max float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) {
			return fmt.Errorf("%q is not a number", v)
		}
		if f < min || f > max {
			return fmt.Errorf("%v is not between %v and %v", f, min, max)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
	}
}

var definitions = []Definition{
	{Name: CleanupPolicy, Type: TypeList, BrokerName: "log.cleanup.policy", Default: "delete",
		Doc: "delete: old segments are removed by retention; compact: the log cleaner keeps the latest record of each key; compact,delete: both",
		validate: func(v string) error {
			for _, p := range strings.Split(v, ",") {
				switch strings.TrimSpace(p) {
				case "delete", "compact":
				default:
					return fmt.Errorf("%q is not a cleanup policy (delete, compact, or compact,delete)", p)
				}
			}
			return nil
		}},
	{Name: CompressionType, Type: TypeString, BrokerName: "compression.type", Default: "producer",
		Doc:      "codec the leader stores batches with: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd re-encode every batch produced with another codec (as Kafka)",
		validate: oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")},
	{Name: DeleteRetentionMs, Type: TypeLong, BrokerName: "log.cleaner.delete.retention.ms", Default: "86400000",
		Doc: "milliseconds a tombstone (null value) stays readable on a compacted topic before the cleaner drops it", validate: longAtLeast(0)},
	{Name: MaxCompactionLagMs, Type: TypeLong, BrokerName: "log.cleaner.max.compaction.lag.ms", Default: strconv.FormatInt(math.MaxInt64, 10),
		Doc: "milliseconds after which a compacted topic is cleaned even below min.cleanable.dirty.ratio", validate: longAtLeast(1)},
	{Name: MinCleanableDirtyRatio, Type: TypeDouble, BrokerName: "log.cleaner.min.cleanable.ratio", Default: "0.5",
		Doc: "share of a compacted log not yet cleaned that triggers the cleaner (0..1)", validate: doubleBetween(0, 1)},
	{Name: MinCompactionLagMs, Type: TypeLong, BrokerName: "log.cleaner.min.compaction.lag.ms", Default: "0",
		Doc: "milliseconds a record stays uncompacted (its segment must be at least this old)", validate: longAtLeast(0)},
	{Name: FlushMessages, Type: TypeLong, BrokerName: "log.flush.interval.messages", Default: strconv.FormatInt(math.MaxInt64, 10),
		Doc: "fsync after this many records (default: never by count; durability comes from replication and the page cache); 1 is the durable mode: acks=1 and acks=all are answered only once the write is fsynced on the leader, and on every in-sync replica", validate: longAtLeast(1)},
	{Name: FlushMs, Type: TypeLong, BrokerName: "log.flush.interval.ms", Default: strconv.FormatInt(math.MaxInt64, 10),
		Doc: "fsync when unflushed data is older than this many milliseconds", validate: longAtLeast(0)},
	{Name: IndexIntervalBytes, Type: TypeInt, BrokerName: "log.index.interval.bytes", Default: "4096",
		Doc: "bytes between offset index entries", validate: intAtLeast(0)},
	{Name: MaxMessageBytes, Type: TypeInt, BrokerName: "message.max.bytes", Default: "1048588",
		Doc: "largest record batch accepted, in bytes", validate: intAtLeast(0)},
	{Name: MessageTimestampType, Type: TypeString, BrokerName: "log.message.timestamp.type", Default: "CreateTime",
		Doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock", validate: oneOf("CreateTime", "LogAppendTime")},
	{Name: MessageTimestampBeforeMaxMs, Type: TypeLong, BrokerName: "log.message.timestamp.before.max.ms", Default: strconv.FormatInt(math.MaxInt64, 10),
		Doc: "on a CreateTime topic, a batch with a record timestamped more than this many milliseconds before the broker's clock is refused (INVALID_TIMESTAMP)", validate: longAtLeast(0)},
	{Name: MessageTimestampAfterMaxMs, Type: TypeLong, BrokerName: "log.message.timestamp.after.max.ms", Default: "3600000",
		Doc: "on a CreateTime topic, a batch with a record timestamped more than this many milliseconds after the broker's clock is refused (INVALID_TIMESTAMP); Kafka 4's default, 1 hour", validate: longAtLeast(0)},
	{Name: MinInsyncReplicas, Type: TypeInt, BrokerName: "min.insync.replicas", Default: "1",
		Doc: "replicas that must have an acks=all write", validate: intAtLeast(1)},
	{Name: RetentionBytes, Type: TypeLong, BrokerName: "log.retention.bytes", Default: "-1",
		Doc: "bytes kept per partition before old segments are deleted; -1 = unlimited", validate: longAtLeast(-1)},
	{Name: RetentionMs, Type: TypeLong, BrokerName: "log.retention.ms", Default: "604800000",
		Doc: "milliseconds a segment is kept after its newest record; -1 = unlimited", validate: longAtLeast(-1)},
	{Name: SegmentBytes, Type: TypeInt, BrokerName: "log.segment.bytes", Default: "1073741824",
		Doc: "segment file size at which a new segment is rolled", validate: intAtLeast(14)},
	{Name: SegmentIndexBytes, Type: TypeInt, BrokerName: "log.index.size.max.bytes", Default: "10485760",
		Doc: "offset index size at which a new segment is rolled", validate: intAtLeast(8)},
	{Name: UncleanLeaderElection, Type: TypeBoolean, BrokerName: "unclean.leader.election.enable", Default: "false",
		Doc: "elect a replica outside the ISR when no in-sync replica is alive (availability over durability: acknowledged records can be lost)", validate: oneOf("true", "false")},
	{Name: SegmentMs, Type: TypeLong, BrokerName: "log.roll.ms", Default: "604800000",
		Doc: "milliseconds after which the active segment is rolled", validate: longAtLeast(1)},
	{Name: RemoteStorageEnable, Type: TypeBoolean, BrokerName: "log.remote.storage.enable", Default: "false",
		Doc: "tier sealed segments to the object store: local disk keeps local.retention.*, the object store everything up to retention.*", validate: oneOf("true", "false")},
	{Name: LocalRetentionMs, Type: TypeLong, BrokerName: "log.local.retention.ms", Default: "-2",
		Doc: "milliseconds an uploaded segment stays on local disk after its newest record; -2 = retention.ms (tiered topics only)", validate: longAtLeast(-2)},
	{Name: LocalRetentionBytes, Type: TypeLong, BrokerName: "log.local.retention.bytes", Default: "-2",
		Doc: "bytes of uploaded segments kept on local disk per partition; -2 = retention.bytes (tiered topics only)", validate: longAtLeast(-2)},
	{Name: RemoteLogCopyDisable, Type: TypeBoolean, BrokerName: "log.remote.log.copy.disable", Default: "false",
		Doc: "stop uploading new segments; remote data stays readable and local retention falls back to retention.*", validate: oneOf("true", "false")},
	{Name: RemoteLogDeleteOnDisable, Type: TypeBoolean, BrokerName: "log.remote.log.delete.on.disable", Default: "false",
		Doc: "needed to set remote.storage.enable=false on a tiered topic: its remote data is then deleted", validate: oneOf("true", "false")},
	{Name: LeaderReplicationThrottledReplicas, Type: TypeList, Default: "",
		Doc:      "replicas whose replication is throttled on the leader side: '*' or partition:broker pairs (0:1,1:2); a listed broker leading the partition counts what it sends the replicas outside the ISR against its leader.replication.throttled.rate",
		validate: throttledReplicaList},
	{Name: FollowerReplicationThrottledReplicas, Type: TypeList, Default: "",
		Doc:      "replicas whose replication is throttled on the follower side: '*' or partition:broker pairs (0:3,1:3); a listed broker outside the partition's ISR counts what it fetches against its follower.replication.throttled.rate",
		validate: throttledReplicaList},
	{Name: MessageFormatVersion, Type: TypeString, BrokerName: "log.message.format.version", Default: "3.0-IV1",
		Doc:        "deprecated (Kafka 3.0): accepted and ignored; Strata stores record batches (message format v2) only",
		Deprecated: "Kafka 3.0 deprecated it and ignores it from inter.broker.protocol.version 3.0; Strata writes message format v2 only",
		validate:   kafkaVersion},
	{Name: MessageDownconversionEnable, Type: TypeBoolean, BrokerName: "log.message.downconversion.enable", Default: "true",
		Doc:        "deprecated (Kafka 3.x): accepted and ignored; Strata never down-converts (clients that fetch old message formats are refused)",
		Deprecated: "Kafka deprecated it with message formats v0 and v1; Strata never down-converts",
		validate:   oneOf("true", "false")},
}

// throttledReplicaEntry is one entry of a throttled replicas list:
// partition:broker, or empty (Kafka accepts "0:1,,1:2").
var throttledReplicaEntry = regexp.MustCompile(`^([0-9]+:[0-9]+)?$`)

// throttledReplicaList is Kafka's ThrottledReplicaListValidator: the
// literal '*' or a comma list of partition:broker pairs.
func throttledReplicaList(v string) error {
	entries := strings.Split(v, ",")
	all := true
	for i, e := range entries {
		entries[i] = strings.TrimSpace(e)
		all = all && throttledReplicaEntry.MatchString(entries[i])
	}
	if all || strings.Join(entries, "") == "*" {
		return nil
	}
	return fmt.Errorf("%q must be the literal '*' or a list of replicas in the format partitionId:brokerId,partitionId:brokerId,...", v)
}

// ThrottledReplica reports whether a throttled replicas list (the value of
// leader/follower.replication.throttled.replicas) names replica broker of
// partition: '*' names every replica. A list that does not validate names
// none.
func ThrottledReplica(list string, partition, broker int32) bool {
	list = strings.TrimSpace(list)
	if list == "" || throttledReplicaList(list) != nil {
		return false
	}
	if strings.ReplaceAll(strings.ReplaceAll(list, ",", ""), " ", "") == "*" {
		return true
	}
	for _, e := range strings.Split(list, ",") {
		p, b, ok := strings.Cut(strings.TrimSpace(e), ":")
		if !ok {
			continue
		}
		pn, perr := strconv.ParseInt(p, 10, 32)
		bn, berr := strconv.ParseInt(b, 10, 32)
		if perr == nil && berr == nil && int32(pn) == partition && int32(bn) == broker {
			return true
		}
	}
	return false
}

// kafkaVersionPattern matches what Kafka accepts for message.format.version:
// a release ("0.10.2", "2.8", "3.0") optionally with an IV suffix
// ("3.0-IV1").
var kafkaVersionPattern = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?(-IV[0-9]+)?$`)

func kafkaVersion(v string) error {
	if !kafkaVersionPattern.MatchString(v) {
		return fmt.Errorf("%q is not a Kafka version such as 2.8 or 3.0-IV1", v)
	}
	return nil
}

var byName = func() map[string]*Definition {
	m := make(map[string]*Definition, len(definitions))
	for i := range definitions {
		m[definitions[i].Name] = &definitions[i]
	}
	return m
}()

// Lookup returns the definition of a topic config.
func Lookup(name string) (Definition, bool) {
	d, ok := byName[name]
	if !ok {
		return Definition{}, false
	}
	return *d, true
}

// All returns every definition, sorted by name.
func All() []Definition {
	out := append([]Definition(nil), definitions...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DeprecatedIn lists the deprecated configs among configs, with why each
// is ignored.
func DeprecatedIn(configs map[string]string) map[string]string {
	var out map[string]string
	for name := range configs {
		if d, ok := byName[name]; ok && d.Deprecated != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = d.Deprecated
		}
	}
	return out
}

// ValidateOne checks one name and value.
func ValidateOne(name, value string) error {
	d, ok := byName[name]
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", ErrInvalid, name)
	}
	if err := d.validate(value); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	return nil
}

// Validate checks a set of explicitly set topic configs.
func Validate(configs map[string]string) error {
	names := make([]string, 0, len(configs))
	for n := range configs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ValidateOne(n, configs[n]); err != nil {
			return err
		}
	}
	return nil
}

// Defaults are the broker-level values for every topic config; a topic's own
// settings override them. The zero value means Kafka's defaults.
type Defaults map[string]string

// Value returns the broker default for name.
func (d Defaults) Value(name string) (value string, overridden bool) {
	if v, ok := d[name]; ok {
		return v, true
	}
	if def, ok := byName[name]; ok {
		return def.Default, false
	}
	return "", false
}

// Values is a resolved, typed view of a topic's configs.
type Values struct {
	RetentionMs        int64
	RetentionBytes     int64
	SegmentBytes       int64
	SegmentMs          int64
	SegmentIndexBytes  int32
	IndexIntervalBytes int32
	FlushMessages      int64
	FlushMs            int64
	MaxMessageBytes    int32
	// Compression is compression.type: "producer" (batches are stored
	// with the producer's codec) or the codec the leader re-encodes
	// produced batches with ("uncompressed", "gzip", "snappy", "lz4",
	// "zstd").
	Compression   string
	LogAppendTime bool
	// TimestampBeforeMaxMs and TimestampAfterMaxMs bound a CreateTime
	// record's timestamp around the broker's clock.
	TimestampBeforeMaxMs int64
	TimestampAfterMaxMs  int64
	MinInsyncReplicas    int32
	// Cleanup policy: Delete runs retention, Compact the log cleaner.
	Delete, Compact        bool
	DeleteRetentionMs      int64
	MinCompactionLagMs     int64
	MaxCompactionLagMs     int64
	MinCleanableDirtyRatio float64
	// Tiered storage. LocalRetentionMs and LocalRetentionBytes are
	// resolved: -2 is replaced by the total retention.
	RemoteStorage            bool
	LocalRetentionMs         int64
	LocalRetentionBytes      int64
	RemoteLogCopyDisable     bool
	RemoteLogDeleteOnDisable bool
}

// Source tells where a resolved value came from (DescribeConfigs ConfigSource).
type Source int8

// Kafka's DescribeConfigs config sources.
const (
	SourceTopic        Source = 1
	SourceStaticBroker Source = 4
	SourceDefault      Source = 5
)

// Resolve returns the effective value of name for a topic with the given
// explicitly set configs.
func Resolve(defaults Defaults, topic map[string]string, name string) (string, Source) {
	if v, ok := topic[name]; ok {
		return v, SourceTopic
	}
	v, overridden := defaults.Value(name)
	if overridden {
		return v, SourceStaticBroker
	}
	return v, SourceDefault
}

// Typed resolves every config of a topic into Values. Values are validated
// before they are stored, but the metadata log only checks their shape (its
// rules must not change between versions): a value that this build does not
// accept, as any other that does not parse, counts as the built-in default.
func Typed(defaults Defaults, topic map[string]string) Values {
	resolve := func(name string) string {
		v, _ := Resolve(defaults, topic, name)
		if ValidateOne(name, v) != nil {
			return byName[name].Default
		}
		return v
	}
	long := func(name string) int64 {
		n, err := strconv.ParseInt(resolve(name), 10, 64)
		if err != nil {
			n, _ = strconv.ParseInt(byName[name].Default, 10, 64)
		}
		return n
	}
	ts := resolve(MessageTimestampType)
	policy := resolve(CleanupPolicy)
	dirtyRatio, err := strconv.ParseFloat(resolve(MinCleanableDirtyRatio), 64)
	if err != nil {
		dirtyRatio, _ = strconv.ParseFloat(byName[MinCleanableDirtyRatio].Default, 64)
	}
	boolean := func(name string) bool {
		return resolve(name) == "true"
	}
	localMs, localBytes := long(LocalRetentionMs), long(LocalRetentionBytes)
	if localMs == -2 {
		localMs = long(RetentionMs)
	}
	if localBytes == -2 {
		localBytes = long(RetentionBytes)
	}
	return Values{
		RemoteStorage:            boolean(RemoteStorageEnable),
		LocalRetentionMs:         localMs,
		LocalRetentionBytes:      localBytes,
		RemoteLogCopyDisable:     boolean(RemoteLogCopyDisable),
		RemoteLogDeleteOnDisable: boolean(RemoteLogDeleteOnDisable),
		Delete:                   hasPolicy(policy, "delete"),
		Compact:                  hasPolicy(policy, "compact"),
		DeleteRetentionMs:        long(DeleteRetentionMs),
		MinCompactionLagMs:       long(MinCompactionLagMs),
		MaxCompactionLagMs:       long(MaxCompactionLagMs),
		MinCleanableDirtyRatio:   dirtyRatio,
		RetentionMs:              long(RetentionMs),
		RetentionBytes:           long(RetentionBytes),
		SegmentBytes:             long(SegmentBytes),
		SegmentMs:                long(SegmentMs),
		SegmentIndexBytes:        int32(long(SegmentIndexBytes)),
		IndexIntervalBytes:       int32(long(IndexIntervalBytes)),
		FlushMessages:            long(FlushMessages),
		FlushMs:                  long(FlushMs),
		MaxMessageBytes:          int32(long(MaxMessageBytes)),
		Compression:              resolve(CompressionType),
		LogAppendTime:            ts == "LogAppendTime",
		TimestampBeforeMaxMs:     long(MessageTimestampBeforeMaxMs),
		TimestampAfterMaxMs:      long(MessageTimestampAfterMaxMs),
		MinInsyncReplicas:        int32(long(MinInsyncReplicas)),
	}
}

// CheckCombined checks what single values cannot: the resolved configs of
// one topic together (Kafka's rules for tiered topics, and Strata's: a
// tiered topic never elects an unclean leader, so its own
// unclean.leader.election.enable=true is refused; the broker default is
// ignored for it, see metadata's controller).
func CheckCombined(defaults Defaults, topic map[string]string) error {
	v := Typed(defaults, topic)
	if !v.RemoteStorage {
		return nil
	}
	switch {
	case topic[UncleanLeaderElection] == "true":
		return fmt.Errorf("%w: %s=true is not supported with %s=true (an out-of-sync leader would splice its history into the remote data; a tiered partition stays offline until an in-sync replica returns)", ErrInvalid, UncleanLeaderElection, RemoteStorageEnable)
	case v.Compact:
		return fmt.Errorf("%w: %s=true is not supported with cleanup.policy=compact (compacted topics are not tiered)", ErrInvalid, RemoteStorageEnable)
	case v.RetentionMs >= 0 && (v.LocalRetentionMs < 0 || v.LocalRetentionMs > v.RetentionMs):
		return fmt.Errorf("%w: %s (%d) must not exceed %s (%d)", ErrInvalid, LocalRetentionMs, v.LocalRetentionMs, RetentionMs, v.RetentionMs)
	case v.RetentionBytes >= 0 && (v.LocalRetentionBytes < 0 || v.LocalRetentionBytes > v.RetentionBytes):
		return fmt.Errorf("%w: %s (%d) must not exceed %s (%d)", ErrInvalid, LocalRetentionBytes, v.LocalRetentionBytes, RetentionBytes, v.RetentionBytes)
	}
	return nil
}

// hasPolicy reports whether a cleanup.policy list names policy.
func hasPolicy(list, policy string) bool {
	for _, p := range strings.Split(list, ",") {
		if strings.TrimSpace(p) == policy {
			return true
		}
	}
	return false
}
