//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestControllerPortProbes replays, against a running node, what anyone who
// reaches the controller port could do before it was authenticated: the
// cluster id is public (every Metadata response carries it) and so are node
// ids, and that was all the handshake asked for. A peer without the cluster
// secret now gets nothing: the topic it tries to delete stays, and nothing
// appears in the data dir.
func TestControllerPortProbes(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := testContext(t, 30*time.Second)
	topic := legalTopic(t)
	if resp := createOne(t, adm, 1, 1, nil, topic); resp.Err != nil {
		t.Fatal(resp.Err)
	}
	metadata, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clusterID := metadata.Cluster
	before := dataDirEntries(t, b.dataDir)

	// The controller RPC "propose" of a DeleteTopic command for topic
	// (metadata/doc.go: RPC kind 1, then the Raft entry: type 3, version 1,
	// name, zero topic id).
	propose := []byte{1, 3, 1, byte(len(topic))}
	propose = append(propose, topic...)
	propose = append(propose, make([]byte, 16)...)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(propose)))
	frame = append(frame, propose...)

	handshake := func(version byte) []byte {
		request := []byte("STRH")
		request = append(request, version)
		request = binary.BigEndian.AppendUint32(request, 2) // "node 2"
		request = binary.BigEndian.AppendUint32(request, 1) // the node's id
		request = append(request, byte(len(clusterID)))
		request = append(request, clusterID...)
		request = append(request, 1) // the RPC channel
		if version >= 3 {
			request = append(request, make([]byte, 32)...) // a nonce
		}
		return request
	}
	probes := []struct {
		name string
		send [][]byte // written in turn, each after reading what is there
	}{
		// The protocol every build spoke before the secret: the handshake
		// then the proposal.
		{name: "handshake without a secret (version 2)", send: [][]byte{handshake(2), frame}},
		// This build's protocol, with a guessed proof.
		{name: "guessed proof (version 3)", send: [][]byte{handshake(3), make([]byte, 32), frame}},
		{name: "proposal without a handshake", send: [][]byte{frame}},
	}
	for _, probe := range probes {
		t.Run(probe.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", b.ctrl)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			var received bytes.Buffer
			for _, data := range probe.send {
				if _, err := conn.Write(data); err != nil {
					break // closed on us: that is the answer
				}
				// Read what the node answers to this step before the next.
				buffer := make([]byte, 4096)
				conn.SetReadDeadline(time.Now().Add(time.Second))
				n, err := conn.Read(buffer)
				received.Write(buffer[:n])
				if err != nil && !isTimeout(err) {
					break
				}
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(conn)
			received.Write(rest)
			t.Logf("node answered %d bytes, then closed the connection", received.Len())
		})
	}

	// The node is unchanged: the topic is there, the data dir is as it was.
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has(topic) {
		t.Fatalf("topic %s was deleted through the controller port by a peer without the cluster secret", topic)
	}
	if after := dataDirEntries(t, b.dataDir); after != before {
		t.Fatalf("the data dir changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	log, _ := os.ReadFile(b.logPath)
	for _, want := range []string{"controller connection refused", "versions before 3 do not authenticate", "does not hold this cluster's secret"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the node's log does not say %q", want)
		}
	}
}

func isTimeout(err error) bool {
	netErr, ok := err.(net.Error)
	return ok && netErr.Timeout()
}

// dataDirEntries lists the partition directories of a data dir (the
// metadata log changes on its own, partitions only by command).
func dataDirEntries(t *testing.T, dataDir string) string {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, entry := range entries {
		if entry.IsDir() && entry.Name() != "metadata" && entry.Name() != "remote-cache" {
			names = append(names, entry.Name())
		}
	}
	return strings.Join(names, "\n") + "\n" + filepath.Base(dataDir)
}
