package broker

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// DescribeCluster v0-v2 (Kafka 4.2's range): the cluster id, the
// controller and the brokers with their address on the listener the client
// used, as Metadata lists them. v1 (KIP-919) names the endpoint type: a
// broker serves the brokers' endpoints (1) only, and answers
// UNSUPPORTED_ENDPOINT_TYPE for the controllers' (2), as Kafka's brokers
// do (Strata's controller listener speaks Raft, not Kafka). v2 (KIP-1073)
// lists fenced brokers too when asked, marked IsFenced.
func init() { register(0, 2, handleDescribeCluster) }

// endpointTypeBroker is DescribeCluster's EndpointType for brokers.
const endpointTypeBroker = 1

func handleDescribeCluster(c *clientConn, h requestHeader, req *kmsg.DescribeClusterRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = endpointTypeBroker
	resp.ClusterAuthorizedOperations = math.MinInt32 // not asked
	// Answered to everyone, as Metadata is, as Kafka's brokers do
	// (AuthHelper.computeDescribeClusterResponse; Kafka's controllers want
	// ALTER on the cluster): it tells no more than Metadata, and clients
	// (the Java admin client's describeCluster, health checks built on
	// it) ask it without any ACL on the cluster.
	if req.Version >= 1 && req.EndpointType != endpointTypeBroker {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "this is a broker endpoint: it describes brokers only (endpoint type 1)"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	state := s.cfg.Metadata.State()
	resp.ClusterID = state.ClusterID()
	brokers, controller := s.brokersFor(c.listener)
	resp.ControllerID = controller
	for _, b := range brokers {
		out := kmsg.NewDescribeClusterResponseBroker()
		out.NodeID, out.Host, out.Port, out.Rack = b.NodeID, b.Host, b.Port, b.Rack
		resp.Brokers = append(resp.Brokers, out)
	}
	if req.IncludeFencedBrokers {
		for _, b := range state.Brokers() {
			endpoint, ok := b.Endpoint(c.listener.Name)
			if !b.Fenced || b.ID == s.cfg.NodeID || !ok {
				continue
			}
			out := kmsg.NewDescribeClusterResponseBroker()
			out.NodeID, out.Host, out.Port, out.IsFenced = b.ID, endpoint.Host, endpoint.Port, true
			if b.Rack != "" {
				rack := b.Rack
				out.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, out)
		}
	}
	if req.IncludeClusterAuthorizedOperations {
		// As Kafka: told only to a client that may DESCRIBE the
		// cluster, 0 to the others.
		resp.ClusterAuthorizedOperations = 0
		if c.authorizedCluster(authz.OpDescribe) {
			resp.ClusterAuthorizedOperations = c.clusterAuthorizedOperations()
		}
	}
	return resp, nil
}

// clusterOperations are the operations Kafka lists in a cluster's
// authorized operations.
var clusterOperations = []authz.Operation{
	authz.OpCreate, authz.OpAlter, authz.OpDescribe, authz.OpClusterAction,
	authz.OpDescribeConfigs, authz.OpAlterConfigs, authz.OpIdempotentWrite,
}

// clusterAuthorizedOperations is the bit field (1 << operation code) of the
// cluster operations the client may perform (KIP-430).
func (c *clientConn) clusterAuthorizedOperations() int32 {
	var ops int32
	for _, op := range clusterOperations {
		if c.authorizedCluster(op) {
			ops |= 1 << op
		}
	}
	return ops
}
