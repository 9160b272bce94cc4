package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// FindCoordinator v0 (librdkafka enables LZ4 and groups only when it sees
// v0) through v4 (batched keys). Groups are coordinated by the leader of
// their __consumer_offsets partition, transactional ids by the leader of
// their __transaction_state partition; the first lookup creates the topic.
// If it cannot be created the answer is COORDINATOR_NOT_AVAILABLE with
// node -1.
func init() { register(0, 4, handleFindCoordinator) }

// Coordinator key types (FindCoordinator v1+).
const (
	coordinatorKeyGroup       = 0
	coordinatorKeyTransaction = 1
)

func handleFindCoordinator(c *clientConn, h requestHeader, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	resp.Coordinators = make([]kmsg.FindCoordinatorResponseCoordinator, 0, len(req.CoordinatorKeys)) // one per request entry: no regrowth
	// Kafka: DESCRIBE on the group or the transactional id.
	find := func(key string) (int32, string, int32, int16) {
		switch {
		case req.CoordinatorType == coordinatorKeyGroup && !c.authorized(authz.OpDescribe, authz.ResourceGroup, key):
			return -1, "", -1, kerr.GroupAuthorizationFailed.Code
		case req.CoordinatorType == coordinatorKeyTransaction && !c.authorized(authz.OpDescribe, authz.ResourceTransactionalID, key):
			return -1, "", -1, kerr.TransactionalIDAuthorizationFailed.Code
		}
		return s.findCoordinator(c.listener, req.CoordinatorType, key)
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key = key
			co.NodeID, co.Host, co.Port, co.ErrorCode = find(key)
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return resp, nil
	}
	resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = find(req.CoordinatorKey)
	return resp, nil
}

// findCoordinator answers where a group's or transactional id's
// coordinator is, on the listener the client used.
func (s *Server) findCoordinator(l *boundListener, keyType int8, key string) (node int32, host string, port int32, code int16) {
	var leader int32
	var kerrCode *kerr.Error
	switch keyType {
	case coordinatorKeyGroup:
		leader, kerrCode = s.groups.CoordinatorOf(key)
	case coordinatorKeyTransaction:
		if key == "" {
			return -1, "", -1, kerr.InvalidRequest.Code
		}
		leader, kerrCode = s.txns.CoordinatorOf(key)
	default:
		return -1, "", -1, kerr.InvalidRequest.Code
	}
	if kerrCode != nil {
		return -1, "", -1, kerrCode.Code
	}
	host, port, ok := s.brokerAddress(l, leader)
	if !ok {
		return -1, "", -1, kerr.CoordinatorNotAvailable.Code
	}
	return leader, host, port, 0
}
