// Package node wires one Strata process: the metadata quorum member, the
// broker and the admin HTTP listener (metrics, health, pprof).
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/metadata"
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
	// AdminListen serves /metrics, /healthz, /readyz and /debug/pprof;
	// default 127.0.0.1:9080; "-" disables it.
	AdminListen string
	// Broker configures the Kafka side; its NodeID, DataDir, Metadata,
	// Logger and Registerer are filled in by New.
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Node is a running Strata process.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    *metadata.Store
	broker   *broker.Server
	admin    *http.Server
	adminLn  net.Listener
	ready    atomic.Bool
	serveErr chan error
}

// New formats the data dir when allowed, opens the metadata store, waits
// for it to be ready, and opens the broker. Run starts serving.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	log := cfg.Logger
	if err := prepareDataDir(cfg, log); err != nil {
		return nil, err
	}
	store, err := metadata.Open(metadata.Config{
		NodeID:              cfg.NodeID,
		DataDir:             cfg.DataDir,
		ControllerListen:    cfg.ControllerListen,
		ControllerAdvertise: cfg.ControllerAdvertise,
		Logger:              log,
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata store: %w", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	log.Info("waiting for the metadata quorum", "controller_listen", cfg.ControllerListen)
	if err := store.WaitReady(waitCtx); err != nil {
		store.Close()
		return nil, fmt.Errorf("metadata quorum not ready (is a majority of --controller-quorum reachable?): %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bcfg := cfg.Broker
	bcfg.NodeID = cfg.NodeID
	bcfg.DataDir = cfg.DataDir
	bcfg.Metadata = store
	bcfg.Logger = log.With("component", "broker")
	bcfg.Registerer = reg
	b, err := broker.New(bcfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, store: store, broker: b, serveErr: make(chan error, 2)}
	if cfg.AdminListen != "-" {
		ln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			b.Close()
			store.Close()
			return nil, fmt.Errorf("admin listener: listen on %s: %w (set --admin-listen)", cfg.AdminListen, err)
		}
		n.adminLn = ln
		n.admin = &http.Server{Handler: n.adminHandler(reg), ReadHeaderTimeout: 10 * time.Second}
	}
	return n, nil
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
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := metadata.Format(cfg.DataDir, clusterID, cfg.NodeID, voters); err != nil {
		return fmt.Errorf("format data dir %s: %w", cfg.DataDir, err)
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	log.Info("formatted data dir", "data_dir", abs, "cluster_id", clusterID, "node_id", cfg.NodeID)
	return nil
}

func (n *Node) adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// BrokerAddr is the bound address of a broker listener.
func (n *Node) BrokerAddr(listener string) net.Addr { return n.broker.Addr(listener) }

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
	go func() { n.serveErr <- n.broker.Serve() }()
	if n.admin != nil {
		go func() {
			if err := n.admin.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.serveErr <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}
	n.ready.Store(true)
	attrs := []any{"node_id", n.cfg.NodeID, "cluster_id", n.store.State().ClusterID(), "data_dir", n.cfg.DataDir}
	for _, l := range n.cfg.Broker.Listeners {
		attrs = append(attrs, "listener_"+l.Name, n.broker.Addr(l.Name).String())
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
		n.log.Error("a listener failed; shutting down", "err", runErr)
	}
	return errors.Join(runErr, n.Close())
}

// Close stops the broker (finishing in-flight requests, flushing logs),
// the admin listener and the metadata store.
func (n *Node) Close() error {
	n.ready.Store(false)
	var errs []error
	if err := n.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close broker: %w", err))
	}
	if n.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.admin.Shutdown(ctx)
		cancel()
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close metadata store: %w", err))
	}
	if len(errs) == 0 {
		n.log.Info("shutdown complete")
	}
	return errors.Join(errs...)
}
