package metadata

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

func TestHandshakeGolden(t *testing.T) {
	// Version 1 (no channel byte) is still read; version 2 adds the channel.
	request := handshakeRequest{version: 1, dialerNodeID: 2, targetNodeID: 1, clusterID: "MkU3OEVBNTcwNTJENDM2Qk"}
	checkGolden(t, "handshake-request-v1.bin", request.encode())
	requestV2 := handshakeRequest{version: 2, dialerNodeID: 2, targetNodeID: 1, clusterID: "MkU3OEVBNTcwNTJENDM2Qk", channel: channelRPC}
	checkGolden(t, "handshake-request-v2.bin", requestV2.encode())
	if decoded, err := readHandshakeRequest(bytesReader(readGolden(t, "handshake-request-v2.bin"))); err != nil || decoded != requestV2 {
		t.Fatalf("decode request v2: %+v, %v", decoded, err)
	}
	requestV3 := handshakeRequest{version: 3, dialerNodeID: 2, targetNodeID: 1, clusterID: "MkU3OEVBNTcwNTJENDM2Qk", channel: channelRaft}
	for i := range requestV3.nonce {
		requestV3.nonce[i] = byte(i)
	}
	checkGolden(t, "handshake-request-v3.bin", requestV3.encode())
	if decoded, err := readHandshakeRequest(bytesReader(readGolden(t, "handshake-request-v3.bin"))); err != nil || decoded != requestV3 {
		t.Fatalf("decode request v3: %+v, %v", decoded, err)
	}
	// The listener's proof over the v3 transcript, under a fixed secret
	// and nonce: a change of transcript, label or MAC fails here.
	accepting := handshakeResponse{version: 3, status: handshakeAccepted, responderNodeID: 1}
	var listenerNonce [handshakeNonceSize]byte
	for i := range listenerNonce {
		listenerNonce[i] = byte(255 - i)
	}
	transcript := handshakeTranscript(requestV3, accepting, listenerNonce[:])
	secret := mustParseSecret("golden: a cluster secret of forty characters")
	proofs := append(secret.prove(listenerProofLabel, transcript), secret.prove(dialerProofLabel, transcript)...)
	checkGolden(t, "handshake-v3-proofs.bin", proofs)
	response := handshakeResponse{version: 1, status: handshakeWrongCluster, responderNodeID: 1}
	checkGolden(t, "handshake-response-v1.bin", response.encode())

	decodedRequest, err := readHandshakeRequest(bytesReader(readGolden(t, "handshake-request-v1.bin")))
	if err != nil || decodedRequest != request {
		t.Fatalf("decode request: %+v, %v", decodedRequest, err)
	}
	decodedResponse, err := readHandshakeResponse(bytesReader(readGolden(t, "handshake-response-v1.bin")))
	if err != nil || decodedResponse != response {
		t.Fatalf("decode response: %+v, %v", decodedResponse, err)
	}
}

func bytesReader(data []byte) io.Reader { return bytes.NewReader(data) }

// encodeRaftRequest encodes a request as hashicorp/raft's network
// transport sends it: the type byte, then msgpack.
func encodeRaftRequest(t *testing.T, rpcType byte, request any) []byte {
	t.Helper()
	var buffer bytes.Buffer
	buffer.WriteByte(rpcType)
	if err := codec.NewEncoder(&buffer, &codec.MsgpackHandle{}).Encode(request); err != nil {
		t.Fatal(err)
	}
	return buffer.Bytes()
}

// startLayer starts a stream layer with the test secret on a loopback port,
// advertised under the hostname "localhost", and closes it at cleanup.
func startLayer(t *testing.T, clusterID string, nodeID int32, peers map[raft.ServerAddress]int32) *streamLayer {
	t.Helper()
	return startLayerWithSecret(t, clusterID, nodeID, peers, testSecret)
}

func startLayerWithSecret(t *testing.T, clusterID string, nodeID int32, peers map[raft.ServerAddress]int32, secret ClusterSecret) *streamLayer {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	address := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	layer, err := listenStreamLayer(streamLayerConfig{
		clusterID:        clusterID,
		nodeID:           nodeID,
		secret:           secret,
		listen:           address,
		advertise:        net.JoinHostPort("localhost", strconv.Itoa(port)),
		handshakeTimeout: 5 * time.Second,
		resolve: func(address raft.ServerAddress) (int32, bool) {
			id, ok := peers[address]
			return id, ok
		},
		logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { layer.Close() })
	return layer
}

// acceptOne returns the next connection Accept hands out.
func acceptOne(t *testing.T, layer *streamLayer) net.Conn {
	t.Helper()
	conn, err := layer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestStreamLayerHandshake(t *testing.T) {
	current := testSecret
	next := mustParseSecret("the next secret, being rotated in: 0123456789")
	other := mustParseSecret("another cluster's secret, same cluster id: 0123")
	staged := mustParseSecret("metadata tests: the secret of every test cluster\nthe next secret, being rotated in: 0123456789")
	rotating := mustParseSecret("the next secret, being rotated in: 0123456789\nmetadata tests: the secret of every test cluster")
	listener := startLayerWithSecret(t, "cluster-a", 1, nil, mustParseSecret("metadata tests: the secret of every test cluster\nthe next secret, being rotated in: 0123456789"))
	target := raft.ServerAddress(listener.Addr().String()) // a hostname
	onlyCurrent := startLayer(t, "cluster-a", 1, nil)
	onlyCurrentTarget := raft.ServerAddress(onlyCurrent.Addr().String())

	tests := []struct {
		name       string
		clusterID  string
		secret     ClusterSecret
		target     raft.ServerAddress
		dialerID   int32
		expectedID int32
		wantStatus handshakeStatus
	}{
		{name: "other cluster", clusterID: "cluster-b", secret: current, dialerID: 2, expectedID: 1, wantStatus: handshakeWrongCluster},
		{name: "wrong node id", clusterID: "cluster-a", secret: current, dialerID: 2, expectedID: 3, wantStatus: handshakeWrongNode},
		{name: "wrong secret", clusterID: "cluster-a", secret: other, dialerID: 2, expectedID: 1, wantStatus: handshakeUnauthenticated},
		{name: "listener lacks the dialer's secret", clusterID: "cluster-a", secret: next, target: onlyCurrentTarget, dialerID: 2, expectedID: 1, wantStatus: handshakeUnauthenticated},
		{name: "accepted", clusterID: "cluster-a", secret: current, dialerID: 2, expectedID: 1, wantStatus: handshakeAccepted},
		{name: "accepted: the dialer proves with the listener's second secret", clusterID: "cluster-a", secret: rotating, dialerID: 2, expectedID: 1, wantStatus: handshakeAccepted},
		{name: "rotation step skipped: the listener still proves with the old secret", clusterID: "cluster-a", secret: next, dialerID: 2, expectedID: 1, wantStatus: handshakeUnauthenticated},
		{name: "rotation staged: dialer with a second secret, listener with the current one only", clusterID: "cluster-a", secret: staged, target: onlyCurrentTarget, dialerID: 2, expectedID: 1, wantStatus: handshakeAccepted},
		{name: "rotation out of order: dialer proves with a secret the listener lacks", clusterID: "cluster-a", secret: rotating, target: onlyCurrentTarget, dialerID: 2, expectedID: 1, wantStatus: handshakeUnauthenticated},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dialTarget, accepting := target, listener
			if test.target != "" {
				dialTarget, accepting = test.target, onlyCurrent
			}
			dialer := startLayerWithSecret(t, test.clusterID, test.dialerID, map[raft.ServerAddress]int32{dialTarget: test.expectedID}, test.secret)
			conn, err := dialer.Dial(dialTarget, 5*time.Second)
			if test.wantStatus != handshakeAccepted {
				var refusal *handshakeError
				if !errors.As(err, &refusal) || refusal.status != test.wantStatus || !errors.Is(err, ErrHandshakeRefused) {
					t.Fatalf("Dial: %v, want a refusal with status %v", err, test.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The refused connections never reached Accept: the first
			// connection it hands out is this one, and it passes on a
			// Raft request in the dialer's name as it was sent.
			request := encodeRaftRequest(t, raftRPCRequestVote, &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("2")}, Term: 3})
			if _, err := conn.Write(request); err != nil {
				t.Fatal(err)
			}
			accepted := acceptOne(t, accepting)
			buffer := make([]byte, len(request))
			if _, err := io.ReadFull(accepted, buffer); err != nil || !bytes.Equal(buffer, request) {
				t.Fatalf("accepted connection read %x, %v; want %x", buffer, err, request)
			}
		})
	}
}

func TestStreamLayerRefusesUnknownAddresses(t *testing.T) {
	listener := startLayer(t, "cluster-a", 1, nil)
	dialer := startLayer(t, "cluster-a", 2, nil)
	if _, err := dialer.Dial(raft.ServerAddress(listener.Addr().String()), time.Second); err == nil {
		t.Fatal("Dial to an address with no known node id succeeded")
	}
}

func TestStreamLayerRawHandshakes(t *testing.T) {
	listener := startLayer(t, "cluster-a", 1, nil)
	tests := []struct {
		name         string
		send         []byte
		wantResponse *handshakeResponse // nil: closed without an answer
	}{
		{
			name:         "unsupported version",
			send:         handshakeRequest{version: 9, dialerNodeID: 2, targetNodeID: 1, clusterID: "cluster-a"}.encode(),
			wantResponse: &handshakeResponse{version: handshakeVersion, status: handshakeUnsupportedVersion, responderNodeID: 1},
		},
		{
			// A build before the cluster secret: refused, whatever it knows.
			name:         "version 2, no authentication",
			send:         handshakeRequest{version: 2, dialerNodeID: 2, targetNodeID: 1, clusterID: "cluster-a"}.encode(),
			wantResponse: &handshakeResponse{version: handshakeVersion, status: handshakeUnsupportedVersion, responderNodeID: 1},
		},
		{name: "not a strata controller", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", listener.listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(test.send); err != nil {
				t.Fatal(err)
			}
			if test.wantResponse == nil {
				if n, err := conn.Read(make([]byte, 1)); err == nil {
					t.Fatalf("read %d bytes, want the connection closed", n)
				}
				return
			}
			response, err := readHandshakeResponse(conn)
			if err != nil || response != *test.wantResponse {
				t.Fatalf("response %+v, %v; want %+v", response, err, *test.wantResponse)
			}
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Fatal("connection still open after a refusal")
			}
		})
	}
}

func TestStreamLayerCloseInterruptsHandshakes(t *testing.T) {
	listener := startLayer(t, "cluster-a", 1, nil)
	conn, err := net.Dial("tcp", listener.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Send half a request so that a handshake is in progress.
	if _, err := conn.Write([]byte(handshakeMagic)); err != nil {
		t.Fatal(err)
	}
	if err := listener.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// TestRaftTransportOverStreamLayer sends a Raft RPC between two network
// transports over stream layers, and checks that a transport of another
// cluster cannot.
func TestRaftTransportOverStreamLayer(t *testing.T) {
	newTransport := func(layer *streamLayer) *raft.NetworkTransport {
		transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: layer, MaxPool: 2, Timeout: 5 * time.Second, Logger: discardHCLogger(),
		})
		t.Cleanup(func() { transport.Close() })
		return transport
	}
	peers := map[raft.ServerAddress]int32{}
	follower := startLayer(t, "cluster-a", 1, peers)
	followerAddress := raft.ServerAddress(follower.Addr().String())
	peers[followerAddress] = 1
	followerTransport := newTransport(follower)
	done := make(chan struct{})
	snapshotReceived := make(chan []byte, 1)
	var responder sync.WaitGroup
	responder.Go(func() {
		for {
			select {
			case rpc := <-followerTransport.Consumer():
				if _, ok := rpc.Command.(*raft.InstallSnapshotRequest); ok {
					data, err := io.ReadAll(rpc.Reader)
					if err != nil {
						data = nil
					}
					snapshotReceived <- data
					rpc.Respond(&raft.InstallSnapshotResponse{Term: 7, Success: err == nil}, nil)
					continue
				}
				rpc.Respond(&raft.AppendEntriesResponse{Term: 7, Success: true}, nil)
			case <-done:
				return
			}
		}
	})
	t.Cleanup(func() {
		close(done)
		responder.Wait()
	})

	tests := []struct {
		name      string
		clusterID string
		senderID  string // the server id in the request's header
		wantErr   error  // nil: success; errAny: any error
	}{
		{name: "same cluster", clusterID: "cluster-a", senderID: "2"},
		{name: "other cluster", clusterID: "cluster-b", senderID: "2", wantErr: ErrHandshakeRefused},
		// Node 2 holds the secret, but speaks in node 3's name.
		{name: "in another node's name", clusterID: "cluster-a", senderID: "3", wantErr: errAny},
		{name: "in no node's name", clusterID: "cluster-a", senderID: "", wantErr: errAny},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			leader := newTransport(startLayer(t, test.clusterID, 2, peers))
			var response raft.AppendEntriesResponse
			err := leader.AppendEntries("1", followerAddress, &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte(test.senderID)}, Term: 7}, &response)
			switch {
			case test.wantErr == errAny:
				if err == nil {
					t.Fatalf("AppendEntries in server %q's name from node 2 succeeded", test.senderID)
				}
			case test.wantErr != nil:
				if !errors.Is(err, test.wantErr) {
					t.Fatalf("AppendEntries: %v, want %v", err, test.wantErr)
				}
			case err != nil || !response.Success || response.Term != 7:
				t.Fatalf("AppendEntries: %+v, %v", response, err)
			}
		})
	}

	// A snapshot's raw bytes pass through the check unchanged, larger
	// than its read-ahead, and the connection goes on checking after them.
	t.Run("install snapshot", func(t *testing.T) {
		leader := newTransport(startLayer(t, "cluster-a", 2, peers))
		data := make([]byte, 3*raftPeerReadBuffer+17)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var response raft.InstallSnapshotResponse
		err := leader.InstallSnapshot("1", followerAddress, &raft.InstallSnapshotRequest{RPCHeader: raft.RPCHeader{ID: []byte("2")}, Term: 7, Size: int64(len(data))}, &response, bytes.NewReader(data))
		if err != nil || !response.Success {
			t.Fatalf("InstallSnapshot: %+v, %v", response, err)
		}
		if got := <-snapshotReceived; !bytes.Equal(got, data) {
			t.Fatalf("follower read %d snapshot bytes, want the %d sent", len(got), len(data))
		}
	})
}

// errAny in a test table means "some error".
var errAny = errors.New("any error")

// TestStreamLayerRefusesPeersWithoutTheSecret replays the probe of a peer
// that knows everything public (the cluster id is in every Metadata
// response, node ids on the status page) but not the secret: it gets the
// listener's challenge and nothing else.
func TestStreamLayerRefusesPeersWithoutTheSecret(t *testing.T) {
	served := make(chan int32, 1)
	listener, err := listenStreamLayer(streamLayerConfig{
		clusterID:        "cluster-a",
		nodeID:           1,
		secret:           testSecret,
		listen:           "127.0.0.1:0",
		handshakeTimeout: 5 * time.Second,
		resolve:          func(raft.ServerAddress) (int32, bool) { return 0, false },
		serveRPC:         func(conn net.Conn, peer int32) { served <- peer },
		logger:           discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	for _, channel := range []handshakeChannel{channelRaft, channelRPC} {
		conn, err := net.Dial("tcp", listener.listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		request := handshakeRequest{version: handshakeVersion, dialerNodeID: 2, targetNodeID: 1, clusterID: "cluster-a", channel: channel}
		if _, err := conn.Write(request.encode()); err != nil {
			t.Fatal(err)
		}
		response, err := readHandshakeResponse(conn)
		if err != nil || response.status != handshakeAccepted {
			t.Fatalf("channel %d: response %+v, %v; want the challenge", channel, response, err)
		}
		if _, err := io.ReadFull(conn, make([]byte, handshakeNonceSize+handshakeProofSize)); err != nil {
			t.Fatal(err)
		}
		// A guessed proof, then what would follow on the channel.
		guess := append(make([]byte, handshakeProofSize), []byte("\x00\x00\x00\x01\x07")...)
		if _, err := conn.Write(guess); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(conn)
		if !bytes.Equal(rest, []byte{uint8(handshakeUnauthenticated)}) {
			t.Fatalf("channel %d: after a wrong proof read %x, want the refusal %x and the connection closed", channel, rest, handshakeUnauthenticated)
		}
	}
	select {
	case peer := <-served:
		t.Fatalf("an RPC connection from node %d without the secret was served", peer)
	default:
	}
	// The refusals closed the connections after the verdict was made, so
	// a connection handed to Accept would be waiting by now.
	select {
	case <-listener.accepted:
		t.Fatal("a Raft connection without the secret reached Accept")
	default:
	}
}
