package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

// InitProducerId v0 (librdkafka's idempotence) through v5 (v5 only lets
// the broker answer TRANSACTION_ABORTABLE, which this one never needs;
// v6 is KIP-939's two-phase commit, not served). Every call from an
// idempotent (non-transactional) producer gets a fresh producer id with
// epoch 0, as in Kafka; a producer recovering from a sequence error
// (KIP-360) either bumps its epoch itself or asks for a new id here. A
// transactional producer goes to its transaction coordinator (broker/txn),
// which keeps its producer id and bumps its epoch.
func init() { register(0, 5, handleInitProducerID) }

func handleInitProducerID(c *clientConn, h requestHeader, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if !c.authorized(authz.OpWrite, authz.ResourceTransactionalID, *req.TransactionalID) {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			return resp, nil
		}
		resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode = s.initTransactionalProducer(req)
		return resp, nil
	}
	if !c.authorizedIdempotentWrite() {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	id, err := s.producerIDs.next(ctx)
	if err != nil {
		c.log.Error("allocating a producer id failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// initTransactionalProducer is InitProducerId with a transactional id, at
// the id's transaction coordinator.
func (s *Server) initTransactionalProducer(req *kmsg.InitProducerIDRequest) (int64, int16, int16) {
	id := *req.TransactionalID
	if id == "" || (req.ProducerID < 0) != (req.ProducerEpoch < 0) {
		return -1, -1, kerr.InvalidRequest.Code
	}
	shard, kerrCode := s.txns.ShardFor(id)
	if kerrCode != nil {
		return -1, -1, kerrCode.Code
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	pid, epoch, kerrCode := shard.InitProducerID(ctx, id, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch)
	if kerrCode != nil {
		return -1, -1, producerFencedFor(kerrCode, req.Version, 4)
	}
	return pid, epoch, 0
}

// producerIDBlockSize is how many producer ids one Raft command hands this
// broker, so allocation costs one quorum round trip per thousand producers.
const producerIDBlockSize = 1000

// producerIDAllocator hands out producer ids from blocks allocated through
// the metadata quorum, so ids are unique across the cluster and restarts.
type producerIDAllocator struct {
	store  *metadata.Store
	nodeID int32

	mu          sync.Mutex // guards nextID and end
	nextID, end int64
}

func (a *producerIDAllocator) next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nextID >= a.end {
		first, err := a.store.AllocateProducerIDs(ctx, a.nodeID, producerIDBlockSize)
		if err != nil {
			return 0, fmt.Errorf("allocate producer id block: %w", err)
		}
		a.nextID, a.end = first, first+producerIDBlockSize
	}
	id := a.nextID
	a.nextID++
	return id, nil
}
