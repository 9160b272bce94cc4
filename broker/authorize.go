package broker

import (
	"net"

	"github.com/strata-log/strata/broker/authz"
)

// principal is the connection's principal in Kafka's "Type:Name" form, as
// ACLs name it: User:ANONYMOUS until authentication (TLS/SASL) sets one.
// Authentication replaces this one function.
func (c *clientConn) principal() string { return authz.Anonymous }

// remoteIP is the client's IP address, as ACLs' hosts name it.
func (c *clientConn) remoteIP() (string, bool) {
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String(), true
	}
	return "", false
}

// authorized reports whether the connection's principal may perform op on
// the resource: always without an authorizer (Config.Authorizer nil, as
// Kafka without one), else by the cluster's ACLs.
func (c *clientConn) authorized(op authz.Operation, rt authz.ResourceType, name string) bool {
	a := c.server.cfg.Authorizer
	if a == nil {
		return true
	}
	host, _ := c.remoteIP() // not TCP (tests' pipes): only ACLs for every host apply
	allowed := a.Authorize(c.server.cfg.Metadata.State().ACLs(), authz.Request{
		Principal: c.principal(), Host: host, Operation: op, Resource: authz.Resource{Type: rt, Name: name},
	})
	if !allowed {
		c.log.Debug("not authorized", "principal", c.principal(), "operation", op.String(), "resource", rt.String(), "name", name)
	}
	return allowed
}

// authorizedCluster is authorized on the CLUSTER resource.
func (c *clientConn) authorizedCluster(op authz.Operation) bool {
	return c.authorized(op, authz.ResourceCluster, authz.ClusterName)
}

// authorizedCreateTopic is Kafka's check for creating a topic: CREATE on
// the CLUSTER or on the TOPIC.
func (c *clientConn) authorizedCreateTopic(name string) bool {
	return c.authorizedCluster(authz.OpCreate) || c.authorized(authz.OpCreate, authz.ResourceTopic, name)
}
