package broker

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/group"
)

// principalName is the connection's principal (set by TLS or SASL
// authentication; User:ANONYMOUS before or without it) in Kafka's
// "Type:Name" form, as ACLs name it.
func (c *clientConn) principalName() string { return c.principal().String() }

// remoteIP is the client's IP address, as ACLs' hosts name it.
func (c *clientConn) remoteIP() (string, bool) {
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String(), true
	}
	return "", false
}

// authorized reports whether the connection's principal may perform op on
// the resource: always without an authorizer (Config.Authorizer nil, as
// Kafka without one) and for the broker principal (a super user), else by
// the cluster's ACLs.
func (c *clientConn) authorized(op authz.Operation, rt authz.ResourceType, name string) bool {
	a := c.server.cfg.Authorizer
	if a == nil || c.isBroker() { // the broker principal is a super user (interbroker.go)
		return true
	}
	host, _ := c.remoteIP() // not TCP (tests' pipes): only ACLs for every host apply
	allowed := a.Authorize(c.server.cfg.Metadata.State().ACLs(), authz.Request{
		Principal: c.principalName(), Host: host, Operation: op, Resource: authz.Resource{Type: rt, Name: name},
	})
	if !allowed {
		c.log.Debug("not authorized", "principal", c.principalName(), "operation", op.String(), "resource", rt.String(), "name", name)
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

// addPartitionsAuthorization is Kafka's check of AddPartitionsToTxn
// v0-v3: WRITE on the transactional id (else every partition
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and each topic addable (else its
// partitions TOPIC_AUTHORIZATION_FAILED and the others
// OPERATION_NOT_ATTEMPTED). nil when all is authorized.
func (c *clientConn) addPartitionsAuthorization(txnID string, tps []group.TopicPartition, addable func(topic string) bool) map[group.TopicPartition]int16 {
	if !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, txnID) {
		codes := map[group.TopicPartition]int16{}
		for _, tp := range tps {
			codes[tp] = kerr.TransactionalIDAuthorizationFailed.Code
		}
		return codes
	}
	denied := map[string]bool{}
	for _, tp := range tps {
		if _, seen := denied[tp.Topic]; !seen {
			denied[tp.Topic] = !addable(tp.Topic)
		}
	}
	var codes map[group.TopicPartition]int16
	for _, tp := range tps {
		if denied[tp.Topic] {
			codes = map[group.TopicPartition]int16{}
			break
		}
	}
	if codes == nil {
		return nil
	}
	for _, tp := range tps {
		codes[tp] = kerr.OperationNotAttempted.Code
		if denied[tp.Topic] {
			codes[tp] = kerr.TopicAuthorizationFailed.Code
		}
	}
	return codes
}

// topicWritable reports whether the client may WRITE to topic.
func (c *clientConn) topicWritable(topic string) bool {
	return c.authorized(authz.OpWrite, authz.ResourceTopic, topic)
}

// clientTxnTopic reports whether a client's AddPartitionsToTxn (v0-v3) may
// add topic's partitions to a transaction: WRITE on it, and never an
// internal topic, whatever the ACLs and without an authorizer too (Kafka
// leaves internal topics out of the authorized ones): a group's offsets
// partition joins a transaction through AddOffsetsToTxn, which checks READ
// on the group, and __transaction_state is the coordinators' own.
func (c *clientConn) clientTxnTopic(topic string) bool {
	return c.server.internalTopic(topic) == nil && c.topicWritable(topic)
}

// relayedTxnTopic reports whether AddPartitionsToTxn's broker form (v4+)
// from a connection without CLUSTER_ACTION may add topic's partitions: as
// a client's (clientTxnTopic), but for __consumer_offsets, which WRITE
// on it lets through. Such a request is a client's or a broker's asking
// as User:ANONYMOUS (PLAINTEXT inter-broker listener), and a group
// coordinator asks for the group's offsets partition (TxnOffsetCommit v5
// adds it, an older one verifies it); a partition leader asks only for
// the topic it appends to, never an internal one (Produce refuses them),
// so __transaction_state is never a broker's to add.
func (c *clientConn) relayedTxnTopic(topic string) bool {
	if topic == offsetsTopic {
		return c.topicWritable(topic)
	}
	return c.clientTxnTopic(topic)
}

// authorizedIdempotentWrite is Kafka's check of an idempotent (not
// transactional) InitProducerId: IDEMPOTENT_WRITE on the cluster, or WRITE
// on any topic (KIP-679). A Produce needs no check of its own: its WRITE
// on each topic grants it.
func (c *clientConn) authorizedIdempotentWrite() bool {
	if c.authorizedCluster(authz.OpIdempotentWrite) {
		return true
	}
	a := c.server.cfg.Authorizer
	host, _ := c.remoteIP()
	return a.AuthorizeByResourceType(c.server.cfg.Metadata.State().ACLs(), authz.Request{
		Principal: c.principalName(), Host: host, Operation: authz.OpWrite, Resource: authz.Resource{Type: authz.ResourceTopic},
	})
}

// writeTxnMarkersRefused answers every partition of req with code.
func writeTxnMarkersRefused(req *kmsg.WriteTxnMarkersRequest, code int16) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, rm := range req.Markers {
		out := kmsg.NewWriteTxnMarkersResponseMarker()
		out.ProducerID = rm.ProducerID
		for _, rt := range rm.Topics {
			ot := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			ot.Topic = rt.Topic
			for _, index := range rt.Partitions {
				op := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				op.Partition, op.ErrorCode = index, code
				ot.Partitions = append(ot.Partitions, op)
			}
			out.Topics = append(out.Topics, ot)
		}
		resp.Markers = append(resp.Markers, out)
	}
	return resp
}
