package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/broker/authn"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/broker/replica"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/metadata"
)

// Config configures a broker. Zero values mean the documented defaults.
type Config struct {
	// NodeID is this broker's id (Kafka's node.id).
	NodeID int32
	// Listeners are the named Kafka listeners; default one, CLIENT on
	// 127.0.0.1:9092. A client is told the advertised addresses of the
	// listener it connected to, as in Kafka.
	Listeners []Listener
	// DataDir holds one directory per partition (<topic>-<partition>).
	DataDir string
	// Metadata is the cluster's state machine (required).
	Metadata *metadata.Store
	// Authorizer decides requests by the cluster's ACLs (--authorizer acl);
	// nil lets every principal do everything, as Kafka without an
	// authorizer (--authorizer none).
	Authorizer *authz.Authorizer

	// TopicDefaults are the broker-level defaults of topic configs: the
	// ones the operator set (DescribeConfigs reports them
	// STATIC_BROKER_CONFIG, the others DEFAULT_CONFIG).
	TopicDefaults topicconfig.Defaults
	// StaticConfigs names (as Kafka does: num.partitions, listeners, ...)
	// the other broker configs the operator set, by a serve flag, its
	// STRATA_ environment variable or the config file. DescribeConfigs
	// reports them STATIC_BROKER_CONFIG, every other one DEFAULT_CONFIG
	// (its value is the built-in default).
	StaticConfigs []string
	// NumPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that leave it unset (num.partitions), default 1.
	NumPartitions int32
	// DefaultReplicationFactor is default.replication.factor, default 1.
	DefaultReplicationFactor int16
	// DisableAutoCreateTopics turns off auto.create.topics.enable.
	DisableAutoCreateTopics bool
	// MaxRequestBytes is socket.request.max.bytes: a larger frame closes the
	// connection before anything is allocated. Default 100 MiB.
	MaxRequestBytes int32
	// FetchMaxBytes caps what one Fetch response carries, whatever the
	// client asks for (Kafka's fetch.max.bytes); default 55 MiB. The first
	// batch is still returned whole when larger (KIP-74).
	FetchMaxBytes int32
	// IdleTimeout is connections.max.idle.ms, default 10 minutes.
	IdleTimeout time.Duration
	// MaxConnections is max.connections: with this many client connections
	// open, the listeners stop accepting (new connections wait in the
	// kernel's backlog) until one closes. Connections on the inter-broker
	// listener are not counted when it is a listener of its own, so
	// clients cannot starve replication (Kafka's KIP-402). Default 10,000,
	// or a quarter of the file-descriptor limit (RLIMIT_NOFILE) when lower.
	MaxConnections int
	// MaxConnectionsPerIP is max.connections.per.ip: a connection from an
	// address that has this many open is closed at once. Default 1,000.
	MaxConnectionsPerIP int
	// QueuedMaxRequestBytes is queued.max.request.bytes: while request
	// bytes read into memory and not yet handled would exceed it,
	// connections stop reading their sockets. Default 512 MiB; at least
	// MaxRequestBytes.
	QueuedMaxRequestBytes int64
	// QueuedMaxResponseBytes is queued.max.response.bytes (Strata's; Kafka
	// sends Fetch data with sendfile and needs none): the Fetch record
	// bytes read into memory for responses not yet written, over every
	// connection. A Fetch reserves room before it reads; with none free it
	// waits within its max wait, then answers without records. A quarter
	// is kept for followers (responsememory.go). Default 512 MiB; at least
	// 1 MiB.
	QueuedMaxResponseBytes int64
	// ProducerIDExpiration is producer.id.expiration.ms, default 1 day.
	ProducerIDExpiration time.Duration
	// InterBrokerListener names the listener followers fetch from (the
	// leader's endpoint of that name); default the first listener.
	InterBrokerListener string
	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower that has not
	// caught up with the leader for this long leaves the ISR; default 30 s.
	ReplicaLagTimeMax time.Duration
	// HeartbeatInterval is broker.heartbeat.interval.ms: how often this
	// broker tells the controller it is alive; default 2 s. The
	// controller's session timeout (metadata.Config) must be several times
	// longer.
	HeartbeatInterval time.Duration
	// ControlledShutdownTimeout bounds how long Close waits for the
	// controller to move this broker's leaderships; default 10 s.
	ControlledShutdownTimeout time.Duration
	// SessionTimeout is the controller's broker session timeout
	// (broker.session.timeout.ms), default 9 s. A registration of this
	// broker id by another process that stays alive for three times this
	// long means two processes claim the id: start-up fails.
	SessionTimeout time.Duration
	// Rack is broker.rack: replicas of a partition are spread over racks.
	Rack string
	// RetentionCheckInterval is log.retention.check.interval.ms, default 5 minutes.
	RetentionCheckInterval time.Duration
	// CleanerBackoff is log.cleaner.backoff.ms: the pause between log
	// cleaner passes over the compacted partitions, default 15 s.
	CleanerBackoff time.Duration
	// OffsetsTopicSegmentBytes is offsets.topic.segment.bytes: the segment
	// size of __consumer_offsets (small, so the cleaner can compact it;
	// the active segment is never cleaned), default 100 MiB.
	OffsetsTopicSegmentBytes int32
	// OffsetsRetention is offsets.retention.minutes: committed offsets of a
	// group that has been empty this long (or, for a group that never had
	// members, offsets not committed for this long) are removed. Default 7 days.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is offsets.retention.check.interval.ms,
	// default 10 minutes.
	OffsetsRetentionCheckInterval time.Duration
	// OffsetsExpiryPause holds back offset expiry (and transactional id
	// expiration) while it reports paused (internal/clockwatch: after a
	// forward jump of the wall clock); nil never pauses.
	OffsetsExpiryPause group.Pauser
	// OffsetsTopicNumPartitions is offsets.topic.num.partitions: the
	// partition count __consumer_offsets is created with, default 50.
	OffsetsTopicNumPartitions int32
	// OffsetsTopicReplicationFactor is offsets.topic.replication.factor:
	// the replicas of each __consumer_offsets partition, default 3. The
	// topic is never created with fewer: until that many brokers are
	// registered and unfenced, group lookups answer
	// COORDINATOR_NOT_AVAILABLE, as in Kafka. A one-node cluster (the
	// quorum names one voter and no other broker has registered) uses 1.
	OffsetsTopicReplicationFactor int16
	// TransactionStateLogNumPartitions is
	// transaction.state.log.num.partitions: the partition count
	// __transaction_state is created with, default 50.
	TransactionStateLogNumPartitions int32
	// TransactionStateLogReplicationFactor is
	// transaction.state.log.replication.factor, default 3, under the rule of
	// OffsetsTopicReplicationFactor: never created with fewer replicas
	// (transactional producers get COORDINATOR_NOT_AVAILABLE until enough
	// brokers are up), 1 on a one-node cluster. Its min.insync.replicas is
	// 2 (Kafka's transaction.state.log.min.isr), or 1 with one replica.
	TransactionStateLogReplicationFactor int16
	// TransactionStateLogSegmentBytes is
	// transaction.state.log.segment.bytes, default 100 MiB.
	TransactionStateLogSegmentBytes int32
	// TransactionMaxTimeout is transaction.max.timeout.ms: a producer asking
	// for a longer transaction timeout gets INVALID_TRANSACTION_TIMEOUT.
	// Default 15 minutes.
	TransactionMaxTimeout time.Duration
	// TransactionalIDExpiration is transactional.id.expiration.ms: a
	// transactional id with no open transaction, unused this long, is
	// removed. Default 7 days.
	TransactionalIDExpiration time.Duration
	// TransactionAbortTimedOutInterval is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms: how often
	// transactions past their timeout are aborted. Default 10 s.
	TransactionAbortTimedOutInterval time.Duration
	// TransactionVersion is the finalized level of the transaction.version
	// feature that ApiVersions advertises: 2 (the default, Kafka 4's)
	// lets clients that see it use Transactions V2 (KIP-890 part 2), 1
	// keeps them on Transactions V1. The APIs of both are served either
	// way, as in Kafka: the level is what clients choose by.
	TransactionVersion int16
	// GroupInitialRebalanceDelay is group.initial.rebalance.delay.ms,
	// default 3 s; negative means no delay (Kafka's 0).
	GroupInitialRebalanceDelay time.Duration
	// GroupMinSessionTimeout and GroupMaxSessionTimeout are
	// group.min.session.timeout.ms and group.max.session.timeout.ms: a
	// JoinGroup asking for a session timeout outside them is answered
	// INVALID_SESSION_TIMEOUT. Defaults 6 s and 30 minutes, as Kafka's.
	GroupMinSessionTimeout time.Duration
	GroupMaxSessionTimeout time.Duration
	// GroupMaxSize is group.max.size: a new member joining a group that
	// has this many members is answered GROUP_MAX_SIZE_REACHED (see
	// group.Config.MaxSize). Default math.MaxInt32, Kafka's: unlimited.
	GroupMaxSize int32
	// RemoteReader reads tiered segments from the object store that topics
	// with remote.storage.enable tier to; nil refuses
	// remote.storage.enable=true. Closing it is the caller's job, after
	// Close. What gets uploaded is the tier manager's business
	// (broker/tiermanager), which works with HostedPartitions.
	RemoteReader RemoteReader
	// RemoteFetchQuota is the remote fetch quota (KIP-956,
	// remote_quota.go); nil is unlimited.
	RemoteFetchQuota RemoteFetchQuota
	// ObjectStoreNodeLocal says the object store behind RemoteReader is
	// private to this node (the default file://<data dir>/bucket, a
	// file:// directory not declared shared with --object-store-shared,
	// mem://). A tiered partition's replicas drop their local copies of
	// what the leader uploaded, so in a cluster of more than one node such
	// a store loses data: remote.storage.enable=true is then refused
	// (UnsharedObjectStore).
	ObjectStoreNodeLocal bool
	// LocalDiskLimit bounds the bytes of every local log together (0: no
	// bound). Past 90% producers are throttled (throttle_time_ms), at 100%
	// refused with the retriable KAFKA_STORAGE_ERROR: when the object store
	// is unreachable, tiered partitions keep every segment not uploaded,
	// and this stops the disk from filling up.
	LocalDiskLimit int64
	// SegmentSyncFault, when set (tests only), fails the fsyncs of the
	// partition logs it returns an error for (partition.Config's
	// SegmentSyncFault), as a disk that fails fsync with EIO does.
	SegmentSyncFault func(topic string, index int32) error
	// SegmentWriteFault, when set (tests only), is asked before each write
	// of the partition logs' appends (partition.Config's
	// SegmentWriteFault): tests fail writes, or hold them to force an
	// interleaving.
	SegmentWriteFault func(topic string, index int32, size int) (written int, err error)
	// TLS is the node's TLS identity (--ssl-cert-file, --ssl-key-file,
	// --ssl-ca-file, --ssl-client-auth): the SSL listeners serve it, and
	// when the inter-broker listener is SSL this broker's replica fetchers
	// and transaction clients dial other brokers with it (trusting the CA
	// file, presenting the node certificate). Required when a listener is
	// SSL.
	TLS *authn.TLS
	// SASLMechanisms are sasl.enabled.mechanisms: what SASL_PLAINTEXT and
	// SASL_SSL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (SCRAM
	// credentials live in the metadata quorum), OAUTHBEARER; default PLAIN.
	SASLMechanisms []string
	// PlainUsers are the SASL/PLAIN users (--sasl-plain-users-file);
	// required when PLAIN is enabled and a listener is SASL.
	PlainUsers *authn.PlainUsers
	// InterBrokerSASLMechanism is sasl.mechanism.inter.broker.protocol:
	// the SASL mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, one of
	// SASLMechanisms) this broker's clients authenticate with on a SASL
	// inter-broker listener, as InterBrokerCredentials' user. Required
	// then; see broker/interbroker.go for what the broker principal may do.
	InterBrokerSASLMechanism string
	// InterBrokerCredentials are the inter-broker SASL user and password
	// (--sasl-inter-broker-credentials-file), re-read when the file
	// changes. Every broker of the cluster uses the same user.
	InterBrokerCredentials *authn.CredentialsFile
	// SSLPrincipalMapping is ssl.principal.mapping.rules: how a client
	// certificate's subject becomes its principal; nil is DEFAULT.
	SSLPrincipalMapping *authn.PrincipalMapping

	// OAuthBearer validates SASL/OAUTHBEARER tokens
	// (--sasl-oauthbearer-*); required when OAUTHBEARER is enabled and a
	// listener is SASL.
	OAuthBearer *authn.OAuthValidator
	// ConnectionsMaxReauth is connections.max.reauth.ms (KIP-368): SASL
	// sessions last this long, or until their token expires if sooner,
	// and clients re-authenticate on the same connection before then; a
	// connection that does not is closed. 0 (the default, as Kafka's):
	// sessions never expire.
	ConnectionsMaxReauth time.Duration
	// SASLClock is the clock of SASL sessions (tests); default time.Now.
	SASLClock func() time.Time

	// Quotas configures client quota enforcement (--quota-window-num,
	// --quota-window-size-seconds); zero values are Kafka's defaults. Its
	// Registerer defaults to Registerer.
	Quotas quota.Config

	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the broker's Prometheus metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Listener is one named Kafka listener.
type Listener struct {
	// Name is the listener name, e.g. CLIENT or INTERNAL.
	Name string
	// Address is the host:port to bind.
	Address string
	// Advertise is the host:port clients of this listener are told; default
	// Address. It must not be an unspecified address such as 0.0.0.0.
	Advertise string
	// SecurityProtocol is the listener's entry of Kafka's
	// listener.security.protocol.map; default PLAINTEXT. SSL needs
	// Config.TLS; SASL_PLAINTEXT and SASL_SSL authenticate with
	// Config.SASLMechanisms (and, on the inter-broker listener, brokers
	// with InterBrokerSASLMechanism).
	SecurityProtocol authn.Protocol
}

func (c *Config) setDefaults() {
	if len(c.Listeners) == 0 {
		c.Listeners = []Listener{{Name: "CLIENT", Address: "127.0.0.1:9092"}}
	}
	c.Listeners = append([]Listener(nil), c.Listeners...)
	for i := range c.Listeners {
		if c.Listeners[i].Advertise == "" {
			c.Listeners[i].Advertise = c.Listeners[i].Address
		}
		if c.Listeners[i].SecurityProtocol == "" {
			c.Listeners[i].SecurityProtocol = authn.Plaintext
		}
	}
	if len(c.SASLMechanisms) == 0 {
		c.SASLMechanisms = []string{mechanismPlain}
	}
	if c.NumPartitions == 0 {
		c.NumPartitions = 1
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = 55 << 20
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = maxConnectionsByDefault()
	}
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = defaultMaxConnectionsPerIP
	}
	if c.QueuedMaxRequestBytes == 0 {
		c.QueuedMaxRequestBytes = defaultQueuedMaxRequestBytes
	}
	if c.QueuedMaxResponseBytes == 0 {
		c.QueuedMaxResponseBytes = defaultQueuedMaxResponseBytes
	}
	if c.ProducerIDExpiration == 0 {
		c.ProducerIDExpiration = 24 * time.Hour
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = 5 * time.Minute
	}
	if c.InterBrokerListener == "" {
		c.InterBrokerListener = c.Listeners[0].Name
	}
	if c.ReplicaLagTimeMax == 0 {
		c.ReplicaLagTimeMax = 30 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 9 * time.Second
	}
	if c.ControlledShutdownTimeout == 0 {
		c.ControlledShutdownTimeout = 10 * time.Second
	}
	if c.OffsetsTopicNumPartitions == 0 {
		c.OffsetsTopicNumPartitions = 50
	}
	if c.OffsetsTopicReplicationFactor == 0 {
		c.OffsetsTopicReplicationFactor = 3
	}
	if c.TransactionStateLogNumPartitions == 0 {
		c.TransactionStateLogNumPartitions = 50
	}
	if c.TransactionStateLogReplicationFactor == 0 {
		c.TransactionStateLogReplicationFactor = 3
	}
	if c.TransactionStateLogSegmentBytes == 0 {
		c.TransactionStateLogSegmentBytes = 100 << 20
	}
	if c.TransactionMaxTimeout == 0 {
		c.TransactionMaxTimeout = txn.DefaultMaxTimeout
	}
	if c.TransactionalIDExpiration == 0 {
		c.TransactionalIDExpiration = txn.DefaultIDExpiration
	}
	if c.TransactionAbortTimedOutInterval == 0 {
		c.TransactionAbortTimedOutInterval = txn.DefaultAbortTimedOutInterval
	}
	if c.TransactionVersion == 0 {
		c.TransactionVersion = int16(txn.V2)
	}
	if c.CleanerBackoff == 0 {
		c.CleanerBackoff = 15 * time.Second
	}
	if c.OffsetsTopicSegmentBytes == 0 {
		c.OffsetsTopicSegmentBytes = 100 << 20
	}
	if c.OffsetsRetention == 0 {
		c.OffsetsRetention = 7 * 24 * time.Hour
	}
	if c.OffsetsRetentionCheckInterval == 0 {
		c.OffsetsRetentionCheckInterval = 10 * time.Minute
	}
	if c.GroupInitialRebalanceDelay == 0 {
		c.GroupInitialRebalanceDelay = 3 * time.Second
	}
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = group.DefaultMinSessionTimeout
	}
	if c.GroupMaxSessionTimeout == 0 {
		c.GroupMaxSessionTimeout = group.DefaultMaxSessionTimeout
	}
	if c.GroupMaxSize == 0 {
		c.GroupMaxSize = group.DefaultMaxSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	c.setDefaults()
	if c.Metadata == nil {
		return errors.New("broker: Config.Metadata is required")
	}
	if err := c.Quotas.Validate(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("broker: data dir is required")
	}
	for _, m := range c.SASLMechanisms {
		if !saslMechanismServed(m) {
			return fmt.Errorf("broker: SASL mechanism %q is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER are)", m)
		}
	}
	if slices.Contains(c.SASLMechanisms, mechanismOAuthBearer) && c.OAuthBearer == nil &&
		slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.SecurityProtocol.SASL() }) {
		return errors.New("broker: a SASL listener with OAUTHBEARER: set --sasl-oauthbearer-jwks-file")
	}
	names := map[string]bool{}
	for _, l := range c.Listeners {
		if l.Name == "" {
			return errors.New("broker: a listener has no name")
		}
		if names[l.Name] {
			return fmt.Errorf("broker: listener %s is defined twice", l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			return fmt.Errorf("broker: listener %s address %q: %w", l.Name, l.Address, err)
		}
		if _, _, err := splitAdvertise(l.Advertise); err != nil {
			return fmt.Errorf("broker: listener %s: %w", l.Name, err)
		}
		if _, err := authn.ParseProtocol(string(l.SecurityProtocol)); err != nil {
			return fmt.Errorf("broker: listener %s: %w", l.Name, err)
		}
		if l.SecurityProtocol.SASL() && slices.Contains(c.SASLMechanisms, mechanismPlain) && c.PlainUsers == nil {
			return fmt.Errorf("broker: listener %s is %s with PLAIN: set --sasl-plain-users-file", l.Name, l.SecurityProtocol)
		}
		if l.SecurityProtocol.TLS() && c.TLS == nil {
			return fmt.Errorf("broker: listener %s is %s: set --ssl-cert-file and --ssl-key-file", l.Name, l.SecurityProtocol)
		}
	}
	if err := c.validateInterBroker(); err != nil {
		return err
	}
	if c.NumPartitions < 1 {
		return fmt.Errorf("broker: num partitions %d must be at least 1", c.NumPartitions)
	}
	if c.DefaultReplicationFactor < 1 {
		return fmt.Errorf("broker: default replication factor %d must be at least 1", c.DefaultReplicationFactor)
	}
	if c.FetchMaxBytes < 1024 {
		return fmt.Errorf("broker: fetch max bytes %d must be at least 1024", c.FetchMaxBytes)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("broker: max request bytes %d must be at least 1024", c.MaxRequestBytes)
	}
	if c.MaxConnections < 1 || c.MaxConnectionsPerIP < 1 {
		return fmt.Errorf("broker: max connections (%d) and max connections per ip (%d) must be at least 1", c.MaxConnections, c.MaxConnectionsPerIP)
	}
	if c.QueuedMaxRequestBytes < int64(c.MaxRequestBytes) {
		return fmt.Errorf("broker: queued max request bytes (%d) must be at least the max request bytes (%d), or a request of the largest size could never be read", c.QueuedMaxRequestBytes, c.MaxRequestBytes)
	}
	if c.QueuedMaxResponseBytes < minQueuedMaxResponseBytes {
		return fmt.Errorf("broker: queued max response bytes (%d) must be at least %d", c.QueuedMaxResponseBytes, minQueuedMaxResponseBytes)
	}
	if c.OffsetsTopicNumPartitions < 1 || c.OffsetsTopicNumPartitions > maxPartitionsPerRequest {
		return fmt.Errorf("broker: offsets topic partitions %d must be between 1 and %d", c.OffsetsTopicNumPartitions, maxPartitionsPerRequest)
	}
	if c.OffsetsTopicSegmentBytes < 1024 {
		return fmt.Errorf("broker: offsets topic segment bytes %d must be at least 1024", c.OffsetsTopicSegmentBytes)
	}
	if c.TransactionStateLogNumPartitions < 1 || c.TransactionStateLogNumPartitions > maxPartitionsPerRequest {
		return fmt.Errorf("broker: transaction state log partitions %d must be between 1 and %d", c.TransactionStateLogNumPartitions, maxPartitionsPerRequest)
	}
	if c.TransactionStateLogReplicationFactor < 1 {
		return fmt.Errorf("broker: transaction state log replication factor %d must be at least 1", c.TransactionStateLogReplicationFactor)
	}
	if c.TransactionStateLogSegmentBytes < 1024 {
		return fmt.Errorf("broker: transaction state log segment bytes %d must be at least 1024", c.TransactionStateLogSegmentBytes)
	}
	if c.TransactionVersion != 1 && c.TransactionVersion != int16(txn.V2) {
		return fmt.Errorf("broker: transaction version %d must be 1 or 2", c.TransactionVersion)
	}
	if c.TransactionMaxTimeout < time.Millisecond || c.TransactionMaxTimeout > math.MaxInt32*time.Millisecond {
		return fmt.Errorf("broker: transaction max timeout %s must be between 1ms and %s", c.TransactionMaxTimeout, math.MaxInt32*time.Millisecond)
	}
	if c.TransactionalIDExpiration < time.Millisecond || c.TransactionAbortTimedOutInterval < time.Millisecond {
		return errors.New("broker: the transactional id expiration and the timed-out transaction check interval must be at least 1ms")
	}
	if c.CleanerBackoff < 0 || c.OffsetsRetention < 0 || c.OffsetsRetentionCheckInterval < 0 {
		return errors.New("broker: log cleaner backoff, offsets retention and its check interval must not be negative")
	}
	if err := c.groupConfig().Validate(); err != nil {
		return fmt.Errorf("broker: group coordinator: %w", err)
	}
	if err := topicconfig.Validate(c.TopicDefaults); err != nil {
		return fmt.Errorf("broker: topic defaults: %w", err)
	}
	return nil
}

// groupConfig is the configuration of every group coordinator shard.
func (c Config) groupConfig() group.Config {
	return group.Config{
		InitialRebalanceDelay: c.GroupInitialRebalanceDelay,
		MinSessionTimeout:     c.GroupMinSessionTimeout,
		MaxSessionTimeout:     c.GroupMaxSessionTimeout,
		MaxSize:               int(c.GroupMaxSize),
	}
}

// splitAdvertise checks an advertised address and splits it. Port 0 is
// allowed only here, for listeners that bind an ephemeral port; the bound
// port is advertised then.
func splitAdvertise(addr string) (string, int32, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", 0, fmt.Errorf("advertised address %q: clients cannot connect to an unspecified host such as 0.0.0.0; advertise a reachable host:port", addr)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: bad port: %w", addr, err)
	}
	return host, int32(port), nil
}

// boundListener is a Listener with its socket.
type boundListener struct {
	Listener
	ln            net.Listener
	advertiseHost string
	advertisePort int32
}

// Server is one Strata broker: the Kafka protocol listener and the
// partitions this node hosts.
type Server struct {
	cfg Config
	log *slog.Logger
	// peerLog is log, rate limited (logLimiter): for lines a remote peer
	// can cause once per attempt (a refused connection, a bad frame).
	peerLog       *slog.Logger
	logLimiter    *ratelog.Limiter
	connLimits    *connectionLimits
	requestMemory *requestMemory
	// beforeConfigsStored, if set (tests only), is called before a topic's
	// or broker's new configs are proposed (alterTopicConfigs,
	// alterBrokerConfigs) with the resource's name.
	beforeConfigsStored func(resource string)
	// beforeElectionProposed, if set (tests only), is called by
	// ElectLeaders after it decided on a partition's new leader and
	// before it proposes the change.
	beforeElectionProposed func(topic string, partition int32)
	// beforeOffsetDelete, if set (tests only), is called with the group's
	// id when an OffsetDelete has checked its partitions and is about to
	// delete the group's offsets.
	beforeOffsetDelete func(groupID string)
	// beforeOffsetCommit, if set (tests only), is called with the group's
	// id when an OffsetCommit has been checked and is about to write its
	// commits.
	beforeOffsetCommit func(groupID string)
	// afterRequestState, if set (tests only), is called with the API key
	// by Fetch and ListOffsets right after they read the metadata state.
	afterRequestState func(key int16)
	// afterLogStarts, if set (tests only), is called with the API key by
	// Fetch once it has planned its partitions (local or remote reads,
	// from their log starts) and by ListOffsets once it has read a
	// partition's log starts, before either reads a log.
	afterLogStarts func(key int16)

	frames      *framePool // the buffers request frames and Fetches' local records are read into
	listeners   []*boundListener
	metrics     *metrics
	saslMetrics *saslMetrics
	partitions  *partitionManager
	producerIDs *producerIDAllocator
	txnVerifier *txnVerifier          // KIP-890 part 1: the produce path's questions to transaction coordinators
	groups      *group.Manager        // group coordinators, one per __consumer_offsets partition led here
	offsets     *internalTopicManager // __consumer_offsets
	txnTopic    *internalTopicManager // __transaction_state
	txns        *txn.Manager          // transaction coordinators, one per __transaction_state partition led here
	peers       *brokerClients        // clients to other brokers for transactions (markers, KIP-890 verification)
	markers     *markerWriter         // the transaction coordinators' WriteTxnMarkers, batched per leader
	membership  *membership           // registration and heartbeats with the controller
	fetchers    *replica.Fetchers     // the follower's side of replication
	isr         *replica.ISR          // the leader's ISR changes
	quotas      *quota.Manager        // client quotas' rates and throttle times

	// Replication throttles (replication_throttle.go): the dynamic broker
	// configs leader/follower.replication.throttled.rate, applied to the
	// catch-up traffic of reassignments' adding replicas.
	leaderThrottle, followerThrottle *replica.Throttle

	// responseMemory bounds the Fetch record bytes held for responses not
	// yet written (queued.max.response.bytes).
	responseMemory *responseMemory

	ctx    context.Context // canceled when the server shuts down
	cancel context.CancelFunc

	mu     sync.Mutex // guards conns and closed
	conns  map[*clientConn]struct{}
	closed bool

	wg sync.WaitGroup // accept loop, connections, background loops
}

// New opens the partitions this node hosts (recovering their logs) and binds
// the client listener. Serve starts accepting.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		ctx:        ctx,
		cancel:     cancel,
		conns:      make(map[*clientConn]struct{}),
		metrics:    newMetrics(cfg.Registerer),
		logLimiter: ratelog.New(ratelog.Config{}),
		connLimits: newConnectionLimits(cfg.MaxConnections, cfg.MaxConnectionsPerIP),
	}
	s.saslMetrics = newSASLMetrics(cfg.Registerer)
	s.peerLog = s.logLimiter.Logger(cfg.Logger)
	quotaConfig := cfg.Quotas
	if quotaConfig.Registerer == nil {
		quotaConfig.Registerer = cfg.Registerer
	}
	quotas, err := quota.New(quotaConfig)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("broker: client quotas: %w", err)
	}
	s.quotas = quotas
	s.requestMemory = newRequestMemory(cfg.QueuedMaxRequestBytes, s.metrics)
	s.frames = newFramePool(int(cfg.MaxRequestBytes), min(cfg.QueuedMaxRequestBytes, maxIdleFrameBytes))
	s.responseMemory = newResponseMemory(cfg.QueuedMaxResponseBytes, s.metrics, s.frames)
	s.producerIDs = &producerIDAllocator{store: cfg.Metadata, nodeID: cfg.NodeID}
	interBroker := cfg.interBrokerClientOpts()
	s.peers = newBrokerClients(cfg.NodeID, interBroker)
	s.txnVerifier = newTxnVerifier(s.peers, cfg.InterBrokerListener)
	s.membership = newMembership(s)
	if err := os.MkdirAll(cfg.DataDir, fsperm.Dir); err != nil {
		cancel()
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	clean, err := takeCleanShutdownMarker(cfg.DataDir)
	if err != nil {
		cancel()
		return nil, err
	}
	s.membership.cleanShutdown = clean
	s.leaderThrottle, s.followerThrottle = replica.NewThrottle(nil), replica.NewThrottle(nil)
	s.fetchers = replica.NewFetchers(replica.FetchersConfig{
		NodeID:              cfg.NodeID,
		BrokerEpoch:         s.membership.epoch.Load,
		InterBrokerListener: cfg.InterBrokerListener,
		ClientOpts:          interBroker,
		Store:               cfg.Metadata,
		Remote:              cfg.RemoteReader,
		Logger:              s.log.With("subsystem", "replication"),
		LogLimiter:          s.logLimiter,
		Throttle:            s.followerThrottle,
	})
	s.isr = replica.NewISR(replica.ISRConfig{
		Store:             cfg.Metadata,
		Partitions:        func() []*partition.Partition { return s.partitions.all() },
		ReplicaLagTimeMax: cfg.ReplicaLagTimeMax,
		Changed:           s.metrics.isrChanges.Inc,
		Logger:            s.log.With("subsystem", "replication"),
	})
	s.offsets = &internalTopicManager{s: s, log: s.log.With("subsystem", "groups"), spec: internalTopicSpec{
		name: offsetsTopic, partitions: cfg.OffsetsTopicNumPartitions, replicationFactor: cfg.OffsetsTopicReplicationFactor,
		segmentBytes: cfg.OffsetsTopicSegmentBytes, replicationFlag: "--offsets-topic-replication-factor", users: "groups",
	}}
	s.txnTopic = &internalTopicManager{s: s, log: s.log.With("subsystem", "transactions"), spec: internalTopicSpec{
		name: txn.TopicName, partitions: cfg.TransactionStateLogNumPartitions, replicationFactor: cfg.TransactionStateLogReplicationFactor,
		segmentBytes: cfg.TransactionStateLogSegmentBytes, minInsyncReplicas: 2,
		replicationFlag: "--transaction-state-log-replication-factor", users: "transactional producers",
	}}
	s.markers = &markerWriter{
		resolve: resolveLeader(cfg.Metadata, cfg.InterBrokerListener),
		send:    s.peers.send,
		ctx:     ctx,
		log:     s.log.With("subsystem", "transactions"),
	}
	txns, err := txn.NewManager(txn.ManagerConfig{
		Topic:       s.txnTopic,
		ProducerIDs: s.producerIDs.next,
		Markers:     s.markers,
		Config: txn.Config{
			MaxTimeout:            cfg.TransactionMaxTimeout,
			IDExpiration:          cfg.TransactionalIDExpiration,
			AbortTimedOutInterval: cfg.TransactionAbortTimedOutInterval,
		},
		Events:      txnEvents{s.metrics},
		ExpiryPause: cfg.OffsetsExpiryPause,
		Logger:      s.log.With("subsystem", "transactions"),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("broker: %w", err)
	}
	s.txns = txns
	s.groups = group.NewManager(group.ManagerConfig{
		Topic:                  s.offsets,
		Coordinator:            cfg.groupConfig(),
		OffsetsRetention:       cfg.OffsetsRetention,
		RetentionCheckInterval: cfg.OffsetsRetentionCheckInterval,
		ExpiryPause:            cfg.OffsetsExpiryPause,
		Logger:                 s.log.With("subsystem", "groups"),
	})
	follow := &groupsFollow{s: s, logs: map[*partition.Partition]*offsetsLog{}}
	txnFollow := &txnsFollow{s: s, logs: map[*partition.Partition]*offsetsLog{}}
	pm, err := newPartitionManager(partitionManagerConfig{
		dataDir:              filepath.Clean(cfg.DataDir),
		nodeID:               cfg.NodeID,
		store:                cfg.Metadata,
		defaults:             cfg.TopicDefaults,
		producerIDExpiration: cfg.ProducerIDExpiration,
		retentionInterval:    cfg.RetentionCheckInterval,
		cleanerBackoff:       cfg.CleanerBackoff,
		metrics:              s.metrics,
		log:                  cfg.Logger,
		syncs:                partition.NewSyncPool(partition.DefaultSyncConcurrency),
		syncFault:            cfg.SegmentSyncFault,
		writeFault:           cfg.SegmentWriteFault,
		onLeadership: func(p *partition.Partition) {
			follow.leadership(p)
			txnFollow.leadership(p)
		},
		onClose: func(p *partition.Partition) {
			follow.closing(p)
			txnFollow.closing(p)
		},
		onReconciled: func(state *metadata.State, parts []*partition.Partition) {
			s.applyReplicationThrottles(state)
			s.fetchers.Update(state, parts)
		},
		onTopicsDeleted: func(names []string) { s.groups.TopicsDeleted(names...) },
		active:          s.membership.active,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	s.partitions = pm
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Name: "under_replicated_partitions",
			Help: "Partitions this broker leads whose ISR is smaller than their replica set (Kafka's UnderReplicatedPartitions).",
		}, func() float64 {
			n := 0
			for _, p := range pm.all() {
				if p.UnderReplicated() {
					n++
				}
			}
			return float64(n)
		}))
		cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "strata", Name: "transaction_markers_pending",
			Help: "Transactions whose outcome is decided and whose markers the coordinators led here are still writing to partition leaders.",
		}, func() float64 { return float64(s.txns.PendingMarkers()) }))
		s.registerReassignmentMetrics(cfg.Registerer) // replication_throttle.go
		cfg.Registerer.MustRegister(logSizeCollector{server: s})
	}
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			cancel()
			for _, b := range s.listeners {
				b.ln.Close()
			}
			pm.close()
			return nil, fmt.Errorf("broker: listener %s: listen on %s: %w", l.Name, l.Address, err)
		}
		if l.SecurityProtocol.TLS() {
			// The handshake runs on the connection's goroutine
			// (clientConn.serve), never in the accept loop.
			ln = tls.NewListener(ln, cfg.TLS.ServerConfig())
		}
		host, port, _ := splitAdvertise(l.Advertise)
		if port == 0 {
			port = int32(ln.Addr().(*net.TCPAddr).Port)
		}
		s.listeners = append(s.listeners, &boundListener{Listener: l, ln: ln, advertiseHost: host, advertisePort: port})
	}
	return s, nil
}

// Addr is the bound address of the named listener (useful with port 0), or
// nil when there is no such listener.
func (s *Server) Addr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.Name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// Serve accepts client connections on every listener until Close. It
// returns nil after Close.
func (s *Server) Serve() error {
	files := s.admissionCheck()
	s.log.Info("client connection bounds", "max_connections", s.cfg.MaxConnections, "max_connections_per_ip", s.cfg.MaxConnectionsPerIP,
		"queued_max_request_bytes", s.cfg.QueuedMaxRequestBytes, "queued_max_response_bytes", s.cfg.QueuedMaxResponseBytes, "file_descriptor_limit", files.limit, "room_for_new_partitions", files.partitions())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.partitions.run(s.ctx)
	}()
	fatal := make(chan error, 1)
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.isr.Run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.membership.run(s.ctx); err != nil {
			fatal <- err
			s.Close()
		}
	}()
	go func() {
		defer s.wg.Done()
		s.partitions.runCleaner(s.ctx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.membership.reportApplied(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.groups.Run(s.ctx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.txns.Run(s.ctx)
	}()
	errs := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errs <- s.accept(l) }()
	}
	var first error
	for range s.listeners {
		if err := <-errs; err != nil && first == nil {
			first = err
			s.Close()
		}
	}
	select {
	case err := <-fatal:
		return err
	default:
	}
	return first
}

func (s *Server) accept(l *boundListener) error {
	// The inter-broker listener, when it is not also a client listener, is
	// not counted against max.connections (KIP-402): clients filling the
	// broker must not cut replication off.
	counted := len(s.listeners) == 1 || l.Name != s.cfg.InterBrokerListener
	var backoff time.Duration
	for {
		if counted {
			err := s.connLimits.waitForSlot(s.ctx, func() {
				s.metrics.acceptPauses.Inc()
				s.peerLog.Warn("max.connections reached: stopped accepting until a connection closes", "listener", l.Name, "max_connections", s.cfg.MaxConnections)
			})
			if err != nil {
				return nil // shutting down
			}
		}
		release := func() {
			if counted {
				s.connLimits.releaseSlot()
			}
		}
		nc, err := l.ln.Accept()
		if err != nil {
			release()
			if s.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("broker: listener %s closed: %w", l.Name, err)
			}
			// Out of file descriptors, aborted handshakes and the like pass:
			// back off and keep serving the connections already open.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second || backoff == 5*time.Millisecond {
				s.peerLog.Warn("accepting a connection failed; retrying", "listener", l.Name, "err", err, "backoff", backoff)
			}
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		addr := remoteAddr(nc)
		if !s.connLimits.admit(addr) {
			release()
			nc.Close()
			s.metrics.connectionsRefused.WithLabelValues(l.Name, "max_connections_per_ip").Inc()
			s.peerLog.Warn("refused a client connection: its address has max.connections.per.ip connections open",
				"listener", l.Name, "remote", nc.RemoteAddr().String(), "max_connections_per_ip", s.cfg.MaxConnectionsPerIP)
			continue
		}
		c := newClientConn(s, l, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			s.connLimits.leave(addr)
			release()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.metrics.connections.Inc()
		go func() {
			defer s.wg.Done()
			defer release()
			defer s.connLimits.leave(addr)
			defer s.metrics.connections.Dec()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Ready reports whether the broker serves what the cluster assigned it: it
// is registered and unfenced and leads every partition waiting for it.
func (s *Server) Ready() bool { return s.membership.ready() }

// Close moves this broker's leaderships away (controlled shutdown), stops
// accepting, lets every connection finish the request it is handling and
// send its responses, then flushes and closes the partitions.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	s.membership.controlledShutdown(s.cfg.ControlledShutdownTimeout)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range s.listeners {
		l.ln.Close()
	}
	for _, c := range conns {
		c.stopReading()
	}
	// Connections finish the request in hand and send what is queued; a
	// client that stops reading its responses cannot hold the shutdown up
	// past the grace period.
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.log.Warn("connections still busy after the shutdown grace period; closing them", "grace", shutdownGrace)
		for _, c := range conns {
			c.nc.Close()
		}
		<-done
	}
	s.fetchers.Close()
	s.groups.Close()
	s.txns.Close()
	s.markers.wait()
	s.peers.close()
	defer s.logLimiter.Close()
	if err := s.partitions.close(); err != nil {
		return err // not a clean shutdown: no marker
	}
	return writeCleanShutdownMarker(s.cfg.DataDir)
}

// shutdownGrace bounds how long Close waits for connections to drain.
const shutdownGrace = 5 * time.Second
