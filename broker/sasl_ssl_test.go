package broker_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// startSASLSSL starts a broker whose CLIENT listener is SASL_SSL with
// ssl.client.auth requested (a client certificate is verified when given)
// and the PLAIN users of startSASL; replication uses a PLAINTEXT INTERNAL
// listener.
func startSASLSSL(t *testing.T, ca *authntest.CA) *brokertest.Node {
	t.Helper()
	files := ca.WriteNodeFiles(t, t.TempDir(), metadatatest.NodeID, pkix.Name{CommonName: "broker-1"})
	id, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequested}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice:alice-secret\nbob:bob-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := authn.LoadPlainUsers(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLSSL
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.TLS = id
		c.PlainUsers = users
	})
}

// dialTLSRaw is dialRaw over TLS, with a client certificate when certs
// holds one.
func dialTLSRaw(t *testing.T, addr string, ca *authntest.CA, certs ...tls.Certificate) *rawConn {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

// TestSASLSSLBoundsFramesBeforeAuthentication: on SASL_SSL, as on
// SASL_PLAINTEXT, a request frame larger than 512 KiB (Kafka's
// sasl.server.max.receive.size) before SASL authentication closes the
// connection. The bound was keyed on the connection having no principal
// yet, but on SASL_SSL the TLS handshake sets one before any request is
// read (the client certificate's, or User:ANONYMOUS without one): every
// SASL_SSL client could hold the server's request memory unauthenticated.
func TestSASLSSLBoundsFramesBeforeAuthentication(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	n := startSASLSSL(t, ca)
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"without a client certificate", nil},
		{"with a client certificate", []tls.Certificate{ca.KeyPair(t, pkix.Name{CommonName: "carol"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLSRaw(t, n.Addr, ca, tc.certs...)
			versions := kmsg.NewPtrApiVersionsRequest()
			versions.SetVersion(3)
			versions.ClientSoftwareName = strings.Repeat("x", 600<<10)
			versions.ClientSoftwareVersion = "1"
			// Any answer (ApiVersions' header is v0 even in v3, which
			// roundTrip does not expect: only whether one comes counts).
			err := c.roundTrip(versions, kmsg.NewPtrApiVersionsResponse())
			if !closed(err) && (err == nil || !strings.Contains(err.Error(), "broken pipe")) {
				t.Fatalf("a 600 KiB request before SASL authentication was read and answered (%v), want the connection closed", err)
			}
		})
	}
}

// TestSASLSSLPrincipalIsTheSASLOne pins Kafka's SASL_SSL semantics: a
// client certificate authenticates nobody; before SASL authentication only
// ApiVersions, SaslHandshake and SaslAuthenticate are served (anything
// else closes the connection), and after it the connection acts as the
// SASL principal, not as the certificate's.
func TestSASLSSLPrincipalIsTheSASLOne(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	n := startSASLSSL(t, ca)
	carol := ca.KeyPair(t, pkix.Name{CommonName: "carol"})

	c := dialTLSRaw(t, n.Addr, ca, carol)
	if err := c.roundTrip(kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrApiVersionsResponse()); err != nil {
		t.Fatalf("ApiVersions before authentication: %v", err)
	}
	if err := c.metadata(); !closed(err) {
		t.Fatalf("Metadata before SASL authentication with a client certificate: %v, want the connection closed", err)
	}

	c = dialTLSRaw(t, n.Addr, ca, carol)
	if resp := c.plainLogin("bob", "bob-secret"); resp.ErrorCode != 0 {
		t.Fatalf("PLAIN login: code %d", resp.ErrorCode)
	}
	if err := c.metadata(); err != nil {
		t.Fatalf("Metadata after SASL authentication: %v", err)
	}
	ps := n.Server.ConnectionPrincipals()
	if !slices.Contains(ps, authn.User("bob")) || slices.Contains(ps, authn.User("CN=carol")) {
		t.Fatalf("principals %v, want User:bob and not the certificate's User:CN=carol", ps)
	}
}
