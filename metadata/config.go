package metadata

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Defaults applied to zero Config fields.
const (
	DefaultControllerListen   = "127.0.0.1:9093"
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240
	// DefaultBrokerSessionTimeout is Kafka's broker.session.timeout.ms.
	DefaultBrokerSessionTimeout = 9 * time.Second
	// DefaultHandshakeTimeout bounds the controller handshake on a new
	// connection, in both directions.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultApplyEnqueueTimeout bounds how long a proposal may wait to be
	// accepted by Raft when the caller's context has no deadline.
	DefaultApplyEnqueueTimeout = 10 * time.Second
)

// Config configures a Store. The zero value of every field except NodeID and
// DataDir means "use the default".
type Config struct {
	// NodeID is this node's id; it must match meta.properties. Raft server
	// ids are its decimal form.
	NodeID int32
	// DataDir is the node's data directory, prepared by Format. The metadata
	// package owns <DataDir>/meta.properties and <DataDir>/metadata/.
	DataDir string
	// ControllerListen is the host:port the Raft transport listens on.
	// Default DefaultControllerListen.
	ControllerListen string
	// ControllerAdvertise is the host:port other controllers dial to reach
	// this node; hostnames are allowed, unspecified addresses (0.0.0.0, ::)
	// are not. Default ControllerListen, or the address actually bound when
	// ControllerListen has port 0 or an unspecified host.
	ControllerAdvertise string
	// Voters are the quorum's voters (node id → controller address), as
	// given to Format. A node that is not among them and has no Raft state
	// yet (formatted as a non-voter) asks them to add it as a non-voter: it
	// follows the metadata log without counting for the quorum.
	Voters map[int32]string
	// ClusterSecret is what this node and every controller peer prove to
	// each other in the handshake of each connection (ReadClusterSecretFile,
	// GenerateClusterSecretFile). Required.
	ClusterSecret ClusterSecret
	// TLS, when set, puts every controller connection under mutual TLS
	// with node certificates, on top of the cluster secret
	// (stream_tls.go). Every node of a cluster must agree: a node with TLS
	// and one without cannot connect.
	TLS *ControllerTLS
	// Logger receives Store and Raft logs. Default slog.Default().
	Logger *slog.Logger

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft
	// (see hashicorp/raft's Config). Defaults suit a single node or a LAN;
	// tests shorten them.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one; SnapshotInterval is how often that is checked.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many log entries a snapshot leaves in the log,
	// so that a slightly lagging follower catches up without a snapshot.
	// Default DefaultTrailingLogs.
	TrailingLogs uint64
	// HandshakeTimeout bounds the controller connection handshake.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// BrokerSessionTimeout is Kafka's broker.session.timeout.ms: the
	// controller fences a broker it has not heard from for this long and
	// moves its leaderships. Default DefaultBrokerSessionTimeout.
	BrokerSessionTimeout time.Duration

	// UncleanLeaderElection is the broker default of Kafka's
	// unclean.leader.election.enable; a topic's own config of that name
	// ("true"/"false") wins.
	UncleanLeaderElection bool

	// withoutController keeps the leader from running the controller
	// (tests of the state machine's commands, which it would race).
	withoutController bool
	// preferredLeaderInterval overrides how often preferred leaders are
	// restored (tests; negative: every controller pass).
	preferredLeaderInterval time.Duration
	// raftStarting, when set, runs in Open after the controller listener
	// is up and before Raft starts (tests of that window).
	raftStarting func(*Store)
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.ControllerListen == "" {
		c.ControllerListen = DefaultControllerListen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = min(DefaultLeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.BrokerSessionTimeout == 0 {
		c.BrokerSessionTimeout = DefaultBrokerSessionTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// Validate reports the first problem with c, after defaults are applied.
func (c Config) Validate() error {
	if c.NodeID < 0 {
		return fmt.Errorf("metadata: config: node id %d is negative", c.NodeID)
	}
	if c.DataDir == "" {
		return errors.New("metadata: config: data dir is empty")
	}
	if c.ClusterSecret.IsZero() {
		return fmt.Errorf("metadata: config: %w: every controller connection is authenticated with it", ErrNoClusterSecret)
	}
	if c.TLS != nil {
		if err := c.TLS.validate(); err != nil {
			return err
		}
	}
	c = c.withDefaults()
	if err := validateListenAddress(c.ControllerListen); err != nil {
		return fmt.Errorf("metadata: config: controller listen: %w", err)
	}
	if c.ControllerAdvertise != "" {
		if err := validateAdvertiseAddress(c.ControllerAdvertise); err != nil {
			return fmt.Errorf("metadata: config: controller advertise: %w", err)
		}
	}
	for _, timeout := range []struct {
		name  string
		value time.Duration
	}{
		{"heartbeat timeout", c.HeartbeatTimeout},
		{"election timeout", c.ElectionTimeout},
		{"leader lease timeout", c.LeaderLeaseTimeout},
		{"snapshot interval", c.SnapshotInterval},
		{"handshake timeout", c.HandshakeTimeout},
	} {
		if timeout.value < 5*time.Millisecond {
			return fmt.Errorf("metadata: config: %s %v is below 5ms", timeout.name, timeout.value)
		}
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		return fmt.Errorf("metadata: config: election timeout %v is below heartbeat timeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("metadata: config: leader lease timeout %v is above heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// validateListenAddress accepts host:port with a numeric port; the host may
// be empty or unspecified (listen on all interfaces).
func validateListenAddress(address string) error {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%q: %w", address, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port is not a number in 0..65535", address)
	}
	return nil
}

// validateAdvertiseAddress accepts host:port where host is a hostname or an
// IP address that a peer can dial: not empty, not unspecified, and the port
// not zero.
func validateAdvertiseAddress(address string) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%q: %w", address, err)
	}
	if host == "" {
		return fmt.Errorf("%q: host is empty", address)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: an unspecified address cannot be dialed by peers", address)
	}
	portNumber, err := strconv.ParseUint(port, 10, 16)
	if err != nil || portNumber == 0 {
		return fmt.Errorf("%q: port is not a number in 1..65535", address)
	}
	return nil
}
