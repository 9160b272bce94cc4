package metadata

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// On-disk names under a data directory. Part of the format: do not change.
const (
	// metaPropertiesFile identifies the node and its cluster.
	metaPropertiesFile = "meta.properties"
	// metadataDirectory holds everything else this package writes.
	metadataDirectory = "metadata"
	// raftDirectory (under metadataDirectory) holds the Raft log and
	// stable store, raftLogFile.
	raftDirectory = "raft"
	// raftLogFile (in raftDirectory) is the Raft log and stable store, a
	// bbolt database (logstore.go). Directories written by earlier versions
	// hold raft-wal files there instead; they are migrated at open.
	raftLogFile = "raft.db"
	// raftWALMetaFile marks a raft-wal log of an earlier version.
	raftWALMetaFile = "wal-meta.db"
	// snapshotsDirectory (under metadataDirectory) is created by
	// raft.FileSnapshotStore, which appends this name to its base.
	snapshotsDirectory = "snapshots"
	// bootstrapFile (under metadataDirectory) holds the commands the
	// first leader proposes on the cluster's first start (bootstrap.go).
	bootstrapFile = "bootstrap.commands"
	// lockFile (under metadataDirectory) is held with flock while a Store
	// or Format uses the directory.
	lockFile = ".lock"
	// temporarySuffix marks a file being written, before its rename.
	temporarySuffix = atomicfile.TempSuffix

	// metaPropertiesVersion is the meta.properties "version" value.
	metaPropertiesVersion = 1
	// snapshotsRetained is how many snapshots the snapshot store keeps.
	snapshotsRetained = 2
	// maxClusterIDLength keeps the cluster id within the handshake's
	// one-byte length.
	maxClusterIDLength = 255
)

// meta.properties keys, as Kafka names them.
const (
	propertyVersion   = "version"
	propertyClusterID = "cluster.id"
	propertyNodeID    = "node.id"
	// propertyDirectoryID identifies the data directory itself (Kafka's
	// directory.id): a random UUID in the cluster id's encoding, written
	// once by Format (or by the first Open of a directory formatted before
	// it existed) and never changed. A broker registers with it, so the
	// controller tells a restart on the same disk (which replaces the
	// previous incarnation at once) from a second process with the same
	// node id (refused while the first one's session lives).
	propertyDirectoryID = "directory.id"
)

// metaProperties is the content of meta.properties.
type metaProperties struct {
	clusterID string
	nodeID    int32
	// directoryID is all zeros in a file written before directory ids.
	directoryID [16]byte
}

// newDirectoryID returns a new random directory id, never all zeros.
func newDirectoryID() [16]byte { return uuid.New() }

// encodeDirectoryID renders a directory id as meta.properties stores it.
func encodeDirectoryID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// NewClusterID returns a new random cluster id the way Kafka makes one: a
// random (version 4) UUID in unpadded URL-safe base64, 22 characters, never
// starting with '-' (it would read as a command-line flag).
func NewClusterID() string {
	for {
		id := uuid.New()
		encoded := base64.RawURLEncoding.EncodeToString(id[:])
		if !strings.HasPrefix(encoded, "-") {
			return encoded
		}
	}
}

// ValidateClusterID accepts 1..255 characters from [a-zA-Z0-9._-], which
// covers Kafka's base64 ids and readable names like "compose-cluster".
func ValidateClusterID(clusterID string) error {
	if clusterID == "" || len(clusterID) > maxClusterIDLength {
		return fmt.Errorf("%w: %q must have 1..%d characters", ErrInvalidClusterID, clusterID, maxClusterIDLength)
	}
	for _, character := range []byte(clusterID) {
		switch {
		case 'a' <= character && character <= 'z',
			'A' <= character && character <= 'Z',
			'0' <= character && character <= '9',
			character == '.', character == '_', character == '-':
		default:
			return fmt.Errorf("%w: %q contains %q; only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidClusterID, clusterID, character)
		}
	}
	return nil
}

// Format prepares dataDir for a node of the cluster clusterID: it
// bootstraps Raft with voters (node id → controller address, hostnames
// allowed; a single node lists just itself) and then writes
// <dataDir>/meta.properties, which marks the directory as formatted. Raft is
// bootstrapped only here, never by Open.
//
// Format refuses a directory that holds meta.properties (ErrAlreadyFormatted).
// Metadata left by a Format that crashed before writing meta.properties is
// removed first: no Store has ever opened it. For now nodeID must be one of
// the voters.
func Format(dataDir, clusterID string, nodeID int32, voters map[int32]string, options ...FormatOption) error {
	var opts formatOptions
	for _, o := range options {
		o(&opts)
	}
	if err := validateBootstrap(opts.bootstrap); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	if err := ValidateClusterID(clusterID); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	if nodeID < 0 {
		return fmt.Errorf("metadata: format %s: node id %d is negative", dataDir, nodeID)
	}
	if len(voters) == 0 {
		return fmt.Errorf("metadata: format %s: no voters", dataDir)
	}
	// A node that is not a voter is formatted without a Raft
	// configuration: it joins the quorum's log as a non-voter when it
	// starts (Config.Voters), and can never start a quorum of its own.
	_, isVoter := voters[nodeID]
	configuration := raft.Configuration{}
	for _, id := range slices.Sorted(maps.Keys(voters)) {
		if id < 0 {
			return fmt.Errorf("metadata: format %s: voter id %d is negative", dataDir, id)
		}
		if err := validateAdvertiseAddress(voters[id]); err != nil {
			return fmt.Errorf("metadata: format %s: voter %d: %w", dataDir, id, err)
		}
		configuration.Servers = append(configuration.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       serverID(id),
			Address:  raft.ServerAddress(voters[id]),
		})
	}

	metadataPath := filepath.Join(dataDir, metadataDirectory)
	if err := os.MkdirAll(metadataPath, fsperm.Dir); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	unlock, err := lockDirectory(filepath.Join(metadataPath, lockFile))
	if err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	defer unlock()

	switch _, err := os.Stat(filepath.Join(dataDir, metaPropertiesFile)); {
	case err == nil:
		return fmt.Errorf("metadata: format %s: %w", dataDir, ErrAlreadyFormatted)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	for _, leftover := range []string{raftDirectory, snapshotsDirectory} {
		if err := os.RemoveAll(filepath.Join(metadataPath, leftover)); err != nil {
			return fmt.Errorf("metadata: format %s: remove leftover %s: %w", dataDir, leftover, err)
		}
	}

	if isVoter {
		if err := bootstrap(metadataPath, nodeID, configuration); err != nil {
			return fmt.Errorf("metadata: format %s: bootstrap raft: %w", dataDir, err)
		}
	} else if err := os.MkdirAll(filepath.Join(metadataPath, raftDirectory), fsperm.Dir); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	if err := writeBootstrap(metadataPath, opts.bootstrap); err != nil {
		return fmt.Errorf("metadata: format %s: bootstrap commands: %w", dataDir, err)
	}
	// The identity file goes last, once everything it vouches for is
	// durable: a power loss before it leaves an unformatted directory
	// (formatted again from scratch), never a node that knows who it is
	// but has lost its Raft log, term and vote (it could vote twice in one
	// term).
	if err := SyncDirectories(formattedDirectories(dataDir)...); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	// The data dir's name, for a data dir the caller just created. A
	// parent this user may not read (a root-owned 0711 directory) cannot
	// be opened to fsync; such a data dir was made by someone else, before.
	if err := SyncDirectories(filepath.Dir(filepath.Clean(dataDir))); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	properties := metaProperties{clusterID: clusterID, nodeID: nodeID, directoryID: newDirectoryID()}
	if err := atomicfile.WriteFile(filepath.Join(dataDir, metaPropertiesFile), encodeMetaProperties(properties), fsperm.File); err != nil {
		return fmt.Errorf("metadata: format %s: %w", dataDir, err)
	}
	return nil
}

// formattedDirectories lists, children before parents, the directories
// under dataDir whose listings Format changed: fsyncing them in this order
// makes every file and directory Format created durable under its name
// (bbolt fsyncs raft.db's content; an fsync of a file does not make its
// name durable).
func formattedDirectories(dataDir string) []string {
	metadataPath := filepath.Join(dataDir, metadataDirectory)
	return []string{
		filepath.Join(metadataPath, raftDirectory),
		filepath.Join(metadataPath, snapshotsDirectory),
		metadataPath,
		dataDir,
	}
}

// SyncDirectories fsyncs each directory in order (skipping one that does
// not exist), so that the names created, renamed or removed in it survive
// a power loss. List children before their parents. A file written at
// format time next to meta.properties (written last) goes through it too.
func SyncDirectories(dirs ...string) error {
	for _, dir := range dirs {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := atomicfile.SyncDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// bootstrap writes the initial Raft configuration into fresh stores.
func bootstrap(metadataPath string, nodeID int32, configuration raft.Configuration) (err error) {
	raftPath := filepath.Join(metadataPath, raftDirectory)
	if err := os.MkdirAll(raftPath, fsperm.Dir); err != nil {
		return err
	}
	wal, snapshots, err := openRaftStores(metadataPath, discardHCLogger(), discardHCLogger())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, wal.Close()) }()
	raftConfig := raft.DefaultConfig()
	raftConfig.LocalID = serverID(nodeID)
	raftConfig.Logger = discardHCLogger()
	// The transport is only consulted for protocol versions before 3.
	return raft.BootstrapCluster(raftConfig, wal, wal, snapshots, nil, configuration)
}

// openRaftStores opens what hashicorp/raft keeps under metadataPath: the
// Raft log and stable store (one bolt file, raftDirectory) and the snapshot
// store (snapshotsDirectory). Open, Format and RecoverQuorum all go through
// it. The caller holds the directory lock and closes the log.
func openRaftStores(metadataPath string, logLogger, snapshotLogger hclog.Logger) (*raftLog, *durableSnapshotStore, error) {
	wal, err := openRaftLog(filepath.Join(metadataPath, raftDirectory), logLogger)
	if err != nil {
		return nil, nil, err
	}
	snapshots, err := openSnapshotStore(metadataPath, snapshotLogger)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open snapshot store: %w", err), wal.Close())
	}
	return wal, snapshots, nil
}

// openSnapshotStore opens raft's file snapshot store (made durable:
// durableSnapshotStore) in
// <metadataPath>/snapshots, creating that directory owner-only first:
// raft.FileSnapshotStore creates its directories 0755 and its files 0666
// (less the umask), and a directory it finds is kept as it is, so the 0700
// directory made here is what keeps the snapshots (the whole metadata
// state) from other local users.
func openSnapshotStore(metadataPath string, logger hclog.Logger) (*durableSnapshotStore, error) {
	dir := filepath.Join(metadataPath, snapshotsDirectory)
	if err := os.MkdirAll(dir, fsperm.Dir); err != nil {
		return nil, err
	}
	// A non-voter's snapshots directory is made here, at its first start,
	// not by Format: its name must be durable before a snapshot in it
	// lets raft trim the log.
	if err := SyncDirectories(metadataPath); err != nil {
		return nil, err
	}
	store, err := raft.NewFileSnapshotStoreWithLogger(metadataPath, snapshotsRetained, logger)
	if err != nil {
		return nil, err
	}
	return &durableSnapshotStore{FileSnapshotStore: store, dir: dir}, nil
}

// raftLog is the Raft log and stable store: a bbolt database
// (logstore.go). Earlier versions used raft-wal v0.4.0, whose tail
// truncation (a follower dropping a conflicting log suffix) marks the
// segment sealed without writing its index, so the node cannot restart
// ("sealed segment has no index block", hashicorp/raft-wal#31); no fixed
// release exists.
//
// A failed write (a full disk, an I/O error, a failed fsync) stops the
// node, as Kafka stops a broker whose metadata log directory fails: Raft
// cannot tell a vote or an entry it could not persist from one it did, so
// a voter that goes on after one would either stall the quorum's progress
// silently or break Raft's durability promise. onFailure (set before Raft
// starts) is told once per failure; the Store halts on the first.
//
// hashicorp/raft panics when it cannot store its term or vote ("failed to
// save current term"); the failure is logged before that, with what to do.
type raftLog struct {
	*boltLogStore
	onFailure func(error)
	// faultLogWrites, a test hook, fails log-entry writes when it returns
	// an error.
	faultLogWrites func() error
}

func (r *raftLog) fault() error {
	if r.faultLogWrites == nil {
		return nil
	}
	return r.faultLogWrites()
}

// failed reports err (when not nil) and returns it unchanged.
func (r *raftLog) failed(op string, err error) error {
	if err != nil && r.onFailure != nil {
		r.onFailure(fmt.Errorf("%s: %w", op, err))
	}
	return err
}

func (r *raftLog) StoreLog(log *raft.Log) error {
	return r.StoreLogs([]*raft.Log{log})
}

func (r *raftLog) StoreLogs(logs []*raft.Log) error {
	if err := r.fault(); err != nil {
		return r.failed("store log entries", err)
	}
	return r.failed("store log entries", r.boltLogStore.StoreLogs(logs))
}

func (r *raftLog) DeleteRange(min, max uint64) error {
	return r.failed("delete log entries", r.boltLogStore.DeleteRange(min, max))
}

func (r *raftLog) Set(key, value []byte) error {
	return r.failed("store "+string(key), r.boltLogStore.Set(key, value))
}

func (r *raftLog) SetUint64(key []byte, value uint64) error {
	return r.failed("store "+string(key), r.boltLogStore.SetUint64(key, value))
}

// stableKeys are the stable-store keys hashicorp/raft uses (migrated with
// the log).
var stableKeys = []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"}

func openRaftLog(path string, logger hclog.Logger) (*raftLog, error) {
	file := filepath.Join(path, raftLogFile)
	_, err := os.Stat(file)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		if _, err := os.Stat(filepath.Join(path, raftWALMetaFile)); err == nil {
			if err := migrateRaftWAL(path, logger); err != nil {
				return nil, fmt.Errorf("migrate the raft-wal log in %s: %w", path, err)
			}
		}
	}
	store, err := openBoltLogStore(file)
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", file, err)
	}
	if created {
		// bbolt fsyncs the file, never its name: a new log (Format of a
		// voter, the first start of a non-voter) must not vanish with
		// the term and vote it will hold.
		if err := SyncDirectories(path); err != nil {
			return nil, errors.Join(fmt.Errorf("open raft log %s: %w", file, err), store.Close())
		}
	}
	return &raftLog{boltLogStore: store}, nil
}

// migrateRaftWAL copies a raft-wal log and stable store (earlier versions)
// into a new bolt store, written aside and renamed into place, then
// removes the raft-wal files. A crash before the rename leaves the raft-wal
// files, and the next open migrates again.
func migrateRaftWAL(path string, logger hclog.Logger) (err error) {
	meta := &metadb.BoltMetaDB{}
	wal, err := raftwal.Open(path, raftwal.WithMetaStore(meta), raftwal.WithLogger(logger))
	if err != nil {
		return errors.Join(err, meta.Close())
	}
	defer func() { err = errors.Join(err, wal.Close(), meta.Close()) }()
	tmp := filepath.Join(path, raftLogFile+temporarySuffix)
	os.Remove(tmp)
	store, err := openBoltLogStore(tmp)
	if err != nil {
		return err
	}
	first, err := wal.FirstIndex()
	if err != nil {
		return errors.Join(err, store.Close())
	}
	last, err := wal.LastIndex()
	if err != nil {
		return errors.Join(err, store.Close())
	}
	for index := first; first > 0 && index <= last; index++ {
		var entry raft.Log
		if err := wal.GetLog(index, &entry); err != nil {
			return errors.Join(fmt.Errorf("read log %d: %w", index, err), store.Close())
		}
		if err := store.StoreLog(&entry); err != nil {
			return errors.Join(err, store.Close())
		}
	}
	for _, key := range stableKeys {
		value, err := wal.Get([]byte(key))
		if err != nil {
			return errors.Join(err, store.Close())
		}
		if len(value) > 0 {
			if err := store.Set([]byte(key), value); err != nil {
				return errors.Join(err, store.Close())
			}
		}
	}
	if err := store.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(path, raftLogFile)); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(path); err != nil {
		return err
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == raftWALMetaFile || strings.HasSuffix(e.Name(), ".wal") {
			os.Remove(filepath.Join(path, e.Name()))
		}
	}
	logger.Info("migrated the raft log from raft-wal", "entries", last-first+1)
	return nil
}

// serverID is the Raft server id of a node: its decimal node id.
func serverID(nodeID int32) raft.ServerID {
	return raft.ServerID(strconv.FormatInt(int64(nodeID), 10))
}

// encodeMetaProperties renders meta.properties. No timestamp comment (Kafka
// writes one), so that the file is a function of its contents.
func encodeMetaProperties(properties metaProperties) []byte {
	var buffer bytes.Buffer
	buffer.WriteString("#Written by Strata's metadata.Format. Do not edit.\n")
	fmt.Fprintf(&buffer, "%s=%d\n", propertyVersion, metaPropertiesVersion)
	fmt.Fprintf(&buffer, "%s=%s\n", propertyClusterID, properties.clusterID)
	fmt.Fprintf(&buffer, "%s=%d\n", propertyNodeID, properties.nodeID)
	if properties.directoryID != ([16]byte{}) {
		fmt.Fprintf(&buffer, "%s=%s\n", propertyDirectoryID, encodeDirectoryID(properties.directoryID))
	}
	return buffer.Bytes()
}

// decodeMetaProperties parses meta.properties: key=value lines, '#' and '!'
// comments, blank lines; unknown keys are ignored (Kafka adds some). A
// file without directory.id (written before it existed) decodes with a
// zero directory id.
func decodeMetaProperties(data []byte) (metaProperties, error) {
	properties := map[string]string{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for lineNumber := 1; scanner.Scan(); lineNumber++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return metaProperties{}, corruptf("meta.properties line %d: no '='", lineNumber)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if _, duplicate := properties[key]; duplicate {
			return metaProperties{}, corruptf("meta.properties line %d: %s appears twice", lineNumber, key)
		}
		properties[key] = value
	}
	if err := scanner.Err(); err != nil {
		return metaProperties{}, corruptf("meta.properties: %v", err)
	}
	if version := properties[propertyVersion]; version != strconv.Itoa(metaPropertiesVersion) {
		return metaProperties{}, corruptf("meta.properties: version %q is not supported (want %d)", version, metaPropertiesVersion)
	}
	var decoded metaProperties
	decoded.clusterID = properties[propertyClusterID]
	if err := ValidateClusterID(decoded.clusterID); err != nil {
		return metaProperties{}, corruptf("meta.properties: %s: %v", propertyClusterID, err)
	}
	id, err := strconv.ParseInt(properties[propertyNodeID], 10, 32)
	if err != nil || id < 0 {
		return metaProperties{}, corruptf("meta.properties: %s %q is not a node id", propertyNodeID, properties[propertyNodeID])
	}
	decoded.nodeID = int32(id)
	if encoded, ok := properties[propertyDirectoryID]; ok {
		raw, err := base64.RawURLEncoding.DecodeString(encoded)
		if err != nil || len(raw) != 16 || [16]byte(raw) == ([16]byte{}) {
			return metaProperties{}, corruptf("meta.properties: %s %q is not a directory id", propertyDirectoryID, encoded)
		}
		decoded.directoryID = [16]byte(raw)
	}
	return decoded, nil
}

// readMetaProperties reads <dataDir>/meta.properties: ErrNotFormatted if
// there is none, an error wrapping ErrCorrupt if it does not parse.
func readMetaProperties(dataDir string) (metaProperties, error) {
	path := filepath.Join(dataDir, metaPropertiesFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return metaProperties{}, fmt.Errorf("metadata: %s: %w", dataDir, ErrNotFormatted)
	}
	if err != nil {
		return metaProperties{}, fmt.Errorf("metadata: %w", err)
	}
	properties, err := decodeMetaProperties(data)
	if err != nil {
		return metaProperties{}, fmt.Errorf("metadata: %s: %w", path, err)
	}
	return properties, nil
}

// ensureDirectoryID gives a directory formatted before directory ids one,
// rewriting its meta.properties (atomically; the caller holds the
// directory lock), and returns the directory's id.
func ensureDirectoryID(dataDir string, properties metaProperties) ([16]byte, error) {
	if properties.directoryID != ([16]byte{}) {
		return properties.directoryID, nil
	}
	properties.directoryID = newDirectoryID()
	if err := atomicfile.WriteFile(filepath.Join(dataDir, metaPropertiesFile), encodeMetaProperties(properties), fsperm.File); err != nil {
		return [16]byte{}, fmt.Errorf("metadata: %s: add %s: %w", dataDir, propertyDirectoryID, err)
	}
	return properties.directoryID, nil
}

// ReadMetaProperties returns the cluster id and node id recorded in
// <dataDir>/meta.properties, ErrNotFormatted if there is none, or an error
// wrapping ErrCorrupt if it does not parse.
func ReadMetaProperties(dataDir string) (clusterID string, nodeID int32, err error) {
	properties, err := readMetaProperties(dataDir)
	if err != nil {
		return "", 0, err
	}
	return properties.clusterID, properties.nodeID, nil
}
