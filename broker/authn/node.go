package authn

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// A node certificate names its node: besides the DNS and IP names other
// nodes dial, it carries the URI SAN "urn:strata:node:<id>" (NodeURI). The
// controller port's mutual TLS checks that the peer's certificate names
// the node id the peer claims, and replica fetches are bound to the node
// id of the certificate they arrive with. A certificate without such a
// SAN is not a node certificate (a client's, say).

// nodeURNPrefix is the URI SAN prefix of node certificates.
const nodeURNPrefix = "urn:strata:node:"

// NodeURI is the URI SAN a node certificate of node id carries.
func NodeURI(id int32) *url.URL {
	u, _ := url.Parse(nodeURNPrefix + strconv.FormatInt(int64(id), 10))
	return u
}

// NodeID is the node id a certificate names (its URI SAN
// urn:strata:node:<id>); false when it names none. A certificate naming
// two different node ids is refused (an error), as it cannot identify
// one node.
func NodeID(cert *x509.Certificate) (int32, bool, error) {
	found := false
	var id int32
	for _, u := range cert.URIs {
		s := u.String()
		if !strings.HasPrefix(s, nodeURNPrefix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(s, nodeURNPrefix), 10, 32)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("certificate %q: URI SAN %q: want %s<node id>", cert.Subject, s, nodeURNPrefix)
		}
		if found && int32(n) != id {
			return 0, false, fmt.Errorf("certificate %q names two node ids, %d and %d", cert.Subject, id, n)
		}
		found, id = true, int32(n)
	}
	return id, found, nil
}
