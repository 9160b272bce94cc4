package authn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// PlainUsers are the users of SASL/PLAIN, from --sasl-plain-users-file,
// re-read when the file changes (its modification time or size), as the
// TLS files are: adding or removing a user needs no restart. A removed
// user's open connections keep their session until they re-authenticate
// (KIP-368, --connections-max-reauth-ms), which then fails. A change that
// does not parse keeps the previous users.
//
// File format: one user per line, "username:password" (the name ends at
// the first colon, so a password may hold colons; a name may not). Blank
// lines and lines starting with # are ignored; leading and trailing spaces
// of a line are trimmed. The file holds passwords in the clear: keep it
// mode 0600, readable only by Strata's user. In memory only a SHA-256
// digest of each password is kept, compared in constant time; passwords
// are never logged.
type PlainUsers struct {
	file *reloadingFile[plainDigests]
}

// plainDigests are the password digests by user name.
type plainDigests map[string][sha256.Size]byte

// LoadPlainUsers reads a users file; an error names the file and line.
// onReloadError, when set, is told of a change that failed to load.
func LoadPlainUsers(path string, onReloadError func(error)) (*PlainUsers, error) {
	file, err := newReloadingFile(path, "SASL/PLAIN users file", parsePlainUsers, onReloadError)
	if err != nil {
		return nil, err
	}
	return &PlainUsers{file: file}, nil
}

func parsePlainUsers(data []byte) (plainDigests, error) {
	digests := plainDigests{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, password, ok := strings.Cut(line, ":")
		if !ok || name == "" || password == "" {
			return nil, fmt.Errorf("line %d: want username:password", n)
		}
		if _, dup := digests[name]; dup {
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, name)
		}
		digests[name] = sha256.Sum256([]byte(password))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return digests, nil
}

// Verify reports whether password is user's, in time that depends on
// neither (an unknown user is compared against a dummy digest).
func (u *PlainUsers) Verify(user, password string) bool {
	want, known := u.file.Current()[user]
	got := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(want[:], got[:]) == 1
	return known && match
}

// ParsePlain splits a SASL/PLAIN message (RFC 4616):
// [authzid] NUL authcid NUL passwd. An authzid other than empty or the
// user itself is refused (Kafka does not let one user act as another).
func ParsePlain(msg []byte) (user, password string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", fmt.Errorf("malformed SASL/PLAIN message: want [authzid] NUL user NUL password")
	}
	if len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1]) {
		return "", "", fmt.Errorf("SASL/PLAIN authorization id differs from the user")
	}
	return string(parts[1]), string(parts[2]), nil
}
