package cli

import (
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
)

// TestPortsFlags: CONTROLLER:SSL and --admin-ssl load the node's identity
// (no Kafka listener needs to be SSL), and every misconfiguration that the
// other nodes or the admin clients would trip over is refused at start,
// naming what to fix.
func TestPortsFlags(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	node1 := ca.WriteNodeFiles(t, t.TempDir(), 1, pkix.Name{CommonName: "node-1"})
	node2 := ca.WriteNodeFiles(t, t.TempDir(), 2, pkix.Name{CommonName: "node-2"})
	client := ca.WriteFiles(t, t.TempDir(), pkix.Name{CommonName: "a client"})
	identity := func(files authntest.Files) []string {
		return []string{"--ssl-cert-file", files.Cert, "--ssl-key-file", files.Key, "--ssl-ca-file", files.CA}
	}

	cfg, err := parseServe(t, append([]string{"--listener-security-protocol-map", "CONTROLLER:SSL", "--admin-ssl", "--admin-ssl-client-auth", "requested"}, identity(node1)...)...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ControllerTLS == nil || cfg.AdminTLS == nil || cfg.AdminClientAuth != authn.ClientAuthRequested || cfg.Broker.TLS != nil {
		t.Fatalf("controller TLS %v, admin TLS %v (%s), Kafka TLS %v", cfg.ControllerTLS, cfg.AdminTLS, cfg.AdminClientAuth, cfg.Broker.TLS)
	}
	if cfg, err := parseServe(t); err != nil || cfg.ControllerTLS != nil || cfg.AdminTLS != nil {
		t.Fatalf("defaults: %v, %v, %v", cfg.ControllerTLS, cfg.AdminTLS, err)
	}

	for _, test := range []struct {
		name string
		args []string
		want string
	}{
		{"SASL on the controller port", append([]string{"--listener-security-protocol-map", "CONTROLLER:SASL_SSL"}, identity(node1)...), "PLAINTEXT or SSL"},
		{"no CA", []string{"--listener-security-protocol-map", "CONTROLLER:SSL", "--ssl-cert-file", node1.Cert, "--ssl-key-file", node1.Key}, "needs --ssl-ca-file"},
		{"no certificate", []string{"--listener-security-protocol-map", "CONTROLLER:SSL", "--ssl-ca-file", node1.CA}, "--ssl-cert-file"},
		{"another node's certificate", append([]string{"--listener-security-protocol-map", "CONTROLLER:SSL"}, identity(node2)...), "node 2's certificate, and this is node 1"},
		{"not a node certificate", append([]string{"--listener-security-protocol-map", "CONTROLLER:SSL"}, identity(client)...), "not a node certificate: the other nodes accept only a certificate with the URI SAN urn:strata:node:1"},
		{"admin client auth without --admin-ssl", append([]string{"--admin-ssl-client-auth", "required"}, identity(node1)...), "needs --admin-ssl"},
		{"admin client auth unknown", append([]string{"--admin-ssl", "--admin-ssl-client-auth", "maybe"}, identity(node1)...), "--admin-ssl-client-auth"},
		{"--admin-ssl without a certificate", []string{"--admin-ssl"}, "--ssl-cert-file"},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := parseServe(t, test.args...)
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Fatalf("err %v, want it to say %q", err, test.want)
			}
		})
	}
}

// TestAdminClientFlags: the admin commands speak HTTPS when told the
// listener is (--admin-ssl, or a CA or client certificate to use), and
// refuse files they cannot use, naming the flag.
func TestAdminClientFlags(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	files := ca.WriteFiles(t, t.TempDir(), pkix.Name{CommonName: "operator"})
	for _, test := range []struct {
		name       string
		flags      adminClientFlags
		wantScheme string
		wantErr    string
	}{
		{name: "plain", wantScheme: "http"},
		{name: "--admin-ssl", flags: adminClientFlags{ssl: true}, wantScheme: "https"},
		{name: "--admin-ca-file", flags: adminClientFlags{caFile: files.CA}, wantScheme: "https"},
		{name: "client certificate", flags: adminClientFlags{caFile: files.CA, certFile: files.Cert, keyFile: files.Key}, wantScheme: "https"},
		{name: "CA file without a certificate", flags: adminClientFlags{caFile: files.Key}, wantErr: "--admin-ca-file"},
		{name: "certificate without its key", flags: adminClientFlags{certFile: files.Cert}, wantErr: "--admin-cert-file"},
	} {
		t.Run(test.name, func(t *testing.T) {
			scheme, client, err := test.flags.client(time.Second)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("err %v, want it to name %s", err, test.wantErr)
				}
				return
			}
			if err != nil || scheme != test.wantScheme || client == nil {
				t.Fatalf("scheme %q, client %v, err %v; want %q", scheme, client, err, test.wantScheme)
			}
		})
	}
}
