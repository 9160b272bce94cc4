package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/authn"
)

// Brokers authenticate to each other on the inter-broker listener, and a
// connection that proves it is a broker acts as the broker principal.
//
// How a broker proves it (what its clients — replica fetchers,
// transaction marker and KIP-890 verification clients, the status page's
// client — present when they dial another broker's inter-broker listener):
//
//   - SASL_PLAINTEXT/SASL_SSL inter-broker listener: the inter-broker
//     SASL user (--sasl-mechanism-inter-broker-protocol and
//     --sasl-inter-broker-credentials-file; every broker uses the same
//     user). A connection authenticated by SASL as that user, with that
//     mechanism, is a broker.
//   - SSL inter-broker listener with --ssl-client-auth required or
//     requested: the node certificate, whose URI SAN names the node
//     (authn.NodeID). A connection whose verified certificate names a node
//     is a broker, on any listener.
//
// The broker principal is a super user: every ACL check passes for it,
// without listing it in --super-users.
//
// Replica requests (Fetch and OffsetForLeaderEpoch with a replica id >= 0)
// move a follower's state on the leader: its place in the ISR and the high
// watermark. They are accepted (replicaAllowed) when:
//
//  1. the connection's certificate names no node, or names the replica id
//     itself (a node certificate binds its node, whoever the principal); and
//  2. the connection is a broker; or, under --authorizer acl, its
//     principal has CLUSTER_ACTION on the cluster (as in Kafka); or, under
//     --authorizer none, the inter-broker listener does not authenticate
//     brokers (PLAINTEXT, or SSL with --ssl-client-auth none: brokers
//     connect as User:ANONYMOUS, so there is nothing to tell them from
//     clients by, as in Kafka without an authorizer).
//
// So whenever the inter-broker listener authenticates brokers (SASL, or
// SSL with client certificates) only brokers may replicate, whatever the
// authorizer. Anyone else is answered TOPIC_AUTHORIZATION_FAILED for
// every partition, as Kafka answers a fetch the principal may not make,
// and nothing of the follower's state moves. ListOffsets with a replica id
// from such a connection is answered as a consumer's.

// interBrokerListener is the listener brokers replicate over.
func (c *Config) interBrokerListener() Listener {
	for _, l := range c.Listeners {
		if l.Name == c.InterBrokerListener {
			return l
		}
	}
	return Listener{Name: c.InterBrokerListener, SecurityProtocol: authn.Plaintext}
}

// brokersAuthenticate reports whether brokers prove who they are on the
// inter-broker listener (SASL, or SSL with client certificates).
func (c *Config) brokersAuthenticate() bool {
	p := c.interBrokerListener().SecurityProtocol
	return p.SASL() || (p.TLS() && c.TLS != nil && c.TLS.ClientAuth() != authn.ClientAuthNone)
}

// validateInterBroker checks the inter-broker authentication settings.
func (c *Config) validateInterBroker() error {
	l := c.interBrokerListener()
	sasl := c.InterBrokerSASLMechanism != "" || c.InterBrokerCredentials != nil
	switch {
	case sasl && !l.SecurityProtocol.SASL():
		return fmt.Errorf("broker: an inter-broker SASL mechanism and credentials are set but the inter-broker listener %s is %s: map it to SASL_SSL or SASL_PLAINTEXT, or drop --sasl-mechanism-inter-broker-protocol and --sasl-inter-broker-credentials-file", l.Name, l.SecurityProtocol)
	case !l.SecurityProtocol.SASL():
	case c.InterBrokerSASLMechanism == "" || c.InterBrokerCredentials == nil:
		return fmt.Errorf("broker: the inter-broker listener %s is %s: set --sasl-mechanism-inter-broker-protocol and --sasl-inter-broker-credentials-file (the brokers' SASL user)", l.Name, l.SecurityProtocol)
	case !slices.Contains(c.SASLMechanisms, c.InterBrokerSASLMechanism):
		return fmt.Errorf("broker: inter-broker SASL mechanism %s is not in --sasl-enabled-mechanisms %v", c.InterBrokerSASLMechanism, c.SASLMechanisms)
	case c.InterBrokerSASLMechanism == mechanismPlain:
		user, password := c.InterBrokerCredentials.Credentials()
		if c.PlainUsers == nil || !c.PlainUsers.Verify(user, password) {
			return fmt.Errorf("broker: the inter-broker user %q of --sasl-inter-broker-credentials-file is not in --sasl-plain-users-file with that password: brokers could not authenticate to each other", user)
		}
	}
	if l.SecurityProtocol == authn.SSL && c.TLS != nil && c.TLS.ClientAuth() != authn.ClientAuthNone {
		// Brokers prove who they are by their node certificates: this
		// one's must name this node, or the others refuse its fetches.
		leaf, err := c.TLS.Leaf()
		if err != nil {
			return fmt.Errorf("broker: --ssl-cert-file: %w", err)
		}
		id, ok, err := authn.NodeID(leaf)
		switch {
		case err != nil:
			return fmt.Errorf("broker: --ssl-cert-file: %w", err)
		case !ok:
			return fmt.Errorf("broker: the inter-broker listener %s authenticates brokers by their node certificates (SSL with --ssl-client-auth %s), but --ssl-cert-file names no node: issue it with the URI SAN %s", l.Name, c.TLS.ClientAuth(), authn.NodeURI(c.NodeID))
		case id != c.NodeID:
			return fmt.Errorf("broker: --ssl-cert-file is the node certificate of node %d (URI SAN %s), not of this node %d", id, authn.NodeURI(id), c.NodeID)
		}
	}
	return nil
}

// interBrokerClientOpts are the kgo options of this broker's clients to
// other brokers (replica fetchers, transaction markers, KIP-890
// verification, the status page): they connect to the inter-broker
// listener, so they speak its security protocol, and authenticate as the
// broker principal.
func (c *Config) interBrokerClientOpts() []kgo.Opt {
	var opts []kgo.Opt
	p := c.interBrokerListener().SecurityProtocol
	if p.TLS() {
		opts = append(opts, kgo.Dialer(c.TLS.Dial))
	}
	if p.SASL() {
		opts = append(opts, kgo.SASL(c.interBrokerSASL()))
	}
	return opts
}

// interBrokerSASL is the inter-broker SASL mechanism; each authentication
// takes the credentials file as it is then.
func (c *Config) interBrokerSASL() sasl.Mechanism {
	creds := c.InterBrokerCredentials
	switch authn.ScramMechanism(c.InterBrokerSASLMechanism) {
	case authn.ScramSHA256:
		return scram.Sha256(func(context.Context) (scram.Auth, error) {
			user, password := creds.Credentials()
			return scram.Auth{User: user, Pass: password}, nil
		})
	case authn.ScramSHA512:
		return scram.Sha512(func(context.Context) (scram.Auth, error) {
			user, password := creds.Credentials()
			return scram.Auth{User: user, Pass: password}, nil
		})
	}
	return plain.Plain(func(context.Context) (plain.Auth, error) {
		user, password := creds.Credentials()
		return plain.Auth{User: user, Pass: password}, nil
	})
}

// InterBrokerClientOpts are the kgo options of a client of this broker's
// own inter-broker listener, authenticated as the broker principal (the
// status page's client): the seed address and the listener's security.
func (s *Server) InterBrokerClientOpts() []kgo.Opt {
	addr := s.Addr(s.cfg.InterBrokerListener)
	if addr == nil {
		return nil
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return append([]kgo.Opt{kgo.SeedBrokers(net.JoinHostPort(host, port))}, s.cfg.interBrokerClientOpts()...)
}

// brokerIdentity is what a connection proved about being a broker. Used
// by the reader goroutine only.
type brokerIdentity struct {
	// node is the node id its verified certificate names (authn.NodeID),
	// when hasNode.
	node    int32
	hasNode bool
	// saslUser is whether checked, the principal as of the last check
	// (SASL re-authentication may change it), is the inter-broker SASL
	// user; checkedOK once checked.
	checked   authn.Principal
	saslUser  bool
	checkedOK bool
}

// authenticateCertificate takes a TLS connection's principal (its
// verified certificate's subject, mapped by ssl.principal.mapping.rules)
// and the node its certificate names. An error refuses the connection: no
// mapping rule applies, or the certificate names two nodes.
func (c *clientConn) authenticateCertificate(state tls.ConnectionState) error {
	principal, err := authn.CertPrincipal(state, c.server.cfg.SSLPrincipalMapping)
	if err != nil {
		return err
	}
	c.setPrincipal(principal)
	if len(state.VerifiedChains) > 0 && len(state.PeerCertificates) > 0 {
		id, ok, err := authn.NodeID(state.PeerCertificates[0])
		if err != nil {
			return err
		}
		c.peer.node, c.peer.hasNode = id, ok
	}
	return nil
}

// isBroker reports whether the connection is the broker principal: its
// certificate names a node, or it authenticated by SASL as the
// inter-broker user with the inter-broker mechanism (a user of that name
// in another mechanism, such as a SCRAM credential a client added or an
// OAUTHBEARER token's subject, is not a broker).
func (c *clientConn) isBroker() bool {
	if c.peer.hasNode {
		return true
	}
	creds := c.server.cfg.InterBrokerCredentials
	if creds == nil || !c.sasl.authenticated || c.sasl.mechanism != c.server.cfg.InterBrokerSASLMechanism {
		return false
	}
	if !c.peer.checkedOK || c.peer.checked != c.principal() {
		c.peer.checked, c.peer.checkedOK = c.principal(), true
		c.peer.saslUser = c.principal() == authn.User(creds.User())
	}
	return c.peer.saslUser
}

// replicaAllowed reports whether the connection may act as replica
// replicaID (see the comment at the top of this file).
func (c *clientConn) replicaAllowed(replicaID int32) bool {
	allowed := false
	switch {
	case c.peer.hasNode && c.peer.node != replicaID:
	case c.isBroker():
		allowed = true
	case c.server.cfg.Authorizer != nil:
		allowed = c.authorizedCluster(authz.OpClusterAction)
	default:
		allowed = !c.server.cfg.brokersAuthenticate()
	}
	if !allowed {
		c.server.metrics.replicaRequestsRefused.Inc()
		c.log.Warn("refused a replica request: only brokers may replicate (the inter-broker SASL user, or a node certificate naming the replica id)",
			"principal", c.principalName(), "replica_id", replicaID, "certificate_node", c.certificateNode())
	}
	return allowed
}

// certificateNode is the node the connection's certificate names, -1 for
// none (for logs).
func (c *clientConn) certificateNode() int32 {
	if c.peer.hasNode {
		return c.peer.node
	}
	return -1
}
