package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"os"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// serverFiles writes a server identity issued by ca into dir.
func serverFiles(t *testing.T, dir string, ca *authntest.CA, auth ClientAuth) TLSFiles {
	f := ca.WriteFiles(t, dir, pkix.Name{CommonName: "broker-1"})
	return TLSFiles{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, ClientAuth: auth}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake runs one TLS handshake against srv and returns the client's
// view (or error) and the principal the server derived.
func handshake(t *testing.T, srv *TLS, client *tls.Config) (tls.ConnectionState, Principal, error) {
	t.Helper()
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	type result struct {
		p   Principal
		err error
	}
	done := make(chan result, 1)
	go func() {
		sc := tls.Server(b, srv.ServerConfig())
		err := sc.HandshakeContext(context.Background())
		p, _ := CertPrincipal(sc.ConnectionState(), nil)
		done <- result{p, err}
		if err != nil {
			b.Close()
		}
	}()
	cc := tls.Client(a, client)
	err := cc.HandshakeContext(context.Background())
	if err != nil {
		a.Close()
	}
	r := <-done
	if err == nil {
		err = r.err
	}
	return cc.ConnectionState(), r.p, err
}

// tcpPair is a connected pair of loopback sockets (buffered, unlike
// net.Pipe: a TLS alert does not wait for its reader).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	return a, b
}

func TestTLSHandshakeAnonymousWithoutClientCert(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	srv, err := NewTLS(serverFiles(t, t.TempDir(), ca, ClientAuthNone), nil)
	if err != nil {
		t.Fatal(err)
	}
	state, p, err := handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if state.PeerCertificates[0].Subject.CommonName != "broker-1" {
		t.Fatalf("server presented %v", state.PeerCertificates[0].Subject)
	}
	if p != Anonymous {
		t.Fatalf("principal %v, want %v", p, Anonymous)
	}
}

func TestTLSRefusesVersionsBelow12(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	srv, err := NewTLS(serverFiles(t, t.TempDir(), ca, ClientAuthNone), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	state, _, err := handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12})
	if err != nil || state.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2: version %x, err %v", state.Version, err)
	}
}

func TestTLSRequiredClientAuth(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	dir := t.TempDir()
	srv, err := NewTLS(serverFiles(t, dir, ca, ClientAuthRequired), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("a client without a certificate got in with ssl.client.auth=required")
	}
	other := authntest.NewCA(t, "other")
	oc, ok := other.Issue(t, pkix.Name{CommonName: "mallory"})
	stranger, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{stranger}}); err == nil {
		t.Fatal("a certificate of another CA got in")
	}
	cc, ck := ca.Issue(t, pkix.Name{CommonName: "alice", Organization: []string{"example"}})
	alice, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := handshake(t, srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{alice}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Principal{Type: "User", Name: "CN=alice,O=example"}); p != want {
		t.Fatalf("principal %v, want %v", p, want)
	}
}

func TestTLSReloadsChangedCertificate(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	dir := t.TempDir()
	files := serverFiles(t, dir, ca, ClientAuthNone)
	srv, err := NewTLS(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	state, _, err := handshake(t, srv, client)
	if err != nil || state.PeerCertificates[0].Subject.CommonName != "broker-1" {
		t.Fatalf("before rotation: %v", err)
	}
	cert, key := ca.Issue(t, pkix.Name{CommonName: "broker-1-rotated"})
	writeFile(t, files.CertFile, cert)
	writeFile(t, files.KeyFile, key)
	// Same size is possible: move the modification time explicitly.
	later := time.Now().Add(time.Minute)
	os.Chtimes(files.CertFile, later, later)
	os.Chtimes(files.KeyFile, later, later)
	state, _, err = handshake(t, srv, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := state.PeerCertificates[0].Subject.CommonName; got != "broker-1-rotated" {
		t.Fatalf("after rotation the server presented %q", got)
	}
	// A broken file keeps the last good identity and reports the error.
	var reported error
	srv.onReloadError = func(err error) { reported = err }
	writeFile(t, files.CertFile, []byte("not a certificate"))
	evenLater := later.Add(time.Minute)
	os.Chtimes(files.CertFile, evenLater, evenLater)
	state, _, err = handshake(t, srv, client)
	if err != nil || state.PeerCertificates[0].Subject.CommonName != "broker-1-rotated" {
		t.Fatalf("with a broken file: err %v", err)
	}
	if reported == nil {
		t.Fatal("the failed reload was not reported")
	}
}

func TestTLSClientDialsWithNodeCertificate(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	files := serverFiles(t, t.TempDir(), ca, ClientAuthRequired)
	srv, err := NewTLS(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan Principal, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			got <- Principal{}
			return
		}
		p, _ := CertPrincipal(tc.ConnectionState(), nil)
		got <- p
	}()
	c, err := srv.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := <-got; p != User("CN=broker-1") {
		t.Fatalf("server saw %v, want User:CN=broker-1", p)
	}
}

func TestParseProtocolMap(t *testing.T) {
	m, err := ParseProtocolMap("CLIENT:SASL_SSL, INTERNAL:ssl")
	if err != nil || m["CLIENT"] != SASLSSL || m["INTERNAL"] != SSL {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"CLIENT", "CLIENT:TLS", "A:SSL,A:SSL", ":SSL"} {
		if _, err := ParseProtocolMap(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
