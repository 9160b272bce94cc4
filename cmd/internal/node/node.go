// Package node wires one Strata process: the metadata quorum member, the
// broker and the admin HTTP listener (metrics, health, pprof).
package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/tiermanager"
	"github.com/strata-log/strata/internal/clockwatch"
	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// Config is everything one node needs. Zero values mean defaults.
type Config struct {
	NodeID    int32
	ClusterID string // used only when an empty data dir is formatted
	DataDir   string // default ./data
	// ControllerListen/ControllerAdvertise: the Raft listener.
	ControllerListen    string
	ControllerAdvertise string
	// ControllerQuorum are the initial voters (node id → controller
	// address); empty means this node alone.
	ControllerQuorum map[int32]string
	// ClusterSecretFile holds the secret every controller connection is
	// authenticated with (metadata.ReadClusterSecretFile); empty means the
	// one in the data dir, generated there by the only voter of a one-node
	// quorum.
	ClusterSecretFile string
	// ControllerOnly runs the metadata voter without a broker (Kafka's
	// process.roles=controller): no Kafka listener, no partitions.
	ControllerOnly bool
	// QuorumTimeout bounds how long start-up waits for the metadata quorum;
	// default 60 s.
	QuorumTimeout time.Duration
	// BrokerSessionTimeout is how long the controller waits for a broker's
	// heartbeat before fencing it (broker.session.timeout.ms).
	BrokerSessionTimeout time.Duration
	// AdminListen serves /metrics, /healthz, /readyz, the status page and
	// the operator routes (admin.go); default 127.0.0.1:9080; "-" disables
	// it.
	AdminListen string
	// AdminTokenFile holds the bearer token(s) the operator routes and
	// pprof need (ReadAdminTokens); without it they are open on a
	// loopback-only listener and refused on any other.
	AdminTokenFile string
	// AdminPprof serves /debug/pprof.
	AdminPprof bool

	// ControllerTLS, when set, puts the controller port under mutual TLS
	// with this node's certificate (Kafka's CONTROLLER:SSL; built with
	// client authentication required): metadata.ControllerTLS.
	ControllerTLS *authn.TLS
	// AdminTLS, when set, serves the admin listener over HTTPS
	// (--admin-ssl); AdminClientAuth is its --admin-ssl-client-auth: with
	// requested or required, a verified client certificate authenticates
	// like the admin token (admin.go).
	AdminTLS        *authn.TLS
	AdminClientAuth authn.ClientAuth
	// ObjectStore is the tiered-storage bucket URL (s3://…, file:///…,
	// mem://); default file://<data dir>/bucket. ObjectStorePrefix is
	// prepended to every key.
	ObjectStore       string
	ObjectStorePrefix string
	// ObjectStoreShared declares a file:// ObjectStore a directory every
	// node mounts. Without it a file:// or mem:// store (and the default)
	// is node-local, and tiered topics are refused in a cluster of more
	// than one node (broker.Config.ObjectStoreNodeLocal).
	ObjectStoreShared bool
	// RemoteCacheBytes bounds the on-disk cache of remote chunks in
	// <data dir>/remote-cache; default 256 MiB.
	RemoteCacheBytes int64
	// RemoteMemoryBytes bounds the memory LRU of remote chunks in front
	// of that cache, and with it the bytes read ahead at once
	// (tiering.Config.MemoryCacheBytes); 0 means the default (64 MiB).
	RemoteMemoryBytes int64
	// RemoteCacheBuffered makes that cache's files go through the page
	// cache (tiering.Config.CacheBufferedIO); by default they are written
	// and read with O_DIRECT where the file system allows it.
	RemoteCacheBuffered bool
	// RemoteReaderThreads and RemoteReaderPending are Kafka's
	// remote.log.reader.threads and remote.log.reader.max.pending.tasks
	// (tiering.Config.ReaderThreads, ReaderMaxPendingTasks): 0 means the
	// default (10, 100), a negative RemoteReaderPending none.
	RemoteReaderThreads, RemoteReaderPending int
	// RemoteCopyMaxBytesPerSecond and RemoteFetchMaxBytesPerSecond are
	// Kafka's tiered storage quotas (KIP-956,
	// remote.log.manager.copy.max.bytes.per.second and
	// remote.log.manager.fetch.max.bytes.per.second; tiering.Config's
	// CopyMaxBytesPerSecond, FetchMaxBytesPerSecond): 0 or math.MaxInt64
	// is unlimited.
	RemoteCopyMaxBytesPerSecond, RemoteFetchMaxBytesPerSecond int64
	// TieringInterval is remote.log.manager.task.interval.ms: how often
	// sealed segments are looked for and uploaded, remote retention
	// applied; default 30 s.
	TieringInterval time.Duration
	// Broker configures the Kafka side; its NodeID, DataDir, Metadata,
	// RemoteReader, Logger and Registerer are filled in by New.
	Broker broker.Config
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.ControllerListen == "" {
		c.ControllerListen = "127.0.0.1:9093"
	}
	if c.ControllerAdvertise == "" {
		c.ControllerAdvertise = c.ControllerListen
	}
	if c.AdminListen == "" {
		c.AdminListen = "127.0.0.1:9080"
	}
	if c.QuorumTimeout == 0 {
		c.QuorumTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Node is a running Strata process.
type Node struct {
	cfg    Config
	log    *slog.Logger
	store  *metadata.Store
	broker *broker.Server
	tier   *tiering.Tier
	bucket *tiering.BlobBucket
	// tiers runs the broker's tiered storage: Run starts it, closeBroker
	// stops it (tiersOnce makes sure it starts at most once, and never
	// after closeBroker) and waits for tiersStopped. recovery is what a
	// recovery from the bucket works with.
	tiers        *tiermanager.Manager
	tiersContext context.Context
	stopTiers    context.CancelFunc
	tiersOnce    sync.Once
	tiersStopped chan struct{}
	recovery     tiermanager.RecoverConfig
	admin        *http.Server
	adminLn      net.Listener

	// clock watches the wall clock for jumps (runs with the tier manager).
	clock *clockwatch.Watch

	// adminLogLimiter bounds the admin listener's refusal lines.
	adminLogLimiter *ratelog.Limiter
	ready           atomic.Bool
	serveErr        chan error
}

// New formats the data dir when allowed, opens the metadata store, waits
// for it to be ready, and opens the broker. Run starts serving.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	log := cfg.Logger
	restrictDataDir(cfg.DataDir, log)
	secret, err := loadClusterSecret(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(cfg, log); err != nil {
		return nil, err
	}
	store, err := metadata.Open(metadata.Config{
		NodeID:                cfg.NodeID,
		DataDir:               cfg.DataDir,
		ClusterSecret:         secret,
		TLS:                   controllerTLS(cfg.ControllerTLS),
		ControllerListen:      cfg.ControllerListen,
		ControllerAdvertise:   cfg.ControllerAdvertise,
		Voters:                cfg.ControllerQuorum,
		UncleanLeaderElection: cfg.Broker.TopicDefaults["unclean.leader.election.enable"] == "true",
		BrokerSessionTimeout:  cfg.BrokerSessionTimeout,
		Logger:                log,
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata store: %w", err)
	}
	if err := waitForQuorum(ctx, store, cfg, log); err != nil {
		store.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	// The scheduler's series include go_sched_latencies_seconds, the time
	// goroutines wait runnable for a P: the broker's share of a request's
	// latency that no handler's own timer sees.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerClusterMetrics(reg, store)
	n := &Node{cfg: cfg, log: log, store: store, serveErr: make(chan error, 2)}
	if !cfg.ControllerOnly {
		if err := n.openBroker(reg); err != nil {
			store.Close()
			return nil, err
		}
	}
	if cfg.AdminListen != "-" {
		if err := n.openAdmin(reg); err != nil {
			n.closeBroker()
			store.Close()
			return nil, err
		}
	}
	return n, nil
}

// openAdmin binds the admin listener and decides who may call its
// operator routes (admin.go).
func (n *Node) openAdmin(reg *prometheus.Registry) error {
	cfg := n.cfg
	if cfg.AdminTokenFile != "" {
		if _, err := ReadAdminTokens(cfg.AdminTokenFile); err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("admin listener: listen on %s: %w (set --admin-listen)", cfg.AdminListen, err)
	}
	loopbackOnly := isLoopbackListener(ln.Addr())
	if cfg.AdminTLS != nil {
		ln = tls.NewListener(ln, cfg.AdminTLS.ServerConfig())
	}
	// Refused requests are logged, at most 10 lines a minute per message:
	// anyone who reaches the port can cause them.
	n.adminLogLimiter = ratelog.New(ratelog.Config{})
	access := &adminAccess{
		tokenFile:    cfg.AdminTokenFile,
		loopbackOnly: loopbackOnly,
		clientCerts:  cfg.AdminTLS != nil && cfg.AdminClientAuth != "" && cfg.AdminClientAuth != authn.ClientAuthNone,
		hostnames:    adminHostnames(cfg.AdminListen),
		pprof:        cfg.AdminPprof,
		log:          n.adminLogLimiter.Logger(n.log.With("component", "admin")),
	}
	if access.tokenFile == "" && !access.clientCerts && !access.loopbackOnly {
		n.log.Warn("the admin listener is not loopback-only and has no --admin-token-file: its reads (status page, /v1/..., /metrics) are open to whoever reaches it, and its operator routes (voters, tiering recovery) and pprof are refused", "admin_listen", ln.Addr().String())
	}
	n.adminLn = ln
	n.admin = newAdminServer(newAdminMux(access, n.adminRoutes(reg)), defaultAdminTimeouts, n.log)
	return nil
}

// openBroker opens the Kafka side of the node.
func (n *Node) openBroker(reg *prometheus.Registry) error {
	cfg, log, store := n.cfg, n.log, n.store
	bcfg := cfg.Broker
	bcfg.NodeID = cfg.NodeID
	bcfg.SessionTimeout = cfg.BrokerSessionTimeout
	bcfg.DataDir = cfg.DataDir
	bcfg.Metadata = store
	bcfg.Logger = log.With("component", "broker")
	bcfg.Registerer = reg
	// Deletion by wall-clock age (remote retention, offset expiry) waits
	// after a forward jump of the clock until an operator confirms it.
	clock, err := clockwatch.New(clockwatch.Config{Logger: log.With("component", "clockwatch"), Registerer: reg})
	if err != nil {
		return err
	}
	bcfg.OffsetsExpiryPause = clock
	var localStart atomic.Pointer[func(metadata.TopicPartition) (int64, bool)] // the broker's, once it exists
	tier, bucket, err := openTier(cfg, reg, log, nextRemoteSegment(store, func(p metadata.TopicPartition) (int64, bool) {
		if f := localStart.Load(); f != nil {
			return (*f)(p)
		}
		return 0, false
	}))
	if err != nil {
		return err
	}
	bcfg.RemoteReader = tier
	bcfg.RemoteFetchQuota = tier.FetchQuota()
	bcfg.ObjectStoreNodeLocal = objectStoreNodeLocal(cfg)
	b, err := broker.New(bcfg)
	if err != nil {
		tier.Close()
		bucket.Close()
		return err
	}
	localStartOf := b.LocalLogStart
	localStart.Store(&localStartOf)
	tiers, err := tiermanager.New(tiermanager.Config{
		Tier:       tier,
		Store:      store,
		NodeID:     cfg.NodeID,
		Partitions: b.HostedPartitions,
		Unshared:   b.UnsharedObjectStore,
		StagingDir: filepath.Join(cfg.DataDir, "tiering-staging"),
		Interval:   cfg.TieringInterval,
		Registerer: reg,
		Logger:     bcfg.Logger,

		RetentionPause: clock,
	})
	if err != nil {
		b.Close()
		tier.Close()
		bucket.Close()
		return fmt.Errorf("broker: %w", err)
	}
	n.broker, n.tier, n.bucket, n.tiers, n.clock = b, tier, bucket, tiers, clock
	n.tiersContext, n.stopTiers = context.WithCancel(context.Background())
	n.tiersStopped = make(chan struct{})
	n.recovery = tiermanager.RecoverConfig{Tier: tier, Store: store, Cluster: b, Logger: bcfg.Logger}
	return nil
}

// The node plugs tiering into the broker and the broker into the tier
// manager: the broker imports neither.
var (
	_ broker.RemoteReader = (*tiering.Tier)(nil)
	_ tiermanager.Cluster = (*broker.Server)(nil)
)

// objectStoreNodeLocal reports whether the node's object store is private
// to it: the default directory in the data dir, mem://, or a file://
// directory not declared shared.
func objectStoreNodeLocal(cfg Config) bool {
	switch {
	case strings.HasPrefix(cfg.ObjectStore, "s3://"):
		return false
	case strings.HasPrefix(cfg.ObjectStore, "file://"):
		return !cfg.ObjectStoreShared
	}
	return true
}

// openTier opens the object store named by --object-store (creating the
// directory of the default file:// bucket) and the tier over it, with
// request metrics.
func openTier(cfg Config, reg prometheus.Registerer, log *slog.Logger, nextSegment func(metadata.TopicPartition, metadata.SegmentManifest) (metadata.SegmentManifest, bool)) (*tiering.Tier, *tiering.BlobBucket, error) {
	url := cfg.ObjectStore
	if url == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "bucket"))
		if err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
			return nil, nil, fmt.Errorf("object store: %w", err)
		}
		url = "file://" + filepath.ToSlash(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, err := tiering.OpenBucket(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("--object-store: %w", err)
	}
	metered, err := tiering.NewMetricsBucket(bucket, reg)
	if err != nil {
		bucket.Close()
		return nil, nil, err
	}
	tier, err := tiering.New(tiering.Config{
		Bucket:                metered,
		Prefix:                cfg.ObjectStorePrefix,
		CacheDir:              filepath.Join(cfg.DataDir, "remote-cache"),
		CacheBytes:            cfg.RemoteCacheBytes,
		MemoryCacheBytes:      cfg.RemoteMemoryBytes,
		CacheBufferedIO:       cfg.RemoteCacheBuffered,
		Logger:                log.With("component", "tiering"),
		ReaderThreads:         cfg.RemoteReaderThreads,
		ReaderMaxPendingTasks: cfg.RemoteReaderPending,
		NextSegment:           nextSegment,

		CopyMaxBytesPerSecond:  cfg.RemoteCopyMaxBytesPerSecond,
		FetchMaxBytesPerSecond: cfg.RemoteFetchMaxBytesPerSecond,
	})
	if err != nil {
		bucket.Close()
		return nil, nil, fmt.Errorf("tiering: %w", err)
	}
	if err := reg.Register(tiering.NewTierCollector(tier)); err != nil {
		tier.Close()
		bucket.Close()
		return nil, nil, err
	}
	log.Info("object store for tiered topics", "object_store", tiering.RedactURL(url), "prefix", cfg.ObjectStorePrefix)
	return tier, bucket, nil
}

func (n *Node) closeBroker() error {
	if n.broker == nil {
		return nil
	}
	// The tier manager stops before the broker closes the partitions its
	// passes read.
	n.stopTiers()
	n.tiersOnce.Do(func() { close(n.tiersStopped) }) // never started
	<-n.tiersStopped
	err := n.broker.Close()
	if n.tier != nil {
		err = errors.Join(err, n.tier.Close(), n.bucket.Close())
	}
	return err
}

// waitForQuorum waits for the metadata quorum to elect a leader and this
// node to catch up, saying every few seconds what it waits for, and gives
// up after cfg.QuorumTimeout.
func waitForQuorum(ctx context.Context, store *metadata.Store, cfg Config, log *slog.Logger) error {
	deadline := time.Now().Add(cfg.QuorumTimeout)
	log.Info("waiting for the metadata quorum", "controller_listen", cfg.ControllerListen)
	// A broker whose node id a live process on another data dir holds
	// never gets a leader (the quorum replicates to that process): ask the
	// voters, so it says so instead of waiting out the quorum timeout. A
	// refusal that outlasts a session timeout is not a crashed
	// predecessor's session running out.
	probe := metadata.BrokerRegistration{ID: cfg.NodeID, IncarnationID: uuid.New(), DirectoryID: store.DirectoryID()}
	sessionTimeout := cfg.BrokerSessionTimeout
	if sessionTimeout == 0 {
		sessionTimeout = 9 * time.Second
	}
	var refusedSince time.Time
	for attempt := 0; ; attempt++ {
		wait := 5 * time.Second
		if attempt == 0 || !refusedSince.IsZero() {
			wait = time.Second
		}
		step, cancel := context.WithTimeout(ctx, min(wait, time.Until(deadline)))
		err := store.WaitReady(step)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) && !cfg.ControllerOnly && ctx.Err() == nil {
			check, cancel := context.WithTimeout(ctx, 2*time.Second)
			checkErr := store.CheckRegistration(check, probe)
			cancel()
			switch {
			case !errors.Is(checkErr, metadata.ErrDuplicateBroker):
				refusedSince = time.Time{}
			case refusedSince.IsZero():
				refusedSince = time.Now()
				log.Warn("another live process, on another data directory, holds this node id; waiting for its session to end", "node_id", cfg.NodeID, "session_timeout", sessionTimeout, "err", checkErr)
			case time.Since(refusedSince) > sessionTimeout:
				return fmt.Errorf("node id %d is in use by another live process, on another data directory (DUPLICATE_BROKER_REGISTRATION): give each node a unique --node-id: %w", cfg.NodeID, checkErr)
			}
		}
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("metadata quorum: %w", err)
		case !time.Now().Before(deadline):
			return fmt.Errorf("metadata quorum not ready after %v: no leader could be elected with the reachable voters, or the quorum has a leader that does not replicate to this process; check that a majority of --controller-quorum is running, reachable at the listed addresses, and formatted with the same cluster id, and that no other running process uses node id %d (the quorum replicates to the address it lists for that node id, not to a second process)", cfg.QuorumTimeout, cfg.NodeID)
		}
		voters, _ := store.Voters()
		var names []string
		for _, v := range voters {
			names = append(names, fmt.Sprintf("%d@%s", v.NodeID, v.Address))
		}
		log.Warn("still waiting for the metadata quorum: no leader yet (a majority of the voters must be up and reachable)", "voters", strings.Join(names, ","), "gives_up_in", time.Until(deadline).Round(time.Second))
	}
}

// registerClusterMetrics exports the metadata state's cluster view: whether
// this node is the controller, how far it has applied the metadata log,
// and the brokers and offline partitions it sees.
func registerClusterMetrics(reg prometheus.Registerer, store *metadata.Store) {
	gauge := func(name, help string, value func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "strata", Name: name, Help: help}, value)
	}
	brokers := func(fenced bool) func() float64 {
		return func() float64 {
			n := 0
			for _, b := range store.State().Brokers() {
				if b.Fenced == fenced {
					n++
				}
			}
			return float64(n)
		}
	}
	reg.MustRegister(
		gauge("controller_active", "1 when this node leads the metadata quorum (is the controller).", func() float64 {
			if store.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge("metadata_applied_index", "Raft log index of the metadata state this node serves.", func() float64 {
			return float64(store.State().AppliedIndex())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "strata", Name: "controller_connections_refused_total",
			Help: "Inbound controller connections refused in the handshake (TLS, certificate node id, cluster id or secret); the log says why."},
			func() float64 { return float64(store.ControllerConnectionsRefused()) }),
		gauge("brokers_alive", "Registered, unfenced brokers.", brokers(false)),
		gauge("brokers_fenced", "Registered brokers the controller fenced.", brokers(true)),
		gauge("offline_partitions", "Partitions without a leader.", func() float64 {
			n := 0
			store.State().EachTopic(func(t metadata.Topic) bool {
				for _, p := range t.Partitions {
					if p.Leader < 0 {
						n++
					}
				}
				return true
			})
			return float64(n)
		}),
	)
}

// prepareDataDir formats an empty data dir when this node may: it runs
// alone with the default quorum, or it was given a cluster id (as compose
// does). Otherwise an unformatted dir is refused with a hint.
func prepareDataDir(cfg Config, log *slog.Logger) error {
	_, _, err := metadata.ReadMetaProperties(cfg.DataDir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, metadata.ErrNotFormatted) {
		return err
	}
	alone := len(cfg.ControllerQuorum) == 0
	if !alone && cfg.ClusterID == "" {
		return fmt.Errorf("data dir %s is not formatted and --controller-quorum names other voters: run `strata format --cluster-id ID --node-id %d --data-dir %s --controller-quorum ...` on every node first (or pass --cluster-id)", cfg.DataDir, cfg.NodeID, cfg.DataDir)
	}
	voters := cfg.ControllerQuorum
	if alone {
		voters = map[int32]string{cfg.NodeID: cfg.ControllerAdvertise}
	}
	clusterID := cfg.ClusterID
	if clusterID == "" {
		clusterID = metadata.NewClusterID()
	}
	if err := os.MkdirAll(cfg.DataDir, fsperm.Dir); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := metadata.Format(cfg.DataDir, clusterID, cfg.NodeID, voters); err != nil {
		return fmt.Errorf("format data dir %s: %w", cfg.DataDir, err)
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	log.Info("formatted data dir", "data_dir", abs, "cluster_id", clusterID, "node_id", cfg.NodeID)
	return nil
}

// adminRoutes are this node's handlers for the admin listener.
func (n *Node) adminRoutes(reg *prometheus.Registry) adminRoutes {
	return adminRoutes{
		metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		status:      http.HandlerFunc(n.handleStatus),
		cluster:     http.HandlerFunc(n.handleCluster),
		partitions:  http.HandlerFunc(n.handlePartitions),
		scrub:       http.HandlerFunc(n.handleScrub),
		addVoter:    http.HandlerFunc(n.handleAddVoter),
		removeVoter: http.HandlerFunc(n.handleRemoveVoter),
		recover:     http.HandlerFunc(n.handleRecover),
		ready:       func() error { return readiness(n.ready.Load(), n.store) },

		confirmClock: http.HandlerFunc(n.handleConfirmClock),
	}
}

// handlePartitions answers GET /v1/partitions: the partitions this node
// hosts with their local and remote offset ranges (broker.PartitionStatus).
func (n *Node) handlePartitions(w http.ResponseWriter, r *http.Request) {
	if !n.runsBroker(w, "ask a broker") {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.broker.Partitions())
}

// ScrubResult is what POST /v1/tiering/scrub answers.
type ScrubResult struct {
	Clean  bool                `json:"clean"`
	Report tiering.ScrubReport `json:"report"`
}

func (n *Node) handleScrub(w http.ResponseWriter, r *http.Request) {
	if !n.runsBroker(w, "ask a broker") {
		return
	}
	report, err := tiermanager.Scrub(r.Context(), n.tier, n.store.State())
	if err != nil {
		http.Error(w, "scrub failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ScrubResult{Clean: report.Clean(), Report: report})
}

// RecoverLine is one line of POST /v1/tiering/recover's answer (JSON
// lines): a partition's progress, then a last line with Finished or Error.
type RecoverLine struct {
	*tiermanager.RecoverProgress
	Finished bool   `json:"finished,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (n *Node) handleRecover(w http.ResponseWriter, r *http.Request) {
	if !n.runsBroker(w, "ask a broker") {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	encoder := json.NewEncoder(w)
	err := tiermanager.Recover(r.Context(), n.recovery, func(p tiermanager.RecoverProgress) {
		encoder.Encode(RecoverLine{RecoverProgress: &p})
		if flusher != nil {
			flusher.Flush()
		}
	})
	if err != nil {
		n.log.Error("recovery from the bucket failed", "err", err)
		encoder.Encode(RecoverLine{Error: err.Error()})
		return
	}
	encoder.Encode(RecoverLine{Finished: true})
}

// ClusterStatus is what GET /v1/cluster answers (strata cluster reads it).
type ClusterStatus struct {
	ClusterID string `json:"cluster_id"`
	NodeID    int32  `json:"node_id"`
	// Controller is the metadata quorum's leader, -1 when none is known.
	Controller int32          `json:"controller"`
	Voters     []VoterStatus  `json:"voters"`
	Brokers    []BrokerStatus `json:"brokers"`
}

// VoterStatus is one member of the metadata quorum.
type VoterStatus struct {
	NodeID  int32  `json:"node_id"`
	Address string `json:"address"`
	Voting  bool   `json:"voting"`
}

// BrokerStatus is one registered broker.
type BrokerStatus struct {
	ID        int32    `json:"id"`
	Endpoints []string `json:"endpoints"`
	Rack      string   `json:"rack,omitempty"`
	Fenced    bool     `json:"fenced"`
	Epoch     int64    `json:"epoch"`
}

func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request) {
	state := n.store.State()
	status := ClusterStatus{ClusterID: state.ClusterID(), NodeID: n.cfg.NodeID, Controller: -1}
	if leader, ok := n.store.Leader(); ok {
		status.Controller = leader
	}
	voters, err := n.store.Voters()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	for _, v := range voters {
		status.Voters = append(status.Voters, VoterStatus{NodeID: v.NodeID, Address: v.Address, Voting: v.Voting})
	}
	status.Brokers = brokerStatuses(state)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(status)
}

// brokerStatuses lists the registered brokers for the admin API and the
// status page.
func brokerStatuses(state *metadata.State) []BrokerStatus {
	var out []BrokerStatus
	for _, b := range state.Brokers() {
		bs := BrokerStatus{ID: b.ID, Rack: b.Rack, Fenced: b.Fenced, Epoch: b.Epoch}
		for _, e := range b.Endpoints {
			bs.Endpoints = append(bs.Endpoints, fmt.Sprintf("%s=%s", e.Listener, net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))))
		}
		out = append(out, bs)
	}
	return out
}

func (n *Node) handleAddVoter(w http.ResponseWriter, r *http.Request) {
	var voter VoterStatus
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&voter); err != nil || voter.Address == "" {
		http.Error(w, "want JSON {\"node_id\": N, \"address\": \"host:port\"}", http.StatusBadRequest)
		return
	}
	if err := n.store.AddVoter(r.Context(), voter.NodeID, voter.Address); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	n.log.Info("added a voter", "voter", voter.NodeID, "address", voter.Address)
	fmt.Fprintln(w, "ok")
}

func (n *Node) handleRemoveVoter(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
	if err != nil {
		http.Error(w, "bad node id", http.StatusBadRequest)
		return
	}
	if err := n.store.RemoveVoter(r.Context(), int32(id)); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	n.log.Info("removed a voter", "voter", id)
	fmt.Fprintln(w, "ok")
}

// ClockConfirmation is what POST /v1/clock/confirm answers: whether
// deletion by wall-clock age was paused by a clock jump (and now resumes).
type ClockConfirmation struct {
	WasPaused bool `json:"was_paused"`
}

// handleConfirmClock answers POST /v1/clock/confirm: the operator says the
// wall clock is right, and remote retention and offset expiry paused by a
// jump resume (internal/clockwatch).
func (n *Node) handleConfirmClock(w http.ResponseWriter, r *http.Request) {
	if !n.runsBroker(w, "nothing deletes by the clock here") {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ClockConfirmation{WasPaused: n.clock.Confirm()})
}

// runsBroker reports whether this node runs a broker; where it does not
// (--process-roles controller) it answers the request 409 Conflict, with
// instead saying where to turn.
func (n *Node) runsBroker(w http.ResponseWriter, instead string) bool {
	if n.broker != nil {
		return true
	}
	http.Error(w, "this node runs no broker (--process-roles controller): "+instead, http.StatusConflict)
	return false
}

// BrokerAddr is the bound address of a broker listener (nil on a
// controller-only node).
func (n *Node) BrokerAddr(listener string) net.Addr {
	if n.broker == nil {
		return nil
	}
	return n.broker.Addr(listener)
}

// AdminAddr is the bound admin address, or nil when disabled.
func (n *Node) AdminAddr() net.Addr {
	if n.adminLn == nil {
		return nil
	}
	return n.adminLn.Addr()
}

// Run serves until ctx is canceled (then shuts down gracefully) or a
// listener fails.
func (n *Node) Run(ctx context.Context) error {
	if n.broker != nil {
		go func() { n.serveErr <- n.broker.Serve() }()
		n.tiersOnce.Do(func() {
			go func() {
				defer close(n.tiersStopped)
				var clockChecks sync.WaitGroup
				clockChecks.Go(func() { n.clock.Run(n.tiersContext) })
				n.tiers.Run(n.tiersContext)
				clockChecks.Wait()
			}()
		})
	}
	if n.admin != nil {
		go func() {
			if err := n.admin.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.serveErr <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}
	// Ready once registered with the controller, unfenced, and leading
	// what waits for this node.
	for n.broker != nil && !n.broker.Ready() {
		select {
		case <-ctx.Done():
			return n.Close()
		case err := <-n.serveErr:
			n.log.Error("a listener failed, or the broker was refused (a second process with this node id); shutting down", "err", err)
			return errors.Join(err, n.Close())
		case <-n.store.Halted():
			return errors.Join(n.store.HaltError(), n.Close())
		case <-time.After(20 * time.Millisecond):
		}
	}
	n.ready.Store(true)
	attrs := []any{"node_id", n.cfg.NodeID, "cluster_id", n.store.State().ClusterID(), "data_dir", n.cfg.DataDir}
	if n.broker == nil {
		attrs = append(attrs, "roles", "controller")
	}
	for _, l := range n.cfg.Broker.Listeners {
		if a := n.BrokerAddr(l.Name); a != nil {
			attrs = append(attrs, "listener_"+l.Name, a.String())
		}
	}
	if a := n.AdminAddr(); a != nil {
		attrs = append(attrs, "admin", a.String())
	}
	n.log.Info("strata is ready", attrs...)
	var runErr error
	select {
	case <-ctx.Done():
		n.log.Info("shutting down")
	case runErr = <-n.serveErr:
		n.log.Error("a listener failed, or the broker was refused (a second process with this node id); shutting down", "err", runErr)
	case <-n.store.Halted():
		runErr = n.store.HaltError()
	}
	return errors.Join(runErr, n.Close())
}

// Close stops the broker (finishing in-flight requests, flushing logs),
// the admin listener and the metadata store.
func (n *Node) Close() error {
	n.ready.Store(false)
	var errs []error
	if err := n.closeBroker(); err != nil {
		errs = append(errs, fmt.Errorf("close broker: %w", err))
	}
	if n.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.admin.Shutdown(ctx)
		cancel()
		n.adminLogLimiter.Close()
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close metadata store: %w", err))
	}
	if len(errs) == 0 {
		n.log.Info("shutdown complete")
	}
	return errors.Join(errs...)
}

// controllerTLS is the metadata store's view of the controller port's TLS
// identity (nil: not TLS).
func controllerTLS(identity *authn.TLS) *metadata.ControllerTLS {
	if identity == nil {
		return nil
	}
	return &metadata.ControllerTLS{Identity: identity, CertificateNodeID: authn.NodeID}
}

// nextRemoteSegment returns the tier's Config.NextSegment over the
// metadata quorum's manifest: the readable segment holding the offset
// after segment's last, when a reader would read it from the object store
// (it starts below the broker's local log; the local one is served from
// disk, and reading it ahead would only cost GETs).
func nextRemoteSegment(store interface{ State() *metadata.State }, localStart func(metadata.TopicPartition) (int64, bool)) func(metadata.TopicPartition, metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
	return func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
		next, ok := store.State().SegmentContaining(p.TopicID, p.Partition, segment.LastOffset+1)
		if !ok {
			return next, false
		}
		if start, hosted := localStart(p); !hosted || next.BaseOffset >= start {
			return metadata.SegmentManifest{}, false
		}
		return next, true
	}
}
