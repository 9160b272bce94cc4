package authn

import (
	"fmt"
	"strings"
)

// Protocol is a listener's security protocol, Kafka's names.
type Protocol string

// The security protocols (Kafka's security.protocol values).
const (
	Plaintext     Protocol = "PLAINTEXT"
	SSL           Protocol = "SSL"
	SASLPlaintext Protocol = "SASL_PLAINTEXT"
	SASLSSL       Protocol = "SASL_SSL"
)

// ParseProtocol parses a security protocol name (case-insensitive, as Kafka).
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToUpper(strings.TrimSpace(s))); p {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
		return p, nil
	}
	return "", fmt.Errorf("unknown security protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s)
}

// TLS reports whether connections under p are TLS.
func (p Protocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether connections under p must authenticate with SASL.
func (p Protocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// ParseProtocolMap parses Kafka's listener.security.protocol.map,
// "NAME:PROTOCOL,...", into protocols by listener name.
func ParseProtocolMap(s string) (map[string]Protocol, error) {
	m := map[string]Protocol{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, item := range strings.Split(s, ",") {
		name, proto, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want NAME:PROTOCOL", item)
		}
		p, err := ParseProtocol(proto)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("listener %s is mapped twice", name)
		}
		m[name] = p
	}
	return m, nil
}
