package metadata

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// handedOut holds every address freeAddress returned in this test binary:
// the kernel may offer a closed port again at once, and a test cluster
// once got one address for two voters ("found duplicate address").
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddress returns a loopback address with a port that was free a moment
// ago, never one it returned before.
func freeAddress(t *testing.T) string {
	t.Helper()
	for {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := listener.Addr().String()
		listener.Close()
		handedOut.Lock()
		fresh := !handedOut.addrs[addr]
		handedOut.addrs[addr] = true
		handedOut.Unlock()
		if fresh {
			return addr
		}
	}
}

// testSecret is the cluster secret of the package's test clusters.
var testSecret = mustParseSecret("metadata tests: the secret of every test cluster")

func mustParseSecret(text string) ClusterSecret {
	secret, err := ParseClusterSecret([]byte(text))
	if err != nil {
		panic(err)
	}
	return secret
}

// testConfig is a single-node config with short Raft timeouts.
func testConfig(dataDir, address string) Config {
	return Config{
		NodeID:             1,
		DataDir:            dataDir,
		ControllerListen:   address,
		ClusterSecret:      testSecret,
		Logger:             discardLogger(),
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		HandshakeTimeout:   time.Second,
	}
}

// formatTestDir formats a fresh directory for node 1 and returns its config.
func formatTestDir(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	address := freeAddress(t)
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: address}); err != nil {
		t.Fatal(err)
	}
	return testConfig(dir, address)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openReady opens a Store and waits until it is ready; it is closed at
// cleanup unless the test closes it first.
func openReady(t *testing.T, config Config) *Store {
	t.Helper()
	store, err := Open(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.WaitReady(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return store
}

func mustCreateTopic(t *testing.T, store *Store, spec TopicSpec) Topic {
	t.Helper()
	topic, err := store.CreateTopic(testContext(t), spec)
	if err != nil {
		t.Fatalf("create topic %q: %v", spec.Name, err)
	}
	return topic
}

func TestStoreSurvivesRestart(t *testing.T) {
	tests := []struct {
		name string
		// snapshotAfter takes a snapshot after that many steps (-1: none).
		snapshotAfter int
	}{
		{name: "log replay", snapshotAfter: -1},
		{name: "snapshot then log replay", snapshotAfter: 3},
		{name: "snapshot only", snapshotAfter: 6},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			config := formatTestDir(t)
			// Keep one entry behind a snapshot, so that the state after a
			// snapshot can only come back through it.
			config.TrailingLogs = 1
			store := openReady(t, config)
			if !store.IsLeader() {
				t.Fatal("a ready single voter is not the leader")
			}
			if leader, ok := store.Leader(); !ok || leader != 1 {
				t.Fatalf("Leader() = %d, %t", leader, ok)
			}
			if got := store.State().ClusterID(); got != "test-cluster" {
				t.Fatalf("cluster id %q", got)
			}
			ctx := testContext(t)
			registerTestBrokers(t, ctx, store, 1)
			steps := []func() error{
				func() error {
					_, err := store.CreateTopic(ctx, TopicSpec{Name: "orders", Assignments: [][]int32{{1}, {1}}, Configs: map[string]string{"retention.ms": "1000"}})
					return err
				},
				func() error {
					_, err := store.CreateTopic(ctx, TopicSpec{Name: "__consumer_offsets", Assignments: [][]int32{{1}}, Internal: true})
					return err
				},
				func() error {
					orders, _ := store.State().Topic("orders")
					return store.SetTopicConfigs(ctx, orders, map[string]string{"cleanup.policy": "compact"})
				},
				func() error { return store.CreatePartitions(ctx, "orders", 4, [][]int32{{1}, {1}}) },
				func() error {
					_, err := store.CreateTopic(ctx, TopicSpec{Name: "doomed", Assignments: [][]int32{{1}}})
					return err
				},
				func() error {
					_, err := store.DeleteTopic(ctx, "doomed")
					return err
				},
				func() error {
					_, err := store.AllocateProducerIDs(ctx, 1, 1000)
					return err
				},
			}
			for i, step := range steps {
				if err := step(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if i+1 == test.snapshotAfter {
					if err := store.snapshot(); err != nil {
						t.Fatalf("snapshot: %v", err)
					}
					if first, err := store.wal.FirstIndex(); err != nil || first <= 2 {
						t.Fatalf("log starts at %d (%v) after a snapshot, want it compacted", first, err)
					}
				}
			}
			before := store.State()
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}

			reopened := openReady(t, config)
			requireStatesEqual(t, reopened.State(), before)
			orders, ok := reopened.State().Topic("orders")
			if !ok || len(orders.Partitions) != 4 || !reflect.DeepEqual(orders.Configs, map[string]string{"cleanup.policy": "compact"}) {
				t.Fatalf("orders after restart: %+v", orders)
			}
			if _, ok := reopened.State().Topic("doomed"); ok {
				t.Fatal("deleted topic came back")
			}
			names := []string{}
			for _, topic := range reopened.State().Topics() {
				names = append(names, topic.Name)
			}
			if want := []string{"__consumer_offsets", "orders"}; !slices.Equal(names, want) {
				t.Fatalf("topics %v, want %v", names, want)
			}
		})
	}
}

func TestStoreCommands(t *testing.T) {
	store := openReady(t, formatTestDir(t))
	ctx := testContext(t)

	registerTestBrokers(t, ctx, store, 1, 2)
	changed := store.Changed()
	orders := mustCreateTopic(t, store, TopicSpec{Name: "orders", Assignments: [][]int32{{1, 2}, {2, 1}}, CreatedAtUnixMilli: 42})
	select {
	case <-changed:
	default:
		t.Fatal("Changed channel not closed after CreateTopic")
	}
	want := Topic{Name: "orders", ID: orders.ID, CreatedAtUnixMilli: 42, Partitions: []Partition{
		{Index: 0, Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}},
		{Index: 1, Replicas: []int32{2, 1}, Leader: 2, ISR: []int32{2, 1}},
	}}
	if !reflect.DeepEqual(orders, want) {
		t.Fatalf("created %+v\nwant    %+v", orders, want)
	}
	if orders.ID == ([16]byte{}) {
		t.Fatal("no topic id generated")
	}
	if byID, ok := store.State().TopicByID(orders.ID); !ok || byID.Name != "orders" {
		t.Fatalf("TopicByID: %+v, %t", byID, ok)
	}

	tests := []struct {
		name    string
		run     func() error
		wantErr error
	}{
		{"existing topic", func() error {
			_, err := store.CreateTopic(ctx, TopicSpec{Name: "orders", Assignments: [][]int32{{1}}})
			return err
		}, ErrTopicExists},
		{"illegal topic name", func() error {
			_, err := store.CreateTopic(ctx, TopicSpec{Name: "bad name", Assignments: [][]int32{{1}}})
			return err
		}, ErrInvalidTopic},
		{"no partitions", func() error {
			_, err := store.CreateTopic(ctx, TopicSpec{Name: "empty"})
			return err
		}, ErrInvalidPartitions},
		{"replica not a registered broker", func() error {
			_, err := store.CreateTopic(ctx, TopicSpec{Name: "nowhere", Assignments: [][]int32{{1}, {2, 3}}})
			return err
		}, ErrInvalidPartitions},
		{"delete unknown topic", func() error {
			_, err := store.DeleteTopic(ctx, "missing")
			return err
		}, ErrUnknownTopic},
		{"configs of unknown topic", func() error { return store.SetTopicConfigs(ctx, Topic{Name: "missing"}, nil) }, ErrUnknownTopic},
		{"same partition count", func() error { return store.CreatePartitions(ctx, "orders", 2, nil) }, ErrInvalidPartitions},
		{"fewer partitions", func() error { return store.CreatePartitions(ctx, "orders", 1, nil) }, ErrInvalidPartitions},
		{"assignments do not fit", func() error { return store.CreatePartitions(ctx, "orders", 4, [][]int32{{1}}) }, ErrInvalidPartitions},
		{"new partition on an unregistered broker", func() error { return store.CreatePartitions(ctx, "orders", 4, [][]int32{{1}, {3}}) }, ErrInvalidPartitions},
		{"partitions of unknown topic", func() error { return store.CreatePartitions(ctx, "missing", 2, [][]int32{{1}}) }, ErrUnknownTopic},
		{"empty producer id block", func() error {
			_, err := store.AllocateProducerIDs(ctx, 1, 0)
			return err
		}, ErrInvalidProducerIDs},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if err := test.run(); !errors.Is(err, test.wantErr) {
				t.Fatalf("error %v, want %v", err, test.wantErr)
			}
		})
	}

	first, err := store.AllocateProducerIDs(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	second, err := store.AllocateProducerIDs(ctx, 2, 10)
	if err != nil || second != first+10 {
		t.Fatalf("second block at %d (%v), want %d", second, err, first+10)
	}
	deleted, err := store.DeleteTopic(ctx, "orders")
	if err != nil || deleted.ID != orders.ID {
		t.Fatalf("DeleteTopic: %+v, %v", deleted, err)
	}

	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := store.CreateTopic(ctx, TopicSpec{Name: "late", Assignments: [][]int32{{1}}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("CreateTopic after Close: %v, want ErrClosed", err)
	}
	if err := store.WaitReady(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitReady after Close: %v, want ErrClosed", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Run("unformatted directory", func(t *testing.T) {
		_, err := Open(testConfig(t.TempDir(), freeAddress(t)))
		if !errors.Is(err, ErrNotFormatted) {
			t.Fatalf("Open: %v, want ErrNotFormatted", err)
		}
	})
	t.Run("other node id", func(t *testing.T) {
		config := formatTestDir(t)
		config.NodeID = 2
		if _, err := Open(config); !errors.Is(err, ErrNodeIDMismatch) {
			t.Fatalf("Open: %v, want ErrNodeIDMismatch", err)
		}
	})
	t.Run("directory in use", func(t *testing.T) {
		config := formatTestDir(t)
		first, err := Open(config)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		config.ControllerListen = freeAddress(t)
		if _, err := Open(config); !errors.Is(err, ErrDataDirLocked) {
			t.Fatalf("second Open: %v, want ErrDataDirLocked", err)
		}
	})
	t.Run("controller address in use", func(t *testing.T) {
		config := formatTestDir(t)
		listener, err := net.Listen("tcp", config.ControllerListen)
		if err != nil {
			t.Fatal(err)
		}
		defer listener.Close()
		if _, err := Open(config); err == nil {
			t.Fatal("Open succeeded on a taken port")
		}
		// The failed Open released the directory.
		listener.Close()
		store, err := Open(config)
		if err != nil {
			t.Fatalf("Open after a failed Open: %v", err)
		}
		store.Close()
	})
	t.Run("unspecified advertise address", func(t *testing.T) {
		config := formatTestDir(t)
		config.ControllerListen = "0.0.0.0:0"
		if _, err := Open(config); err == nil {
			t.Fatal("Open advertised 0.0.0.0")
		}
	})
}

// TestSoleVoterStandsAtOnce opens, closes and reopens a node that is the
// only voter of its quorum with a heartbeat timeout of an hour: it must be
// ready (elected) within the test's context both times, where Raft alone
// would have it wait the hour out before standing.
func TestSoleVoterStandsAtOnce(t *testing.T) {
	config := formatTestDir(t)
	config.HeartbeatTimeout = time.Hour
	config.ElectionTimeout = time.Hour
	config.LeaderLeaseTimeout = time.Second
	for open := range 2 {
		store, err := Open(config)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.WaitReady(testContext(t)); err != nil {
			store.Close()
			t.Fatalf("open %d: a sole voter was not elected: %v", open, err)
		}
		// The configured timeout is back: it paces followers' checks.
		if got := store.raft.ReloadableConfig().HeartbeatTimeout; got != time.Hour {
			t.Errorf("open %d: heartbeat timeout %v after the election, want the configured hour", open, got)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreNotLeader(t *testing.T) {
	dir := t.TempDir()
	address := freeAddress(t)
	// Two voters, the other never started: no election can be won.
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: address, 2: freeAddress(t)}); err != nil {
		t.Fatal(err)
	}
	config := testConfig(dir, address)
	config.HeartbeatTimeout = time.Minute
	config.ElectionTimeout = time.Minute
	config.LeaderLeaseTimeout = time.Second
	store, err := Open(config)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// A proposal waits for a leader until its context ends.
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := store.CreateTopic(short, TopicSpec{Name: "orders", Assignments: [][]int32{{1}}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("CreateTopic before an election: %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := store.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady with a cancelled context: %v", err)
	}
}

// TestProducerIDBlocksNeverOverlap allocates blocks across restarts (with
// and without snapshots) and checks that no two blocks share an id.
func TestProducerIDBlocksNeverOverlap(t *testing.T) {
	config := formatTestDir(t)
	type block struct{ first, count int64 }
	var blocks []block
	for restart := range 4 {
		store := openReady(t, config)
		ctx := testContext(t)
		for i := range 5 {
			count := int64(1 + (restart*7+i*13)%50)
			first, err := store.AllocateProducerIDs(ctx, int32(i%3), count)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, block{first, count})
		}
		if restart%2 == 1 {
			if err := store.snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(blocks, func(a, b block) int { return int(a.first - b.first) })
	for i := 1; i < len(blocks); i++ {
		if previous := blocks[i-1]; previous.first+previous.count > blocks[i].first {
			t.Fatalf("blocks %+v and %+v overlap", previous, blocks[i])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := Config{NodeID: 1, DataDir: "/data", ClusterSecret: testSecret}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr bool
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "negative node id", change: func(c *Config) { c.NodeID = -1 }, wantErr: true},
		{name: "no data dir", change: func(c *Config) { c.DataDir = "" }, wantErr: true},
		{name: "listen without port", change: func(c *Config) { c.ControllerListen = "localhost" }, wantErr: true},
		{name: "listen on all interfaces", change: func(c *Config) { c.ControllerListen = "0.0.0.0:9093"; c.ControllerAdvertise = "broker-1:9093" }},
		{name: "advertise unspecified", change: func(c *Config) { c.ControllerAdvertise = "0.0.0.0:9093" }, wantErr: true},
		{name: "advertise hostname", change: func(c *Config) { c.ControllerAdvertise = "controller-1.strata:9093" }},
		{name: "election below heartbeat", change: func(c *Config) {
			c.HeartbeatTimeout = time.Second
			c.ElectionTimeout = 100 * time.Millisecond
		}, wantErr: true},
		{name: "lease above heartbeat", change: func(c *Config) {
			c.HeartbeatTimeout = 100 * time.Millisecond
			c.LeaderLeaseTimeout = time.Second
		}, wantErr: true},
		{name: "short heartbeat takes a short default lease", change: func(c *Config) {
			c.HeartbeatTimeout = 50 * time.Millisecond
			c.ElectionTimeout = 50 * time.Millisecond
		}},
		{name: "timeout too small", change: func(c *Config) { c.HandshakeTimeout = time.Microsecond }, wantErr: true},
		{name: "controller TLS without a way to read node ids", change: func(c *Config) { c.TLS = &ControllerTLS{} }, wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			config := valid
			test.change(&config)
			if err := config.Validate(); (err != nil) != test.wantErr {
				t.Fatalf("Validate: %v, want error %t", err, test.wantErr)
			}
		})
	}
}

// TestStoreStopsAtAnUnappliableEntry: a committed entry that this build
// cannot decode (here put in the log past the proposal checks, as a newer
// build or a corrupted log would) halts the node with an error naming the
// entry, and it halts again at the same entry on every restart, never
// panicking and never applying past it.
func TestStoreStopsAtAnUnappliableEntry(t *testing.T) {
	config := formatTestDir(t)
	store := openReady(t, config)
	ctx := testContext(t)
	registerTestBrokers(t, ctx, store, 1)
	if _, err := store.CreateTopic(ctx, TopicSpec{Name: "before", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	future := store.raft.Apply([]byte{0x7e, 1, 0xde, 0xad}, time.Second)
	if err := future.Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-store.Halted():
	case <-ctx.Done():
		t.Fatal("the store did not halt at the unappliable entry")
	}
	var halt *UnappliableEntryError
	if err := store.HaltError(); !errors.As(err, &halt) || halt.Index != future.Index() || halt.Type != 0x7e || halt.Version != 1 {
		t.Fatalf("HaltError: %v, want entry %d, type 0x7e, version 1", err, future.Index())
	}
	if _, ok := store.State().Topic("before"); !ok {
		t.Fatal("the state before the entry is lost")
	}
	if err := store.WaitReady(ctx); !errors.As(err, &halt) {
		t.Fatalf("WaitReady of a halted store: %v, want the halt", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	for restart := 1; restart <= 2; restart++ {
		reopened, err := Open(config)
		if err != nil {
			t.Fatal(err)
		}
		err = reopened.WaitReady(ctx)
		if !errors.As(err, &halt) || halt.Index != future.Index() {
			t.Fatalf("restart %d: WaitReady: %v, want a halt at entry %d", restart, err, future.Index())
		}
		if _, ok := reopened.State().Topic("before"); !ok {
			t.Fatalf("restart %d: the state before the entry is lost", restart)
		}
		if err := reopened.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreStopsWhenTheRaftLogFails: a write to the Raft log that fails
// (here an injected EIO, as a failing disk gives) halts the node with a
// *LogStorageError naming the directory and the cause, as Kafka stops a
// broker whose metadata log directory fails, instead of running on as a
// voter that can persist nothing.
func TestStoreStopsWhenTheRaftLogFails(t *testing.T) {
	config := formatTestDir(t)
	var failing atomic.Bool
	config.raftStarting = func(s *Store) {
		s.wal.faultLogWrites = func() error {
			if failing.Load() {
				return syscall.EIO
			}
			return nil
		}
	}
	store := openReady(t, config)
	ctx := testContext(t)
	registerTestBrokers(t, ctx, store, 1)
	if err := store.HaltError(); err != nil {
		t.Fatalf("HaltError before any failure: %v", err)
	}
	failing.Store(true)
	createCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := store.CreateTopic(createCtx, TopicSpec{Name: "after", Assignments: [][]int32{{1}}})
	cancel()
	if err == nil {
		t.Fatal("CreateTopic succeeded with a failing raft log")
	}
	select {
	case <-store.Halted():
	case <-ctx.Done():
		t.Fatal("the store did not halt when its raft log failed")
	}
	var storageErr *LogStorageError
	if err := store.HaltError(); !errors.As(err, &storageErr) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), filepath.Join("metadata", "raft")) {
		t.Fatalf("HaltError: %v, want a *LogStorageError wrapping EIO naming the raft directory", err)
	}
}
