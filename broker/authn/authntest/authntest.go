// Package authntest makes certificate authorities and certificates for
// tests (crypto/x509, in memory; nothing is downloaded).
package authntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority made in the test.
type CA struct {
	Cert *x509.Certificate
	PEM  []byte
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool is a pool of just this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a PEM certificate and key for subject, for server and
// client use, valid for 127.0.0.1 and localhost.
func (ca *CA) Issue(t testing.TB, subject pkix.Name) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issue(t, subject, nil)
}

// IssueNode is Issue for node id: the certificate also carries the node's
// URI SAN (authn.NodeURI).
func (ca *CA) IssueNode(t testing.TB, id int32, subject pkix.Name) (certPEM, keyPEM []byte) {
	t.Helper()
	// authn.NodeURI's form (authn's own tests import this package).
	u, err := url.Parse(fmt.Sprintf("urn:strata:node:%d", id))
	if err != nil {
		t.Fatal(err)
	}
	return ca.issue(t, subject, []*url.URL{u})
}

// WriteNodeFiles is WriteFiles with a node certificate of node id.
func (ca *CA) WriteNodeFiles(t testing.TB, dir string, id int32, subject pkix.Name) Files {
	t.Helper()
	c, k := ca.IssueNode(t, id, subject)
	return ca.write(t, dir, c, k)
}

func (ca *CA) issue(t testing.TB, subject pkix.Name, uris []*url.URL) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, URIs: uris,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// KeyPair is Issue as a tls.Certificate.
func (ca *CA) KeyPair(t testing.TB, subject pkix.Name) tls.Certificate {
	t.Helper()
	c, k := ca.Issue(t, subject)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// Files is a node identity written to PEM files.
type Files struct{ Cert, Key, CA string }

// WriteFiles issues a certificate for subject and writes it, its key and
// the CA to dir (node.crt, node.key, ca.crt).
func (ca *CA) WriteFiles(t testing.TB, dir string, subject pkix.Name) Files {
	t.Helper()
	c, k := ca.Issue(t, subject)
	return ca.write(t, dir, c, k)
}

func (ca *CA) write(t testing.TB, dir string, c, k []byte) Files {
	t.Helper()
	f := Files{Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"), CA: filepath.Join(dir, "ca.crt")}
	for path, data := range map[string][]byte{f.Cert: c, f.Key: k, f.CA: ca.PEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
