package metadata

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// ControllerTLS puts the controller port under mutual TLS (Kafka's
// CONTROLLER:SSL): every connection, Raft and RPC, in both directions, is
// TLS 1.2+ with a certificate on each side that chains to the node's CA,
// and each side checks that the other's certificate names the node id it
// claims in the handshake. The cluster secret's challenge–response still
// runs inside the TLS session: TLS adds encryption, integrity and a
// per-node identity, the secret still proves membership.
type ControllerTLS struct {
	// Identity serves and dials TLS with this node's certificate; each new
	// connection takes the identity as of then, so replacing the files
	// takes effect without a restart (authn.TLS, built with client
	// authentication required).
	Identity TLSIdentity
	// CertificateNodeID is the node id a certificate names (authn.NodeID,
	// the URI SAN urn:strata:node:<id>); false when it names none.
	CertificateNodeID func(*x509.Certificate) (int32, bool, error)
}

// TLSIdentity is what the controller port needs of a node's TLS identity.
type TLSIdentity interface {
	// ServerConfig is the listener's configuration; it must require and
	// verify client certificates.
	ServerConfig() *tls.Config
	// ClientConfig is the configuration of a connection to serverName: it
	// verifies the peer's certificate and presents this node's.
	ClientConfig(serverName string) *tls.Config
}

// validate reports what is missing.
func (c *ControllerTLS) validate() error {
	if c.Identity == nil || c.CertificateNodeID == nil {
		return errors.New("metadata: config: controller TLS needs an identity and CertificateNodeID")
	}
	return nil
}

// ControllerConnectionsRefused is how many inbound controller connections
// this node refused since it started (a handshake that failed: TLS, the
// certificate's node id, the cluster id or secret, the version); each is
// logged with the reason.
func (s *Store) ControllerConnectionsRefused() uint64 { return s.layer.refused.Load() }

// nodeURNHint is the SAN an operator should put in a node certificate
// (authn.NodeURI's form), for error messages.
func nodeURNHint(id int32) string { return fmt.Sprintf("URI SAN urn:strata:node:%d", id) }

// tlsHandshakeRecord is the first byte of a TLS ClientHello: a controller
// listener without TLS that reads it knows that the peer has TLS on.
const tlsHandshakeRecord = 0x16

// errPeerSpeaksTLS is what a listener without TLS reads from a dialer with it.
var errPeerSpeaksTLS = errors.New("the peer speaks TLS but this node's controller listener does not: give every node the same --listener-security-protocol-map CONTROLLER:SSL (and --ssl-cert-file, --ssl-key-file, --ssl-ca-file), or none of them")

// serverTLS runs the listener's side of the TLS handshake on conn (within
// the handshake deadline already set).
func (l *streamLayer) serverTLS(conn net.Conn) (*tls.Conn, error) {
	secured := tls.Server(conn, l.config.tls.Identity.ServerConfig())
	if err := secured.Handshake(); err != nil {
		return nil, explainTLSError("TLS handshake with the dialer", true, err)
	}
	return secured, nil
}

// clientTLS runs the dialer's side of the TLS handshake with the node
// expected at address, and checks that its certificate names that node;
// end bounds it as for handshakeDeadline.
func (l *streamLayer) clientTLS(conn net.Conn, address string, expected int32, end time.Time) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(l.handshakeDeadline(end)); err != nil {
		return nil, err
	}
	secured := tls.Client(conn, l.config.tls.Identity.ClientConfig(host))
	if err := secured.Handshake(); err != nil {
		return nil, explainTLSError("TLS handshake", false, err)
	}
	if err := l.checkPeerCertificate(secured, expected, "the node answering"); err != nil {
		return nil, err
	}
	return secured, nil
}

// checkPeerCertificate checks that the peer of conn presented a certificate
// that chains to this node's CA and names node claimed.
func (l *streamLayer) checkPeerCertificate(conn *tls.Conn, claimed int32, who string) error {
	state := conn.ConnectionState()
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return &handshakeError{status: handshakeCertificateMismatch, detail: fmt.Sprintf("%s as node %d presented no certificate signed by this node's CA (check --ssl-ca-file here and --ssl-cert-file on node %d)", who, claimed, claimed)}
	}
	cert := state.PeerCertificates[0]
	id, ok, err := l.config.tls.CertificateNodeID(cert)
	switch {
	case err != nil:
		return &handshakeError{status: handshakeCertificateMismatch, detail: fmt.Sprintf("%s as node %d: %v (a node certificate names one node: %s)", who, claimed, err, nodeURNHint(claimed))}
	case !ok:
		return &handshakeError{status: handshakeCertificateMismatch, detail: fmt.Sprintf("%s as node %d presented certificate %q, which names no node id: a node certificate needs the %s", who, claimed, cert.Subject, nodeURNHint(claimed))}
	case id != claimed:
		return &handshakeError{status: handshakeCertificateMismatch, detail: fmt.Sprintf("%s as node %d presented the certificate of node %d (%q): give node %d its own certificate, with the %s", who, claimed, id, cert.Subject, claimed, nodeURNHint(claimed))}
	}
	return nil
}

// explainTLSError adds to a failed TLS handshake what the operator should
// check; listening says which side this node was.
func explainTLSError(what string, listening bool, err error) error {
	var unknownAuthority x509.UnknownAuthorityError
	var recordHeader tls.RecordHeaderError
	var hostname x509.HostnameError
	var operation *net.OpError
	switch {
	case errors.As(err, &operation) && operation.Op == "remote error": // a TLS alert from the peer
		return fmt.Errorf("%s: %w (the peer refused this node's certificate: its --ssl-ca-file must hold the CA that signed this node's --ssl-cert-file, and the certificate must be valid now; see the peer's log)", what, err)
	case errors.As(err, &unknownAuthority):
		return fmt.Errorf("%s: %w (the peer's certificate is signed by a CA this node does not trust: every node's --ssl-ca-file must hold the CA that signed the others' certificates)", what, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%s: %w (the peer's certificate must name the host in its controller address, as a DNS or IP SAN)", what, err)
	case errors.As(err, &recordHeader):
		return fmt.Errorf("%s: %w (the peer does not speak TLS: its controller listener is not CONTROLLER:SSL; give every node the same --listener-security-protocol-map)", what, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: %w (the peer closed the connection: if its controller listener is not TLS, give every node the same --listener-security-protocol-map CONTROLLER:SSL; if it is, it may have refused this node's certificate, see its log)", what, err)
	case listening:
		return fmt.Errorf("%s: %w (the dialer must present a node certificate signed by the CA of this node's --ssl-ca-file: a client holding a certificate of another CA does not even send it)", what, err)
	}
	return fmt.Errorf("%s: %w (see the peer's log; every node needs --ssl-cert-file, --ssl-key-file and --ssl-ca-file with CONTROLLER:SSL)", what, err)
}
