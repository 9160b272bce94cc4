package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator v0 (librdkafka enables LZ4 and groups only when it sees
// v0) through v4 (batched keys). Groups are coordinated by the leader of
// their __consumer_offsets partition, which the first lookup creates; if it cannot be created the answer is COORDINATOR_NOT_AVAILABLE
// with node -1. Transaction coordinators do not exist yet and are refused
// clearly.
func init() { register(0, 4, handleFindCoordinator) }

const coordinatorKeyTransaction = 1

const transactionsUnsupported = "Strata does not support transactions yet"

func handleFindCoordinator(c *clientConn, h requestHeader, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key = key
			if req.CoordinatorType == coordinatorKeyTransaction {
				msg := transactionsUnsupported
				co.ErrorCode, co.ErrorMessage = kerr.InvalidRequest.Code, &msg
				co.NodeID, co.Port = -1, -1
			} else {
				co.NodeID, co.Host, co.Port, co.ErrorCode = s.findCoordinator(c.listener, key)
			}
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return resp, nil
	}
	if req.CoordinatorType == coordinatorKeyTransaction {
		msg := transactionsUnsupported
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, &msg
		resp.NodeID, resp.Port = -1, -1
		return resp, nil
	}
	resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = s.findCoordinator(c.listener, req.CoordinatorKey)
	return resp, nil
}

// findCoordinator answers where a group's coordinator is: the leader of its
// __consumer_offsets partition, on the listener the client used.
func (s *Server) findCoordinator(l *boundListener, groupID string) (node int32, host string, port int32, code int16) {
	leader, kerrCode := s.groups.CoordinatorOf(groupID)
	if kerrCode != nil {
		return -1, "", -1, kerrCode.Code
	}
	host, port, ok := s.brokerAddress(l, leader)
	if !ok {
		return -1, "", -1, kerr.CoordinatorNotAvailable.Code
	}
	return leader, host, port, 0
}
