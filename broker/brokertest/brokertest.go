// Package brokertest starts in-process brokers for tests: a broker.Server
// on a real metadata store (metadatatest: one voter, short Raft timeouts)
// and a loopback client listener, on a data dir that survives a Restart.
package brokertest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// Node is one broker (and metadata voter) in this process.
type Node struct {
	t       testing.TB
	dir     string
	options []func(*broker.Config)

	// Store, Server and Addr are those of the running incarnation (they
	// change on Restart).
	Store  *metadata.Store
	Server *broker.Server
	Addr   string

	serving chan struct{}
}

// Start starts a node on a fresh directory and waits until it is ready
// (registered with its controller and leading what waits for it). options
// adjust the broker Config; the defaults are small for tests (4 offsets
// and transaction state partitions, no initial rebalance delay, logs discarded). It is stopped
// when the test ends.
func Start(t testing.TB, options ...func(*broker.Config)) *Node {
	t.Helper()
	n := &Node{t: t, dir: t.TempDir(), options: options}
	n.open()
	return n
}

// Restart stops the node gracefully and starts it again on the same data
// dir (a new incarnation: new Store, Server and Addr).
func (n *Node) Restart() {
	n.t.Helper()
	n.Stop()
	n.open()
}

// RestartAfter stops the node gracefully, runs fn on its metadata store
// alone (the broker down: no pass of its own sees what fn commits, as
// for a broker that is down while other brokers change the metadata),
// and starts the node again on the same data dir.
func (n *Node) RestartAfter(fn func(store *metadata.Store)) {
	n.t.Helper()
	n.Stop()
	store := metadatatest.Open(n.t, n.dir)
	fn(store)
	store.Close()
	n.open()
}

// Stop stops the node gracefully; stopping a stopped node does nothing.
func (n *Node) Stop() {
	if n.Server == nil {
		return
	}
	n.Server.Close()
	<-n.serving
	n.Store.Close()
	n.Server = nil
}

// Dir is the node's data dir (its metadata and partition logs).
func (n *Node) Dir() string { return n.dir }

// Client returns a franz-go client of the node (later options win), closed
// when the test ends.
func (n *Node) Client(opts ...kgo.Opt) *kgo.Client {
	n.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.Addr)}, opts...)...)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(cl.Close)
	return cl
}

func (n *Node) open() {
	t := n.t
	t.Helper()
	store := metadatatest.Open(t, n.dir)
	// Registered after the store's own cleanup, so it runs first: the
	// broker stops (controlled shutdown) while its controller still runs.
	t.Cleanup(n.Stop)
	cfg := broker.Config{
		NodeID:                     metadatatest.NodeID,
		Listeners:                  []broker.Listener{{Name: "CLIENT", Address: "127.0.0.1:0"}},
		DataDir:                    n.dir,
		Metadata:                   store,
		OffsetsTopicNumPartitions:  4,
		GroupInitialRebalanceDelay: -1,
		// As small for __transaction_state.
		TransactionStateLogNumPartitions: 4,
		Logger:                           slog.New(slog.DiscardHandler),
	}
	for _, option := range n.options {
		option(&cfg)
	}
	srv, err := broker.New(cfg)
	if err != nil {
		store.Close()
		t.Fatalf("brokertest: %v", err)
	}
	n.Store, n.Server, n.Addr = store, srv, srv.Addr("CLIENT").String()
	n.serving = make(chan struct{})
	go func() {
		defer close(n.serving)
		srv.Serve()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("brokertest: broker not ready (registration with the controller)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
