package metadata

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// durableSnapshotStore is raft's FileSnapshotStore with the fsync it
// lacks. FileSnapshotSink.Close fsyncs the snapshot's files (state.bin,
// meta.json) inside <snapshots>/<id>.tmp, renames that directory to
// <snapshots>/<id> and fsyncs <snapshots>, but never the snapshot's own
// directory: after a power loss the snapshot comes back empty (its files'
// names were never made durable), raft skips it as unreadable, and the log
// entries it replaced are already trimmed, so the state they built is gone
// (raft cannot even start: "log not found"). Raft trims its log only after
// the sink's Close returns, so fsyncing the snapshot directory there, and
// then <snapshots> again (Close also reaped older snapshots), is enough.
type durableSnapshotStore struct {
	*raft.FileSnapshotStore
	// dir is <metadata>/snapshots, where FileSnapshotStore keeps each
	// snapshot in a directory named after the snapshot's id.
	dir string
}

var _ raft.SnapshotStore = (*durableSnapshotStore)(nil)

// Create starts a snapshot whose Close makes it durable.
func (s *durableSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &durableSnapshotSink{SnapshotSink: sink, dir: s.dir}, nil
}

// durableSnapshotSink fsyncs the finished snapshot's directory, then the
// snapshots directory, before its Close returns.
type durableSnapshotSink struct {
	raft.SnapshotSink
	dir string // <metadata>/snapshots
}

func (s *durableSnapshotSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := SyncDirectories(filepath.Join(s.dir, s.ID()), s.dir); err != nil {
		return fmt.Errorf("snapshot %s: %w", s.ID(), err)
	}
	return nil
}
