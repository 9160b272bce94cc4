package authn

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Client properties files: librdkafka's format, one key=value per line
// (blank lines and lines starting with # ignored; spaces around keys and
// values trimmed). They are what `--command-config FILE` and
// `--sasl-inter-broker-credentials-file FILE` read; each caller decides
// which keys it accepts.

// ReadProperties reads a properties file into a map; an error names the
// file and line.
func ReadProperties(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseProperties(path, data)
}

func parseProperties(path string, data []byte) (map[string]string, error) {
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s line %d: want key=value", path, n)
		}
		props[strings.TrimSpace(key)] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return props, nil
}

var jaasField = regexp.MustCompile(`(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"`)

// SASLCredentials are the SASL username and password of properties:
// sasl.username and sasl.password, or the username="…" and password="…"
// of Kafka's sasl.jaas.config line (which win when both are given).
func SASLCredentials(props map[string]string) (user, password string) {
	user, password = props["sasl.username"], props["sasl.password"]
	for _, m := range jaasField.FindAllStringSubmatch(props["sasl.jaas.config"], -1) {
		if m[1] == "username" {
			user = m[2]
		} else {
			password = m[2]
		}
	}
	return user, password
}

// CredentialsFile is a SASL client's username and password, read from a
// properties file (sasl.username and sasl.password, or sasl.jaas.config;
// no other key) and read again when the file changes (its modification
// time or size): the next authentication uses the new credentials, no
// restart. A change that does not parse keeps the previous credentials.
type CredentialsFile struct {
	path          string
	onReloadError func(error)

	mu       sync.Mutex // guards below
	stamp    fileStamp
	user     string
	password string
}

// LoadCredentialsFile reads path; looseMode reports that users other than
// its owner may read it (the caller warns: it holds a password).
func LoadCredentialsFile(path string, onReloadError func(error)) (f *CredentialsFile, looseMode bool, err error) {
	f = &CredentialsFile{path: path, onReloadError: onReloadError}
	if err := f.load(); err != nil {
		return nil, false, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	return f, info.Mode().Perm()&0o077 != 0, nil
}

// load reads the file (f.mu held, or before f is shared).
func (f *CredentialsFile) load() error {
	stamp := stampOf(f.path)
	props, err := ReadProperties(f.path)
	if err != nil {
		return fmt.Errorf("SASL credentials file: %w", err)
	}
	for key := range props {
		switch key {
		case "sasl.username", "sasl.password", "sasl.jaas.config":
		default:
			return fmt.Errorf("SASL credentials file %s: unknown property %q (known: sasl.username, sasl.password, sasl.jaas.config)", f.path, key)
		}
	}
	user, password := SASLCredentials(props)
	if user == "" || password == "" {
		return fmt.Errorf("SASL credentials file %s: needs sasl.username and sasl.password (or sasl.jaas.config)", f.path)
	}
	f.stamp, f.user, f.password = stamp, user, password
	return nil
}

// Credentials are the username and password as of the file now.
func (f *CredentialsFile) Credentials() (user, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if stamp := stampOf(f.path); stamp != f.stamp {
		if err := f.load(); err != nil {
			f.stamp = stamp // retried when the file changes again
			if f.onReloadError != nil {
				f.onReloadError(err)
			}
		}
	}
	return f.user, f.password
}

// User is the username as of the file now.
func (f *CredentialsFile) User() string {
	user, _ := f.Credentials()
	return user
}
