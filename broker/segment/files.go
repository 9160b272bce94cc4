package segment

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// Names of the per-partition files other than segments. Part of the
// format, do not change.
const (
	partitionMetadataFileName = "partition.metadata"
	startOffsetFileName       = "log-start-offset-checkpoint"
	cleanShutdownFileName     = "clean-shutdown"
	temporaryFileSuffix       = atomicfile.TempSuffix

	partitionMetadataVersion = 0
	checkpointVersion        = 0
)

// Keys of the checkpoint files. Part of the format, do not change.
const (
	versionKey        = "version"
	topicIDKey        = "topic_id"
	logStartOffsetKey = "log_start_offset"
	logEndOffsetKey   = "log_end_offset"
	crcKey            = "crc32c"
)

// WritePartitionMetadata writes dir/partition.metadata in Kafka's format
// ("version: 0\ntopic_id: <id>", the id as Kafka's Uuid.toString: URL-safe
// base64 without padding) through a temporary file, fsync, rename and a
// directory fsync.
func WritePartitionMetadata(dir string, topicID [16]byte) error {
	content := fmt.Sprintf("%s: %d\n%s: %s", versionKey, partitionMetadataVersion, topicIDKey, base64.RawURLEncoding.EncodeToString(topicID[:]))
	if err := atomicfile.WriteFile(filepath.Join(dir, partitionMetadataFileName), []byte(content), fsperm.File); err != nil {
		return fmt.Errorf("segment: write partition metadata: %w", err)
	}
	return nil
}

// ReadPartitionMetadata reads the topic id from dir/partition.metadata. It
// returns an error wrapping ErrNoPartitionMetadata when the file does not
// exist and a *CorruptError when it cannot be parsed.
func ReadPartitionMetadata(dir string) (topicID [16]byte, err error) {
	path := filepath.Join(dir, partitionMetadataFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return topicID, fmt.Errorf("%w in %s", ErrNoPartitionMetadata, dir)
	}
	if err != nil {
		return topicID, fmt.Errorf("segment: read partition metadata: %w", err)
	}
	values, err := parseKeyValues(path, data, false, versionKey, topicIDKey)
	if err != nil {
		return topicID, err
	}
	if values[0] != strconv.Itoa(partitionMetadataVersion) {
		return topicID, corruptf(path, -1, "unsupported version %q", values[0])
	}
	decoded, err := base64.RawURLEncoding.DecodeString(values[1])
	if err != nil || len(decoded) != len(topicID) {
		return topicID, corruptf(path, -1, "topic id %q is not 16 bytes of URL-safe base64", values[1])
	}
	copy(topicID[:], decoded)
	return topicID, nil
}

// encodeCheckpoint renders the Strata checkpoint format: "key: value" lines,
// the first one the version, then a crc32c line holding the CRC-32C of every
// byte before it.
func encodeCheckpoint(keyValues ...string) []byte {
	var buffer bytes.Buffer
	fmt.Fprintf(&buffer, "%s: %d\n", versionKey, checkpointVersion)
	for i := 0; i+1 < len(keyValues); i += 2 {
		fmt.Fprintf(&buffer, "%s: %s\n", keyValues[i], keyValues[i+1])
	}
	fmt.Fprintf(&buffer, "%s: %08x\n", crcKey, crc32.Checksum(buffer.Bytes(), castagnoli))
	return buffer.Bytes()
}

// decodeCheckpointInt reads a checkpoint holding one integer under key.
func decodeCheckpointInt(path string, data []byte, key string) (int64, error) {
	crcLine := []byte("\n" + crcKey + ": ")
	at := bytes.LastIndex(data, crcLine)
	if at < 0 {
		return 0, corruptf(path, -1, "no %s line", crcKey)
	}
	body := data[:at+1]
	stored := strings.TrimSpace(string(data[at+len(crcLine):]))
	if want := fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli)); stored != want {
		return 0, corruptf(path, -1, "crc mismatch: stored %q, computed %s", stored, want)
	}
	values, err := parseKeyValues(path, body, true, versionKey, key)
	if err != nil {
		return 0, err
	}
	if values[0] != strconv.Itoa(checkpointVersion) {
		return 0, corruptf(path, -1, "unsupported version %q", values[0])
	}
	value, err := strconv.ParseInt(values[1], 10, 64)
	if err != nil || value < 0 {
		return 0, corruptf(path, -1, "%s %q is not an offset", key, values[1])
	}
	return value, nil
}

// parseKeyValues parses "key: value" lines that must name exactly keys, in
// order. Kafka's reader splits on a colon followed by white space; so does
// this one. strict refuses anything but single spaces and newlines.
func parseKeyValues(path string, data []byte, strict bool, keys ...string) ([]string, error) {
	text := string(data)
	if !strict {
		text = strings.TrimSpace(text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(keys) {
		return nil, corruptf(path, -1, "%d lines, want %d", len(lines), len(keys))
	}
	values := make([]string, len(keys))
	for i, line := range lines {
		if !strict {
			line = strings.TrimRight(line, "\r\t ")
		}
		key, value, ok := strings.Cut(line, ":")
		if !strict {
			value = strings.TrimLeft(value, "\t ")
		} else if ok {
			value, ok = strings.CutPrefix(value, " ")
		}
		if !ok || key != keys[i] || value == "" {
			return nil, corruptf(path, -1, "line %d is %q, want %q", i+1, line, keys[i]+": <value>")
		}
		values[i] = value
	}
	return values, nil
}

// readOffsetCheckpoint reads an offset checkpoint file; exists is false when
// the file is absent.
func readOffsetCheckpoint(dir, name, key string) (offset int64, exists bool, err error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", name, err)
	}
	offset, err = decodeCheckpointInt(path, data, key)
	return offset, err == nil, err
}

func writeOffsetCheckpoint(dir, name, key string, offset int64) error {
	return atomicfile.WriteFile(filepath.Join(dir, name), encodeCheckpoint(key, strconv.FormatInt(offset, 10)), fsperm.File)
}

// removeFileDurably removes dir/name if present and fsyncs the directory.
func removeFileDurably(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return atomicfile.SyncDir(dir)
}
