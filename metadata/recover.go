package metadata

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/hashicorp/raft"
)

// QuorumRecovery is what RecoverQuorum found and wrote.
type QuorumRecovery struct {
	// Before is the Raft configuration the data dir held: the latest one in
	// its log or snapshot, committed or not.
	Before []Voter
	// After is the configuration written: the given voters, plus the
	// non-voters of Before that are not among them (brokers that follow the
	// log keep following it).
	After []Voter
	// LastIndex is the last Raft log index replayed into the new snapshot;
	// the log up to it is removed.
	LastIndex uint64
}

// RecoverQuorum rewrites the metadata quorum of a stopped node: for when a
// majority of the voters is lost for good, so no leader can ever be
// elected again. It is hashicorp/raft's RecoverCluster (Consul's peers.json):
// the state machine is rebuilt from the newest snapshot and every entry of
// the log, committed or not, and a new snapshot records voters as the
// configuration; the log is then emptied.
//
// Run it, with the same voters, on every surviving node that is to vote,
// each stopped; then start them. The lost nodes must never rejoin with
// their old data dirs: wipe them and add them back as new voters. Entries a
// survivor had appended but that were never committed become part of its
// state, so nodes recovered this way may disagree on the last few entries
// until the new leader's log replaces its followers'.
//
// nodeID must be the id in meta.properties and one of voters. The data dir
// must not be in use (ErrDataDirLocked while the node runs).
func RecoverQuorum(dataDir string, nodeID int32, voters map[int32]string, logger *slog.Logger) (QuorumRecovery, error) {
	if logger == nil {
		logger = slog.Default()
	}
	fail := func(err error) (QuorumRecovery, error) {
		return QuorumRecovery{}, fmt.Errorf("metadata: recover quorum in %s: %w", dataDir, err)
	}
	_, formattedID, err := ReadMetaProperties(dataDir)
	if err != nil {
		return QuorumRecovery{}, err
	}
	if formattedID != nodeID {
		return fail(fmt.Errorf("formatted for node %d, asked for node %d: %w", formattedID, nodeID, ErrNodeIDMismatch))
	}
	if _, ok := voters[nodeID]; !ok {
		return fail(fmt.Errorf("node %d is not among the new voters: run the recovery only on the nodes that keep a vote, each listing itself", nodeID))
	}
	var configuration raft.Configuration
	for _, id := range slices.Sorted(maps.Keys(voters)) {
		if id < 0 {
			return fail(fmt.Errorf("voter id %d is negative", id))
		}
		if err := validateAdvertiseAddress(voters[id]); err != nil {
			return fail(fmt.Errorf("voter %d: %w", id, err))
		}
		configuration.Servers = append(configuration.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id), Address: raft.ServerAddress(voters[id])})
	}

	metadataPath := filepath.Join(dataDir, metadataDirectory)
	unlock, err := lockDirectory(filepath.Join(metadataPath, lockFile))
	if err != nil {
		if errors.Is(err, ErrDataDirLocked) {
			return fail(fmt.Errorf("%w: the node is running; stop it first", err))
		}
		return fail(err)
	}
	defer unlock()
	hclogger := newHCLogger(logger.With("component", "metadata", "node", nodeID), "raft-recover")
	wal, snapshots, err := openRaftStores(metadataPath, hclogger, hclogger)
	if err != nil {
		return fail(err)
	}
	defer wal.Close()

	// Each call gets its own config (GetConfiguration marks the one it is
	// given) and its own empty state machine.
	raftConfig := func() *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = serverID(nodeID)
		c.Logger = hclogger
		c.NoLegacyTelemetry = true
		return c
	}
	// Neither call sends anything: the transport only has to exist.
	_, transport := raft.NewInmemTransport(raft.ServerAddress(voters[nodeID]))
	defer transport.Close()
	before, err := raft.GetConfiguration(raftConfig(), newFSM(logger), wal, wal, snapshots, transport)
	if err != nil {
		return fail(fmt.Errorf("read the current configuration: %w", err))
	}
	result := QuorumRecovery{Before: votersOf(before)}
	for _, server := range before.Servers {
		if server.Suffrage == raft.Nonvoter && !slices.ContainsFunc(configuration.Servers, func(s raft.Server) bool { return s.ID == server.ID }) {
			configuration.Servers = append(configuration.Servers, server)
		}
	}
	result.After = votersOf(configuration)

	if err := raft.RecoverCluster(raftConfig(), newFSM(logger), wal, wal, snapshots, transport, configuration); err != nil {
		return fail(err)
	}
	list, err := snapshots.List()
	if err != nil || len(list) == 0 {
		return fail(fmt.Errorf("the recovery snapshot is not listed: %v", err))
	}
	result.LastIndex = list[0].Index
	logger.Info("metadata: quorum recovered", "node", nodeID, "voters_before", result.Before, "voters_after", result.After, "last_index", result.LastIndex)
	return result, nil
}

// votersOf lists a Raft configuration's members.
func votersOf(configuration raft.Configuration) []Voter {
	var out []Voter
	for _, server := range configuration.Servers {
		if id, ok := parseServerID(server.ID); ok {
			out = append(out, Voter{NodeID: id, Address: string(server.Address), Voting: server.Suffrage == raft.Voter})
		}
	}
	return out
}
