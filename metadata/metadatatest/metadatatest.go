// Package metadatatest starts real metadata Stores (single voter, Raft with
// short timeouts, loopback controller port) for tests of other packages, so
// they exercise the same metadata path as production.
package metadatatest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// ClusterID is the cluster id of the directories Open formats.
const ClusterID = "metadatatest"

// NodeID is the node id of the directories Open formats.
const NodeID int32 = 1

// Start returns a ready Store on a fresh temporary directory. It is closed
// when the test ends.
func Start(t testing.TB) *metadata.Store {
	t.Helper()
	return Open(t, t.TempDir())
}

// addresses remembers the controller address of every directory Open
// formatted, so a restart on the same directory listens where its Raft
// configuration says it does (a single voter at another address would
// have to wait for an election timeout it cannot win at once).
var addresses sync.Map // data dir → controller address

// Open returns a ready Store on dataDir, formatting it first if it is not
// formatted yet (use it again on the same directory to test a restart;
// close the previous Store first). The Store is closed when the test ends.
func Open(t testing.TB, dataDir string) *metadata.Store {
	t.Helper()
	var store *metadata.Store
	for attempt := 1; ; attempt++ {
		address := freeAddress(t)
		known, restart := addresses.Load(dataDir)
		if restart {
			address = known.(string)
		}
		if _, _, err := metadata.ReadMetaProperties(dataDir); errors.Is(err, metadata.ErrNotFormatted) {
			if err := metadata.Format(dataDir, ClusterID, NodeID, map[int32]string{NodeID: address}); err != nil {
				t.Fatalf("metadatatest: %v", err)
			}
		}
		var err error
		store, err = metadata.Open(Config(dataDir, address))
		if err != nil && !restart && errors.Is(err, syscall.EADDRINUSE) && attempt < 5 {
			// Another test took the port between freeAddress and the
			// listen: format the new directory again on another one.
			entries, _ := os.ReadDir(dataDir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dataDir, e.Name()))
			}
			continue
		}
		if err != nil {
			t.Fatalf("metadatatest: %v", err)
		}
		addresses.Store(dataDir, address)
		break
	}
	t.Cleanup(func() { store.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.WaitReady(ctx); err != nil {
		t.Fatalf("metadatatest: %v", err)
	}
	return store
}

// RegisterBroker registers broker id (a new incarnation) with store and
// unfences it, as a broker process does when it starts, and returns its
// broker epoch. Topics may be placed only on registered brokers. It never
// heartbeats: the controller fences it once its session ends
// (metadata.DefaultBrokerSessionTimeout after the controller took over) and
// then moves its leaderships.
func RegisterBroker(t testing.TB, store *metadata.Store, id int32) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	epoch, err := store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: id, IncarnationID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9092 + id, SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatalf("metadatatest: register broker %d: %v", id, err)
	}
	if err := store.SetBrokerFenced(ctx, id, epoch, false); err != nil {
		t.Fatalf("metadatatest: unfence broker %d: %v", id, err)
	}
	return epoch
}

// ReportApplying makes broker id (registered as brokerEpoch, e.g. by
// RegisterBroker) report every state store applies, as a broker process
// does once it has acted on it, until the test ends. Without it an
// unfenced broker that never reports holds CreateTopics, CreatePartitions
// and DeleteTopics (which wait until every live broker has applied the
// change) until its session ends. It does not heartbeat.
func ReportApplying(t testing.TB, store *metadata.Store, id int32, brokerEpoch int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			state, changed := store.Watch()
			// An error (fenced, not leading yet) is retried with the
			// next state.
			_ = store.ReportApplied(ctx, id, brokerEpoch, state.AppliedIndex())
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	})
}

// ClusterSecret is the secret of every test cluster.
var ClusterSecret = func() metadata.ClusterSecret {
	secret, err := metadata.ParseClusterSecret([]byte("metadatatest: the secret of every test cluster"))
	if err != nil {
		panic(err)
	}
	return secret
}()

// Config returns a test configuration for node NodeID: controller on
// address, short Raft timeouts, logs discarded.
func Config(dataDir, address string) metadata.Config {
	return metadata.Config{
		NodeID:             NodeID,
		DataDir:            dataDir,
		ControllerListen:   address,
		ClusterSecret:      ClusterSecret,
		Logger:             slog.New(slog.DiscardHandler),
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		HandshakeTimeout:   time.Second,
	}
}

// freeAddress returns a loopback address whose port was free a moment ago.
func freeAddress(t testing.TB) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("metadatatest: %v", err)
	}
	defer listener.Close()
	return listener.Addr().String()
}
