package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// Transport tuning; not worth a Config field yet.
const (
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	// readyPollInterval is how often WaitReady re-checks Raft's view of
	// the leader, which it cannot wait on.
	readyPollInterval = 10 * time.Millisecond
)

// Store is a node's replica of the cluster metadata: a Raft node whose state
// machine holds the metadata State. Reads (State, Watch, Changed) are local
// and cheap; writes are proposed through Raft and must run on the leader.
//
// All methods are safe for concurrent use. Close stops everything Open
// started.
type Store struct {
	config    Config // defaults applied
	clusterID string
	// bootstrap are the commands the first leader proposes before
	// InitCluster (bootstrap.go); read at Open.
	bootstrap []command
	// directoryID is the data directory's id (meta.properties
	// directory.id).
	directoryID [16]byte
	logger      *slog.Logger

	unlock    func() error
	wal       *raftLog
	layer     *streamLayer
	transport *gatedTransport
	fsm       *fsm
	raft      *raft.Raft
	// raftForResolve is raft once it exists; the stream layer's resolver
	// and the RPC handler run before and during its construction.
	raftForResolve atomic.Pointer[raft.Raft]

	// rpc is the connection to the leader for forwarded requests.
	rpc rpcClient
	// controller runs the leader's duties towards brokers.
	controller *controller

	// halt is closed (once, by haltWith, after haltErr is set) when this
	// node must stop: the FSM met a committed entry it cannot apply, or
	// the Raft log's storage failed.
	halt     chan struct{}
	haltOnce sync.Once
	haltErr  error

	// closing is closed by Close so that waits return ErrClosed.
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	// goroutines tracks the leader-duties loop and the goroutines that
	// wait for Raft futures on behalf of a caller whose context may end
	// first.
	goroutines sync.WaitGroup

	// beforeVoterChange, when set (tests), runs on the leader just before
	// it hands a voter change to Raft.
	beforeVoterChange atomic.Pointer[func()]
	// electionExpected is true while this node stands for election on
	// purpose (standAtOnceIfSoleVoter): Raft's warning for it is logged
	// at INFO.
	electionExpected atomic.Bool
	// beforeRPC, when set (tests), runs before this node handles a
	// controller RPC of the given kind.
	beforeRPC atomic.Pointer[func(kind uint8)]
}

// DirectoryID returns the id of the data directory the Store was opened
// on (meta.properties' directory.id): the same for every process that runs
// on this directory, different on any other. A broker registers with it.
func (s *Store) DirectoryID() [16]byte { return s.directoryID }

// Open starts the metadata Raft node on a data directory prepared by Format.
// It fails with ErrNotFormatted on an unformatted directory, ErrNodeIDMismatch
// when cfg.NodeID differs from meta.properties, and ErrDataDirLocked when
// another Store has the directory open. It never bootstraps Raft. Call
// WaitReady before relying on the state.
func Open(cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	properties, err := readMetaProperties(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	clusterID, nodeID := properties.clusterID, properties.nodeID
	if nodeID != cfg.NodeID {
		return nil, fmt.Errorf("metadata: open %s: formatted for node %d, configured as node %d: %w", cfg.DataDir, nodeID, cfg.NodeID, ErrNodeIDMismatch)
	}

	s := &Store{
		config:    cfg,
		clusterID: clusterID,
		logger:    cfg.Logger.With("component", "metadata", "node", cfg.NodeID),
		closing:   make(chan struct{}),
		halt:      make(chan struct{}),
	}
	// On failure, release whatever was acquired, in reverse order.
	var cleanups []func() error
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	metadataPath := filepath.Join(cfg.DataDir, metadataDirectory)
	s.unlock, err = lockDirectory(filepath.Join(metadataPath, lockFile))
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", cfg.DataDir, err)
	}
	cleanups = append(cleanups, s.unlock)
	if s.directoryID, err = ensureDirectoryID(cfg.DataDir, properties); err != nil {
		return nil, err
	}

	raftPath := filepath.Join(metadataPath, raftDirectory)
	if _, err := os.Stat(raftPath); err != nil {
		return nil, fmt.Errorf("metadata: open %s: formatted, but the raft log is gone: %w: %w", cfg.DataDir, ErrCorrupt, err)
	}
	var snapshots *durableSnapshotStore
	s.wal, snapshots, err = openRaftStores(metadataPath, newHCLogger(s.logger, "raft-wal"), newHCLogger(s.logger, "raft-snapshots"))
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", cfg.DataDir, err)
	}
	cleanups = append(cleanups, s.wal.Close)
	if s.bootstrap, err = readBootstrap(metadataPath); err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", cfg.DataDir, err)
	}
	hasState, err := raft.HasExistingState(s.wal, s.wal, snapshots)
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", cfg.DataDir, err)
	}
	_, isVoter := cfg.Voters[cfg.NodeID]
	joining := !hasState && len(cfg.Voters) > 0 && !isVoter
	if !hasState && !joining {
		return nil, fmt.Errorf("metadata: open %s: raft was never bootstrapped here: %w", cfg.DataDir, ErrCorrupt)
	}

	s.layer, err = listenStreamLayer(streamLayerConfig{
		clusterID:        clusterID,
		nodeID:           cfg.NodeID,
		secret:           cfg.ClusterSecret,
		tls:              cfg.TLS,
		listen:           cfg.ControllerListen,
		advertise:        cfg.ControllerAdvertise,
		handshakeTimeout: cfg.HandshakeTimeout,
		resolve:          s.resolveNodeID,
		serveRPC:         s.serveRPC,
		logger:           s.logger,
	})
	if err != nil {
		return nil, err
	}
	s.transport = &gatedTransport{NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  s.layer,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  newHCLogger(s.logger, "raft-transport"),
	})}
	cleanups = append(cleanups, s.transport.Close)

	raftConfig := raft.DefaultConfig()
	raftConfig.LocalID = serverID(cfg.NodeID)
	raftConfig.HeartbeatTimeout = cfg.HeartbeatTimeout
	raftConfig.ElectionTimeout = cfg.ElectionTimeout
	raftConfig.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	raftConfig.SnapshotThreshold = cfg.SnapshotThreshold
	raftConfig.SnapshotInterval = cfg.SnapshotInterval
	raftConfig.TrailingLogs = cfg.TrailingLogs
	raftConfig.Logger = newRaftLogger(s.logger, &s.electionExpected)
	raftConfig.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(raftConfig); err != nil {
		return nil, fmt.Errorf("metadata: open %s: raft config: %w", cfg.DataDir, err)
	}

	s.fsm = newFSM(s.logger)
	s.wal.onFailure = s.logStorageFailed
	s.goroutines.Go(func() {
		select {
		case <-s.fsm.haltedSignal:
			s.haltWith(s.fsm.halted.Load())
		case <-s.closing:
		}
	})
	s.controller = newController(s, cfg.BrokerSessionTimeout, cfg.preferredLeaderInterval)
	if cfg.raftStarting != nil {
		cfg.raftStarting(s)
	}
	s.raft, err = raft.NewRaft(raftConfig, s.fsm, s.wal, s.wal, snapshots, s.transport)
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: start raft: %w", cfg.DataDir, err)
	}
	s.raftForResolve.Store(s.raft)
	s.standAtOnceIfSoleVoter(raftConfig)
	s.goroutines.Go(s.runLeaderDuties)
	if joining {
		s.goroutines.Go(s.joinAsNonvoter)
	}
	s.logger.Info("metadata: raft started", "cluster", clusterID, "address", s.layer.Addr().String(), "joining_as_non_voter", joining)
	return s, nil
}

// standAtOnceIfSoleVoter has a node that is the only voter of its
// configuration stand for election at once. Raft has a follower wait out a
// heartbeat timeout (HeartbeatTimeout to twice it: 1–2 s by default) before
// it stands, so that voters do not split the vote; a sole voter has nobody
// to split it with, and the wait was most of a single-node restart (a
// client's remote reads, its reconnect backoff, all waited on it). Raft
// checks a follower's heartbeat at once when its heartbeat timeout is
// shortened (ReloadConfig); a node that never heard from a leader then
// stands, and its own vote elects it. The configured timeout is restored
// right away: it only sets when the next check runs. Nothing changes for a
// node with other voters: it waits as before. Where a step fails the node
// waits the timeout out, as Raft alone would.
func (s *Store) standAtOnceIfSoleVoter(configured *raft.Config) {
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		s.logger.Warn("metadata: cannot read the raft configuration; the election waits for the heartbeat timeout", "err", err)
		return
	}
	var voters []raft.ServerID
	for _, server := range future.Configuration().Servers {
		if server.Suffrage == raft.Voter {
			voters = append(voters, server.ID)
		}
	}
	if len(voters) != 1 || voters[0] != configured.LocalID {
		return
	}
	reload := s.raft.ReloadableConfig()
	shorter := reload
	// Still no shorter than the leader lease, which Raft requires.
	shorter.HeartbeatTimeout = max(configured.HeartbeatTimeout-time.Millisecond, configured.LeaderLeaseTimeout)
	if shorter.HeartbeatTimeout == reload.HeartbeatTimeout {
		return // the lease leaves no room: wait the timeout out
	}
	s.electionExpected.Store(true)
	if err := s.raft.ReloadConfig(shorter); err != nil {
		s.electionExpected.Store(false)
		s.logger.Warn("metadata: cannot shorten the heartbeat timeout; the election waits for it", "err", err)
		return
	}
	if err := s.raft.ReloadConfig(reload); err != nil {
		// Raft validated this configuration when it started.
		s.logger.Error("metadata: cannot restore the configured heartbeat timeout", "heartbeat_timeout", reload.HeartbeatTimeout, "err", err)
	}
	s.logger.Info("metadata: the only voter of its quorum; standing for election at once")
}

// resolveNodeID returns the node id Raft's latest configuration lists at
// address, so that every connection verifies it reached the node it meant.
func (s *Store) resolveNodeID(address raft.ServerAddress) (int32, bool) {
	r := s.raftForResolve.Load()
	if r == nil {
		return 0, false
	}
	future := r.GetConfiguration()
	if future.Error() != nil {
		return 0, false
	}
	for _, server := range future.Configuration().Servers {
		if server.Address != address {
			continue
		}
		id, err := strconv.ParseInt(string(server.ID), 10, 32)
		if err != nil {
			return 0, false
		}
		return int32(id), true
	}
	return 0, false
}

// ClusterID returns the cluster id recorded in meta.properties.
func (s *Store) ClusterID() string { return s.clusterID }

// NodeID returns this node's id.
func (s *Store) NodeID() int32 { return s.config.NodeID }

// ControllerAddress returns the address this node advertises to its peers.
func (s *Store) ControllerAddress() string { return s.layer.Addr().String() }

// IsLeader reports whether this node is the Raft leader (the controller).
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the node id of the current leader as far as this node
// knows, and false when it knows none.
func (s *Store) Leader() (nodeID int32, ok bool) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return -1, false
	}
	parsed, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1, false
	}
	return int32(parsed), true
}

// State returns the current state. It is immutable; calling State again
// later may return a newer one.
func (s *Store) State() *State { return s.fsm.state() }

// Halted is closed when this node must stop (HaltError says why): it met
// a committed entry it cannot apply (it applies nothing more), or its
// Raft log's storage failed (*LogStorageError).
func (s *Store) Halted() <-chan struct{} { return s.halt }

// HaltError returns why this node halted — an *UnappliableEntryError or a
// *LogStorageError — or nil while it has not.
func (s *Store) HaltError() error {
	select {
	case <-s.halt:
		return s.haltErr
	default:
		return nil
	}
}

// haltWith halts the node with err, unless it halted already.
func (s *Store) haltWith(err error) {
	s.haltOnce.Do(func() {
		s.haltErr = err
		close(s.halt)
	})
}

// LogStorageError halts a node whose Raft log or stable store could not be
// written.
type LogStorageError struct {
	Dir string
	Err error
}

func (e *LogStorageError) Error() string {
	return fmt.Sprintf("metadata: the raft log in %s could not be written (%v); this node stopped, as Kafka stops a broker whose metadata log directory fails: free space or replace the disk, then restart it (the other voters keep the quorum meanwhile)", e.Dir, e.Err)
}

func (e *LogStorageError) Unwrap() error { return e.Err }

// logStorageFailed is the Raft log's failure report: the first failure
// halts the node.
func (s *Store) logStorageFailed(err error) {
	herr := &LogStorageError{Dir: filepath.Join(s.config.DataDir, metadataDirectory, raftDirectory), Err: err}
	select {
	case <-s.halt:
	default:
		s.logger.Error("metadata: the raft log could not be written; stopping this node", "err", err, "dir", herr.Dir)
	}
	s.haltWith(herr)
}

// Changed returns a channel that is closed when a newer State is published
// (on every applied log entry). To wait for a condition without missing a
// change, take the channel before reading State, or use Watch.
func (s *Store) Changed() <-chan struct{} {
	_, changed := s.fsm.watch()
	return changed
}

// Watch returns the current State together with the channel closed when a
// newer one replaces it.
func (s *Store) Watch() (*State, <-chan struct{}) { return s.fsm.watch() }

// runLeaderDuties does what falls to this node while it leads: for now,
// recording the cluster id of meta.properties in the state right after
// Format (InitCluster). It runs until Close.
func (s *Store) runLeaderDuties() {
	leaderChanges := s.raft.LeaderCh()
	isLeader := false
	backoff := 10 * time.Millisecond
	for {
		var retry <-chan time.Time
		if isLeader && s.State().ClusterID() == "" {
			if err := s.recordClusterID(); err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				s.logger.Warn("metadata: record cluster id", "error", err)
				retry = time.After(backoff)
				backoff = min(2*backoff, time.Second)
			}
		}
		select {
		case isLeader = <-leaderChanges:
			s.controller.setLeading(isLeader && !s.config.withoutController)
		case <-retry:
		case <-s.closing:
			s.controller.setLeading(false)
			return
		}
	}
}

// recordClusterID proposes InitCluster once every earlier entry is applied
// and the state still has no cluster id.
func (s *Store) recordClusterID() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultApplyEnqueueTimeout)
	defer cancel()
	if err := s.await(ctx, s.raft.Barrier(enqueueTimeout(ctx))); err != nil {
		return err
	}
	if s.State().ClusterID() != "" {
		return nil
	}
	// The bootstrap commands first (Format validated them), so the
	// cluster is ready only once they apply.
	for _, c := range s.bootstrap {
		if _, err := s.propose(ctx, c); err != nil {
			return fmt.Errorf("bootstrap command %s: %w", c.commandType(), err)
		}
	}
	_, err := s.propose(ctx, &initClusterCommand{clusterID: s.clusterID})
	return err
}

// WaitReady waits until this node knows a leader, has applied everything
// that was committed when it learned of it, and the cluster id is recorded
// in the state (the first leader after Format records it). It returns
// ErrClusterIDMismatch if the replicated cluster id differs from
// meta.properties'. On a follower "committed" is the commit index the
// leader has told it, so readiness there is as fresh as that message.
func (s *Store) WaitReady(ctx context.Context) error {
	ticker := time.NewTicker(readyPollInterval)
	defer ticker.Stop()
	for {
		ready, err := s.checkReady(ctx)
		if ready || err != nil {
			return err
		}
		select {
		case <-s.Changed():
		case <-ticker.C:
		case <-s.Halted():
		case <-ctx.Done():
			return fmt.Errorf("metadata: wait ready: %w", ctx.Err())
		case <-s.closing:
			return ErrClosed
		}
	}
}

// checkReady makes one attempt at readiness; false with a nil error means
// "not yet".
func (s *Store) checkReady(ctx context.Context) (bool, error) {
	select {
	case <-s.closing:
		return false, ErrClosed
	default:
	}
	if err := s.HaltError(); err != nil {
		return false, err
	}
	if _, ok := s.Leader(); !ok {
		return false, nil
	}
	switch clusterID := s.State().ClusterID(); clusterID {
	case "":
		return false, nil // not replayed yet, or not recorded yet
	case s.clusterID:
	default:
		return false, fmt.Errorf("metadata: replicated state belongs to cluster %q, meta.properties says %q: %w", clusterID, s.clusterID, ErrClusterIDMismatch)
	}
	if !s.IsLeader() {
		if s.raft.AppliedIndex() < s.raft.CommitIndex() {
			return false, nil
		}
		if err := s.HaltError(); err != nil {
			return false, err
		}
		return true, nil
	}
	// A barrier returns once every entry before it has been applied; the
	// state machine may have halted at one of them.
	if err := s.await(ctx, s.raft.Barrier(enqueueTimeout(ctx))); err != nil {
		if errors.Is(err, ErrNotLeader) {
			return false, nil
		}
		return false, fmt.Errorf("metadata: wait ready: %w", err)
	}
	if err := s.HaltError(); err != nil {
		return false, err
	}
	return true, nil
}

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name string
	// ID is the topic id; zero means a new random UUID.
	ID [16]byte
	// Assignments holds the replica set (broker ids, preferred leader
	// first) of each partition; its length is the partition count. The
	// first replica becomes the leader and all replicas start in sync.
	Assignments [][]int32
	// Configs are the explicitly set topic configs, validated by the
	// caller.
	Configs map[string]string
	// Internal marks a topic Strata manages (e.g. __consumer_offsets).
	Internal bool
	// CreatedAtUnixMilli is the creation time; zero means now.
	CreatedAtUnixMilli int64
}

// CreateTopic creates a topic and returns it as committed. It fails with
// ErrInvalidTopic or ErrInvalidPartitions for a bad spec (also, when the
// command is applied, for a replica that is not a registered broker),
// ErrTopicExists if the name is taken, ErrNotLeader on a follower.
func (s *Store) CreateTopic(ctx context.Context, spec TopicSpec) (Topic, error) {
	if err := ValidateTopicName(spec.Name); err != nil {
		return Topic{}, err
	}
	if spec.ID == ([16]byte{}) {
		spec.ID = uuid.New()
	}
	if spec.CreatedAtUnixMilli == 0 {
		spec.CreatedAtUnixMilli = time.Now().UnixMilli()
	}
	topic := Topic{
		Name:               spec.Name,
		ID:                 spec.ID,
		Configs:            cloneConfigs(spec.Configs),
		Partitions:         newPartitions(0, spec.Assignments),
		Internal:           spec.Internal,
		CreatedAtUnixMilli: spec.CreatedAtUnixMilli,
	}
	if err := validateTopic(&topic); err != nil {
		return Topic{}, err
	}
	result, err := s.propose(ctx, &createTopicCommand{topic: topic})
	if err != nil {
		return Topic{}, err
	}
	return result.(Topic), nil
}

// DeleteTopic deletes a topic and returns it as it was. It fails with
// ErrUnknownTopic if there is none of that name.
func (s *Store) DeleteTopic(ctx context.Context, name string) (Topic, error) {
	result, err := s.propose(ctx, &deleteTopicCommand{name: name})
	if err != nil {
		return Topic{}, err
	}
	return result.(Topic), nil
}

// SetTopicConfigs replaces the explicitly set configs of topic, as read
// from State, with configs (nil or empty removes them all). It fails with
// ErrUnknownTopic when the topic is gone (or was deleted and created
// again: the id differs), and with ErrStaleTopicConfigs when its configs
// are no longer topic.Configs — another change came first; compute the
// change again from the new State. Kafka's AlterConfigs maps to it
// directly; IncrementalAlterConfigs computes the new map from topic's.
func (s *Store) SetTopicConfigs(ctx context.Context, topic Topic, configs map[string]string) error {
	_, err := s.propose(ctx, &alterTopicConfigsCommand{
		name: topic.Name, id: topic.ID, configs: cloneConfigs(configs),
		checked: true, from: cloneConfigs(topic.Configs),
	})
	return err
}

// CreatePartitions grows a topic to total partitions; assignments holds the
// replica sets of the new partitions (total minus the current count). It
// fails with ErrInvalidPartitions unless total is larger than the current
// count and the assignments fit, on registered brokers.
func (s *Store) CreatePartitions(ctx context.Context, name string, total int32, assignments [][]int32) error {
	current := int32(0)
	if topic, ok := s.State().Topic(name); ok {
		current = int32(len(topic.Partitions))
	}
	_, err := s.propose(ctx, &createPartitionsCommand{
		name:       name,
		total:      total,
		partitions: newPartitions(current, assignments),
	})
	return err
}

// AllocateProducerIDs hands brokerID a block of count (1..MaxProducerIDBlock)
// producer ids and returns the first; the block is first..first+count-1 and
// never overlaps another block of the cluster.
func (s *Store) AllocateProducerIDs(ctx context.Context, brokerID int32, count int64) (first int64, err error) {
	result, err := s.propose(ctx, &allocateProducerIDsCommand{brokerID: brokerID, count: count})
	if err != nil {
		return 0, err
	}
	return result.(int64), nil
}

// ReserveProducerIDs takes every producer id below below out of
// allocation: no AllocateProducerIDs hands one out after it returns (ids
// already handed out in blocks are not taken back). Disaster recovery
// reserves the producer ids of the data it recovers.
func (s *Store) ReserveProducerIDs(ctx context.Context, below int64) error {
	_, err := s.propose(ctx, &reserveProducerIDsCommand{below: below})
	return err
}

// propose replicates c through Raft and returns the state machine's result.
// On a node that does not lead, the command is forwarded to the leader and
// the result is read from this node's state machine once it has applied
// the entry. If ctx ends first the command may still be applied.
func (s *Store) propose(ctx context.Context, c command) (any, error) {
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	if !s.IsLeader() {
		return s.proposeRemote(ctx, c)
	}
	return s.proposeLocal(ctx, c)
}

// proposeLocal applies c through this node's Raft, the leader. A broker
// registration is admitted first (controller.admit), however it got here:
// proposed on this node, or forwarded from it while another node led and
// retried here once this node took over.
func (s *Store) proposeLocal(ctx context.Context, c command) (any, error) {
	data := encodeCommand(c)
	if err := s.admitProposal(data); err != nil {
		return nil, fmt.Errorf("metadata: %s: %w", c.commandType(), err)
	}
	future := s.raft.Apply(data, enqueueTimeout(ctx))
	if err := s.await(ctx, future); err != nil {
		return nil, fmt.Errorf("metadata: %s: %w", c.commandType(), err)
	}
	result, ok := future.Response().(applyResult)
	if !ok {
		return nil, fmt.Errorf("metadata: %s: unexpected apply response %T", c.commandType(), future.Response())
	}
	return result.value, result.err
}

// errUndecodable marks a proposal that does not decode (admitProposal).
var errUndecodable = errors.New("does not decode, not proposed")

// admitProposal checks an entry before this node, the leader, appends it,
// whether proposed here (proposeLocal) or by a peer (handleRPC): one that
// does not decode (errUndecodable) would stop every node that applies it,
// and a broker registration must be admitted by the controller
// (controller.admit).
func (s *Store) admitProposal(data []byte) error {
	c, err := decodeCommand(data)
	if err != nil {
		return fmt.Errorf("%w: %w", errUndecodable, err)
	}
	if register, ok := c.(*registerBrokerCommand); ok {
		return s.controller.admit(register.registration)
	}
	return nil
}

func (s *Store) notLeaderError() error {
	address, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("%w (no leader is known)", ErrNotLeader)
	}
	return fmt.Errorf("%w (the leader is node %s at %s)", ErrNotLeader, id, address)
}

// await waits for future, the end of ctx or Close, and classifies Raft's
// errors.
//
// The goroutine waiting on the future is not one Close waits for: a future
// that Raft enqueued just before Shutdown is never resolved (hashicorp/raft
// gives Apply's futures no shutdown channel), so waiting for it would hang
// Close forever. It holds only the future and a buffered channel, and ends
// if the future is ever resolved.
func (s *Store) await(ctx context.Context, future raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrClosed
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	default:
		return err
	}
}

// enqueueTimeout is how long Raft may take to accept a proposal: until ctx's
// deadline, or DefaultApplyEnqueueTimeout.
func enqueueTimeout(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return max(time.Until(deadline), time.Millisecond)
	}
	return DefaultApplyEnqueueTimeout
}

// snapshot asks Raft to take a snapshot now (tests; later an admin API).
func (s *Store) snapshot() error {
	return s.raft.Snapshot().Error()
}

// BrokerHeartbeat is one heartbeat of a registered broker.
type BrokerHeartbeat struct {
	ID          int32
	BrokerEpoch int64 // of the registration
	// ShuttingDown asks the controller to move the broker's leaderships
	// away (controlled shutdown).
	ShuttingDown bool
	// AppliedIndex is the metadata position the broker has applied and
	// acted on (0: unknown), as ReportApplied sends it.
	AppliedIndex uint64
}

// Heartbeat tells the controller that a broker is alive. It fails with
// ErrUnknownBroker or ErrStaleBrokerEpoch when the broker must register
// again.
func (s *Store) Heartbeat(ctx context.Context, h BrokerHeartbeat) error {
	if s.IsLeader() {
		return s.controller.heartbeat(h)
	}
	e := encoder{}
	e.uint8(rpcHeartbeat)
	e.int32(h.ID)
	e.int64(h.BrokerEpoch)
	e.bool(h.ShuttingDown)
	e.uint64(h.AppliedIndex)
	_, err := s.forward(ctx, e.buffer)
	return err
}

// Voter is one member of the Raft configuration.
type Voter struct {
	NodeID  int32
	Address string
	// Voting is false for a non-voter (a member that follows the log).
	Voting bool
}

// Voters returns the current Raft configuration as this node knows it.
func (s *Store) Voters() ([]Voter, error) {
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, err
	}
	return votersOf(future.Configuration()), nil
}

// AddVoter adds a voter to the quorum (on the leader, or forwarded to it).
// The new node must run with a data dir formatted for this cluster.
func (s *Store) AddVoter(ctx context.Context, id int32, address string) error {
	if err := validateAdvertiseAddress(address); err != nil {
		return fmt.Errorf("metadata: add voter %d: %w", id, err)
	}
	e := encoder{}
	e.uint8(rpcAddVoter)
	e.int32(id)
	e.string(address)
	return s.retryVoterChange(ctx, true, id, address, e.buffer)
}

// RemoveVoter takes a node's vote away: it stays in the Raft
// configuration as a non-voter, so it keeps following the metadata log (a
// broker that is no longer a controller), but no longer counts for the
// quorum. AddVoter gives it back.
func (s *Store) RemoveVoter(ctx context.Context, id int32) error {
	e := encoder{}
	e.uint8(rpcRemoveVoter)
	e.int32(id)
	return s.retryVoterChange(ctx, false, id, "", e.buffer)
}

// retryVoterChange makes a voter change on the leader, this node or the one
// request forwards to, again while leadership moves (ErrNotLeader, whether
// or not the entry was appended) until ctx ends: a change of the voter set
// is idempotent (adding a voter again, or demoting a node that is not a
// voter, leaves the configuration as it is), so an operator's one request
// survives an election in the middle of it.
func (s *Store) retryVoterChange(ctx context.Context, add bool, id int32, address string, request []byte) error {
	backoff := 20 * time.Millisecond
	for {
		var err error
		if s.IsLeader() {
			err = s.changeVoters(ctx, add, id, address)
		} else {
			_, err = s.forward(ctx, request)
		}
		if err == nil || !errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
			return err
		}
		s.logger.Info("metadata: voter change met a leadership change, trying again", "node", id, "add", add, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-s.closing:
			return ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// addNonvoter adds a node that follows the log without voting; a node
// that is already a member keeps its role. Only on the leader.
func (s *Store) addNonvoter(ctx context.Context, id int32, address string) error {
	voters, err := s.Voters()
	if err != nil {
		return err
	}
	for _, v := range voters {
		if v.NodeID == id {
			if v.Address != address {
				return fmt.Errorf("node %d is a member at %s, not %s: two nodes have the same node id?", id, v.Address, address)
			}
			return nil
		}
	}
	if err := s.await(ctx, s.raft.AddNonvoter(serverID(id), raft.ServerAddress(address), 0, enqueueTimeout(ctx))); err != nil {
		return fmt.Errorf("metadata: add non-voter %d: %w", id, err)
	}
	s.logger.Info("metadata: added a non-voter", "node", id, "address", address)
	return nil
}

// joinAsNonvoter asks the voters, one after the other, to add this node
// as a non-voter, until one of them (or the leader it forwards to) does or
// the Store closes.
func (s *Store) joinAsNonvoter() {
	e := encoder{}
	e.uint8(rpcAddNonvoter)
	e.int32(s.config.NodeID)
	e.string(s.layer.Addr().String())
	request := e.buffer
	ids := slices.Sorted(maps.Keys(s.config.Voters))
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		for _, id := range ids {
			conn, err := s.layer.dial(context.Background(), raft.ServerAddress(s.config.Voters[id]), id, channelRPC, s.config.HandshakeTimeout)
			if err == nil {
				var response rpcResponse
				response, err = exchange(context.Background(), conn, request, time.Now().Add(rpcTimeout))
				conn.Close()
				if err == nil && response.status != rpcOK {
					err = errors.New(response.message)
				}
			}
			if err == nil {
				s.logger.Info("metadata: joined the quorum's log as a non-voter", "via", id)
				return
			}
			if attempt%10 == 0 {
				s.logger.Warn("metadata: asking a voter to add this node as a non-voter failed; retrying", "voter", id, "error", err)
			}
		}
		select {
		case <-s.closing:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// changeVoters adds or removes a voter; only on the leader. A leader asked
// to take its own vote away hands leadership to another voter first and
// lets it do the change (hashicorp/raft's voters do not reliably elect a
// new leader after the leader demotes itself).
func (s *Store) changeVoters(ctx context.Context, add bool, id int32, address string) error {
	if !add && id == s.config.NodeID {
		if err := s.await(ctx, s.raft.LeadershipTransfer()); err != nil {
			return fmt.Errorf("metadata: remove voter %d (this leader): hand leadership over first: %w", id, err)
		}
		e := encoder{}
		e.uint8(rpcRemoveVoter)
		e.int32(id)
		for {
			_, err := s.forward(ctx, e.buffer)
			if err == nil || !errors.Is(err, errNotApplied) || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if hook := s.beforeVoterChange.Load(); hook != nil {
		(*hook)()
	}
	var future raft.IndexFuture
	if add {
		// A voter that cannot be reached, or is not a member of this
		// cluster, would count for the quorum without ever voting: with
		// one voter, adding it stops the quorum for good. It must answer
		// the handshake first, as that node, with this cluster's id and
		// secret.
		if err := s.probePeer(id, address); err != nil {
			return fmt.Errorf("metadata: add voter %d: %w: start it first with this cluster's --cluster-id and --cluster-secret-file, and check the address", id, err)
		}
		future = s.raft.AddVoter(serverID(id), raft.ServerAddress(address), 0, enqueueTimeout(ctx))
	} else {
		future = s.raft.DemoteVoter(serverID(id), 0, enqueueTimeout(ctx))
	}
	if err := s.await(ctx, future); err != nil {
		return fmt.Errorf("metadata: change voters: %w", err)
	}
	return nil
}

// probePeer checks that the node at address answers the controller
// handshake as node id, with this cluster's id and secret.
func (s *Store) probePeer(id int32, address string) error {
	conn, err := s.layer.dial(context.Background(), raft.ServerAddress(address), id, channelRPC, s.config.HandshakeTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Close shuts Raft down, closes the log and the listener, releases the data
// directory and waits for every goroutine the Store started (but await's
// waiters on Raft futures, see await). Proposals in
// flight fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.rpc.close()
		errs := []error{s.raft.Shutdown().Error(), s.transport.Close()}
		s.transport.stopHeartbeats() // before the log it writes closes
		s.goroutines.Wait()
		errs = append(errs, s.wal.Close(), s.unlock())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("metadata: close: %w", err)
		}
	})
	return s.closeErr
}
