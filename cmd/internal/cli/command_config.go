package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/broker/authn"
)

// --command-config FILE: client properties of the Kafka-speaking
// subcommands, librdkafka's names, one key=value per line (# comments and
// blank lines ignored):
//
//	security.protocol           PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
//	sasl.mechanism(s)           PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
//	sasl.username, sasl.password
//	sasl.jaas.config            Kafka's JAAS line; its username="…" and password="…" are used
//	ssl.ca.location             PEM CAs the broker's certificate must chain to (default the system's)
//	ssl.truststore.location     the same, PEM only (a JKS store is refused)
//	ssl.certificate.location, ssl.key.location   PEM client certificate and key (mutual TLS)
//	client.id
//
// Any other key is refused, naming it, so that a misspelled security
// setting never silently connects without it.

// commandConfigOpts reads a --command-config file into client options.
func commandConfigOpts(path string) ([]kgo.Opt, error) {
	props, err := authn.ReadProperties(path)
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	protocol := "PLAINTEXT"
	mechanism := ""
	user, password := authn.SASLCredentials(props)
	var caFile, certFile, keyFile string
	for key, value := range props {
		switch key {
		case "security.protocol":
			protocol = strings.ToUpper(value)
		case "sasl.mechanism", "sasl.mechanisms":
			mechanism = strings.ToUpper(value)
		case "sasl.username", "sasl.password", "sasl.jaas.config": // authn.SASLCredentials
		case "ssl.ca.location", "ssl.truststore.location":
			if strings.HasSuffix(strings.ToLower(value), ".jks") || props["ssl.truststore.type"] == "JKS" {
				return nil, fmt.Errorf("%s: %s is a JKS store: give a PEM file (keytool -exportcert -rfc)", path, key)
			}
			caFile = value
		case "ssl.truststore.type":
			if !strings.EqualFold(value, "PEM") {
				return nil, fmt.Errorf("%s: ssl.truststore.type %s: only PEM is read", path, value)
			}
		case "ssl.certificate.location":
			certFile = value
		case "ssl.key.location":
			keyFile = value
		case "client.id":
			opts = append(opts, kgo.ClientID(value))
		default:
			return nil, fmt.Errorf("%s: unknown property %q (known: security.protocol, sasl.mechanism, sasl.username, sasl.password, sasl.jaas.config, ssl.ca.location, ssl.truststore.location, ssl.certificate.location, ssl.key.location, client.id)", path, key)
		}
	}
	var useTLS, useSASL bool
	switch protocol {
	case "PLAINTEXT":
	case "SSL":
		useTLS = true
	case "SASL_PLAINTEXT":
		useSASL = true
	case "SASL_SSL":
		useTLS, useSASL = true, true
	default:
		return nil, fmt.Errorf("%s: security.protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", path, protocol)
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("%s: ssl.ca.location: %w", path, err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: ssl.ca.location %s holds no PEM certificate", path, caFile)
			}
		}
		if certFile != "" || keyFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("%s: ssl.certificate.location/ssl.key.location: %w", path, err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if useSASL {
		if user == "" || password == "" {
			return nil, fmt.Errorf("%s: %s needs sasl.username and sasl.password (or sasl.jaas.config)", path, protocol)
		}
		switch mechanism {
		case "PLAIN", "":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("%s: sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", path, mechanism)
		}
	}
	return opts, nil
}
