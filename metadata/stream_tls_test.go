package metadata

import (
	"bytes"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
)

// nodeTLS writes a certificate of ca naming node certID to a new directory
// and returns node's controller TLS over those files (mutual TLS required,
// as strata serve builds it) and the files.
func nodeTLS(t *testing.T, ca *authntest.CA, certID int32) (*ControllerTLS, authntest.Files) {
	t.Helper()
	files := ca.WriteNodeFiles(t, t.TempDir(), certID, pkix.Name{CommonName: fmt.Sprintf("node-%d", certID)})
	identity, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequired}, func(err error) { t.Errorf("reload: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	return &ControllerTLS{Identity: identity, CertificateNodeID: authn.NodeID}, files
}

// lockedBuffer collects a layer's log lines.
type lockedBuffer struct {
	mutex  sync.Mutex // guards buffer
	buffer bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mutex.Lock()
	defer b.mutex.Unlock()
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mutex.Lock()
	defer b.mutex.Unlock()
	return b.buffer.String()
}

// startTLSLayer starts a stream layer of node nodeID on a loopback port
// with controllerTLS (nil: without TLS), dialing peers by address, and
// returns it and its log.
func startTLSLayer(t *testing.T, nodeID int32, peers map[raft.ServerAddress]int32, controllerTLS *ControllerTLS) (*streamLayer, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	address := freeAddress(t)
	_, port, _ := net.SplitHostPort(address)
	layer, err := listenStreamLayer(streamLayerConfig{
		clusterID:        "cluster-a",
		nodeID:           nodeID,
		secret:           testSecret,
		tls:              controllerTLS,
		listen:           address,
		advertise:        net.JoinHostPort("localhost", port),
		handshakeTimeout: 5 * time.Second,
		resolve: func(address raft.ServerAddress) (int32, bool) {
			id, ok := peers[address]
			return id, ok
		},
		logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { layer.Close() })
	return layer, logs
}

// TestControllerTLSQuorum: three voters whose controller ports are mutual
// TLS with node certificates elect a leader and commit (a topic created on
// the leader reaches every node).
func TestControllerTLSQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	ca := authntest.NewCA(t, "controller CA")
	runThreeVoterCluster(t, func(id int32, config *Config) {
		config.TLS, _ = nodeTLS(t, ca, id)
	})
}

// dialOnce dials listener from dialer as node dialerID expects and hands
// the connection out; it returns Dial's error.
func dialOnce(t *testing.T, dialer *streamLayer, listener *streamLayer) error {
	t.Helper()
	conn, err := dialer.Dial(raft.ServerAddress(listener.Addr().String()), 5*time.Second)
	if err == nil {
		conn.Close()
	}
	return err
}

// TestControllerTLSRefusals: under controller TLS, a peer whose
// certificate names another node, names none, or comes from another CA is
// refused, and the refusal says what to fix on both sides; a node with TLS
// and one without cannot connect, and say so.
func TestControllerTLSRefusals(t *testing.T) {
	ca := authntest.NewCA(t, "controller CA")
	otherCA := authntest.NewCA(t, "another CA")
	listenerTLS, _ := nodeTLS(t, ca, 1)
	listener, listenerLog := startTLSLayer(t, 1, nil, listenerTLS)
	plainListener, plainListenerLog := startTLSLayer(t, 1, nil, nil)

	noNodeID := func() *ControllerTLS {
		files := ca.WriteFiles(t, t.TempDir(), pkix.Name{CommonName: "a client"})
		identity, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequired}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &ControllerTLS{Identity: identity, CertificateNodeID: authn.NodeID}
	}
	otherCATLS, _ := nodeTLS(t, otherCA, 2)
	wrongIDTLS, _ := nodeTLS(t, ca, 3)
	trustingOtherCATLS := func() *ControllerTLS {
		files := otherCA.WriteNodeFiles(t, t.TempDir(), 2, pkix.Name{CommonName: "node-2"})
		if err := os.WriteFile(files.CA, ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		identity, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequired}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &ControllerTLS{Identity: identity, CertificateNodeID: authn.NodeID}
	}()

	tests := []struct {
		name string
		// dialerTLS is node 2's; target the listener it dials.
		dialerTLS  *ControllerTLS
		target     *streamLayer
		targetLog  *lockedBuffer
		wantStatus handshakeStatus // 0 with wantDialer: a TLS failure
		wantDialer string          // in the dialer's error
		wantLog    string          // in the listener's log
	}{
		{
			name: "certificate naming another node", dialerTLS: wrongIDTLS, target: listener, targetLog: listenerLog,
			wantStatus: handshakeCertificateMismatch, wantDialer: "certificate does not name the node",
			wantLog: "presented the certificate of node 3",
		},
		{
			name: "certificate naming no node", dialerTLS: noNodeID(), target: listener, targetLog: listenerLog,
			wantStatus: handshakeCertificateMismatch, wantDialer: "certificate does not name the node",
			wantLog: "names no node id: a node certificate needs the URI SAN urn:strata:node:2",
		},
		{
			name: "certificate from another CA", dialerTLS: otherCATLS, target: listener, targetLog: listenerLog,
			wantDialer: "signed by a CA this node does not trust", wantLog: "the peer refused this node's certificate",
		},
		{
			name: "client certificate from another CA, the dialer trusting the listener", dialerTLS: trustingOtherCATLS, target: listener, targetLog: listenerLog,
			wantDialer: "the peer refused this node's certificate", wantLog: "signed by the CA of this node's --ssl-ca-file",
		},
		{
			name: "dialer without TLS, listener with", dialerTLS: nil, target: listener, targetLog: listenerLog,
			wantDialer: "CONTROLLER:SSL", wantLog: "the peer does not speak TLS",
		},
		{
			name: "dialer with TLS, listener without", dialerTLS: wrongIDTLS, target: plainListener, targetLog: plainListenerLog,
			wantDialer: "CONTROLLER:SSL", wantLog: "the peer speaks TLS but this node's controller listener does not",
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dialer, _ := startTLSLayer(t, 2, map[raft.ServerAddress]int32{raft.ServerAddress(test.target.Addr().String()): 1}, test.dialerTLS)
			err := dialOnce(t, dialer, test.target)
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			var refusal *handshakeError
			if test.wantStatus != 0 && (!errors.As(err, &refusal) || refusal.status != test.wantStatus) {
				t.Fatalf("Dial: %v, want status %v", err, test.wantStatus)
			}
			if !strings.Contains(err.Error(), test.wantDialer) {
				t.Fatalf("Dial: %v, want it to say %q", err, test.wantDialer)
			}
			waitForLog(t, test.targetLog, test.wantLog)
		})
	}

	// Each refused dialer counted once, whichever way it failed.
	if got := listener.refused.Load(); got != 5 {
		t.Errorf("listener counted %d refused connections, want 5", got)
	}

	t.Run("listener whose certificate names another node", func(t *testing.T) {
		impostorTLS, _ := nodeTLS(t, ca, 3)
		impostor, _ := startTLSLayer(t, 1, nil, impostorTLS)
		dialerTLS, _ := nodeTLS(t, ca, 2)
		dialer, _ := startTLSLayer(t, 2, map[raft.ServerAddress]int32{raft.ServerAddress(impostor.Addr().String()): 1}, dialerTLS)
		err := dialOnce(t, dialer, impostor)
		var refusal *handshakeError
		if !errors.As(err, &refusal) || refusal.status != handshakeCertificateMismatch || !strings.Contains(err.Error(), "presented the certificate of node 3") {
			t.Fatalf("Dial: %v, want a refusal naming node 3's certificate", err)
		}
	})
}

// waitForLog waits until logs holds want: the listener logs a refusal
// after the dialer has seen it.
func waitForLog(t *testing.T, logs *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener's log does not say %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControllerTLSRotation: replacing a node's certificate files takes
// effect for its next connection, without restarting its stream layer.
func TestControllerTLSRotation(t *testing.T) {
	ca := authntest.NewCA(t, "controller CA")
	otherCA := authntest.NewCA(t, "another CA")
	listenerTLS, _ := nodeTLS(t, ca, 1)
	listener, _ := startTLSLayer(t, 1, nil, listenerTLS)
	// Node 2 starts with a certificate of a CA node 1 does not trust.
	dialerTLS, files := nodeTLS(t, otherCA, 2)
	dialer, _ := startTLSLayer(t, 2, map[raft.ServerAddress]int32{raft.ServerAddress(listener.Addr().String()): 1}, dialerTLS)
	if err := dialOnce(t, dialer, listener); err == nil {
		t.Fatal("Dial with a certificate of another CA succeeded")
	}
	// The operator replaces node 2's files with a certificate of the
	// cluster's CA (key first, then certificate and CA).
	rotated := ca.WriteNodeFiles(t, t.TempDir(), 2, pkix.Name{CommonName: "node-2, rotated"})
	later := time.Now().Add(time.Minute) // a modification time the loader cannot mistake
	for _, pair := range [][2]string{{rotated.Key, files.Key}, {rotated.Cert, files.Cert}, {rotated.CA, files.CA}} {
		data, err := os.ReadFile(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pair[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(pair[1], later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := dialOnce(t, dialer, listener); err != nil {
		t.Fatalf("Dial after rotating the certificate: %v", err)
	}
}

// TestHandshakeCertificateMismatchGolden pins the refusal of a dialer whose
// certificate does not name the node it claims (status 5).
func TestHandshakeCertificateMismatchGolden(t *testing.T) {
	response := handshakeResponse{version: handshakeVersion, status: handshakeCertificateMismatch, responderNodeID: 1}
	checkGolden(t, "handshake-response-v3-certificate-mismatch.bin", response.encode())
	decoded, err := readHandshakeResponse(bytesReader(readGolden(t, "handshake-response-v3-certificate-mismatch.bin")))
	if err != nil || decoded != response {
		t.Fatalf("decode: %+v, %v", decoded, err)
	}
}

// TestControllerTLSNonvoterJoins: under controller TLS a node outside the
// quorum (a broker) joins as a non-voter over the RPC channel, follows the
// log over Raft, and its proposals are forwarded to the leader (refusals
// of wrong certificates: TestControllerTLSRefusals).
func TestControllerTLSNonvoterJoins(t *testing.T) {
	ca := authntest.NewCA(t, "controller CA")
	c := newTestClusterWith(t, 3, func(id int32, config *Config) {
		config.TLS, _ = nodeTLS(t, ca, id)
	})
	ctx := testContext(t)
	voters := map[int32]string{}
	for id, config := range c.configs {
		voters[id] = config.ControllerListen
	}
	join := func(id, certID int32) Config {
		dir := t.TempDir()
		if err := Format(dir, "test-cluster", id, voters); err != nil {
			t.Fatal(err)
		}
		config := c.configs[1]
		config.NodeID, config.DataDir, config.ControllerListen, config.Voters = id, dir, freeAddress(t), voters
		config.TLS, _ = nodeTLS(t, ca, certID)
		return config
	}

	c.configs[4] = join(4, 4)
	c.start(4)
	observer := c.stores[4]
	if err := observer.WaitReady(ctx); err != nil {
		t.Fatalf("non-voter ready: %v", err)
	}
	registerTestBrokers(t, ctx, observer, 1, 4)
	if _, err := observer.CreateTopic(ctx, TopicSpec{Name: "from-observer", Assignments: [][]int32{{4}}}); err != nil {
		t.Fatalf("proposal from the non-voter: %v", err)
	}
	_, leader := c.leader()
	waitState(t, leader, "the non-voter's topic on the leader", func(s *State) bool {
		_, ok := s.Topic("from-observer")
		return ok
	})
}
