package cli

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/metadata"
)

// defaultAddScramIterations is Kafka's for --add-scram without iterations=.
const defaultAddScramIterations = 4096

// parseAddScram parses one `strata format --add-scram` value, Kafka's
// KIP-900 syntax: MECHANISM=[key=value,...] with MECHANISM SCRAM-SHA-256
// or SCRAM-SHA-512 and the keys name (required), then either password,
// or salt and saltedpassword (base64, the salted password being PBKDF2's
// output), and iterations (default 4096; 4096 to 16384). A value may be
// double-quoted, and then hold ',' and ']'. The salt is random when only
// a password is given. Only the salted credential is kept.
func parseAddScram(s string) (metadata.ScramCredential, error) {
	mechanismName, rest, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(rest, "[") || !strings.HasSuffix(rest, "]") {
		return metadata.ScramCredential{}, fmt.Errorf("%q: want MECHANISM=[name=NAME,password=PASSWORD]", s)
	}
	mechanism := authn.ScramMechanism(strings.ToUpper(strings.TrimSpace(mechanismName)))
	if mechanism.Number() == 0 {
		return metadata.ScramCredential{}, fmt.Errorf("mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", mechanismName)
	}
	values, err := parseScramKeyValues(rest[1 : len(rest)-1])
	if err != nil {
		return metadata.ScramCredential{}, err
	}
	name, password := values["name"], values["password"]
	if name == "" {
		return metadata.ScramCredential{}, fmt.Errorf("%s: name= is required", mechanism)
	}
	iterations := defaultAddScramIterations
	if v, ok := values["iterations"]; ok {
		if iterations, err = strconv.Atoi(v); err != nil || iterations < metadata.MinScramIterations || iterations > metadata.MaxScramIterations {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: iterations=%q: want %d to %d", name, v, metadata.MinScramIterations, metadata.MaxScramIterations)
		}
	}
	var salt []byte
	if v, ok := values["salt"]; ok {
		if salt, err = base64.StdEncoding.DecodeString(v); err != nil || len(salt) == 0 {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: salt= must be base64", name)
		}
	}
	var credential authn.ScramCredential
	switch salted, hasSalted := values["saltedpassword"]; {
	case hasSalted && password != "":
		return metadata.ScramCredential{}, fmt.Errorf("user %s: give password= or saltedpassword=, not both", name)
	case hasSalted:
		if salt == nil {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: saltedpassword= needs salt=", name)
		}
		saltedPassword, err := base64.StdEncoding.DecodeString(salted)
		if err != nil {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: saltedpassword= must be base64", name)
		}
		credential, err = authn.ScramCredentialFromSalted(mechanism, salt, saltedPassword, iterations)
		if err != nil {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: %w", name, err)
		}
	case password != "":
		if salt == nil {
			salt = make([]byte, 32)
			rand.Read(salt)
		}
		credential, err = authn.ScramCredentialWithSalt(mechanism, password, salt, iterations)
		if err != nil {
			return metadata.ScramCredential{}, fmt.Errorf("user %s: %w", name, err)
		}
	default:
		return metadata.ScramCredential{}, fmt.Errorf("user %s: password= (or salt= and saltedpassword=) is required", name)
	}
	return metadata.ScramCredential{User: name, Mechanism: mechanism.Number(), Salt: credential.Salt, Iterations: int32(iterations),
		StoredKey: credential.StoredKey, ServerKey: credential.ServerKey}, nil
}

// parseScramKeyValues splits key=value,key="quoted value",...; a key
// given twice or not known is an error.
func parseScramKeyValues(s string) (map[string]string, error) {
	values := map[string]string{}
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" {
			return nil, fmt.Errorf("%q: want key=value", s)
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("%s: unterminated quote", key)
			}
			value, rest = rest[1:1+end], rest[2+end:]
			if rest != "" && !strings.HasPrefix(rest, ",") {
				return nil, fmt.Errorf("%s: want ',' after the quoted value", key)
			}
		} else {
			value, rest, _ = strings.Cut(rest, ",")
			rest = "," + rest
			if rest == "," {
				rest = ""
			}
		}
		s = strings.TrimPrefix(rest, ",")
		switch key {
		case "name", "password", "salt", "saltedpassword", "iterations":
		default:
			return nil, fmt.Errorf("unknown key %q: want name, password, salt, saltedpassword or iterations", key)
		}
		if _, dup := values[key]; dup {
			return nil, fmt.Errorf("%s= is given twice", key)
		}
		values[key] = value
	}
	return values, nil
}
