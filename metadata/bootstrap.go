package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// Bootstrap commands (Kafka's bootstrap.checkpoint, KIP-900): commands
// Format writes next to the Raft log, which the first leader proposes
// before InitCluster, once, on the first start of the cluster (while the
// replicated state has no cluster id). `strata format --add-scram` uses it
// so the first SCRAM user exists when the cluster first serves; the
// credentials are proposed with AlterScramCredentials (command 48), so
// nothing new enters the Raft log's format. Give every voter the same
// ones, as Kafka asks of its controllers: whichever voter leads first
// proposes its own. Only salted credentials are stored, never a password.
// A crash between a bootstrap command and InitCluster proposes it again on
// the next start (an upsert of the same credential).
//
// File <data-dir>/metadata/bootstrap.commands, written by Format (temp
// file, fsync, rename, directory fsync) before meta.properties:
//
//	+--------+---------+-----------+--------------------------------------+
//	| "STRB" | version | CRC-32C   | uvarint count; per command: uvarint  |
//	| 4 bytes| 1 byte  | 4 bytes BE| length, the command's Raft encoding  |
//	+--------+---------+-----------+--------------------------------------+
//	version: 1. CRC-32C (Castagnoli) of everything after it.
//
// Open refuses a file that does not decode (ErrCorrupt).

// Part of the format: do not change.
const (
	bootstrapMagic   = "STRB"
	bootstrapVersion = 1
	// bootstrapHeaderSize is the magic, version and checksum.
	bootstrapHeaderSize = len(bootstrapMagic) + 1 + 4
)

// FormatOption adds to what Format writes.
type FormatOption func(*formatOptions)

type formatOptions struct {
	bootstrap []command
}

// WithScramCredentials makes the credentials exist from the cluster's first
// start (Kafka's `kafka-storage format --add-scram`): the first leader
// proposes them before it records the cluster id. Format refuses invalid
// ones, or a user and mechanism named twice.
func WithScramCredentials(credentials ...ScramCredential) FormatOption {
	return func(o *formatOptions) {
		if len(credentials) > 0 {
			o.bootstrap = append(o.bootstrap, &alterScramCredentialsCommand{upserts: credentials})
		}
	}
}

// validateBootstrap applies the commands to an empty state: what would be
// rejected at the first start is refused at format time.
func validateBootstrap(commands []command) error {
	b := newStateBuilder(emptyState(), 1)
	for _, c := range commands {
		if _, err := c.apply(b); err != nil {
			return err
		}
	}
	return nil
}

func encodeBootstrap(commands []command) []byte {
	e := encoder{}
	e.uvarint(uint64(len(commands)))
	for _, c := range commands {
		data := encodeCommand(c)
		e.uvarint(uint64(len(data)))
		e.buffer = append(e.buffer, data...)
	}
	header := make([]byte, bootstrapHeaderSize, bootstrapHeaderSize+len(e.buffer))
	copy(header, bootstrapMagic)
	header[len(bootstrapMagic)] = bootstrapVersion
	binary.BigEndian.PutUint32(header[len(bootstrapMagic)+1:], crc32.Checksum(e.buffer, crcTable))
	return append(header, e.buffer...)
}

func decodeBootstrap(data []byte) ([]command, error) {
	if len(data) < bootstrapHeaderSize || string(data[:len(bootstrapMagic)]) != bootstrapMagic {
		return nil, fmt.Errorf("%w: bootstrap commands: no %q header", ErrCorrupt, bootstrapMagic)
	}
	if v := data[len(bootstrapMagic)]; v != bootstrapVersion {
		return nil, fmt.Errorf("%w: bootstrap commands: version %d, want %d", ErrCorrupt, v, bootstrapVersion)
	}
	body := data[bootstrapHeaderSize:]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(data[len(bootstrapMagic)+1:]) {
		return nil, fmt.Errorf("%w: bootstrap commands: checksum mismatch", ErrCorrupt)
	}
	d := &decoder{data: body}
	n := d.length(1 + commandHeaderSize)
	var commands []command
	for range n {
		size := d.length(1)
		raw := d.take(size)
		if d.err() != nil {
			break
		}
		c, err := decodeCommand(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap command: %w", ErrCorrupt, err)
		}
		commands = append(commands, c)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("%w: bootstrap commands: %w", ErrCorrupt, err)
	}
	return commands, nil
}

// writeBootstrap writes the file (nothing when there are no commands,
// removing a leftover of an earlier, crashed Format).
func writeBootstrap(metadataPath string, commands []command) error {
	path := filepath.Join(metadataPath, bootstrapFile)
	if len(commands) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.WriteFile(path, encodeBootstrap(commands), fsperm.File)
}

// readBootstrap reads the file; none is no commands.
func readBootstrap(metadataPath string) ([]command, error) {
	data, err := os.ReadFile(filepath.Join(metadataPath, bootstrapFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeBootstrap(data)
}
