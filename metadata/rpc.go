package metadata

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Controller RPCs (see doc.go, "Controller RPCs"): a node that is not the
// Raft leader forwards its proposals, broker heartbeats and voter changes to
// the leader over the controller listener, on connections whose handshake
// asked for the RPC channel. Requests on one connection are answered one at
// a time, in order.

// RPC kinds and statuses. Part of the format: do not change.
const (
	rpcPropose     uint8 = 1
	rpcHeartbeat   uint8 = 2
	rpcAddVoter    uint8 = 3
	rpcRemoveVoter uint8 = 4
	rpcAddNonvoter uint8 = 5
	// Metadata propagation (propagation.go).
	rpcReportApplied uint8 = 6
	rpcAppliedFloor  uint8 = 7
	// rpcCheckRegistration asks whether a registration would be admitted
	// (registration.go: CheckRegistration).
	rpcCheckRegistration uint8 = 8
	// rpcDescribeQuorum asks the leader for its view of the quorum
	// (quorum.go: DescribeQuorum).
	rpcDescribeQuorum uint8 = 9

	rpcOK              uint8 = 0
	rpcNotLeader       uint8 = 1
	rpcFailed          uint8 = 2
	rpcDuplicateBroker uint8 = 3
	// rpcRejectedBase + i is a command or request rejected with
	// rpcRejections[i], so the caller's errors.Is works across a forward.
	rpcRejectedBase uint8 = 16

	// rpcMaxFrame bounds a request or response frame.
	rpcMaxFrame = 16 << 20
)

// rpcRejections are the sentinel errors a forwarded request's rejection
// keeps (status rpcRejectedBase + index). Part of the format: append only,
// never reorder. A node that does not know a status reports the message
// without a sentinel, as all rejections were before.
var rpcRejections = []error{
	ErrUnknownBroker, ErrStaleBrokerEpoch, ErrInvalidBroker,
	ErrStalePartitionEpoch, ErrFencedLeaderEpoch, ErrUnknownTopic, ErrUnknownPartition,
	ErrTopicExists, ErrTopicIDExists, ErrInvalidTopic, ErrInvalidPartitions, ErrInvalidTopicConfig,
	ErrInvalidSegment, ErrSegmentExists, ErrSegmentOverlap, ErrUnknownSegment, ErrInvalidSegmentTransition,
	ErrInvalidProducerIDs, ErrInvalidClusterID, ErrIneligibleReplica,
	ErrInvalidACL, ErrStaleTopicConfigs, ErrStaleBrokerConfigs,
}

// rejectionStatus is the response status of a failed request: the
// sentinel it wraps, or rpcFailed.
func rejectionStatus(err error) uint8 {
	for i, sentinel := range rpcRejections {
		if errors.Is(err, sentinel) {
			return rpcRejectedBase + uint8(i)
		}
	}
	return rpcFailed
}

// rpcTimeout bounds one forwarded request when the caller's context has no
// earlier deadline.
const rpcTimeout = 10 * time.Second

// rpcResponse is a decoded response frame.
type rpcResponse struct {
	status uint8
	// index is the Raft log index of the applied entry (propose).
	index   uint64
	message string
}

func writeFrame(w io.Writer, payload []byte) error {
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(payload)), uint32(len(payload)))
	_, err := w.Write(append(frame, payload...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > rpcMaxFrame {
		return nil, corruptf("controller RPC frame of %d bytes (limit %d)", n, rpcMaxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

func (r rpcResponse) encode() []byte {
	e := encoder{}
	e.uint8(r.status)
	e.uint64(r.index)
	e.string(r.message)
	return e.buffer
}

func decodeRPCResponse(payload []byte) (rpcResponse, error) {
	d := decoder{data: payload}
	r := rpcResponse{status: d.uint8(), index: d.uint64(), message: d.string()}
	return r, d.finish()
}

// serveRPC answers the RPCs of one inbound connection, from the node that
// authenticated as peer, until it fails or the Store closes (the stream
// layer closes the connection then).
func (s *Store) serveRPC(conn net.Conn, peer int32) {
	for {
		request, err := readFrame(conn)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logger.Debug("metadata: controller RPC connection ended", "remote", conn.RemoteAddr().String(), "error", err)
			}
			return
		}
		response := s.handleRPC(request, peer)
		if err := writeFrame(conn, response.encode()); err != nil {
			return
		}
	}
}

// errNotApplied marks a forwarding failure that certainly happened before
// the leader appended the entry (no leader known, leader unreachable, or
// refused at the door), so the proposal can be retried safely.
var errNotApplied = errors.New("not applied")

// handleRPC answers one request from the node that authenticated as peer.
// Any node holding the cluster secret may send any request (a proposal is
// checked by the state machine, not by who sent it); peer names the sender
// in logs.
func (s *Store) handleRPC(request []byte, peer int32) rpcResponse {
	if len(request) == 0 {
		return rpcResponse{status: rpcFailed, message: "empty request"}
	}
	if s.raftForResolve.Load() == nil {
		// The listener is up before Raft has started (it replays its log
		// first): this node leads nothing yet. Refused before appending,
		// so the sender retries. (Loading raftForResolve also orders the
		// reads of s.raft below after Open set it.)
		return rpcResponse{status: rpcNotLeader, message: fmt.Sprintf("node %d is starting", s.config.NodeID)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	kind, payload := request[0], request[1:]
	if hook := s.beforeRPC.Load(); hook != nil {
		(*hook)(kind)
	}
	if kind == rpcCheckRegistration && !s.IsLeader() {
		// Asked by a node that has no leader yet: pass it on.
		if _, err := s.forward(ctx, request); err != nil {
			if errors.Is(err, ErrDuplicateBroker) {
				return rpcResponse{status: rpcDuplicateBroker, message: err.Error()}
			}
			return rpcResponse{status: rpcFailed, message: err.Error()}
		}
		return rpcResponse{status: rpcOK}
	}
	if kind == rpcAddNonvoter && !s.IsLeader() {
		// The joining node knows only the voters' addresses, not the
		// leader: pass its request on.
		if _, err := s.forward(ctx, request); err != nil {
			return rpcResponse{status: rpcFailed, message: err.Error()}
		}
		return rpcResponse{status: rpcOK}
	}
	if !s.IsLeader() {
		return rpcResponse{status: rpcNotLeader, message: s.notLeaderError().Error()}
	}
	var err error
	var index uint64
	switch kind {
	case rpcPropose:
		// A peer's entry is checked before it reaches the log, as this
		// node's own are.
		if err := s.admitProposal(payload); errors.Is(err, errUndecodable) {
			s.logger.Warn("metadata: refused an undecodable proposal", "node", peer, "error", err)
			return rpcResponse{status: rpcFailed, message: "undecodable command: " + err.Error()}
		} else if err != nil {
			return admitRefusal(err)
		}
		future := s.raft.Apply(payload, enqueueTimeout(ctx))
		if err = s.await(ctx, future); err == nil {
			index = future.Index()
		}
	case rpcCheckRegistration:
		cmd, decodeErr := decodeCommand(payload)
		register, ok := cmd.(*registerBrokerCommand)
		if decodeErr != nil || !ok {
			return rpcResponse{status: rpcFailed, message: "check registration: not a RegisterBroker command"}
		}
		if err := s.controller.admit(register.registration); err != nil {
			return admitRefusal(err)
		}
		return rpcResponse{status: rpcOK}
	case rpcHeartbeat:
		d := decoder{data: payload}
		h := BrokerHeartbeat{ID: d.int32(), BrokerEpoch: d.int64(), ShuttingDown: d.bool()}
		if d.offset < len(d.data) {
			h.AppliedIndex = d.uint64() // absent from older nodes' heartbeats
		}
		if err = d.finish(); err == nil {
			err = s.controller.heartbeat(h)
		}
	case rpcReportApplied:
		d := decoder{data: payload}
		id, epoch, applied := d.int32(), d.int64(), d.uint64()
		if err = d.finish(); err == nil {
			err = s.controller.reportApplied(id, epoch, applied)
		}
	case rpcDescribeQuorum:
		if len(payload) != 0 {
			return rpcResponse{status: rpcFailed, message: "describe quorum: unexpected payload"}
		}
		d, describeErr := s.DescribeQuorum(context.Background())
		if describeErr == nil {
			return rpcResponse{status: rpcOK, message: string(encodeQuorumDescription(d))}
		}
		err = describeErr
	case rpcAppliedFloor:
		if len(payload) != 0 {
			return rpcResponse{status: rpcFailed, message: "applied floor: unexpected payload"}
		}
		floor, lagging, _, floorErr := s.controller.appliedFloor()
		if floorErr == nil {
			ids := make([]string, len(lagging))
			for i, id := range lagging {
				ids[i] = fmt.Sprint(id)
			}
			return rpcResponse{status: rpcOK, index: floor, message: strings.Join(ids, " ")}
		}
		err = floorErr
	case rpcAddNonvoter:
		d := decoder{data: payload}
		id, address := d.int32(), d.string()
		if err = d.finish(); err == nil {
			err = validateAdvertiseAddress(address)
		}
		if err == nil {
			err = s.addNonvoter(ctx, id, address)
		}
	case rpcAddVoter, rpcRemoveVoter:
		d := decoder{data: payload}
		id := d.int32()
		address := ""
		if kind == rpcAddVoter {
			address = d.string()
		}
		if err = d.finish(); err == nil {
			err = s.changeVoters(ctx, kind == rpcAddVoter, id, address)
		}
	default:
		return rpcResponse{status: rpcFailed, message: fmt.Sprintf("unknown RPC kind %d", kind)}
	}
	switch {
	case errors.Is(err, ErrNotLeader):
		// Leadership was lost after the entry was handed to Raft: it may
		// still commit, so the index is not 0 (not a safe retry).
		return rpcResponse{status: rpcNotLeader, index: ^uint64(0), message: err.Error()}
	case err != nil:
		return rpcResponse{status: rejectionStatus(err), message: err.Error()}
	}
	return rpcResponse{status: rpcOK, index: index}
}

// admitRefusal answers a registration controller.admit refused: a
// duplicate broker, or not admitted yet (the controller is taking over:
// refused before appending, index 0, so the sender retries).
func admitRefusal(err error) rpcResponse {
	if errors.Is(err, ErrNotLeader) {
		return rpcResponse{status: rpcNotLeader, message: err.Error()}
	}
	return rpcResponse{status: rpcDuplicateBroker, message: err.Error()}
}

// rpcClient holds the idle connections to the leader's RPC channel. Each
// request takes a connection of its own (an idle one, or a new one) and
// gives it back once answered, so a request waiting on a leader that
// stopped answering (a paused process) holds only its own connection: a
// heartbeat to the next leader is never queued behind it. (With one
// connection for all, a new controller fenced brokers whose heartbeats
// waited behind a request to the paused one: nemesis pause-zombie-leader.)
type rpcClient struct {
	mu     sync.Mutex // guards the fields below
	idle   []net.Conn // to peer, at most rpcIdleConns
	peer   raft.ServerAddress
	busy   map[net.Conn]bool // taken by a request
	closed bool
}

// rpcIdleConns bounds the idle connections kept to the leader.
const rpcIdleConns = 4

// take returns an idle connection to peer that the peer has not closed,
// or nil; connections to another peer (an earlier leader) are closed, and
// so are the idle ones found closed by the peer (a leader that restarted
// at the same address closed them all).
func (c *rpcClient) take(peer raft.ServerAddress) net.Conn {
	for {
		conn := c.takeIdle(peer)
		if conn == nil || stillOpen(conn) {
			return conn
		}
		c.release(conn, peer, false)
	}
}

// takeIdle is take without the check that the peer has kept the
// connection open.
func (c *rpcClient) takeIdle(peer raft.ServerAddress) net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer != peer {
		for _, conn := range c.idle {
			conn.Close()
		}
		c.idle, c.peer = nil, peer
	}
	if len(c.idle) == 0 {
		return nil
	}
	conn := c.idle[len(c.idle)-1]
	c.idle = c.idle[:len(c.idle)-1]
	c.track(conn)
	return conn
}

// stillOpen reports whether an idle connection can carry a request: a peek
// that does not wait finds nothing to read (an idle connection is owed no
// bytes), not the peer's close, a reset or stray bytes. Checked before a
// request is written, so a request is never sent on a connection already
// known dead, and a failure after it was written is never retried: by
// then the leader may have appended it.
func stillOpen(conn net.Conn) bool {
	if secured, ok := conn.(*tls.Conn); ok {
		conn = secured.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true // cannot tell: the exchange finds out
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	if err := raw.Read(func(fd uintptr) bool {
		alive = peekNothing(fd)
		return true // never wait for readiness
	}); err != nil {
		return false
	}
	return alive
}

// track marks conn taken by a request (mu held).
func (c *rpcClient) track(conn net.Conn) {
	if c.busy == nil {
		c.busy = map[net.Conn]bool{}
	}
	c.busy[conn] = true
}

// dialed records a new connection taken by a request; false (the
// connection closed) once the client is closed.
func (c *rpcClient) dialed(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return false
	}
	c.track(conn)
	return true
}

// release gives back a connection a request took: kept idle when reusable
// (answered, to the current peer, room left), closed otherwise.
func (c *rpcClient) release(conn net.Conn, peer raft.ServerAddress, reusable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, conn)
	if !reusable || c.closed || peer != c.peer || len(c.idle) >= rpcIdleConns {
		conn.Close()
		return
	}
	c.idle = append(c.idle, conn)
}

// close closes every connection, idle or taken (their requests fail).
func (c *rpcClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, conn := range c.idle {
		conn.Close()
	}
	for conn := range c.busy {
		conn.Close()
	}
	c.idle, c.busy = nil, nil
}

// forward sends one request to the leader and returns its response. A
// response other than OK is an error: ErrNotLeader (retry later or
// elsewhere) or the leader's failure.
func (s *Store) forward(ctx context.Context, request []byte) (rpcResponse, error) {
	address, id := s.raft.LeaderWithID()
	if id == "" {
		return rpcResponse{}, fmt.Errorf("%w (no leader is known): %w", ErrNotLeader, errNotApplied)
	}
	leaderID, ok := parseServerID(id)
	if !ok {
		return rpcResponse{}, fmt.Errorf("%w (leader id %q): %w", ErrNotLeader, id, errNotApplied)
	}
	deadline := time.Now().Add(rpcTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c := &s.rpc
	// An idle connection the peer has closed is never used (take), so a
	// request is sent once: a failure after it was written is not retried
	// here, and not marked errNotApplied, since the leader may have read
	// and appended it before the connection broke. The same holds when
	// ctx ends while the request is under way (exchange).
	conn := c.take(address)
	if conn == nil {
		var err error
		if conn, err = s.layer.dial(ctx, address, leaderID, channelRPC, time.Until(deadline)); err != nil {
			return rpcResponse{}, fmt.Errorf("%w: %w: %w", ErrNotLeader, errNotApplied, err)
		}
		if !c.dialed(conn) {
			return rpcResponse{}, fmt.Errorf("%w: %w: %w", ErrNotLeader, errNotApplied, net.ErrClosed)
		}
	}
	if err := ctx.Err(); err != nil {
		// Ended before the request was written: not sent.
		c.release(conn, address, true)
		return rpcResponse{}, fmt.Errorf("%w: %w: %w", ErrNotLeader, errNotApplied, err)
	}
	response, err := exchange(ctx, conn, request, deadline)
	c.release(conn, address, err == nil)
	if err != nil {
		return rpcResponse{}, fmt.Errorf("%w: controller %d at %s: %w", ErrNotLeader, leaderID, address, err)
	}
	switch response.status {
	case rpcOK:
		return response, nil
	case rpcNotLeader:
		err := fmt.Errorf("%w (node %d answered: %s)", ErrNotLeader, leaderID, response.message)
		if response.index == 0 {
			err = fmt.Errorf("%w: %w", err, errNotApplied) // refused before appending
		}
		return response, err
	case rpcDuplicateBroker:
		return response, fmt.Errorf("controller %d: %s: %w", leaderID, response.message, ErrDuplicateBroker)
	}
	if i := int(response.status) - int(rpcRejectedBase); i >= 0 && i < len(rpcRejections) {
		return response, fmt.Errorf("metadata: controller %d: %s: %w", leaderID, response.message, rpcRejections[i])
	}
	return response, fmt.Errorf("metadata: controller %d: %s", leaderID, response.message)
}

// exchange writes request on conn and reads its answer, by deadline or
// until ctx ends, whichever comes first. When ctx ends first, conn is
// closed (the answer may still arrive on it: it can carry no other
// request) and the error is ctx's, returned at once; the request may have
// been written, and the peer may act on it.
func exchange(ctx context.Context, conn net.Conn, request []byte, deadline time.Time) (rpcResponse, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return rpcResponse{}, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	response, err := writeAndRead(conn, request)
	if !stop() {
		return rpcResponse{}, fmt.Errorf("gave up waiting for the answer (the request may still be acted on): %w", ctx.Err())
	}
	return response, err
}

// writeAndRead is exchange's request and answer.
func writeAndRead(conn net.Conn, request []byte) (rpcResponse, error) {
	if err := writeFrame(conn, request); err != nil {
		return rpcResponse{}, err
	}
	payload, err := readFrame(conn)
	if err != nil {
		return rpcResponse{}, err
	}
	return decodeRPCResponse(payload)
}

// proposeRemote forwards a command to the leader, waits until this node has
// applied it, and returns the result this node's state machine computed
// for it (the same as the leader's: Apply is deterministic).
//
// While no leader is known, or the leader could not be reached or refused
// before appending (an election in progress), it retries until ctx ends;
// such a proposal was certainly not applied.
func (s *Store) proposeRemote(ctx context.Context, c command) (any, error) {
	var response rpcResponse
	backoff := 20 * time.Millisecond
	for {
		var err error
		response, err = s.forward(ctx, append([]byte{rpcPropose}, encodeCommand(c)...))
		if err == nil {
			break
		}
		if !errors.Is(err, errNotApplied) || ctx.Err() != nil {
			return nil, fmt.Errorf("metadata: %s: %w", c.commandType(), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("metadata: %s: %w", c.commandType(), err)
		case <-s.closing:
			return nil, ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
		if s.IsLeader() {
			return s.proposeLocal(ctx, c)
		}
	}
	if err := s.waitApplied(ctx, response.index); err != nil {
		return nil, fmt.Errorf("metadata: %s: %w", c.commandType(), err)
	}
	result, ok := s.fsm.result(response.index)
	if !ok {
		return nil, fmt.Errorf("metadata: %s: applied at index %d, but this node no longer has the result (it restored a later snapshot); check the state", c.commandType(), response.index)
	}
	return result.value, result.err
}

// waitApplied waits until this node's state has applied index.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	for {
		state, changed := s.Watch()
		if state.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

func parseServerID(id raft.ServerID) (int32, bool) {
	var n int32
	if _, err := fmt.Sscanf(string(id), "%d", &n); err != nil {
		return 0, false
	}
	return n, true
}
