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

// startLayer starts a stream layer on a loopback port, advertised under the
// hostname "localhost", and closes it at cleanup.
func startLayer(t *testing.T, clusterID string, nodeID int32, peers map[raft.ServerAddress]int32) *streamLayer {
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
	listener := startLayer(t, "cluster-a", 1, nil)
	target := raft.ServerAddress(listener.Addr().String()) // a hostname

	tests := []struct {
		name       string
		clusterID  string
		dialerID   int32
		expectedID int32
		wantStatus handshakeStatus
	}{
		{name: "other cluster", clusterID: "cluster-b", dialerID: 2, expectedID: 1, wantStatus: handshakeWrongCluster},
		{name: "wrong node id", clusterID: "cluster-a", dialerID: 2, expectedID: 3, wantStatus: handshakeWrongNode},
		{name: "accepted", clusterID: "cluster-a", dialerID: 2, expectedID: 1, wantStatus: handshakeAccepted},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dialer := startLayer(t, test.clusterID, test.dialerID, map[raft.ServerAddress]int32{target: test.expectedID})
			conn, err := dialer.Dial(target, 5*time.Second)
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
			// connection it hands out is this one.
			if _, err := conn.Write([]byte("raft")); err != nil {
				t.Fatal(err)
			}
			accepted := acceptOne(t, listener)
			buffer := make([]byte, 4)
			if _, err := io.ReadFull(accepted, buffer); err != nil || string(buffer) != "raft" {
				t.Fatalf("accepted connection read %q, %v", buffer, err)
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
	var responder sync.WaitGroup
	responder.Go(func() {
		for {
			select {
			case rpc := <-followerTransport.Consumer():
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
		wantErr   bool
	}{
		{name: "same cluster", clusterID: "cluster-a"},
		{name: "other cluster", clusterID: "cluster-b", wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			leader := newTransport(startLayer(t, test.clusterID, 2, peers))
			var response raft.AppendEntriesResponse
			err := leader.AppendEntries("1", followerAddress, &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("2")}, Term: 7}, &response)
			if test.wantErr {
				if !errors.Is(err, ErrHandshakeRefused) {
					t.Fatalf("AppendEntries: %v, want ErrHandshakeRefused", err)
				}
				return
			}
			if err != nil || !response.Success || response.Term != 7 {
				t.Fatalf("AppendEntries: %+v, %v", response, err)
			}
		})
	}
}
