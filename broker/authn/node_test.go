package authn_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"testing"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
)

func TestNodeID(t *testing.T) {
	ca := authntest.NewCA(t, "test CA")
	certPEM, _ := ca.IssueNode(t, 7, pkix.Name{CommonName: "node-7"})
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok, err := authn.NodeID(cert); err != nil || !ok || id != 7 {
		t.Fatalf("NodeID = %d, %v, %v; want 7, true, nil", id, ok, err)
	}
	if got := authn.NodeURI(7).String(); got != "urn:strata:node:7" {
		t.Fatalf("NodeURI(7) = %q", got)
	}

	client, _ := ca.Issue(t, pkix.Name{CommonName: "alice"})
	block, _ = pem.Decode(client)
	cert, _ = x509.ParseCertificate(block.Bytes)
	if _, ok, err := authn.NodeID(cert); ok || err != nil {
		t.Fatalf("a client certificate names a node: %v, %v", ok, err)
	}

	for _, uris := range [][]string{{"urn:strata:node:x"}, {"urn:strata:node:-1"}, {"urn:strata:node:1", "urn:strata:node:2"}} {
		c := &x509.Certificate{}
		for _, s := range uris {
			u, _ := url.Parse(s)
			c.URIs = append(c.URIs, u)
		}
		if _, ok, err := authn.NodeID(c); ok || err == nil {
			t.Errorf("NodeID(%v) = %v, %v; want an error", uris, ok, err)
		}
	}
}
