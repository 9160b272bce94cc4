package metadata

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/internal/ratelog"
)

// Handshake constants (see doc.go). Part of the format: do not change.
const (
	handshakeMagic = "STRH"
	// handshakeVersion is the only version this build speaks: version 3
	// added the cluster secret's challenge–response; versions 1 and 2
	// (no authentication) are refused.
	handshakeVersion = 3
	// handshakeRequestFixedSize is magic, version, dialer id, target id and
	// the cluster id length; the cluster id follows, then the channel byte
	// and the dialer's nonce.
	handshakeRequestFixedSize = 4 + 1 + 4 + 4 + 1
	// handshakeResponseSize is magic, version, status and responder id;
	// an accepting response goes on with the listener's nonce and proof.
	handshakeResponseSize = 4 + 1 + 1 + 4
	// handshakeNonceSize is the size of each side's random challenge.
	handshakeNonceSize = 32
	// handshakeProofSize is the size of an HMAC-SHA256 proof.
	handshakeProofSize = sha256.Size
	// Labels of the two proofs, so that neither side's proof can be
	// reflected as the other's.
	listenerProofLabel = "strata controller handshake v3: listener"
	dialerProofLabel   = "strata controller handshake v3: dialer"
)

// handshakeChannel says what a connection carries after the handshake.
type handshakeChannel uint8

// Channels. Part of the format: do not change.
const (
	channelRaft handshakeChannel = 0 // hashicorp/raft's transport
	channelRPC  handshakeChannel = 1 // controller RPCs (rpc.go)
)

// handshakeStatus is the listener's verdict on a handshake request.
type handshakeStatus uint8

// Handshake statuses. Part of the format: do not change.
const (
	handshakeAccepted           handshakeStatus = 0
	handshakeUnsupportedVersion handshakeStatus = 1
	handshakeWrongCluster       handshakeStatus = 2
	handshakeWrongNode          handshakeStatus = 3
	handshakeUnauthenticated    handshakeStatus = 4
	// handshakeCertificateMismatch: under controller TLS, the dialer's
	// certificate does not name the node id it claims.
	handshakeCertificateMismatch handshakeStatus = 5
)

func (s handshakeStatus) String() string {
	switch s {
	case handshakeAccepted:
		return "accepted"
	case handshakeUnsupportedVersion:
		return "unsupported handshake version"
	case handshakeWrongCluster:
		return "wrong cluster id"
	case handshakeWrongNode:
		return "wrong node id"
	case handshakeUnauthenticated:
		return "wrong cluster secret"
	case handshakeCertificateMismatch:
		return "certificate does not name the node"
	default:
		return fmt.Sprintf("status %d", uint8(s))
	}
}

// handshakeError is a refused handshake; errors.Is(err, ErrHandshakeRefused)
// holds for it.
type handshakeError struct {
	status handshakeStatus
	detail string
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("%v: %v: %s", ErrHandshakeRefused, e.status, e.detail)
}

func (e *handshakeError) Is(target error) bool { return target == ErrHandshakeRefused }

// handshakeRequest is what a dialer sends first on every connection.
type handshakeRequest struct {
	version      uint8
	dialerNodeID int32
	targetNodeID int32
	clusterID    string
	channel      handshakeChannel // version 2 and later
	nonce        [handshakeNonceSize]byte
}

func (r handshakeRequest) encode() []byte {
	buffer := make([]byte, 0, handshakeRequestFixedSize+len(r.clusterID)+1+handshakeNonceSize)
	buffer = append(buffer, handshakeMagic...)
	buffer = append(buffer, r.version)
	buffer = binary.BigEndian.AppendUint32(buffer, uint32(r.dialerNodeID))
	buffer = binary.BigEndian.AppendUint32(buffer, uint32(r.targetNodeID))
	buffer = append(buffer, uint8(len(r.clusterID)))
	buffer = append(buffer, r.clusterID...)
	if r.version >= 2 {
		buffer = append(buffer, uint8(r.channel))
	}
	if r.version >= 3 {
		buffer = append(buffer, r.nonce[:]...)
	}
	return buffer
}

// readHandshakeRequest reads a request of any version; the caller refuses
// the versions it does not speak.
func readHandshakeRequest(reader io.Reader) (handshakeRequest, error) {
	var fixed [handshakeRequestFixedSize]byte
	if _, err := io.ReadFull(reader, fixed[:]); err != nil {
		return handshakeRequest{}, fmt.Errorf("read handshake request: %w", err)
	}
	if fixed[0] == tlsHandshakeRecord {
		return handshakeRequest{}, errPeerSpeaksTLS
	}
	if string(fixed[:4]) != handshakeMagic {
		return handshakeRequest{}, corruptf("handshake magic %q, want %q", fixed[:4], handshakeMagic)
	}
	request := handshakeRequest{
		version:      fixed[4],
		dialerNodeID: int32(binary.BigEndian.Uint32(fixed[5:])),
		targetNodeID: int32(binary.BigEndian.Uint32(fixed[9:])),
	}
	clusterID := make([]byte, fixed[13])
	if _, err := io.ReadFull(reader, clusterID); err != nil {
		return handshakeRequest{}, fmt.Errorf("read handshake cluster id: %w", err)
	}
	request.clusterID = string(clusterID)
	if request.version >= 2 {
		var channel [1]byte
		if _, err := io.ReadFull(reader, channel[:]); err != nil {
			return handshakeRequest{}, fmt.Errorf("read handshake channel: %w", err)
		}
		request.channel = handshakeChannel(channel[0])
	}
	if request.version == 3 {
		if _, err := io.ReadFull(reader, request.nonce[:]); err != nil {
			return handshakeRequest{}, fmt.Errorf("read handshake nonce: %w", err)
		}
	}
	return request, nil
}

// handshakeResponse is the listener's answer.
type handshakeResponse struct {
	version         uint8
	status          handshakeStatus
	responderNodeID int32
}

func (r handshakeResponse) encode() []byte {
	buffer := make([]byte, 0, handshakeResponseSize)
	buffer = append(buffer, handshakeMagic...)
	buffer = append(buffer, r.version, uint8(r.status))
	return binary.BigEndian.AppendUint32(buffer, uint32(r.responderNodeID))
}

func readHandshakeResponse(reader io.Reader) (handshakeResponse, error) {
	var data [handshakeResponseSize]byte
	if _, err := io.ReadFull(reader, data[:]); err != nil {
		return handshakeResponse{}, fmt.Errorf("read handshake response: %w", err)
	}
	if string(data[:4]) != handshakeMagic {
		return handshakeResponse{}, &handshakeError{detail: fmt.Sprintf("peer answered with magic %q: not a Strata controller", data[:4])}
	}
	return handshakeResponse{
		version:         data[4],
		status:          handshakeStatus(data[5]),
		responderNodeID: int32(binary.BigEndian.Uint32(data[6:])),
	}, nil
}

// handshakeTranscript is what both proofs cover: the request as sent (with
// the dialer's nonce), the accepting response and the listener's nonce. A
// proof therefore binds both node ids, the cluster id, the channel and
// both challenges.
func handshakeTranscript(request handshakeRequest, response handshakeResponse, listenerNonce []byte) []byte {
	transcript := request.encode()
	transcript = append(transcript, response.encode()...)
	return append(transcript, listenerNonce...)
}

// controllerAddress is the advertised address of a stream layer; it may name
// a host rather than an IP, which net.TCPAddr cannot.
type controllerAddress string

func (a controllerAddress) Network() string { return "tcp" }
func (a controllerAddress) String() string  { return string(a) }

// streamLayerConfig configures a streamLayer.
type streamLayerConfig struct {
	clusterID string
	nodeID    int32
	// secret is what both ends of every connection prove they hold.
	secret ClusterSecret
	// tls, when set, runs every connection under mutual TLS, the
	// handshake inside it (stream_tls.go).
	tls *ControllerTLS
	// listen is the host:port to listen on; advertise what peers dial
	// (default: the bound address).
	listen, advertise string
	// handshakeTimeout bounds each handshake.
	handshakeTimeout time.Duration
	// resolve maps a peer's address to the node id expected there; a dial
	// to an address it does not know fails.
	resolve func(raft.ServerAddress) (nodeID int32, ok bool)
	// serveRPC serves a connection on the RPC channel, from the node that
	// authenticated as peer, until it fails or is closed; nil refuses the
	// channel.
	serveRPC func(conn net.Conn, peer int32)
	logger   *slog.Logger
}

// streamLayer is the raft.StreamLayer of the controller listener: plain TCP
// where every connection starts with a handshake (cluster id, node ids, and
// a challenge–response proving that both ends hold the cluster secret), and
// only connections whose handshake succeeded reach Raft, which then may
// only speak for the node that authenticated (raftPeerConn).
//
// Accept, Dial, Addr and Close are safe for concurrent use. The layer owns
// its accept loop and one goroutine per handshake in progress; Close stops
// them and waits.
type streamLayer struct {
	config    streamLayerConfig
	listener  net.Listener
	advertise controllerAddress
	// peerLimiter bounds the log lines that connecting peers cause (a
	// refused handshake per attempt); peerLog writes through it.
	peerLimiter *ratelog.Limiter
	peerLog     *slog.Logger

	// accepted carries inbound connections whose handshake succeeded.
	accepted chan net.Conn
	// closing is closed by Close.
	closing   chan struct{}
	closeOnce sync.Once
	// mutex guards handshaking.
	mutex sync.Mutex
	// handshaking holds inbound connections whose handshake is in
	// progress, or that serve RPCs, so that Close can interrupt them; nil
	// once closed.
	handshaking map[net.Conn]struct{}
	// goroutines tracks the accept loop and inbound handshakes.
	goroutines sync.WaitGroup
	// refused counts inbound connections refused before Raft or the RPCs
	// saw them (Store.ControllerConnectionsRefused).
	refused atomic.Uint64
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// listenStreamLayer starts listening on config.listen.
func listenStreamLayer(config streamLayerConfig) (*streamLayer, error) {
	listener, err := net.Listen("tcp", config.listen)
	if err != nil {
		return nil, fmt.Errorf("metadata: controller listener: %w", err)
	}
	advertise := config.advertise
	if advertise == "" {
		advertise = listener.Addr().String()
	}
	if err := validateAdvertiseAddress(advertise); err != nil {
		listener.Close()
		return nil, fmt.Errorf("metadata: controller advertise address (set it explicitly when listening on all interfaces): %w", err)
	}
	peerLimiter := ratelog.New(ratelog.Config{})
	layer := &streamLayer{
		config:      config,
		peerLimiter: peerLimiter,
		peerLog:     peerLimiter.Logger(config.logger),
		listener:    listener,
		advertise:   controllerAddress(advertise),
		accepted:    make(chan net.Conn),
		closing:     make(chan struct{}),
		handshaking: map[net.Conn]struct{}{},
	}
	layer.goroutines.Go(layer.acceptLoop)
	return layer, nil
}

// Addr returns the advertised address, which Raft records as this node's.
func (l *streamLayer) Addr() net.Addr { return l.advertise }

// Accept returns the next inbound connection that passed the handshake.
func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case conn := <-l.accepted:
		return conn, nil
	case <-l.closing:
		return nil, net.ErrClosed
	}
}

// Close stops listening, stops the handshakes in progress and waits for them.
func (l *streamLayer) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		err = l.listener.Close()
		l.mutex.Lock()
		for conn := range l.handshaking {
			conn.Close()
		}
		l.handshaking = nil
		l.mutex.Unlock()
		l.goroutines.Wait()
		l.peerLimiter.Close()
	})
	return err
}

func (l *streamLayer) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.listener.Accept()
		if err != nil {
			select {
			case <-l.closing:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.config.logger.Warn("metadata: controller accept failed", "error", err)
			select {
			case <-time.After(backoff):
			case <-l.closing:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		l.goroutines.Go(func() { l.handshakeInbound(conn) })
	}
}

// handshakeInbound runs the listener's side of the handshake and hands the
// connection to Accept if it succeeds.
func (l *streamLayer) handshakeInbound(conn net.Conn) {
	// Register the connection so that Close can interrupt its handshake.
	l.mutex.Lock()
	if l.handshaking == nil {
		l.mutex.Unlock()
		conn.Close()
		return
	}
	l.handshaking[conn] = struct{}{}
	l.mutex.Unlock()
	channel, peer, secured, err := l.answerHandshake(conn)
	if err == nil && channel == channelRPC {
		// Stays registered while it serves, so Close interrupts it.
		l.config.serveRPC(secured, peer)
	}
	l.mutex.Lock()
	delete(l.handshaking, conn)
	l.mutex.Unlock()
	if err != nil {
		l.refused.Add(1)
		l.peerLog.Warn("metadata: controller connection refused", "remote", conn.RemoteAddr().String(), "error", err)
		conn.Close()
		return
	}
	if channel == channelRPC {
		secured.Close()
		return
	}
	select {
	case l.accepted <- newRaftPeerConn(secured, peer, l.peerLog):
	case <-l.closing:
		conn.Close()
	}
}

// answerHandshake reads the request, answers it, runs the challenge–response
// and returns the channel the connection carries, the node id the peer
// proved and the connection to use (the TLS session under controller TLS),
// or an error when the connection must not be used.
func (l *streamLayer) answerHandshake(raw net.Conn) (handshakeChannel, int32, net.Conn, error) {
	if err := raw.SetDeadline(time.Now().Add(l.config.handshakeTimeout)); err != nil {
		return 0, 0, nil, err
	}
	conn := raw
	var secured *tls.Conn
	if l.config.tls != nil {
		var err error
		if secured, err = l.serverTLS(raw); err != nil {
			return 0, 0, nil, err
		}
		conn = secured
	}
	channel, peer, err := l.answerHandshakeRequest(conn, secured)
	return channel, peer, conn, err
}

// answerHandshakeRequest is answerHandshake after the TLS handshake, if
// any (secured is then conn's TLS session).
func (l *streamLayer) answerHandshakeRequest(conn net.Conn, secured *tls.Conn) (handshakeChannel, int32, error) {
	request, err := readHandshakeRequest(conn)
	if err != nil {
		return 0, 0, err
	}
	response := handshakeResponse{version: handshakeVersion, status: handshakeAccepted, responderNodeID: l.config.nodeID}
	var refusal error
	switch {
	case request.version != handshakeVersion:
		response.status = handshakeUnsupportedVersion
		refusal = fmt.Errorf("node %d speaks handshake version %d, this node %d (versions before 3 do not authenticate: upgrade every node, and give it --cluster-secret-file)", request.dialerNodeID, request.version, handshakeVersion)
	case request.channel > channelRPC || (request.channel == channelRPC && l.config.serveRPC == nil):
		response.status = handshakeUnsupportedVersion
		refusal = fmt.Errorf("node %d asked for channel %d, which this node does not serve", request.dialerNodeID, request.channel)
	case request.clusterID != l.config.clusterID:
		response.status = handshakeWrongCluster
		refusal = fmt.Errorf("node %d belongs to cluster %q, this node to %q", request.dialerNodeID, request.clusterID, l.config.clusterID)
	case request.targetNodeID != l.config.nodeID:
		response.status = handshakeWrongNode
		refusal = fmt.Errorf("node %d expected node %d at this address, this is node %d", request.dialerNodeID, request.targetNodeID, l.config.nodeID)
	case secured != nil:
		if err := l.checkPeerCertificate(secured, request.dialerNodeID, "the dialer"); err != nil {
			response.status = handshakeCertificateMismatch
			refusal = errors.New(err.(*handshakeError).detail)
		}
	}
	if refusal != nil {
		if _, err := conn.Write(response.encode()); err != nil {
			return 0, 0, fmt.Errorf("write handshake response: %w", err)
		}
		return 0, 0, &handshakeError{status: response.status, detail: refusal.Error()}
	}
	// Challenge–response: this node proves the secret over both nonces,
	// then the dialer does, then this node says whether it believed it.
	var nonce [handshakeNonceSize]byte
	rand.Read(nonce[:])
	transcript := handshakeTranscript(request, response, nonce[:])
	answer := append(response.encode(), nonce[:]...)
	answer = append(answer, l.config.secret.prove(listenerProofLabel, transcript)...)
	if _, err := conn.Write(answer); err != nil {
		return 0, 0, fmt.Errorf("write handshake response: %w", err)
	}
	dialerProof := make([]byte, handshakeProofSize)
	if _, err := io.ReadFull(conn, dialerProof); err != nil {
		return 0, 0, fmt.Errorf("node %d sent no proof of the cluster secret (it may not hold ours): %w", request.dialerNodeID, err)
	}
	if !l.config.secret.verify(dialerProofLabel, transcript, dialerProof) {
		conn.Write([]byte{uint8(handshakeUnauthenticated)})
		return 0, 0, &handshakeError{status: handshakeUnauthenticated, detail: fmt.Sprintf("the peer calling itself node %d does not hold this cluster's secret (check --cluster-secret-file on both nodes)", request.dialerNodeID)}
	}
	if _, err := conn.Write([]byte{uint8(handshakeAccepted)}); err != nil {
		return 0, 0, fmt.Errorf("write handshake verdict: %w", err)
	}
	return request.channel, request.dialerNodeID, conn.SetDeadline(time.Time{})
}

// Dial connects to a peer controller and runs the dialer's side of the
// handshake; the connection is returned only if the peer accepted it.
func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	expected, ok := l.config.resolve(address)
	if !ok {
		return nil, fmt.Errorf("metadata: dial controller %s: no node id is known for this address", address)
	}
	return l.dial(context.Background(), address, expected, channelRaft, timeout)
}

func (l *streamLayer) dial(ctx context.Context, address raft.ServerAddress, expected int32, channel handshakeChannel, timeout time.Duration) (net.Conn, error) {
	// timeout bounds the whole dial, handshakes included: a forwarded
	// request's deadline must hold when a paused node accepts the
	// connection (its kernel does) and never answers the handshake. So
	// does ctx: its end closes the connection, ending the handshake.
	var end time.Time
	if timeout > 0 {
		end = time.Now().Add(timeout)
	}
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("metadata: dial controller %d at %s: %w", expected, address, err)
	}
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	conn, err = l.handshakeDialed(conn, address, expected, channel, end)
	if !stop() {
		if err == nil {
			conn.Close()
		}
		return nil, fmt.Errorf("metadata: dial controller %d at %s: %w", expected, address, ctx.Err())
	}
	return conn, err
}

// handshakeDialed runs the dialer's side of the handshakes (TLS, then the
// controller handshake) on a new connection, by end (none when zero); the
// connection is closed when they fail.
func (l *streamLayer) handshakeDialed(conn net.Conn, address raft.ServerAddress, expected int32, channel handshakeChannel, end time.Time) (net.Conn, error) {
	if l.config.tls != nil {
		secured, err := l.clientTLS(conn, string(address), expected, end)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("metadata: dial controller %d at %s: %w", expected, address, err)
		}
		conn = secured
	}
	if err := l.requestHandshake(conn, expected, channel, end); err != nil {
		conn.Close()
		return nil, fmt.Errorf("metadata: dial controller %d at %s: %w", expected, address, err)
	}
	return conn, nil
}

// handshakeDeadline is the deadline of a handshake starting now on a dial
// that must end by end (none when zero): handshakeTimeout from now, or end
// when earlier.
func (l *streamLayer) handshakeDeadline(end time.Time) time.Time {
	deadline := time.Now().Add(l.config.handshakeTimeout)
	if !end.IsZero() && end.Before(deadline) {
		return end
	}
	return deadline
}

func (l *streamLayer) requestHandshake(conn net.Conn, expected int32, channel handshakeChannel, end time.Time) error {
	if err := conn.SetDeadline(l.handshakeDeadline(end)); err != nil {
		return err
	}
	request := handshakeRequest{
		version:      handshakeVersion,
		dialerNodeID: l.config.nodeID,
		targetNodeID: expected,
		clusterID:    l.config.clusterID,
		channel:      channel,
	}
	rand.Read(request.nonce[:])
	if _, err := conn.Write(request.encode()); err != nil {
		return fmt.Errorf("write handshake request: %w", err)
	}
	response, err := readHandshakeResponse(conn)
	if err != nil {
		if l.config.tls != nil {
			// Under TLS 1.3 the listener checks this node's certificate
			// after the dialer's side of the TLS handshake has finished:
			// its refusal arrives here.
			return explainTLSError("TLS", false, err)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w (the peer closed the connection: if its controller listener is TLS, CONTROLLER:SSL, give this node the same --listener-security-protocol-map and --ssl-* files)", err)
		}
		return err
	}
	if response.status != handshakeAccepted {
		return &handshakeError{status: response.status, detail: fmt.Sprintf("node %d refused the connection", response.responderNodeID)}
	}
	if response.version != handshakeVersion {
		return &handshakeError{status: handshakeUnsupportedVersion, detail: fmt.Sprintf("node %d answered with handshake version %d, this node speaks %d", response.responderNodeID, response.version, handshakeVersion)}
	}
	if response.responderNodeID != expected {
		return &handshakeError{status: handshakeWrongNode, detail: fmt.Sprintf("expected node %d, node %d answered", expected, response.responderNodeID)}
	}
	challenge := make([]byte, handshakeNonceSize+handshakeProofSize)
	if _, err := io.ReadFull(conn, challenge); err != nil {
		return fmt.Errorf("read handshake challenge: %w", err)
	}
	listenerNonce, listenerProof := challenge[:handshakeNonceSize], challenge[handshakeNonceSize:]
	transcript := handshakeTranscript(request, response, listenerNonce)
	// Believe the listener before proving anything to it.
	if !l.config.secret.verify(listenerProofLabel, transcript, listenerProof) {
		return &handshakeError{status: handshakeUnauthenticated, detail: fmt.Sprintf("the peer answering as node %d does not hold this cluster's secret (check --cluster-secret-file on both nodes)", expected)}
	}
	if _, err := conn.Write(l.config.secret.prove(dialerProofLabel, transcript)); err != nil {
		return fmt.Errorf("write handshake proof: %w", err)
	}
	var verdict [1]byte
	if _, err := io.ReadFull(conn, verdict[:]); err != nil {
		return fmt.Errorf("read handshake verdict: %w", err)
	}
	if status := handshakeStatus(verdict[0]); status != handshakeAccepted {
		return &handshakeError{status: status, detail: fmt.Sprintf("node %d does not accept this node's cluster secret (check --cluster-secret-file on both nodes)", expected)}
	}
	return conn.SetDeadline(time.Time{})
}
