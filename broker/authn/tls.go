package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// ClientAuth is Kafka's ssl.client.auth.
type ClientAuth string

// The ssl.client.auth values.
const (
	ClientAuthNone      ClientAuth = "none"
	ClientAuthRequested ClientAuth = "requested" // a certificate is asked for and verified when given
	ClientAuthRequired  ClientAuth = "required"  // mutual TLS: no valid certificate, no connection
)

// ParseClientAuth parses an ssl.client.auth value.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch a := ClientAuth(s); a {
	case ClientAuthNone, ClientAuthRequested, ClientAuthRequired:
		return a, nil
	}
	return "", fmt.Errorf("ssl client auth %q: want none, requested or required", s)
}

// TLSFiles names the PEM files of a node's TLS identity.
type TLSFiles struct {
	CertFile string // the node certificate (chain), PEM
	KeyFile  string // its private key, PEM
	// CAFile holds the certificate authorities that client certificates
	// (and, for inter-broker clients, other brokers' certificates) must
	// chain to; empty: the system's roots, and client certificates cannot
	// be verified.
	CAFile     string
	ClientAuth ClientAuth
}

// TLS serves and dials TLS with the certificate, key and CA of TLSFiles,
// re-read when one of the files changes (its modification time or size):
// rotating a certificate needs no restart. A file that fails to load keeps
// the previous identity (the next handshake retries). TLS 1.2 is the
// oldest version spoken.
type TLS struct {
	files TLSFiles

	mu     sync.Mutex // guards below
	stamps [3]fileStamp
	cert   *tls.Certificate
	pool   *x509.CertPool // nil: the system's roots
	server *tls.Config
	// OnReloadError, when set, is told of a failed reload (the previous
	// identity stays in use).
	onReloadError func(error)
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewTLS loads files; an error names the file at fault.
func NewTLS(files TLSFiles, onReloadError func(error)) (*TLS, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("TLS needs --ssl-cert-file and --ssl-key-file")
	}
	if files.ClientAuth == "" {
		files.ClientAuth = ClientAuthNone
	}
	if files.ClientAuth != ClientAuthNone && files.CAFile == "" {
		return nil, fmt.Errorf("--ssl-client-auth %s needs --ssl-ca-file (the CA client certificates must chain to)", files.ClientAuth)
	}
	t := &TLS{files: files, onReloadError: onReloadError}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func stampOf(path string) fileStamp {
	if path == "" {
		return fileStamp{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}
}

// load reads the files (t.mu held, or before t is shared).
func (t *TLS) load() error {
	stamps := [3]fileStamp{stampOf(t.files.CertFile), stampOf(t.files.KeyFile), stampOf(t.files.CAFile)}
	cert, err := tls.LoadX509KeyPair(t.files.CertFile, t.files.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s with key %s: %w", t.files.CertFile, t.files.KeyFile, err)
	}
	var pool *x509.CertPool
	if t.files.CAFile != "" {
		pem, err := os.ReadFile(t.files.CAFile)
		if err != nil {
			return fmt.Errorf("TLS CA file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("TLS CA file %s holds no PEM certificate", t.files.CAFile)
		}
	}
	server := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
	}
	switch t.files.ClientAuth {
	case ClientAuthRequested:
		server.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequired:
		server.ClientAuth = tls.RequireAndVerifyClientCert
	}
	t.stamps, t.cert, t.pool, t.server = stamps, &cert, pool, server
	return nil
}

// current reloads the files when they changed and returns the identity.
func (t *TLS) current() (*tls.Certificate, *x509.CertPool, *tls.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	stamps := [3]fileStamp{stampOf(t.files.CertFile), stampOf(t.files.KeyFile), stampOf(t.files.CAFile)}
	if stamps != t.stamps {
		if err := t.load(); err != nil {
			t.stamps = stamps // retried when the files change again
			if t.onReloadError != nil {
				t.onReloadError(err)
			}
		}
	}
	return t.cert, t.pool, t.server
}

// ServerConfig is the tls.Config of a listener: each handshake takes the
// identity as of the files then.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			_, _, server := t.current()
			return server, nil
		},
	}
}

// ClientConfig is the tls.Config of a connection to serverName (another
// broker): its certificate must chain to the CA file (or the system's
// roots), and the node certificate is presented for mutual TLS.
func (t *TLS) ClientConfig(serverName string) *tls.Config {
	cert, pool, _ := t.current()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   serverName,
		RootCAs:      pool,
		Certificates: []tls.Certificate{*cert},
	}
}

// Dial connects to address over TLS (a kgo.Dialer for inter-broker clients).
func (t *TLS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: t.ClientConfig(host)}
	return d.DialContext(ctx, network, address)
}

// ClientAuth is the ssl.client.auth the listeners serve with.
func (t *TLS) ClientAuth() ClientAuth { return t.files.ClientAuth }

// Leaf is the node certificate in use (the first of the chain).
func (t *TLS) Leaf() (*x509.Certificate, error) {
	cert, _, _ := t.current()
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}
