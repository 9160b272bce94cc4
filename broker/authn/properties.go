package authn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
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

// parseProperties parses a properties file's data; path names it in
// errors ("": the caller names it).
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
			return nil, fmt.Errorf("%sline %d: want key=value", prefix(path), n)
		}
		props[strings.TrimSpace(key)] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s%w", prefix(path), err)
	}
	return props, nil
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + " "
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
// no other key) and read again when the file changes (reloadingFile): the
// next authentication uses the new credentials, no restart. A change that
// does not parse keeps the previous credentials.
type CredentialsFile struct {
	file *reloadingFile[saslCredentials]
}

type saslCredentials struct{ user, password string }

// LoadCredentialsFile reads path; looseMode reports that users other than
// its owner may read it (the caller warns: it holds a password).
func LoadCredentialsFile(path string, onReloadError func(error)) (f *CredentialsFile, looseMode bool, err error) {
	file, err := newReloadingFile(path, "SASL credentials file", parseCredentials, onReloadError)
	if err != nil {
		return nil, false, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	return &CredentialsFile{file: file}, info.Mode().Perm()&0o077 != 0, nil
}

func parseCredentials(data []byte) (saslCredentials, error) {
	props, err := parseProperties("", data)
	if err != nil {
		return saslCredentials{}, err
	}
	for key := range props {
		switch key {
		case "sasl.username", "sasl.password", "sasl.jaas.config":
		default:
			return saslCredentials{}, fmt.Errorf("unknown property %q (known: sasl.username, sasl.password, sasl.jaas.config)", key)
		}
	}
	user, password := SASLCredentials(props)
	if user == "" || password == "" {
		return saslCredentials{}, errors.New("needs sasl.username and sasl.password (or sasl.jaas.config)")
	}
	return saslCredentials{user, password}, nil
}

// Credentials are the username and password as of the file now.
func (f *CredentialsFile) Credentials() (user, password string) {
	c := f.file.Current()
	return c.user, c.password
}

// User is the username as of the file now.
func (f *CredentialsFile) User() string {
	user, _ := f.Credentials()
	return user
}
