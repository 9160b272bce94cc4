package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/broker/authn"
)

// The controller and admin ports' TLS (issue 17): the controller port is
// Kafka's controller listener, named CONTROLLER in
// --listener-security-protocol-map; the admin listener has --admin-ssl.
// Both use the node's identity of --ssl-cert-file, --ssl-key-file and
// --ssl-ca-file, loaded (and reloaded when the files change) by authn.TLS.

// controllerListenerName is Kafka's name for the controller listener in
// listener.security.protocol.map.
const controllerListenerName = "CONTROLLER"

// portsFlags are strata serve's flags of the controller and admin ports' TLS.
type portsFlags struct {
	adminSSL           bool
	adminSSLClientAuth string
}

func addPortsFlags(fs *pflag.FlagSet, f *portsFlags) {
	fs.BoolVar(&f.adminSSL, "admin-ssl", false, "serve the admin listener over HTTPS (TLS 1.2+) with the node's certificate (--ssl-cert-file, --ssl-key-file)")
	fs.StringVar(&f.adminSSLClientAuth, "admin-ssl-client-auth", "none", "client certificates on the HTTPS admin listener: none, requested (a certificate signed by --ssl-ca-file, when given, authenticates like the admin token) or required (no certificate, no connection, /healthz included)")
}

// portsTLS are the TLS identities of the controller and admin ports (nil
// where the port is not TLS).
type portsTLS struct {
	controller, admin *authn.TLS
	adminClientAuth   authn.ClientAuth
}

// controllerProtocol is the CONTROLLER entry of
// --listener-security-protocol-map (PLAINTEXT when absent).
func controllerProtocol(protocolMap string) (authn.Protocol, error) {
	protocols, err := authn.ParseProtocolMap(protocolMap)
	if err != nil {
		return "", usageErrorf("--listener-security-protocol-map: %v", err)
	}
	p, ok := protocols[controllerListenerName]
	if !ok {
		return authn.Plaintext, nil
	}
	if p != authn.Plaintext && p != authn.SSL {
		return "", usageErrorf("--listener-security-protocol-map: %s:%s: the controller port is PLAINTEXT or SSL (mutual TLS with node certificates); nodes authenticate there with the cluster secret and their certificates, not SASL", controllerListenerName, p)
	}
	return p, nil
}

// portsUseTLS reports whether the controller or admin port is TLS, which
// needs the --ssl-* files even when no Kafka listener is SSL.
func portsUseTLS(f *serveFlags) bool {
	p, err := controllerProtocol(f.protocolMap)
	return f.ports.adminSSL || (err == nil && p == authn.SSL)
}

// portsConfig loads the controller and admin ports' TLS identities.
func portsConfig(f *serveFlags, log *slog.Logger) (portsTLS, error) {
	var ports portsTLS
	protocol, err := controllerProtocol(f.protocolMap)
	if err != nil {
		return ports, err
	}
	clientAuth, err := authn.ParseClientAuth(f.ports.adminSSLClientAuth)
	if err != nil {
		return ports, usageErrorf("--admin-ssl-client-auth: %v", err)
	}
	if clientAuth != authn.ClientAuthNone && !f.ports.adminSSL {
		return ports, usageErrorf("--admin-ssl-client-auth %s needs --admin-ssl", clientAuth)
	}
	onReloadError := func(port string) func(error) {
		return func(err error) {
			log.Error("reloading the TLS certificate failed; the previous one stays in use until the files are fixed", "port", port, "err", err)
		}
	}
	if protocol == authn.SSL {
		if f.sslCAFile == "" {
			return ports, usageErrorf("%s:SSL needs --ssl-ca-file: the CA that signs every node's certificate (nodes authenticate each other with mutual TLS there)", controllerListenerName)
		}
		ports.controller, err = authn.NewTLS(authn.TLSFiles{CertFile: f.sslCertFile, KeyFile: f.sslKeyFile, CAFile: f.sslCAFile, ClientAuth: authn.ClientAuthRequired}, onReloadError("controller"))
		if err != nil {
			return ports, usageErrorf("%s:SSL: --ssl-cert-file, --ssl-key-file, --ssl-ca-file: %v", controllerListenerName, err)
		}
		if err := checkNodeCertificate(f.sslCertFile, f.nodeID); err != nil {
			return ports, usageErrorf("%s:SSL: %v", controllerListenerName, err)
		}
	}
	if f.ports.adminSSL {
		ports.admin, err = authn.NewTLS(authn.TLSFiles{CertFile: f.sslCertFile, KeyFile: f.sslKeyFile, CAFile: f.sslCAFile, ClientAuth: clientAuth}, onReloadError("admin"))
		if err != nil {
			return ports, usageErrorf("--admin-ssl: %v", err)
		}
		ports.adminClientAuth = clientAuth
	}
	return ports, nil
}

// checkNodeCertificate refuses to start with a certificate that the other
// nodes would refuse on the controller port: one that does not name this
// node (authn.NodeURI).
func checkNodeCertificate(certFile string, nodeID int32) error {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("--ssl-cert-file %s: no PEM certificate first", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("--ssl-cert-file %s: %w", certFile, err)
	}
	id, ok, err := authn.NodeID(cert)
	switch {
	case err != nil:
		return fmt.Errorf("--ssl-cert-file %s: %w", certFile, err)
	case !ok:
		return fmt.Errorf("--ssl-cert-file %s is not a node certificate: the other nodes accept only a certificate with the URI SAN %s", certFile, authn.NodeURI(nodeID))
	case id != nodeID:
		return fmt.Errorf("--ssl-cert-file %s is node %d's certificate, and this is node %d: the other nodes would refuse it (URI SAN %s)", certFile, id, nodeID, authn.NodeURI(nodeID))
	}
	return nil
}

// adminClientFlags are the flags of the commands that call the admin API
// (strata cluster, strata tiering, strata healthcheck) for an HTTPS admin
// listener.
type adminClientFlags struct {
	caFile, certFile, keyFile string
	ssl                       bool
}

func addAdminClientFlags(fs *pflag.FlagSet, f *adminClientFlags) {
	fs.BoolVar(&f.ssl, "admin-ssl", os.Getenv("STRATA_ADMIN_SSL") == "true", "the admin listener is HTTPS (strata serve --admin-ssl); implied by --admin-ca-file (default $STRATA_ADMIN_SSL)")
	fs.StringVar(&f.caFile, "admin-ca-file", os.Getenv("STRATA_ADMIN_CA_FILE"), "PEM CA that signed the node's certificate, to verify the HTTPS admin listener (default $STRATA_ADMIN_CA_FILE; without it, --admin-ssl uses the system's roots)")
	fs.StringVar(&f.certFile, "admin-cert-file", os.Getenv("STRATA_ADMIN_CERT_FILE"), "PEM client certificate for an admin listener with --admin-ssl-client-auth (instead of the admin token; default $STRATA_ADMIN_CERT_FILE)")
	fs.StringVar(&f.keyFile, "admin-key-file", os.Getenv("STRATA_ADMIN_KEY_FILE"), "PEM private key of --admin-cert-file (default $STRATA_ADMIN_KEY_FILE)")
}

// client returns the scheme and HTTP client to reach the admin listener.
func (f adminClientFlags) client(timeout time.Duration) (scheme string, client *http.Client, err error) {
	if !f.ssl && f.caFile == "" && f.certFile == "" {
		return "http", &http.Client{Timeout: timeout}, nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		data, err := os.ReadFile(f.caFile)
		if err != nil {
			return "", nil, usageErrorf("--admin-ca-file: %v", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(data) {
			return "", nil, usageErrorf("--admin-ca-file %s holds no PEM certificate", f.caFile)
		}
	}
	if f.certFile != "" || f.keyFile != "" {
		pair, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return "", nil, usageErrorf("--admin-cert-file, --admin-key-file: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return "https", &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: config}}, nil
}
