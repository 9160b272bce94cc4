package metadata

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// The Raft RPC types of hashicorp/raft's network transport (net_transport.go):
// each inbound request is one such byte, then the msgpack-encoded request;
// an InstallSnapshot request is followed by its Size raw bytes.
const (
	raftRPCAppendEntries  = 0
	raftRPCRequestVote    = 1
	raftRPCInstallSnaphot = 2
	raftRPCTimeoutNow     = 3
	raftRPCRequestPreVote = 4
)

// raftPeerReadBuffer is how far raftPeerConn reads ahead of what it checked.
const raftPeerReadBuffer = 64 << 10

// raftRPCIdentity is the part of every Raft request that raftPeerConn
// checks: the header's sender id (the fields of raft.RPCHeader are inlined
// in the encoding) and, for InstallSnapshot, the size of the raw snapshot
// that follows. Other fields are skipped by the decoder.
type raftRPCIdentity struct {
	raft.RPCHeader
	Size int64
}

// raftPeerConn is an inbound Raft connection from a node that authenticated
// in the handshake. It hands Raft's transport the bytes of a request only
// after checking that the request speaks for that node (its header's server
// id is the authenticated node id), so a node holding the secret cannot
// vote, lead or install snapshots in another node's name. A request that
// does not check out ends the connection.
//
// Reads happen on the transport's one goroutine per connection; writes
// (responses) pass through. Not safe for concurrent Reads.
type raftPeerConn struct {
	net.Conn
	peer   int32
	peerID string
	logger *slog.Logger

	// captured holds the bytes read from the connection that Raft has not
	// read yet; counter appends to it as bytes arrive.
	captured bytes.Buffer
	counter  *capturingReader
	// buffered and decoder are this connection's own reading position: it
	// decodes each request ahead of Raft, from the same bytes.
	buffered *bufio.Reader
	decoder  *codec.Decoder
	// checked is how many bytes from Raft's position on belong to requests
	// already checked; skip is how many raw snapshot bytes the decoder
	// still has to pass over.
	checked int64
	skip    int64
	// failed is the error that ended the connection.
	failed error
}

// capturingReader reads from a connection and appends what it read to a
// buffer, counting it.
type capturingReader struct {
	conn    net.Conn
	capture *bytes.Buffer
	total   int64
}

func (r *capturingReader) Read(p []byte) (int, error) {
	n, err := r.conn.Read(p)
	r.capture.Write(p[:n])
	r.total += int64(n)
	return n, err
}

func newRaftPeerConn(conn net.Conn, peer int32, logger *slog.Logger) *raftPeerConn {
	c := &raftPeerConn{Conn: conn, peer: peer, peerID: strconv.FormatInt(int64(peer), 10), logger: logger}
	c.counter = &capturingReader{conn: conn, capture: &c.captured}
	c.buffered = bufio.NewReaderSize(c.counter, raftPeerReadBuffer)
	c.decoder = codec.NewDecoder(c.buffered, &codec.MsgpackHandle{})
	return c
}

// Read hands Raft checked bytes only.
func (c *raftPeerConn) Read(p []byte) (int, error) {
	for c.checked == 0 {
		if c.failed != nil {
			return 0, c.failed
		}
		if err := c.checkNext(); err != nil {
			c.failed = err
			return 0, err
		}
	}
	for c.captured.Len() == 0 {
		// Only the raw bytes of a snapshot can be checked but not read yet.
		if _, err := c.passSnapshot(min(c.skip, raftPeerReadBuffer)); err != nil {
			c.failed = err
			return 0, err
		}
	}
	n, _ := c.captured.Read(p[:min(int64(len(p)), c.checked)])
	c.checked -= int64(n)
	return n, nil
}

// position is how far the decoder has read in the stream.
func (c *raftPeerConn) position() int64 {
	return c.counter.total - int64(c.buffered.Buffered())
}

// passSnapshot moves the decoder over up to n raw snapshot bytes.
func (c *raftPeerConn) passSnapshot(n int64) (int, error) {
	passed, err := c.buffered.Discard(int(n))
	c.skip -= int64(passed)
	return passed, err
}

// checkNext decodes the next request and, when it speaks for the peer,
// marks its bytes (and a snapshot's raw bytes) readable by Raft.
func (c *raftPeerConn) checkNext() error {
	for c.skip > 0 {
		if _, err := c.passSnapshot(min(c.skip, raftPeerReadBuffer)); err != nil {
			return err
		}
	}
	start := c.position()
	rpcType, err := c.buffered.ReadByte()
	if err != nil {
		return err
	}
	var identity raftRPCIdentity
	switch rpcType {
	case raftRPCAppendEntries, raftRPCRequestVote, raftRPCInstallSnaphot, raftRPCTimeoutNow, raftRPCRequestPreVote:
		if err := c.decoder.Decode(&identity); err != nil {
			return fmt.Errorf("metadata: raft request from node %d: %w", c.peer, err)
		}
	default:
		return c.refuse(fmt.Errorf("metadata: raft request of unknown type %d from node %d", rpcType, c.peer))
	}
	if string(identity.ID) != c.peerID {
		return c.refuse(fmt.Errorf("metadata: raft request (type %d) in the name of server %q from node %d, which authenticated as itself: refused", rpcType, identity.ID, c.peer))
	}
	if rpcType == raftRPCInstallSnaphot {
		if identity.Size < 0 {
			return c.refuse(fmt.Errorf("metadata: raft snapshot of %d bytes from node %d", identity.Size, c.peer))
		}
		c.skip = identity.Size
	}
	c.checked = c.position() - start + c.skip
	return nil
}

func (c *raftPeerConn) refuse(err error) error {
	c.logger.Warn("metadata: controller connection closed", "remote", c.RemoteAddr().String(), "node", c.peer, "error", err)
	c.Conn.Close()
	return err
}
