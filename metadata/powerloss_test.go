package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// These tests run the metadata store on a lost-page-cache file system
// (internal/lazyfs): a drop forgets everything that was not fsynced,
// including new names whose directory was not fsynced, as a power loss
// does. bbolt maps the Raft log into memory, so the file system runs in a
// separate process (lazyfstest.Daemon).

// TestFormatSurvivesPowerLoss: a power loss right after Format leaves a
// node that starts with the identity and the Raft state Format wrote.
// Without fsyncs of the new directories, meta.properties (renamed into
// place and made durable by atomicfile) came back while metadata/ came
// back empty: a node with its identity but without its Raft log, term and
// vote, which may vote twice in a term.
func TestFormatSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Daemon(t)
	for _, tc := range []struct {
		name  string
		voter bool
		// newDataDir: the data dir was just created (`strata format`
		// creates it), else it was there, durable, before Format.
		newDataDir bool
	}{
		{"voter", true, false},
		{"voter in a new data dir", true, true},
		{"non-voter", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(mount.Dir, tc.name, "data")
			if err := os.MkdirAll(filepath.Dir(dataDir), 0o700); err != nil {
				t.Fatal(err)
			}
			syncDir(t, mount.Dir)
			if !tc.newDataDir {
				if err := os.Mkdir(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			syncDir(t, filepath.Dir(dataDir))
			if tc.newDataDir {
				if err := os.Mkdir(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			address := freeAddress(t)
			voters := map[int32]string{1: address}
			nodeID := int32(1)
			if !tc.voter {
				nodeID = 2
			}
			if err := Format(dataDir, "test-cluster", nodeID, voters); err != nil {
				t.Fatal(err)
			}
			mount.Drop(t)

			clusterID, gotNodeID, err := ReadMetaProperties(dataDir)
			if err != nil {
				t.Fatalf("meta.properties after a power loss: %v", err)
			}
			if clusterID != "test-cluster" || gotNodeID != nodeID {
				t.Fatalf("meta.properties names cluster %q node %d, want test-cluster node %d", clusterID, gotNodeID, nodeID)
			}
			for _, dir := range []string{raftDirectory, snapshotsDirectory} {
				if _, err := os.Stat(filepath.Join(dataDir, metadataDirectory, dir)); tc.voter || dir == raftDirectory {
					if err != nil {
						t.Fatalf("metadata/%s after a power loss: %v", dir, err)
					}
				}
			}
			if !tc.voter {
				return
			}
			store := openReady(t, testConfig(dataDir, address))
			voterList, err := store.Voters()
			if err != nil {
				t.Fatal(err)
			}
			if len(voterList) != 1 || voterList[0].NodeID != 1 {
				t.Fatalf("voters after a power loss: %+v, want node 1 alone", voterList)
			}
		})
	}
}

// TestSnapshotSurvivesPowerLoss: a snapshot that Raft has taken, and after
// which it trimmed its log, comes back after a power loss, so the state
// it holds does too. hashicorp/raft's FileSnapshotStore fsyncs the
// snapshot's files and the parent directory after renaming the snapshot
// into place, but not the snapshot's own directory: its files' names were
// lost, the snapshot was skipped as unreadable, and the topics created
// before it were gone with the trimmed log.
func TestSnapshotSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Daemon(t)
	dataDir := filepath.Join(mount.Dir, "data")
	address := freeAddress(t)
	if err := Format(dataDir, "test-cluster", 1, map[int32]string{1: address}); err != nil {
		t.Fatal(err)
	}
	config := testConfig(dataDir, address)
	config.TrailingLogs = 1 // the snapshot trims the log down to its last entry
	store := openReady(t, config)
	registerTestBrokers(t, testContext(t), store, 1)
	const topics = 5
	for i := range topics {
		mustCreateTopic(t, store, TopicSpec{Name: fmt.Sprintf("topic-%d", i), Assignments: [][]int32{{1}}})
	}
	if err := store.snapshot(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openReady(t, config)
	for i := range topics {
		if _, ok := reopened.State().Topic(fmt.Sprintf("topic-%d", i)); !ok {
			t.Errorf("topic-%d is gone after a power loss", i)
		}
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	if err := atomicfile.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

// TestRaftLogCreatedAtOpenSurvivesPowerLoss: a node formatted as a
// non-voter has no Raft log until it starts; the log its first start
// creates keeps its term and vote through a power loss (bbolt fsyncs the
// file, not its name: without an fsync of metadata/raft the whole file
// could vanish, and a non-voter since promoted to voter would vote again
// in a term it already voted in).
func TestRaftLogCreatedAtOpenSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Daemon(t)
	dataDir := filepath.Join(mount.Dir, "data")
	if err := Format(dataDir, "test-cluster", 2, map[int32]string{1: freeAddress(t)}); err != nil {
		t.Fatal(err)
	}
	raftPath := filepath.Join(dataDir, metadataDirectory, raftDirectory)
	log, err := openRaftLog(raftPath, discardHCLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := log.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)
	log.Close()

	reopened, err := openRaftLog(raftPath, discardHCLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if term, err := reopened.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("current term after a power loss: %d (%v), want 7", term, err)
	}
}

// TestNonVoterSnapshotSurvivesPowerLoss: a node formatted as a non-voter
// gets its snapshots directory at its first start, not at Format; a
// snapshot taken there (after which raft trims its log) survives a power
// loss: the snapshots directory itself must be durable in metadata/.
func TestNonVoterSnapshotSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t) // no bbolt here: served in-process
	dataDir := filepath.Join(mount.Dir, "data")
	if err := Format(dataDir, "test-cluster", 2, map[int32]string{1: freeAddress(t)}); err != nil {
		t.Fatal(err)
	}
	metadataPath := filepath.Join(dataDir, metadataDirectory)
	snapshots, err := openSnapshotStore(metadataPath, discardHCLogger())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snapshots.Create(1, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	mount.Drop(t)

	reopened, err := openSnapshotStore(metadataPath, discardHCLogger())
	if err != nil {
		t.Fatal(err)
	}
	list, err := reopened.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Index != 10 {
		t.Fatalf("snapshots after a power loss: %+v, want the one at index 10", list)
	}
}
