//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// linkProxy stands between the nodes of a cluster on one listener of one
// node (its controller or inter-broker listener): peers dial the proxy,
// which forwards to the node. It can cut the node off: then it refuses and
// closes every connection to the node and, for controller links, every
// connection a cut-off node dials (it reads the dialer's node id from the
// controller handshake, "STRH" version dialer-id …). It can also delay the
// link: every chunk either way is held back by the current delay (a latency,
// not a throughput cap). Clients talk to the node's client listener directly
// and are never cut.
type linkProxy struct {
	t          *testing.T
	ln         net.Listener
	target     string
	node       int32
	controller bool
	isolated   func(int32) bool
	delay      atomic.Int64 // nanoseconds each chunk waits, both ways

	mu    sync.Mutex
	conns map[net.Conn]int32 // open connections and the dialer node (-1: unknown)
}

func startLinkProxy(t *testing.T, node int32, target string, controller bool, isolated func(int32) bool) *linkProxy {
	return startLinkProxyOn(t, listenLoopback(t), node, target, controller, isolated)
}

// startLinkProxyOn is startLinkProxy on a listener opened beforehand (so it
// cannot take a port freePort picked for a broker).
func startLinkProxyOn(t *testing.T, ln net.Listener, node int32, target string, controller bool, isolated func(int32) bool) *linkProxy {
	p := &linkProxy{t: t, ln: ln, target: target, node: node, controller: controller, isolated: isolated, conns: map[net.Conn]int32{}}
	t.Cleanup(func() { ln.Close(); p.cut(func(int32) bool { return true }) })
	go p.accept()
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *linkProxy) serve(c net.Conn) {
	dialer := int32(-1)
	var head []byte
	if p.controller {
		// "STRH", version, dialer node id (int32), …
		head = make([]byte, 9)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, head); err != nil || !bytes.Equal(head[:4], []byte("STRH")) {
			c.Close()
			return
		}
		c.SetReadDeadline(time.Time{})
		dialer = int32(binary.BigEndian.Uint32(head[5:9]))
	}
	if p.isolated(p.node) || (dialer >= 0 && p.isolated(dialer)) {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if _, err := up.Write(head); err != nil {
		c.Close()
		up.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = dialer, dialer
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// setDelay holds every chunk on this link back by d from now on (0: none).
func (p *linkProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

// pipe copies src to dst, each chunk leaving the link's delay after it
// arrived: chunks queue up while they wait, so the link keeps its bandwidth.
func (p *linkProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		data []byte
		due  time.Time
	}
	queue := make(chan chunk, 256)
	go func() {
		defer close(queue)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{append([]byte(nil), buf[:n]...), time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			go func() {
				for range queue { // until serve closes src
				}
			}()
			return
		}
	}
}

// cut closes the open connections of the node or of dialers for which
// isolated holds.
func (p *linkProxy) cut(isolated func(int32) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for conn, dialer := range p.conns {
		if isolated(p.node) || (dialer >= 0 && isolated(dialer)) {
			conn.Close()
		}
	}
}

// TestLeaderIsolation: a partition leader is cut off from the other
// brokers and the metadata quorum while clients still reach it. It cannot
// acknowledge acks=all writes; the others elect a new leader that keeps
// taking writes; after healing, the old leader truncates the tail only it
// had (written with acks=1) on the new leader's DivergingEpoch answer and
// rejoins the ISR with the same bytes.
func TestLeaderIsolation(t *testing.T) {
	var mu sync.Mutex
	isolatedNode := int32(-1)
	isolated := func(id int32) bool { mu.Lock(); defer mu.Unlock(); return id == isolatedNode }

	// Every node's controller and inter-broker listeners are reached
	// through proxies; clients reach it directly.
	var proxies []*linkProxy
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		internal := freePort(t)
		ctrlProxy := startLinkProxy(t, id, b.ctrl, true, isolated)
		internalProxy := startLinkProxy(t, id, internal, false, isolated)
		proxies = append(proxies, ctrlProxy, internalProxy)
		return ctrlProxy.addr(), []string{"--controller-advertise", ctrlProxy.addr(),
			"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + internal,
			"--advertise", "CLIENT=" + b.addr + ",INTERNAL=" + internalProxy.addr(),
			"--inter-broker-listener", "INTERNAL", "--replica-lag-time-max-ms", "2000"}
	})
	nodes := c.nodes
	ctx := testContext(t, 3*time.Minute)
	adm := c.admin()
	topic := uniqueTopic(t)
	if resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	all := c.client(t, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	for i := range 100 {
		if err := all.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("before-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var leader int32
	eventually(t, 20*time.Second, "a full ISR", func() error {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		p := m.Topics[topic].Partitions[0]
		leader = p.Leader
		if len(p.ISR) != 3 {
			return fmt.Errorf("ISR %v", p.ISR)
		}
		return nil
	})

	// Cut the leader off from the other brokers and the quorum.
	mu.Lock()
	isolatedNode = leader
	mu.Unlock()
	for _, p := range proxies {
		p.cut(isolated)
	}
	// Requests straight to the isolated leader (a raw connection, so no
	// client library reroutes them after a metadata refresh): acks=all
	// cannot be acknowledged; acks=1 writes land only there (a divergent
	// tail).
	raw := dialRaw(t, nodes[leader].addr)
	for i := range 3 {
		req := produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), fmt.Sprintf("isolated-acks-all-%d", i)))
		req.TimeoutMillis = 3000
		p := raw.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if p.ErrorCode == 0 {
			t.Fatalf("acks=all write %d acknowledged by a leader cut off from its followers and the quorum", i)
		}
		t.Logf("acks=all to the isolated leader: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	divergent := 0
	for i := range 20 {
		req := produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), fmt.Sprintf("divergent-%d", i)))
		req.Acks = 1
		if p := raw.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode == 0 {
			divergent++
		}
	}
	// The others elect a new leader and take acks=all writes.
	others := c.client(t, kgo.SeedBrokers(c.seeds(leader)...), manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	var acked []string
	eventually(t, 30*time.Second, "writes through a new leader", func() error {
		v := fmt.Sprintf("after-%d", len(acked))
		if err := others.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
			return err
		}
		acked = append(acked, v)
		return nil
	})
	for i := range 50 {
		v := fmt.Sprintf("after-more-%d", i)
		if err := others.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, v)
	}
	t.Logf("isolated leader %d took %d acks=1 writes of its own; the others acknowledged %d", leader, divergent, len(acked))

	// Heal: the old leader truncates its divergent tail and rejoins.
	mu.Lock()
	isolatedNode = -1
	mu.Unlock()
	eventually(t, 60*time.Second, "the old leader back in the ISR with the same bytes", func() error {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		p := m.Topics[topic].Partitions[0]
		if len(p.ISR) != 3 || p.Leader == leader {
			return fmt.Errorf("leader %d ISR %v", p.Leader, p.ISR)
		}
		want := partitionLog(t, nodes[p.Leader].dataDir, topic, 0)
		if got := partitionLog(t, nodes[leader].dataDir, topic, 0); !bytes.Equal(got, want) {
			return fmt.Errorf("old leader holds %d bytes, the new leader %d", len(got), len(want))
		}
		return nil
	})
	// It truncated on the new leader's DivergingEpoch answer to its fetch
	// (KIP-595: its last fetched epoch is one the new leader ended
	// earlier), not after an OffsetForLeaderEpoch round trip.
	if !nodes[leader].logContains("the leader's log diverges from this replica's: truncated to where they agree") {
		t.Fatalf("the old leader's log (%s) shows no truncation on a DivergingEpoch answer", nodes[leader].logPath)
	}
	records := consumeAll(t, c.seeds()[0], topic, 100+len(acked), kgo.SeedBrokers(c.seeds()...))
	for _, r := range records {
		if strings.HasPrefix(string(r.Value), "divergent-") || strings.HasPrefix(string(r.Value), "isolated-") {
			t.Fatalf("a write only the isolated leader took survived: %s at offset %d", r.Value, r.Offset)
		}
	}
}
