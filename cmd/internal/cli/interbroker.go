package cli

import (
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/broker/authn"
)

// interBrokerFlags are how brokers authenticate to each other and how
// certificate subjects become principals (issue 17): Kafka's
// sasl.mechanism.inter.broker.protocol, the brokers' SASL credentials and
// ssl.principal.mapping.rules.
type interBrokerFlags struct {
	saslMechanism   string
	credentialsFile string
	mappingRules    string
}

func (f *interBrokerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.saslMechanism, "sasl-mechanism-inter-broker-protocol", "", "sasl.mechanism.inter.broker.protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, what brokers authenticate to each other with on a SASL_SSL or SASL_PLAINTEXT inter-broker listener (one of --sasl-enabled-mechanisms; default PLAIN there)")
	fs.StringVar(&f.credentialsFile, "sasl-inter-broker-credentials-file", "", "the brokers' SASL user: a properties file with sasl.username and sasl.password (or sasl.jaas.config), mode 0600, the same user on every broker; re-read when it changes. That user is a super user")
	fs.StringVar(&f.mappingRules, "ssl-principal-mapping-rules", "DEFAULT", "ssl.principal.mapping.rules: how a client certificate's subject DN becomes its principal, comma-separated rules, first match wins: RULE:pattern/replacement/[LU] or DEFAULT (the DN itself); a certificate no rule applies to is refused")
}

// config loads the inter-broker credentials (when the inter-broker
// listener is SASL or the flags are given) and parses the mapping rules.
func (f *interBrokerFlags) config(interBrokerSASL bool, log *slog.Logger) (mechanism string, creds *authn.CredentialsFile, mapping *authn.PrincipalMapping, err error) {
	mapping, err = authn.ParsePrincipalMapping(f.mappingRules)
	if err != nil {
		return "", nil, nil, usageErrorf("--ssl-principal-mapping-rules: %v", err)
	}
	mechanism = strings.ToUpper(strings.TrimSpace(f.saslMechanism))
	if mechanism == "" && interBrokerSASL {
		mechanism = "PLAIN" // Kafka's default
	}
	switch mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return "", nil, nil, usageErrorf("--sasl-mechanism-inter-broker-protocol %s: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.saslMechanism)
	}
	if f.credentialsFile == "" {
		if interBrokerSASL {
			return "", nil, nil, usageErrorf("the inter-broker listener is SASL: set --sasl-inter-broker-credentials-file (a properties file with the brokers' sasl.username and sasl.password)")
		}
		if f.saslMechanism != "" {
			return "", nil, nil, usageErrorf("--sasl-mechanism-inter-broker-protocol needs a SASL inter-broker listener (--listener-security-protocol-map NAME:SASL_SSL) and --sasl-inter-broker-credentials-file")
		}
		return "", nil, mapping, nil
	}
	creds, loose, err := authn.LoadCredentialsFile(f.credentialsFile, func(err error) {
		log.Error("reloading the inter-broker SASL credentials failed; the previous ones stay in use until the file is fixed", "err", err)
	})
	if err != nil {
		return "", nil, nil, usageErrorf("--sasl-inter-broker-credentials-file: %v", err)
	}
	if loose {
		log.Warn("the inter-broker SASL credentials file can be read by other users: chmod 600 it", "path", f.credentialsFile)
	}
	return mechanism, creds, mapping, nil
}
