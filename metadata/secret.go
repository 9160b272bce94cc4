package metadata

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// Cluster secret file (--cluster-secret-file). Part of the format: do not
// change.
//
// A text file of one or two secrets, one per line; blank lines and lines
// starting with '#' are comments. A secret is the line's bytes after
// trimming spaces, at least MinClusterSecretLength characters: generated
// ones are 32 random bytes in unpadded URL-safe base64 (43 characters), but
// any long random string works (openssl rand -base64 32). The first secret
// is the one this node proves itself with; every secret in the file is
// accepted from peers, so a rotation is: add the new secret as the second
// line on every node (restart each), make it the first line on every node
// (restart each), remove the old line (restart each). At no step do two
// nodes stop accepting each other.
const (
	// MinClusterSecretLength is the shortest secret accepted.
	MinClusterSecretLength = 32
	// maxClusterSecrets is how many secrets one file may hold: the current
	// one and the one being rotated in or out.
	maxClusterSecrets = 2
	// generatedSecretBytes is the entropy of a generated secret.
	generatedSecretBytes = 32
	// ClusterSecretFileName is where a node that generated its own secret
	// (the first node of a one-node cluster) keeps it, in its data dir.
	ClusterSecretFileName = "cluster.secret"
	// maxClusterSecretFileSize bounds what is read from a secret file.
	maxClusterSecretFileSize = 64 << 10
)

// ErrNoClusterSecret means a node that must authenticate its controller
// peers was started without a cluster secret.
var ErrNoClusterSecret = errors.New("metadata: no cluster secret")

// ClusterSecret holds the secrets that controller peers prove to each other
// in the handshake. The zero value holds none. Immutable; safe to share.
type ClusterSecret struct {
	// keys[0] proves this node; any key verifies a peer.
	keys [][]byte
}

// IsZero reports whether s holds no secret.
func (s ClusterSecret) IsZero() bool { return len(s.keys) == 0 }

// Len is how many secrets s holds (1, or 2 during a rotation).
func (s ClusterSecret) Len() int { return len(s.keys) }

// ParseClusterSecret parses the content of a cluster secret file.
func ParseClusterSecret(data []byte) (ClusterSecret, error) {
	var secret ClusterSecret
	for number, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < MinClusterSecretLength {
			return ClusterSecret{}, fmt.Errorf("line %d: a secret of %d characters is too short (at least %d; generate one with strata format --generate-cluster-secret FILE)", number+1, len(line), MinClusterSecretLength)
		}
		if len(secret.keys) == maxClusterSecrets {
			return ClusterSecret{}, fmt.Errorf("line %d: more than %d secrets (the current one and the one being rotated)", number+1, maxClusterSecrets)
		}
		for _, key := range secret.keys {
			if string(key) == line {
				return ClusterSecret{}, fmt.Errorf("line %d: the same secret twice", number+1)
			}
		}
		secret.keys = append(secret.keys, []byte(line))
	}
	if secret.IsZero() {
		return ClusterSecret{}, fmt.Errorf("%w: the file holds no secret line", ErrNoClusterSecret)
	}
	return secret, nil
}

// ReadClusterSecretFile reads and parses a cluster secret file. It also
// reports whether the file can be read by other users than its owner (the
// caller warns: a secret others can read protects nothing).
func ReadClusterSecretFile(path string) (secret ClusterSecret, looseMode bool, err error) {
	file, err := os.Open(path)
	if err != nil {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file: %w", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file %s: not a regular file", path)
	}
	if info.Size() > maxClusterSecretFileSize {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file %s: %d bytes, more than a secret file holds", path, info.Size())
	}
	data := make([]byte, info.Size())
	if _, err := file.ReadAt(data, 0); err != nil && info.Size() > 0 {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file %s: %w", path, err)
	}
	secret, err = ParseClusterSecret(data)
	if err != nil {
		return ClusterSecret{}, false, fmt.Errorf("cluster secret file %s: %w", path, err)
	}
	return secret, info.Mode().Perm()&0o077 != 0, nil
}

// GenerateClusterSecretFile writes a new random secret to path (mode 0600,
// written to a temporary file, synced and renamed). A path that already
// holds a valid secret file is kept and created is false, so that it is
// safe as an init step that runs again; any other existing file is an
// error, never overwritten.
func GenerateClusterSecretFile(path string) (created bool, err error) {
	if _, _, err := ReadClusterSecretFile(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w; not overwriting it", err)
	}
	random := make([]byte, generatedSecretBytes)
	if _, err := rand.Read(random); err != nil {
		return false, fmt.Errorf("cluster secret: %w", err)
	}
	var content bytes.Buffer
	content.WriteString("# Strata cluster secret: every node of the cluster needs this file\n")
	content.WriteString("# (strata serve --cluster-secret-file). Keep it private; SECURITY.md\n")
	content.WriteString("# says how to rotate it.\n")
	content.WriteString(base64.RawURLEncoding.EncodeToString(random))
	content.WriteString("\n")
	if err := atomicfile.WriteFile(path, content.Bytes(), fsperm.File); err != nil {
		return false, fmt.Errorf("cluster secret: %w", err)
	}
	return true, nil
}

// prove computes this node's proof: an HMAC-SHA256 under its first secret
// of the label and the transcript.
func (s ClusterSecret) prove(label string, transcript []byte) []byte {
	return proof(s.keys[0], label, transcript)
}

// verify reports whether mac is the proof under any of s's secrets.
func (s ClusterSecret) verify(label string, transcript, mac []byte) bool {
	valid := false
	for _, key := range s.keys {
		// Check every key, so the time taken does not say which matched.
		if hmac.Equal(proof(key, label, transcript), mac) {
			valid = true
		}
	}
	return valid
}

func proof(key []byte, label string, transcript []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(label))
	mac.Write(transcript)
	return mac.Sum(nil)
}
