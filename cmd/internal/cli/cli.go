// Package cli is the strata command line: subcommands, flags, the optional
// config file and STRATA_* environment overrides.
package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/cmd/internal/node"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

const usage = `strata — a Kafka-compatible, tiered-storage log service

Usage:
  strata [serve] [flags]      run a broker (plain "strata" runs one with embedded defaults)
  strata format [flags]       prepare a data dir (cluster id, node id, initial voters)
  strata healthcheck [flags]  exit 0 when the node at --admin is ready
  strata topics <command>     list, describe, create, delete topics, alter their configs
  strata partitions list      leaders, ISRs, epochs, local/remote/log-start offsets, high watermarks
  strata partitions reassign  move replicas with a kafka-reassign-partitions JSON plan (--execute/--verify/--cancel, --throttle)
  strata partitions elect     preferred or unclean leader election (Kafka's kafka-leader-election)
  strata partitions delete-records  delete records below an offset (Kafka DeleteRecords)
  strata groups <command>     list, describe consumer groups, their lag; reset their offsets
  strata transactions <command>  list, describe transactions; abort a hanging one
  strata users <command>         SCRAM users: list, set-password, delete (KIP-554)
  strata acls <command>       list, create, delete Kafka ACLs
  strata quotas <command>     list, set, delete client quotas (byte rates per user/client id)
  strata cluster <command>    cluster status, add or remove metadata voters, recover a lost quorum
  strata tiering <command>    scrub the object store, recover topics from it
  strata bucket create        create the object-store bucket (e.g. in docker compose)
  strata version              print the version

Run "strata <command> --help" for the flags of a command.
`

// Run executes the command line and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(args, stdout, stderr)
	case "format":
		err = runFormat(args, stdout, stderr)
	case "healthcheck":
		err = runHealthcheck(args, stdout, stderr)
	case "cluster":
		err = runCluster(args, stdout, stderr)
	case "tiering":
		err = runTiering(args, stdout, stderr)
	case "bucket":
		err = runBucket(args, stdout, stderr)
	case "topics":
		err = runTopics(args, stdout, stderr)
	case "partitions":
		err = runPartitions(args, stdout, stderr)
	case "groups":
		err = runGroups(args, stdout, stderr)
	case "transactions":
		err = runTransactions(args, stdout, stderr)
	case "users":
		err = runUsers(args, stdout, stderr)
	case "acls":
		err = runACLs(args, stdout, stderr)
	case "quotas":
		err = runQuotas(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "strata", Version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	var unappliable *metadata.UnappliableEntryError
	if errors.As(err, &unappliable) {
		fmt.Fprintf(stderr, "strata %s: %v\n\nThis node stopped rather than diverge from the others. Upgrade it to the build the\nother nodes run; or wipe its data dir and start it again, so that it rejoins from\nthe quorum (a voter: with the same --node-id, --controller-quorum and secret).\n", cmd, err)
		return ExitUnappliableEntry
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "strata %s: %v\n", cmd, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "strata %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// ExitUnappliableEntry is the exit code of a node that stopped at a
// committed metadata log entry it cannot apply (an older build than the
// cluster's, or corruption): restarting it does not help.
const ExitUnappliableEntry = 3

// parseFlags parses a command's flags, which take no positional
// arguments: --help is pflag.ErrHelp, anything else wrong a usageError.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// usageError is a bad flag or setting: exit code 2.
type usageError struct{ error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// serveFlags holds the values of strata serve's flags.
type serveFlags struct {
	nodeID              int32
	clusterID           string
	listen              string
	listeners           string
	advertise           string
	interBrokerListener string
	protocolMap         string
	sslCertFile         string
	sslKeyFile          string
	sslCAFile           string
	sslClientAuth       string
	saslMechanisms      string
	saslPlainUsersFile  string
	interBroker         interBrokerFlags // interbroker.go
	auth                authFlags        // OAUTHBEARER and re-authentication (sasl_oauth.go)
	dataDir             string
	controllerListen    string
	controllerAdvertise string
	controllerQuorum    string
	clusterSecretFile   string
	adminListen         string
	adminTokenFile      string
	adminPprof          bool
	// ports: the controller and admin ports' TLS (ports.go).
	ports               portsFlags
	configFile          string
	numPartitions       int32
	replicationFactor   int16
	autoCreateTopics    bool
	maxRequestBytes     int32
	fetchMaxBytes       int32
	idleMillis          int64
	maxConnections      int
	maxConnectionsPerIP int
	queuedMaxBytes      int64
	queuedMaxResponse   int64
	producerExpiryMs    int64
	retentionCheckMs    int64
	offsetsPartitions   int32
	offsetsSegmentBytes int32
	offsetsReplication  int16
	// The transaction coordinators' settings (Kafka's names).
	txnLogPartitions    int32
	txnLogReplication   int16
	txnMaxTimeoutMs     int64
	txnIDExpirationMs   int64
	txnAbortIntervalMs  int64
	txnVersion          int
	offsetsRetentionMin int64
	offsetsCheckMs      int64
	cleanerBackoffMs    int64
	heartbeatMs         int64
	processRoles        string
	replicaLagMs        int64
	// ACL authorization (Kafka's authorizer.class.name, super.users,
	// allow.everyone.if.no.acl.found).
	authorizer           string
	superUsers           string
	allowEveryoneIfNoACL bool
	quorumTimeoutMs      int64
	sessionTimeoutMs     int64
	rack                 string
	groupInitialDelayMs  int64
	groupMinSessionMs    int64
	groupMaxSessionMs    int64
	groupMaxSize         int32
	objectStore          string
	objectStorePrefix    string
	objectStoreShared    bool
	remoteCacheBytes     int64
	remoteMemoryBytes    int64
	remoteCacheDirectIO  bool
	remoteReaderThreads  int // remote.log.reader.threads
	remoteReaderPending  int // remote.log.reader.max.pending.tasks
	tieringIntervalMs    int64
	remoteCopyMaxBytes   int64 // remote.log.manager.copy.max.bytes.per.second (KIP-956)
	remoteFetchMaxBytes  int64 // remote.log.manager.fetch.max.bytes.per.second (KIP-956)
	localDiskLimit       int64
	logLevel             string
	logFormat            string
	topicDefaults        map[string]*string // broker name → flag value
	// Client quotas (quotas.go).
	quotas *quotaFlags
}

// topicDefaultFlag is the serve flag of a topic config's broker synonym:
// log.retention.ms → --log-retention-ms.
func topicDefaultFlag(def topicconfig.Definition) string {
	return strings.ReplaceAll(def.BrokerName, ".", "-")
}

// staticConfigFlags are the serve flags that set the broker configs
// DescribeConfigs shows (besides the topic defaults), by Kafka name: one
// the operator set (broker.Config.StaticConfigs) is STATIC_BROKER_CONFIG,
// one left at its default DEFAULT_CONFIG.
var staticConfigFlags = map[string][]string{
	"node.id":                      {"node-id"},
	"broker.id":                    {"node-id"},
	"log.dirs":                     {"data-dir"},
	"listeners":                    {"listen", "listeners"},
	"advertised.listeners":         {"advertise"},
	"num.partitions":               {"num-partitions"},
	"default.replication.factor":   {"default-replication-factor"},
	"auto.create.topics.enable":    {"auto-create-topics"},
	"socket.request.max.bytes":     {"socket-request-max-bytes"},
	"connections.max.idle.ms":      {"connections-max-idle-ms"},
	"producer.id.expiration.ms":    {"producer-id-expiration-ms"},
	"group.min.session.timeout.ms": {"group-min-session-timeout-ms"},
	"group.max.session.timeout.ms": {"group-max-session-timeout-ms"},
	"group.max.size":               {"group-max-size"},
}

// staticConfigs names the broker configs of staticConfigFlags the operator
// set: on the command line, by environment variable or in the config file
// (applyOverrides sets those flags, so pflag counts them as changed).
func staticConfigs(fs *pflag.FlagSet) []string {
	var out []string
	for name, flags := range staticConfigFlags {
		if slices.ContainsFunc(flags, fs.Changed) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func newServeFlagSet(stderr io.Writer) (*pflag.FlagSet, *serveFlags) {
	f := &serveFlags{topicDefaults: map[string]*string{}}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Int32Var(&f.nodeID, "node-id", 1, "this node's id (Kafka's node.id)")
	fs.StringVar(&f.clusterID, "cluster-id", "", "cluster id; used when an empty data dir is formatted (default: generated, then stored in the data dir)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9092", "client listener HOST:PORT (shorthand for --listeners CLIENT=HOST:PORT)")
	fs.StringVar(&f.listeners, "listeners", "", "named listeners NAME=HOST:PORT,... e.g. CLIENT=0.0.0.0:9092,INTERNAL=0.0.0.0:9094 (overrides --listen)")
	fs.StringVar(&f.advertise, "advertise", "", "addresses clients are told, [NAME=]HOST:PORT,... per listener (default: the listen address; 0.0.0.0 is refused)")
	fs.StringVar(&f.interBrokerListener, "inter-broker-listener", "CLIENT", "listener brokers use to replicate")
	fs.StringVar(&f.protocolMap, "listener-security-protocol-map", "", "listener.security.protocol.map: NAME:PROTOCOL,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL per named listener (default every listener PLAINTEXT); a SASL inter-broker listener needs --sasl-inter-broker-credentials-file; CONTROLLER:SSL puts the controller port under mutual TLS with node certificates (URI SAN urn:strata:node:<id>)")
	fs.StringVar(&f.saslMechanisms, "sasl-enabled-mechanisms", "PLAIN", "sasl.enabled.mechanisms of SASL listeners, comma-separated: PLAIN (users from --sasl-plain-users-file), SCRAM-SHA-256, SCRAM-SHA-512 (users in the metadata quorum, managed with AlterUserScramCredentials), OAUTHBEARER (JWTs checked against --sasl-oauthbearer-jwks-file)")
	fs.StringVar(&f.saslPlainUsersFile, "sasl-plain-users-file", "", "SASL/PLAIN users: one username:password per line (# comments); keep it 0600. Re-read when it changes; passwords are never logged")
	addAuthFlags(fs, &f.auth)
	fs.StringVar(&f.sslCertFile, "ssl-cert-file", "", "PEM certificate (chain) of this node, served by SSL listeners and presented by its inter-broker clients; re-read when the file changes")
	fs.StringVar(&f.sslKeyFile, "ssl-key-file", "", "PEM private key of --ssl-cert-file; re-read when the file changes")
	fs.StringVar(&f.sslCAFile, "ssl-ca-file", "", "PEM certificate authorities client certificates and other brokers' certificates must chain to (default the system's roots); re-read when the file changes")
	fs.StringVar(&f.sslClientAuth, "ssl-client-auth", "none", "ssl.client.auth of SSL listeners: none, requested (verified when given) or required (mutual TLS; the principal is User:<the certificate's subject DN>, mapped by --ssl-principal-mapping-rules)")
	f.interBroker.register(fs)
	fs.StringVar(&f.dataDir, "data-dir", "./data", "directory for partition logs and metadata")
	fs.StringVar(&f.controllerListen, "controller-listen", "127.0.0.1:9093", "Raft/controller listener HOST:PORT")
	fs.StringVar(&f.controllerAdvertise, "controller-advertise", "", "Raft address other voters use (default: --controller-listen; hostnames allowed)")
	fs.StringVar(&f.controllerQuorum, "controller-quorum", "", "initial voters id@host:port,... (default: this node alone)")
	fs.StringVar(&f.clusterSecretFile, "cluster-secret-file", "", "file with the secret controller peers prove to each other (strata format --generate-cluster-secret FILE; required when --controller-quorum names other voters; default: <data-dir>/cluster.secret, generated by the only voter of a one-node cluster)")
	fs.StringVar(&f.adminListen, "admin-listen", "127.0.0.1:9080", "admin listener: status page, metrics (/metrics), health (/healthz, /readyz), the strata cluster/tiering routes; - disables it")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the bearer token the admin listener's operator routes (POST/DELETE) and pprof require, one per line (two while rotating); without it they are open on a loopback --admin-listen and refused on any other")
	addPortsFlags(fs, &f.ports)
	fs.BoolVar(&f.adminPprof, "admin-pprof", false, "serve Go's pprof under /debug/pprof on the admin listener (needs the admin token like the operator routes; ?seconds= at most 60)")
	fs.StringVar(&f.configFile, "config", "", "optional config file of flag-name=value lines; flags and STRATA_<FLAG_NAME> env vars override it")
	fs.StringVar(&f.objectStore, "object-store", "", "object store for tiered topics: s3://bucket?endpoint=...&region=...&use_path_style=true (credentials from the AWS chain: best AWS_SHARED_CREDENTIALS_FILE=FILE, a file only this user can read, rather than keys in the environment), file:///dir or mem:// (default file://<data-dir>/bucket)")
	fs.BoolVar(&f.objectStoreShared, "object-store-shared", false, "the file:// --object-store is a directory every node of the cluster mounts (a network file system): tiered topics are then allowed in a multi-node cluster, which otherwise refuses them on a node-local store")
	fs.StringVar(&f.objectStorePrefix, "object-store-prefix", "", "key prefix in the object store, e.g. a cluster name when clusters share a bucket (no leading or trailing /)")
	fs.Int64Var(&f.remoteCacheBytes, "remote-log-cache-bytes", 256<<20, "disk space for cached chunks of remote segments (<data-dir>/remote-cache)")
	fs.Int64Var(&f.remoteMemoryBytes, "remote-log-memory-cache-bytes", tiering.DefaultMemoryCacheBytes, "memory for chunks of remote segments read recently or fetched ahead of sequential readers (in front of the disk cache); also the most bytes being read ahead at once. Raise it when many partitions replay at once and strata_tiering_cache_disk_reads_ahead_total grows during a cold replay (chunks read ahead were pushed out before their reader got to them)")
	fs.BoolVar(&f.remoteCacheDirectIO, "remote-log-cache-direct-io", false, "write and read the chunk cache's files with O_DIRECT, bypassing the page cache, where the file system allows it (not tmpfs; metric strata_tiering_cache_direct_io): less kernel CPU per cached MiB and no page cache taken from the hot tier, but every cache hit is a device read; default: through the page cache")
	fs.Int64Var(&f.tieringIntervalMs, "remote-log-manager-task-interval-ms", 30000, "how often sealed segments are uploaded and remote retention applied (remote.log.manager.task.interval.ms)")
	fs.IntVar(&f.remoteReaderThreads, "remote-log-reader-threads", 10, "remote.log.reader.threads: reads from the object store served at once (also the read-ahead GETs in flight)")
	fs.IntVar(&f.remoteReaderPending, "remote-log-reader-max-pending-tasks", 100, "remote.log.reader.max.pending.tasks: reads from the object store waiting for a reader thread; past it a partition is answered without data (the consumer asks again)")
	fs.Int64Var(&f.remoteCopyMaxBytes, "remote-log-manager-copy-max-bytes-per-second", math.MaxInt64, "remote.log.manager.copy.max.bytes.per.second (KIP-956): bytes uploaded to the object store per second by this broker; past it uploads wait (default Long.MAX_VALUE: unlimited)")
	fs.Int64Var(&f.remoteFetchMaxBytes, "remote-log-manager-fetch-max-bytes-per-second", math.MaxInt64, "remote.log.manager.fetch.max.bytes.per.second (KIP-956): bytes consumers read from the object store per second on this broker; past it remote reads wait for room within the Fetch's max wait, else the partitions are answered without data and the consumer asks again (default Long.MAX_VALUE: unlimited)")
	fs.Int64Var(&f.localDiskLimit, "local-disk-limit-bytes", 0, "bound on all local partition logs together: producers are throttled past 90% and refused (retriable KAFKA_STORAGE_ERROR) at the limit, e.g. while the object store is unreachable; 0 = none")
	fs.Int32Var(&f.numPartitions, "num-partitions", 1, "partitions of auto-created topics and of CreateTopics without a count (num.partitions)")
	fs.Int16Var(&f.replicationFactor, "default-replication-factor", 1, "replication factor of topics created without one")
	fs.BoolVar(&f.autoCreateTopics, "auto-create-topics", true, "create unknown topics on Metadata requests (auto.create.topics.enable)")
	fs.Int32Var(&f.maxRequestBytes, "socket-request-max-bytes", 100<<20, "largest request frame; a larger one closes the connection")
	fs.Int32Var(&f.fetchMaxBytes, "fetch-max-bytes", 55<<20, "most bytes one Fetch response carries, whatever the client asks (the first batch is always whole)")
	fs.Int64Var(&f.idleMillis, "connections-max-idle-ms", 600000, "close client connections idle this long")
	fs.IntVar(&f.maxConnections, "max-connections", 0, "max.connections: with this many client connections open the broker stops accepting until one closes (new ones wait in the kernel backlog); the inter-broker listener, when it is a listener of its own, is not counted (default 10000, or a quarter of the file-descriptor limit when lower)")
	fs.IntVar(&f.maxConnectionsPerIP, "max-connections-per-ip", 1000, "max.connections.per.ip: a connection from an address with this many open is closed at once")
	fs.Int64Var(&f.queuedMaxBytes, "queued-max-request-bytes", 512<<20, "queued.max.request.bytes: while request bytes read and not yet handled would pass this, connections stop reading (backpressure); at least --socket-request-max-bytes")
	fs.Int64Var(&f.queuedMaxResponse, "queued-max-response-bytes", 512<<20, "queued.max.response.bytes (Strata's): Fetch record bytes read into memory for responses not yet written, over every connection; a Fetch without room waits within its max wait, then answers without records; a quarter is kept for followers; at least 1048576")
	fs.Int64Var(&f.producerExpiryMs, "producer-id-expiration-ms", 86400000, "forget idempotent producers idle this long")
	fs.Int64Var(&f.retentionCheckMs, "log-retention-check-interval-ms", 300000, "how often retention runs")
	fs.StringVar(&f.processRoles, "process-roles", "broker,controller", "what this node runs (Kafka's process.roles): broker,controller; broker (a node outside --controller-quorum, following the metadata log as a non-voter); or controller (a voter without a Kafka listener)")
	fs.Int64Var(&f.quorumTimeoutMs, "controller-quorum-timeout-ms", 60000, "how long start-up waits for the metadata quorum to elect a leader before giving up")
	fs.Int64Var(&f.replicaLagMs, "replica-lag-time-max-ms", 30000, "a follower that has not caught up with its leader for this long leaves the ISR (replica.lag.time.max.ms)")
	fs.StringVar(&f.rack, "broker-rack", "", "this broker's rack (broker.rack); replicas of a partition are spread over racks")
	fs.Int64Var(&f.heartbeatMs, "broker-heartbeat-interval-ms", 2000, "how often this broker heartbeats to the controller (broker.heartbeat.interval.ms)")
	fs.Int64Var(&f.sessionTimeoutMs, "broker-session-timeout-ms", 9000, "the controller fences a broker silent this long and moves its leaderships (broker.session.timeout.ms)")
	fs.Int64Var(&f.cleanerBackoffMs, "log-cleaner-backoff-ms", 15000, "pause between log cleaner passes over compacted topics (log.cleaner.backoff.ms)")
	fs.Int32Var(&f.offsetsPartitions, "offsets-topic-num-partitions", 50, "partitions of __consumer_offsets when it is created (offsets.topic.num.partitions)")
	fs.Int16Var(&f.offsetsReplication, "offsets-topic-replication-factor", 3, "replicas of each __consumer_offsets partition (offsets.topic.replication.factor); the topic is never created with fewer: groups get COORDINATOR_NOT_AVAILABLE until this many brokers are up. A one-node cluster (one voter, no other broker registered) uses 1")
	fs.Int32Var(&f.txnLogPartitions, "transaction-state-log-num-partitions", 50, "partitions of __transaction_state when it is created (transaction.state.log.num.partitions)")
	fs.Int16Var(&f.txnLogReplication, "transaction-state-log-replication-factor", 3, "replicas of each __transaction_state partition (transaction.state.log.replication.factor); the topic is never created with fewer: transactional producers get COORDINATOR_NOT_AVAILABLE until this many brokers are up. A one-node cluster (one voter, no other broker registered) uses 1")
	fs.Int64Var(&f.txnMaxTimeoutMs, "transaction-max-timeout-ms", 900000, "the longest transaction timeout a producer may ask for; longer gets INVALID_TRANSACTION_TIMEOUT (transaction.max.timeout.ms)")
	fs.Int64Var(&f.txnIDExpirationMs, "transactional-id-expiration-ms", 604800000, "a transactional id with no open transaction, unused this long, is removed (transactional.id.expiration.ms)")
	fs.IntVar(&f.txnVersion, "transaction-version", 2, "the transaction.version feature level advertised to clients (1 or 2): 2 lets clients that support it use Transactions V2 (KIP-890 part 2: an epoch bump per transaction, partitions added by Produce), 1 keeps them on Transactions V1; every broker of a cluster is to use the same level")
	fs.Int64Var(&f.txnAbortIntervalMs, "transaction-abort-timed-out-transaction-cleanup-interval-ms", 10000, "how often transactions past their timeout are aborted (transaction.abort.timed.out.transaction.cleanup.interval.ms)")
	fs.Int32Var(&f.offsetsSegmentBytes, "offsets-topic-segment-bytes", 100<<20, "segment size of the compacted __consumer_offsets topic when it is created (offsets.topic.segment.bytes)")
	fs.Int64Var(&f.offsetsRetentionMin, "offsets-retention-minutes", 10080, "committed offsets of a group empty this long are removed (offsets.retention.minutes)")
	fs.Int64Var(&f.offsetsCheckMs, "offsets-retention-check-interval-ms", 600000, "how often expired committed offsets are removed (offsets.retention.check.interval.ms)")
	fs.StringVar(&f.authorizer, "authorizer", "none", "acl: authorize every request by the cluster's ACLs (strata acls); none: every client may do everything, as Kafka without an authorizer")
	fs.StringVar(&f.superUsers, "super-users", "", "principals allowed everything with --authorizer acl, ';'-separated: User:admin;User:ops (super.users)")
	fs.BoolVar(&f.allowEveryoneIfNoACL, "allow-everyone-if-no-acl-found", false, "with --authorizer acl, allow a request on a resource no ACL names (allow.everyone.if.no.acl.found)")
	fs.Int64Var(&f.groupInitialDelayMs, "group-initial-rebalance-delay-ms", 3000, "how long the first rebalance of an empty group waits for more members (group.initial.rebalance.delay.ms)")
	fs.Int64Var(&f.groupMinSessionMs, "group-min-session-timeout-ms", 6000, "the shortest session timeout a group member may ask for; shorter gets INVALID_SESSION_TIMEOUT (group.min.session.timeout.ms)")
	fs.Int64Var(&f.groupMaxSessionMs, "group-max-session-timeout-ms", 1800000, "the longest session timeout a group member may ask for; longer gets INVALID_SESSION_TIMEOUT (group.max.session.timeout.ms)")
	fs.Int32Var(&f.groupMaxSize, "group-max-size", math.MaxInt32, "the most members a consumer group takes (group.max.size): a new member joining a group this large gets GROUP_MAX_SIZE_REACHED; a group over it after the limit was lowered sheds the members that rejoin last at its next rebalance (default Int.MAX_VALUE: unlimited)")
	for _, def := range topicconfig.All() {
		if def.BrokerName == "" {
			continue // topic-only: no serve flag
		}
		v := new(string)
		*v = def.Default
		fs.StringVar(v, topicDefaultFlag(def), def.Default, "topic default for "+def.Name+": "+def.Doc)
		f.topicDefaults[def.Name] = v
	}
	f.quotas = addQuotaFlags(fs)
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: strata serve [flags]\n\nRuns a broker. On first start with the default quorum (or with --cluster-id) an empty\n--data-dir is formatted. Every flag can also be set in --config FILE (flag-name=value) or\nas STRATA_<FLAG_NAME> (e.g. STRATA_DATA_DIR); flags win over both, the environment over the file.\n\nFlags:\n%s", fs.FlagUsages())
	}
	return fs, f
}

// applyOverrides fills every flag not given on the command line from the
// environment (STRATA_<FLAG_NAME>) or else the config file.
func applyOverrides(fs *pflag.FlagSet, configFile string) error {
	file := map[string]string{}
	if configFile != "" {
		var err error
		if file, err = readConfigFile(configFile); err != nil {
			return err
		}
		for name := range file {
			if fs.Lookup(name) == nil || name == "config" {
				return usageErrorf("config file %s: unknown setting %q (settings are serve flag names without --)", configFile, name)
			}
		}
	}
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || fl.Name == "config" {
			return
		}
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(fl.Name, v); e != nil {
				err = usageErrorf("%s=%q: %v", env, v, e)
			}
			return
		}
		if v, ok := file[fl.Name]; ok {
			if e := fs.Set(fl.Name, v); e != nil {
				err = usageErrorf("config file %s: %s=%q: %v", configFile, fl.Name, v, e)
			}
		}
	})
	return err
}

// readConfigFile reads "name = value" lines; # starts a comment.
func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("config file: %v", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, usageErrorf("config file %s line %d: expected name=value", path, line)
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, usageErrorf("config file %s: %v", path, err)
	}
	return out, nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", format)
}

// securityConfig applies --listener-security-protocol-map to listeners and
// loads the TLS identity (nil when no listener is SSL and no --ssl-* file
// is given).
func securityConfig(f *serveFlags, listeners []broker.Listener, log *slog.Logger) (*authn.TLS, error) {
	protocols, err := authn.ParseProtocolMap(f.protocolMap)
	if err != nil {
		return nil, usageErrorf("--listener-security-protocol-map: %v", err)
	}
	useTLS := false
	for name, p := range protocols {
		if name == controllerListenerName {
			continue // the controller port (ports.go)
		}
		i := slices.IndexFunc(listeners, func(l broker.Listener) bool { return l.Name == name })
		if i < 0 {
			return nil, usageErrorf("--listener-security-protocol-map: no listener named %s (see --listeners)", name)
		}
		listeners[i].SecurityProtocol = p
		useTLS = useTLS || p.TLS()
	}
	clientAuth, err := authn.ParseClientAuth(f.sslClientAuth)
	if err != nil {
		return nil, usageErrorf("--ssl-client-auth: %v", err)
	}
	if !useTLS && f.sslCertFile == "" && f.sslKeyFile == "" {
		return nil, nil
	}
	if !useTLS && portsUseTLS(f) {
		return nil, nil // only the controller or admin port is TLS (ports.go)
	}
	if !useTLS {
		return nil, usageErrorf("--ssl-cert-file/--ssl-key-file given but no listener is SSL: set --listener-security-protocol-map NAME:SSL (CONTROLLER:SSL for the controller port), or --admin-ssl")
	}
	id, err := authn.NewTLS(authn.TLSFiles{CertFile: f.sslCertFile, KeyFile: f.sslKeyFile, CAFile: f.sslCAFile, ClientAuth: clientAuth},
		func(err error) {
			log.Error("reloading the TLS certificate failed; the previous one stays in use until the files are fixed", "err", err)
		})
	if err != nil {
		return nil, usageErrorf("--ssl-cert-file, --ssl-key-file, --ssl-ca-file: %v", err)
	}
	return id, nil
}

// saslConfig validates --sasl-enabled-mechanisms and loads
// --sasl-plain-users-file.
func saslConfig(f *serveFlags, listeners []broker.Listener, log *slog.Logger) ([]string, *authn.PlainUsers, error) {
	var mechanisms []string
	for _, m := range strings.Split(f.saslMechanisms, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" {
			continue
		}
		if m != "PLAIN" && m != "SCRAM-SHA-256" && m != "SCRAM-SHA-512" && m != "OAUTHBEARER" {
			return nil, nil, usageErrorf("--sasl-enabled-mechanisms: %s is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER are)", m)
		}
		mechanisms = append(mechanisms, m)
	}
	sasl := slices.ContainsFunc(listeners, func(l broker.Listener) bool { return l.SecurityProtocol.SASL() })
	if f.saslPlainUsersFile == "" {
		if sasl && slices.Contains(mechanisms, "PLAIN") {
			return nil, nil, usageErrorf("a SASL listener with PLAIN needs --sasl-plain-users-file")
		}
		return mechanisms, nil, nil
	}
	users, err := authn.LoadPlainUsers(f.saslPlainUsersFile, func(err error) {
		log.Error("reloading the SASL/PLAIN users file failed; the previous users stay until the file is fixed", "err", err)
	})
	if err != nil {
		return nil, nil, usageErrorf("--sasl-plain-users-file: %v", err)
	}
	return mechanisms, users, nil
}

// parseListeners turns --listen/--listeners/--advertise into listeners.
func parseListeners(f *serveFlags, listenersSet bool) ([]broker.Listener, error) {
	var listeners []broker.Listener
	if listenersSet && f.listeners != "" {
		for _, item := range strings.Split(f.listeners, ",") {
			name, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok || name == "" {
				return nil, usageErrorf("--listeners %q: want NAME=HOST:PORT,...", f.listeners)
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, usageErrorf("--listeners: %s=%q: %v", name, addr, err)
			}
			listeners = append(listeners, broker.Listener{Name: name, Address: addr})
		}
	} else {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			return nil, usageErrorf("--listen %q: %v", f.listen, err)
		}
		listeners = []broker.Listener{{Name: "CLIENT", Address: f.listen}}
	}
	if f.advertise != "" {
		for _, item := range strings.Split(f.advertise, ",") {
			item = strings.TrimSpace(item)
			name, addr, named := strings.Cut(item, "=")
			if !named {
				if len(listeners) != 1 {
					return nil, usageErrorf("--advertise %q: name the listener (NAME=HOST:PORT) when there are several", f.advertise)
				}
				name, addr = listeners[0].Name, item
			}
			found := false
			for i := range listeners {
				if listeners[i].Name == name {
					listeners[i].Advertise = addr
					found = true
				}
			}
			if !found {
				return nil, usageErrorf("--advertise: no listener named %s", name)
			}
		}
	}
	for _, l := range listeners {
		adv := l.Advertise
		if adv == "" {
			adv = l.Address
		}
		host, _, err := net.SplitHostPort(adv)
		if err != nil {
			return nil, usageErrorf("--advertise for listener %s %q: %v", l.Name, adv, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return nil, usageErrorf("listener %s would advertise %q, which clients cannot connect to: set --advertise %s=HOST:PORT", l.Name, adv, l.Name)
		}
	}
	return listeners, nil
}

// parseQuorum parses --controller-quorum.
func parseQuorum(s string) (map[int32]string, error) { return parseVoters("--controller-quorum", s) }

// parseVoters parses id@host:port,... given as flag.
func parseVoters(flag, s string) (map[int32]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[int32]string{}
	for _, item := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(item), "@")
		id, err := strconv.ParseInt(idStr, 10, 32)
		if !ok || err != nil || id < 0 {
			return nil, usageErrorf("%s %q: want id@host:port,...", flag, s)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, usageErrorf("%s: voter %d address %q: %v", flag, id, addr, err)
		}
		if _, dup := out[int32(id)]; dup {
			return nil, usageErrorf("%s: voter %d is listed twice", flag, id)
		}
		out[int32(id)] = addr
	}
	return out, nil
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs, f := newServeFlagSet(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyOverrides(fs, f.configFile); err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		return err
	}
	cfg, err := serveConfig(fs, f, log)
	if err != nil {
		return err
	}
	restrictUmask()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// serveConfig validates the flags into a node.Config, naming the flag at
// fault in every error.
func serveConfig(fs *pflag.FlagSet, f *serveFlags, log *slog.Logger) (node.Config, error) {
	if f.nodeID < 0 {
		return node.Config{}, usageErrorf("--node-id %d: must be 0 or more", f.nodeID)
	}
	listeners, err := parseListeners(f, fs.Changed("listeners") || f.listeners != "")
	if err != nil {
		return node.Config{}, err
	}
	inter := false
	for _, l := range listeners {
		inter = inter || l.Name == f.interBrokerListener
	}
	if !inter {
		return node.Config{}, usageErrorf("--inter-broker-listener %s: no such listener", f.interBrokerListener)
	}
	ports, err := portsConfig(f, log)
	if err != nil {
		return node.Config{}, err
	}
	tlsID, err := securityConfig(f, listeners, log)
	if err != nil {
		return node.Config{}, err
	}
	saslMechanisms, plainUsers, err := saslConfig(f, listeners, log)
	if err != nil {
		return node.Config{}, err
	}
	oauthBearer, maxReauth, err := oauthConfig(&f.auth, saslMechanisms, listeners, log)
	if err != nil {
		return node.Config{}, err
	}
	interBrokerSASL := slices.ContainsFunc(listeners, func(l broker.Listener) bool { return l.Name == f.interBrokerListener && l.SecurityProtocol.SASL() })
	interBrokerMechanism, interBrokerCredentials, principalMapping, err := f.interBroker.config(interBrokerSASL, log)
	if err != nil {
		return node.Config{}, err
	}
	quorum, err := parseQuorum(f.controllerQuorum)
	if err != nil {
		return node.Config{}, err
	}
	if _, voter := quorum[f.nodeID]; len(quorum) > 0 && voter {
		if f.controllerAdvertise == "" {
			f.controllerAdvertise = quorum[f.nodeID] // what the other voters dial
		} else if f.controllerAdvertise != quorum[f.nodeID] {
			return node.Config{}, usageErrorf("--controller-advertise %q differs from this node's entry in --controller-quorum (%q): the other voters dial the quorum entry", f.controllerAdvertise, quorum[f.nodeID])
		}
		if len(quorum) == 1 {
			quorum = nil // this node alone: the default
		}
	}
	_, voter := quorum[f.nodeID]
	voter = voter || len(quorum) == 0
	var controllerOnly bool
	switch strings.ReplaceAll(f.processRoles, " ", "") {
	case "broker,controller", "controller,broker":
		if !voter {
			return node.Config{}, usageErrorf("--process-roles %s: node %d is not in --controller-quorum; a node outside the quorum runs --process-roles broker", f.processRoles, f.nodeID)
		}
	case "broker":
		if voter {
			return node.Config{}, usageErrorf("--process-roles broker: node %d must not be a voter of --controller-quorum (a broker-only node follows the metadata log as a non-voter)", f.nodeID)
		}
	case "controller":
		if !voter {
			return node.Config{}, usageErrorf("--process-roles controller: node %d must be a voter of --controller-quorum", f.nodeID)
		}
		controllerOnly = true
	default:
		return node.Config{}, usageErrorf("--process-roles %q: broker,controller, broker or controller", f.processRoles)
	}
	if f.sessionTimeoutMs < 3*f.heartbeatMs {
		return node.Config{}, usageErrorf("--broker-session-timeout-ms %d: must be at least 3 × --broker-heartbeat-interval-ms (%d)", f.sessionTimeoutMs, f.heartbeatMs)
	}
	if _, _, err := net.SplitHostPort(f.controllerListen); err != nil {
		return node.Config{}, usageErrorf("--controller-listen %q: %v", f.controllerListen, err)
	}
	if f.controllerAdvertise != "" {
		host, _, err := net.SplitHostPort(f.controllerAdvertise)
		if err != nil {
			return node.Config{}, usageErrorf("--controller-advertise %q: %v", f.controllerAdvertise, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return node.Config{}, usageErrorf("--controller-advertise %q: other voters cannot connect to an unspecified host", f.controllerAdvertise)
		}
	}
	if f.adminListen != "-" {
		if _, _, err := net.SplitHostPort(f.adminListen); err != nil {
			return node.Config{}, usageErrorf("--admin-listen %q: %v", f.adminListen, err)
		}
	}
	if f.numPartitions < 1 {
		return node.Config{}, usageErrorf("--num-partitions %d: must be at least 1", f.numPartitions)
	}
	if f.replicationFactor < 1 {
		return node.Config{}, usageErrorf("--default-replication-factor %d: must be at least 1", f.replicationFactor)
	}
	if f.fetchMaxBytes < 1024 {
		return node.Config{}, usageErrorf("--fetch-max-bytes %d: must be at least 1024", f.fetchMaxBytes)
	}
	if f.maxRequestBytes < 1024 {
		return node.Config{}, usageErrorf("--socket-request-max-bytes %d: must be at least 1024", f.maxRequestBytes)
	}
	if f.maxConnections < 0 {
		return node.Config{}, usageErrorf("--max-connections %d: must be at least 1 (0 = the default)", f.maxConnections)
	}
	if f.maxConnectionsPerIP < 1 {
		return node.Config{}, usageErrorf("--max-connections-per-ip %d: must be at least 1", f.maxConnectionsPerIP)
	}
	if f.queuedMaxBytes < int64(f.maxRequestBytes) {
		return node.Config{}, usageErrorf("--queued-max-request-bytes %d: must be at least --socket-request-max-bytes (%d), or a request of the largest size could never be read", f.queuedMaxBytes, f.maxRequestBytes)
	}
	if f.queuedMaxResponse < 1<<20 {
		return node.Config{}, usageErrorf("--queued-max-response-bytes %d: must be at least 1048576", f.queuedMaxResponse)
	}
	if f.offsetsPartitions < 1 || f.offsetsPartitions > 10000 {
		return node.Config{}, usageErrorf("--offsets-topic-num-partitions %d: must be between 1 and 10000", f.offsetsPartitions)
	}
	if f.offsetsReplication < 1 {
		return node.Config{}, usageErrorf("--offsets-topic-replication-factor %d: must be at least 1", f.offsetsReplication)
	}
	if f.txnLogPartitions < 1 || f.txnLogPartitions > 10000 {
		return node.Config{}, usageErrorf("--transaction-state-log-num-partitions %d: must be between 1 and 10000", f.txnLogPartitions)
	}
	if f.txnLogReplication < 1 {
		return node.Config{}, usageErrorf("--transaction-state-log-replication-factor %d: must be at least 1", f.txnLogReplication)
	}
	if f.txnMaxTimeoutMs < 1 || f.txnMaxTimeoutMs > math.MaxInt32 {
		return node.Config{}, usageErrorf("--transaction-max-timeout-ms %d: must be between 1 and %d", f.txnMaxTimeoutMs, math.MaxInt32)
	}
	authorizer, err := f.buildAuthorizer()
	if err != nil {
		return node.Config{}, err
	}
	if f.txnVersion != 1 && f.txnVersion != 2 {
		return node.Config{}, usageErrorf("--transaction-version %d: must be 1 or 2", f.txnVersion)
	}
	if f.groupInitialDelayMs < 0 {
		return node.Config{}, usageErrorf("--group-initial-rebalance-delay-ms %d: must be 0 or more", f.groupInitialDelayMs)
	}
	groupDelay := time.Duration(f.groupInitialDelayMs) * time.Millisecond
	if groupDelay == 0 {
		groupDelay = -1 // broker.Config: negative is no delay, zero the default
	}
	if f.groupMaxSize < 1 {
		return node.Config{}, usageErrorf("--group-max-size %d: must be at least 1 (default %d: unlimited)", f.groupMaxSize, int32(math.MaxInt32))
	}
	if f.groupMinSessionMs > f.groupMaxSessionMs {
		return node.Config{}, usageErrorf("--group-min-session-timeout-ms %d: must not be above --group-max-session-timeout-ms (%d)", f.groupMinSessionMs, f.groupMaxSessionMs)
	}
	if f.offsetsSegmentBytes < 1024 {
		return node.Config{}, usageErrorf("--offsets-topic-segment-bytes %d: must be at least 1024", f.offsetsSegmentBytes)
	}
	for name, ms := range map[string]int64{"connections-max-idle-ms": f.idleMillis, "producer-id-expiration-ms": f.producerExpiryMs, "log-retention-check-interval-ms": f.retentionCheckMs,
		"log-cleaner-backoff-ms": f.cleanerBackoffMs, "broker-heartbeat-interval-ms": f.heartbeatMs, "replica-lag-time-max-ms": f.replicaLagMs, "controller-quorum-timeout-ms": f.quorumTimeoutMs, "broker-session-timeout-ms": f.sessionTimeoutMs, "offsets-retention-minutes": f.offsetsRetentionMin, "offsets-retention-check-interval-ms": f.offsetsCheckMs, "remote-log-manager-task-interval-ms": f.tieringIntervalMs,
		"transactional-id-expiration-ms": f.txnIDExpirationMs, "transaction-abort-timed-out-transaction-cleanup-interval-ms": f.txnAbortIntervalMs,
		"group-min-session-timeout-ms": f.groupMinSessionMs, "group-max-session-timeout-ms": f.groupMaxSessionMs} {
		if ms < 1 {
			return node.Config{}, usageErrorf("--%s %d: must be at least 1", name, ms)
		}
	}
	quotaConfig, err := f.quotas.config()
	if err != nil {
		return node.Config{}, err
	}
	if f.localDiskLimit < 0 {
		return node.Config{}, usageErrorf("--local-disk-limit-bytes %d: must be 0 (none) or more", f.localDiskLimit)
	}
	if f.remoteReaderThreads < 1 || f.remoteReaderPending < 0 {
		return node.Config{}, usageErrorf("--remote-log-reader-threads %d, --remote-log-reader-max-pending-tasks %d: want at least 1 thread and 0 or more pending tasks", f.remoteReaderThreads, f.remoteReaderPending)
	}
	if f.remoteCopyMaxBytes < 1 || f.remoteFetchMaxBytes < 1 {
		return node.Config{}, usageErrorf("--remote-log-manager-copy-max-bytes-per-second %d, --remote-log-manager-fetch-max-bytes-per-second %d: must be at least 1 (default %d: unlimited)", f.remoteCopyMaxBytes, f.remoteFetchMaxBytes, int64(math.MaxInt64))
	}
	if f.remoteCacheBytes < 1<<20 {
		return node.Config{}, usageErrorf("--remote-log-cache-bytes %d: must be at least 1 MiB", f.remoteCacheBytes)
	}
	if f.remoteMemoryBytes < 8*tiering.DefaultChunkBytes {
		return node.Config{}, usageErrorf("--remote-log-memory-cache-bytes %d: must be at least 8 MiB (8 chunks of 1 MiB)", f.remoteMemoryBytes)
	}
	if strings.HasPrefix(f.objectStorePrefix, "/") || strings.HasSuffix(f.objectStorePrefix, "/") {
		return node.Config{}, usageErrorf("--object-store-prefix %q: must not start or end with /", f.objectStorePrefix)
	}
	if f.objectStore != "" && !strings.HasPrefix(f.objectStore, "s3://") && !strings.HasPrefix(f.objectStore, "file://") && !strings.HasPrefix(f.objectStore, "mem://") {
		return node.Config{}, usageErrorf("--object-store %q: want s3://bucket?endpoint=...&region=...&use_path_style=true, file:///dir or mem://", tiering.RedactURL(f.objectStore))
	}
	if f.objectStoreShared && !strings.HasPrefix(f.objectStore, "file://") {
		return node.Config{}, usageErrorf("--object-store-shared declares a file:// --object-store shared by every node; it does not apply to %q", cmp.Or(tiering.RedactURL(f.objectStore), "the default file://<data-dir>/bucket"))
	}
	defaults := topicconfig.Defaults{}
	names := make([]string, 0, len(f.topicDefaults))
	for name := range f.topicDefaults {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		def, _ := topicconfig.Lookup(name)
		flag := topicDefaultFlag(def)
		if !fs.Changed(flag) {
			continue
		}
		v := *f.topicDefaults[name]
		if err := topicconfig.ValidateOne(name, v); err != nil {
			return node.Config{}, usageErrorf("--%s %q: %v", flag, v, err)
		}
		defaults[name] = v
	}
	return node.Config{
		NodeID:               f.nodeID,
		ClusterID:            f.clusterID,
		DataDir:              f.dataDir,
		ControllerListen:     f.controllerListen,
		ControllerAdvertise:  f.controllerAdvertise,
		ControllerQuorum:     quorum,
		ClusterSecretFile:    f.clusterSecretFile,
		BrokerSessionTimeout: time.Duration(f.sessionTimeoutMs) * time.Millisecond,
		QuorumTimeout:        time.Duration(f.quorumTimeoutMs) * time.Millisecond,
		ControllerOnly:       controllerOnly,
		AdminListen:          f.adminListen,
		AdminTokenFile:       f.adminTokenFile,
		AdminPprof:           f.adminPprof,
		ControllerTLS:        ports.controller,
		AdminTLS:             ports.admin,
		AdminClientAuth:      ports.adminClientAuth,
		ObjectStore:          f.objectStore,
		ObjectStorePrefix:    f.objectStorePrefix,
		ObjectStoreShared:    f.objectStoreShared,
		RemoteCacheBytes:     f.remoteCacheBytes,
		RemoteMemoryBytes:    f.remoteMemoryBytes,
		RemoteCacheBuffered:  !f.remoteCacheDirectIO,
		RemoteReaderThreads:  f.remoteReaderThreads,
		RemoteReaderPending:  cmp.Or(f.remoteReaderPending, -1), // 0: none waits
		TieringInterval:      time.Duration(f.tieringIntervalMs) * time.Millisecond,
		Logger:               log,

		RemoteCopyMaxBytesPerSecond:  f.remoteCopyMaxBytes,
		RemoteFetchMaxBytesPerSecond: f.remoteFetchMaxBytes,
		Broker: broker.Config{
			Listeners:                     listeners,
			TopicDefaults:                 defaults,
			StaticConfigs:                 staticConfigs(fs),
			NumPartitions:                 f.numPartitions,
			DefaultReplicationFactor:      f.replicationFactor,
			DisableAutoCreateTopics:       !f.autoCreateTopics,
			MaxRequestBytes:               f.maxRequestBytes,
			FetchMaxBytes:                 f.fetchMaxBytes,
			IdleTimeout:                   time.Duration(f.idleMillis) * time.Millisecond,
			MaxConnections:                f.maxConnections,
			MaxConnectionsPerIP:           f.maxConnectionsPerIP,
			QueuedMaxRequestBytes:         f.queuedMaxBytes,
			QueuedMaxResponseBytes:        f.queuedMaxResponse,
			ProducerIDExpiration:          time.Duration(f.producerExpiryMs) * time.Millisecond,
			RetentionCheckInterval:        time.Duration(f.retentionCheckMs) * time.Millisecond,
			LocalDiskLimit:                f.localDiskLimit,
			OffsetsTopicNumPartitions:     f.offsetsPartitions,
			OffsetsTopicReplicationFactor: f.offsetsReplication,
			GroupInitialRebalanceDelay:    groupDelay,
			GroupMinSessionTimeout:        time.Duration(f.groupMinSessionMs) * time.Millisecond,
			GroupMaxSessionTimeout:        time.Duration(f.groupMaxSessionMs) * time.Millisecond,
			GroupMaxSize:                  f.groupMaxSize,
			CleanerBackoff:                time.Duration(f.cleanerBackoffMs) * time.Millisecond,
			HeartbeatInterval:             time.Duration(f.heartbeatMs) * time.Millisecond,
			ReplicaLagTimeMax:             time.Duration(f.replicaLagMs) * time.Millisecond,
			InterBrokerListener:           f.interBrokerListener,
			TLS:                           tlsID,
			SASLMechanisms:                saslMechanisms,
			PlainUsers:                    plainUsers,
			InterBrokerSASLMechanism:      interBrokerMechanism,
			InterBrokerCredentials:        interBrokerCredentials,
			SSLPrincipalMapping:           principalMapping,
			OAuthBearer:                   oauthBearer,
			ConnectionsMaxReauth:          maxReauth,
			Rack:                          f.rack,
			OffsetsTopicSegmentBytes:      f.offsetsSegmentBytes,
			OffsetsRetention:              time.Duration(f.offsetsRetentionMin) * time.Minute,
			OffsetsRetentionCheckInterval: time.Duration(f.offsetsCheckMs) * time.Millisecond,

			TransactionStateLogNumPartitions:     f.txnLogPartitions,
			TransactionStateLogReplicationFactor: f.txnLogReplication,
			TransactionMaxTimeout:                time.Duration(f.txnMaxTimeoutMs) * time.Millisecond,
			TransactionalIDExpiration:            time.Duration(f.txnIDExpirationMs) * time.Millisecond,
			TransactionAbortTimedOutInterval:     time.Duration(f.txnAbortIntervalMs) * time.Millisecond,
			TransactionVersion:                   int16(f.txnVersion),
			Authorizer:                           authorizer,

			Quotas: quotaConfig,
		},
	}, nil
}

func runFormat(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("format", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	clusterID := fs.String("cluster-id", "", "cluster id (required; e.g. from `strata format --random-cluster-id` output)")
	random := fs.Bool("random-cluster-id", false, "generate a new cluster id and print it")
	nodeID := fs.Int32("node-id", 1, "this node's id")
	dataDir := fs.String("data-dir", "./data", "data directory to prepare")
	controllerAdvertise := fs.String("controller-advertise", "127.0.0.1:9093", "this node's Raft address (used when --controller-quorum is empty)")
	quorumFlag := fs.String("controller-quorum", "", "initial voters id@host:port,... (default: this node alone)")
	addScram := fs.StringArray("add-scram", nil, "a SCRAM user that exists from the cluster's first start (KIP-900), repeatable: 'SCRAM-SHA-512=[name=admin,password=secret]', also iterations=N (default 4096) or salt=B64,saltedpassword=B64 instead of password=; only the salted credential is stored. Give the voters the same ones")
	secretFile := fs.String("generate-cluster-secret", "", "write a new cluster secret to FILE (mode 0600) for every node's --cluster-secret-file; a FILE that already holds one is kept. Alone, it only writes the file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: strata format --cluster-id ID --node-id N --data-dir DIR [--controller-quorum ...]\n       strata format --generate-cluster-secret FILE\n\nPrepares a data dir. Raft is bootstrapped only on a freshly formatted dir. A cluster of\nmore than one node needs a secret that every node holds (--cluster-secret-file): generate\nit once and copy it to each node; a one-node cluster keeps its own in <data-dir>/cluster.secret.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *secretFile != "" {
		created, err := metadata.GenerateClusterSecretFile(*secretFile)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "wrote a new cluster secret to %s: copy it to every node (readable by the strata user only) and start each with --cluster-secret-file\n", *secretFile)
		} else {
			fmt.Fprintf(stdout, "%s already holds a cluster secret: kept it\n", *secretFile)
		}
		if !*random && *clusterID == "" {
			return nil
		}
	}
	if *random {
		*clusterID = metadata.NewClusterID()
	}
	if *clusterID == "" {
		return usageErrorf("--cluster-id is required (or --random-cluster-id)")
	}
	var credentials []metadata.ScramCredential
	for _, value := range *addScram {
		credential, err := parseAddScram(value)
		if err != nil {
			return usageErrorf("--add-scram: %v", err)
		}
		credentials = append(credentials, credential)
	}
	quorum, err := parseQuorum(*quorumFlag)
	if err != nil {
		return err
	}
	if len(quorum) == 0 {
		quorum = map[int32]string{*nodeID: *controllerAdvertise}
	}
	// A node not in the quorum is formatted as a broker that joins the
	// quorum's log as a non-voter.
	restrictUmask()
	if err := os.MkdirAll(*dataDir, fsperm.Dir); err != nil {
		return err
	}
	if err := metadata.Format(*dataDir, *clusterID, *nodeID, quorum, metadata.WithScramCredentials(credentials...)); err != nil {
		return err
	}
	if _, self := quorum[*nodeID]; self && len(quorum) == 1 && *secretFile == "" {
		// The first node of a one-node cluster makes the cluster's secret.
		path := filepath.Join(*dataDir, metadata.ClusterSecretFileName)
		if _, err := metadata.GenerateClusterSecretFile(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cluster secret in %s: nodes that join this cluster need a copy (--cluster-secret-file)\n", path)
	}
	fmt.Fprintf(stdout, "formatted %s: cluster id %s, node id %d\n", *dataDir, *clusterID, *nodeID)
	return nil
}

func runHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("healthcheck", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "127.0.0.1:9080", "admin listener of the node to check")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	var clientFlags adminClientFlags
	addAdminClientFlags(fs, &clientFlags)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	scheme, client, err := clientFlags.client(*timeout)
	if err != nil {
		return err
	}
	resp, err := client.Get(scheme + "://" + *admin + "/readyz")
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(reason)))
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
