package metadata

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/strata-log/strata/internal/atomicfile"
)

// TestMigrateRaftWAL: a data directory written by an earlier version (the
// Raft log in raft-wal) opens with its state: the log and stable store are
// copied into the bolt store and the raft-wal files removed.
func TestMigrateRaftWAL(t *testing.T) {
	dir := t.TempDir()
	address := freeAddress(t)
	metadataPath := filepath.Join(dir, metadataDirectory)
	raftPath := filepath.Join(metadataPath, raftDirectory)
	if err := os.MkdirAll(raftPath, 0o755); err != nil {
		t.Fatal(err)
	}
	// What Format and a running node of the earlier version left: the
	// bootstrap configuration, then committed commands (the broker
	// registers before a topic is placed on it), in raft-wal.
	meta := &metadb.BoltMetaDB{}
	wal, err := raftwal.Open(raftPath, raftwal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	snapshots, err := raft.NewFileSnapshotStoreWithLogger(metadataPath, snapshotsRetained, discardHCLogger())
	if err != nil {
		t.Fatal(err)
	}
	raftConfig := raft.DefaultConfig()
	raftConfig.LocalID = serverID(1)
	raftConfig.Logger = discardHCLogger()
	configuration := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: serverID(1), Address: raft.ServerAddress(address)}}}
	if err := raft.BootstrapCluster(raftConfig, wal, wal, snapshots, nil, configuration); err != nil {
		t.Fatal(err)
	}
	topic := Topic{Name: "kept", ID: [16]byte{1}, Partitions: newPartitions(0, [][]int32{{1}}), CreatedAtUnixMilli: 1}
	entries := []*raft.Log{
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: encodeCommand(&initClusterCommand{clusterID: "migrated"})},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: encodeCommand(&registerBrokerCommand{registration: testRegistration(1)})},
		{Index: 4, Term: 1, Type: raft.LogCommand, Data: encodeCommand(&createTopicCommand{topic: topic})},
	}
	if err := wal.StoreLogs(entries); err != nil {
		t.Fatal(err)
	}
	if err := wal.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if err := wal.Close(); err != nil {
		t.Fatal(err)
	}
	meta.Close()
	if err := atomicfile.WriteFile(filepath.Join(dir, metaPropertiesFile), encodeMetaProperties(metaProperties{clusterID: "migrated", nodeID: 1}), 0o644); err != nil {
		t.Fatal(err)
	}

	store := openReady(t, testConfig(dir, address))
	if got, ok := store.State().Topic("kept"); !ok || got.ID != topic.ID {
		t.Fatalf("topic after migration: %+v %v", got, ok)
	}
	if _, err := os.Stat(filepath.Join(raftPath, raftWALMetaFile)); err == nil {
		t.Fatal("raft-wal files left after migration")
	}
	if _, err := store.CreateTopic(testContext(t), TopicSpec{Name: "after", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatalf("proposal after migration: %v", err)
	}
}
