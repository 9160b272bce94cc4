//go:build e2e

package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
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

	handshake := func(version, channel byte) []byte {
		request := []byte("STRH")
		request = append(request, version)
		request = binary.BigEndian.AppendUint32(request, 2) // "node 2"
		request = binary.BigEndian.AppendUint32(request, 1) // the node's id
		request = append(request, byte(len(clusterID)))
		request = append(request, clusterID...)
		request = append(request, channel) // 0 Raft, 1 controller RPCs
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
		{name: "handshake without a secret (version 2)", send: [][]byte{handshake(2, 1), frame}},
		// This build's protocol, with a guessed proof.
		{name: "guessed proof (version 3)", send: [][]byte{handshake(3, 1), make([]byte, 32), frame}},
		// The Raft channel, where a peer could act as a leader: a vote
		// request for a term far ahead, as hashicorp/raft encodes it
		// (type 1, then a msgpack map), never reaches Raft.
		{name: "Raft channel without a secret (version 2)", send: [][]byte{handshake(2, 0), raftVoteRequest}},
		{name: "Raft channel, guessed proof (version 3)", send: [][]byte{handshake(3, 0), make([]byte, 32), raftVoteRequest}},
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

// TestControllerPortInsiderProbes: even a peer holding the cluster secret
// (here the node's own, generated in its data dir) cannot make a node touch
// files outside its data dir: a raw CreateTopic named ../x, proposed past
// every check a broker makes, is refused by the state machine, and a
// DeleteTopic of ../x leaves an unrelated directory x-0 beside the data dir
// alone; topics on a broker that does not exist, or with a config that is
// no config name, are refused too.
func TestControllerPortInsiderProbes(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := testContext(t, 30*time.Second)
	metadata, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secretText, err := os.ReadFile(filepath.Join(b.dataDir, "cluster.secret"))
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	for _, line := range strings.Split(string(secretText), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			secret = []byte(line)
			break
		}
	}
	bystander := filepath.Join(filepath.Dir(b.dataDir), "x-0")
	if err := os.MkdirAll(bystander, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bystander, "keep"), []byte("not Strata's"), 0o600); err != nil {
		t.Fatal(err)
	}

	// metadata/testdata/commands/create-topic-minimal.bin is CreateTopic
	// v1 of topic "t" with one partition on broker 1; rename it ../x.
	golden, err := os.ReadFile("../metadata/testdata/commands/create-topic-minimal.bin")
	if err != nil {
		t.Fatal(err)
	}
	if golden[2] != 1 || golden[3] != 't' {
		t.Fatalf("the golden CreateTopic changed: %x", golden)
	}
	create := append([]byte{golden[0], golden[1], 4}, "../x"...)
	create = append(create, golden[4:]...)
	remove := append([]byte{3, 1, 4}, "../x"...)
	remove = append(remove, make([]byte, 16)...)

	unknownReplica := createTopicEntry("insider-unknown-replica", 99, [2]string{})
	badConfig := createTopicEntry("insider-bad-config", 1, [2]string{"../segment.bytes", "1"})
	// The control: the same encoding with a registered broker and a real
	// config is a topic like any other.
	control := createTopicEntry("insider-control", 1, [2]string{"retention.ms", "3600000"})
	for _, command := range [][]byte{create, remove, unknownReplica, badConfig, control} {
		conn := insiderRPC(t, b.ctrl, metadata.Cluster, secret)
		status, message := proposeRaw(t, conn, command)
		conn.Close()
		t.Logf("command type %d: status %d %q", command[0], status, message)
	}
	// Entries apply in order: once the control (the last) is visible, so
	// is whatever came before it.
	var topics kadm.TopicDetails
	deadline := time.Now().Add(20 * time.Second)
	for {
		if topics, err = adm.ListTopics(ctx); err != nil {
			t.Fatal(err)
		}
		if topics.Has("insider-control") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"../x", "insider-unknown-replica", "insider-bad-config"} {
		if topics.Has(name) {
			t.Errorf("topic %s exists", name)
		}
	}
	if !topics.Has("insider-control") {
		t.Fatalf("the control topic, encoded the same way, was not created: the probes prove nothing (topics %v)", topics.Names())
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(b.dataDir), "x-0", "keep")); err != nil {
		t.Fatalf("the directory beside the data dir was touched: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(b.dataDir)); len(entries) != 3 { // data, strata.log, x-0
		var names []string
		for _, entry := range entries {
			names = append(names, entry.Name())
		}
		t.Fatalf("the data dir's parent holds %v, want data, strata.log and x-0", names)
	}
}

// createTopicEntry is a CreateTopic v1 Raft entry (metadata/doc.go) of a
// topic with one partition on replica, and at most one config.
func createTopicEntry(name string, replica int32, config [2]string) []byte {
	entry := []byte{2, 1, byte(len(name))}
	entry = append(entry, name...)
	id := make([]byte, 16)
	rand.Read(id)
	entry = append(entry, id...)
	entry = append(entry, 0)                                                     // not internal
	entry = binary.BigEndian.AppendUint64(entry, uint64(time.Now().UnixMilli())) // created at
	if config[0] == "" {
		entry = append(entry, 0)
	} else {
		entry = append(entry, 1, byte(len(config[0])))
		entry = append(entry, config[0]...)
		entry = append(entry, byte(len(config[1])))
		entry = append(entry, config[1]...)
	}
	entry = append(entry, 1, 1) // one partition, one replica
	entry = binary.BigEndian.AppendUint32(entry, uint32(replica))
	entry = binary.BigEndian.AppendUint32(entry, uint32(replica)) // leader
	entry = binary.BigEndian.AppendUint32(entry, 0)               // leader epoch
	entry = append(entry, 1)                                      // ISR
	entry = binary.BigEndian.AppendUint32(entry, uint32(replica))
	return binary.BigEndian.AppendUint32(entry, 0) // partition epoch
}

// insiderRPC opens a controller RPC connection to the node at address
// (node id 1) as node 2, proving secret in the version 3 handshake
// (metadata/doc.go).
func insiderRPC(t *testing.T, address, clusterID string, secret []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	request := []byte("STRH\x03")
	request = binary.BigEndian.AppendUint32(request, 2)
	request = binary.BigEndian.AppendUint32(request, 1)
	request = append(request, byte(len(clusterID)))
	request = append(request, clusterID...)
	request = append(request, 1) // the RPC channel
	nonce := make([]byte, 32)
	rand.Read(nonce)
	request = append(request, nonce...)
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	response := make([]byte, 10+32+32)
	if _, err := io.ReadFull(conn, response); err != nil || response[5] != 0 {
		t.Fatalf("handshake response %x, %v", response, err)
	}
	transcript := append(append(slices.Clone(request), response[:10]...), response[10:42]...)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("strata controller handshake v3: dialer"))
	mac.Write(transcript)
	if _, err := conn.Write(mac.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	verdict := make([]byte, 1)
	if _, err := io.ReadFull(conn, verdict); err != nil || verdict[0] != 0 {
		t.Fatalf("handshake verdict %x, %v: the secret was not accepted", verdict, err)
	}
	conn.SetDeadline(time.Time{})
	return conn
}

// proposeRaw sends one controller RPC "propose" of a raw Raft entry and
// returns the response's status and message.
func proposeRaw(t *testing.T, conn net.Conn, entry []byte) (byte, string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	frame := binary.BigEndian.AppendUint32(nil, uint32(1+len(entry)))
	frame = append(append(frame, 1), entry...)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	header := make([]byte, 4)
	if _, err := io.ReadFull(conn, header); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, binary.BigEndian.Uint32(header))
	if _, err := io.ReadFull(conn, payload); err != nil {
		t.Fatal(err)
	}
	// status uint8, log index uint64, message string (uvarint length).
	message := ""
	if len(payload) > 9 {
		length, n := binary.Uvarint(payload[9:])
		if n > 0 && int(length) <= len(payload[9+n:]) {
			message = string(payload[9+n : 9+n+int(length)])
		}
	}
	return payload[0], message
}

// raftVoteRequest is hashicorp/raft's RequestVote RPC (type byte 1, then a
// msgpack map) from server "2" for term 1000.
var raftVoteRequest = append([]byte{1, 0x82, 0xa2, 'I', 'D', 0xc4, 1, '2', 0xa4, 'T', 'e', 'r', 'm', 0xcd}, 0x03, 0xe8)

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
