//go:build e2e

package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestNemesisChecker feeds the checker known damage, without processes: a
// checker that cannot see a lost, moved or duplicated record, or two
// replicas that differ, would let every scenario pass.
func TestNemesisChecker(t *testing.T) {
	tp := nemesisTopic{name: "t", partitions: 2, valueSize: 20}
	ledger := newAckLedger()
	for id, at := range map[string]ackedAt{
		"a": {"t", 0, 0}, // read where acknowledged
		"b": {"t", 0, 1}, // never read: lost
		"c": {"t", 1, 0}, // read at another offset: lost
		"d": {"t", 1, 1}, // read twice: duplicated
		"e": {"u", 0, 0}, // another topic's: not counted here
	} {
		ledger.acked[id], ledger.sent[id] = at, 0
	}
	ledger.sent["f"] = 0 // sent, never acknowledged, read twice: duplicated
	read := map[string][]int64{
		"a": {position(0, 0)},
		"c": {position(1, 5)},
		"d": {position(1, 1), position(1, 2)},
		"f": {position(0, 3), position(0, 4)},
	}
	r := &nemesisReport{}
	checkRecords(tp, ledger, read, nil, r)
	if r.acked != 4 || r.lost != 2 || r.duplicated != 2 || len(r.violations) != 0 {
		t.Fatalf("acked %d lost %d duplicated %d violations %v; want 4, 2, 2, none", r.acked, r.lost, r.duplicated, r.violations)
	}
	read["x"] = []int64{position(0, 9)}
	checkRecords(tp, ledger, read, nil, r)
	if len(r.violations) != 1 {
		t.Fatalf("a record no producer sent: violations %v", r.violations)
	}

	// Partitions that could not be read: their records are a violation,
	// not counted lost.
	r = &nemesisReport{}
	checkRecords(tp, ledger, map[string][]int64{"c": {position(1, 0)}, "d": {position(1, 1)}}, map[int32]bool{0: true}, r)
	if r.acked != 4 || r.lost != 0 || len(r.violations) != 1 {
		t.Fatalf("partition 0 unreadable: acked %d lost %d violations %v; want 4, 0 and one violation", r.acked, r.lost, r.violations)
	}

	// Replicas: batches at offsets 0 (records 0-1) and 2 (record 2).
	batch := func(base int64, delta uint32, fill byte) []byte {
		b := make([]byte, 61+4)
		binary.BigEndian.PutUint64(b[0:], uint64(base))
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		binary.BigEndian.PutUint32(b[23:], delta)
		for i := 61; i < len(b); i++ {
			b[i] = fill
		}
		return b
	}
	nodes := map[int32]*brokerProcess{}
	write := func(id int32, batches ...[]byte) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(filepath.Join(dir, "t-0"), 0o755); err != nil {
			t.Fatal(err)
		}
		var data []byte
		for _, b := range batches {
			data = append(data, b...)
		}
		data = append(data, make([]byte, 30)...) // a torn tail
		if err := os.WriteFile(filepath.Join(dir, "t-0", "00000000000000000000.log"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		nodes[id] = &brokerProcess{dataDir: dir}
	}
	write(1, batch(0, 1, 'x'), batch(2, 0, 'y'))
	write(2, batch(0, 1, 'x'), batch(2, 0, 'y'))
	if why := divergentReplicas(nodes, "t", 0, 3); why != "" {
		t.Fatalf("identical replicas: %s", why)
	}
	write(3, batch(0, 1, 'x'), batch(2, 0, 'z'))
	if why := divergentReplicas(nodes, "t", 0, 2); why != "" {
		t.Fatalf("replicas that differ only at the high watermark: %s", why)
	}
	if why := divergentReplicas(nodes, "t", 0, 3); why == "" {
		t.Fatal("replicas with different bytes below the high watermark: not seen")
	}
	write(3, batch(0, 1, 'x'))
	if why := divergentReplicas(nodes, "t", 0, 3); why == "" {
		t.Fatal("a replica lacking a batch below the high watermark: not seen")
	}
}

// TestNemesisLinkDelay: a delayed linkProxy holds each chunk back by the
// delay both ways (a round trip takes at least twice the delay) and keeps
// the bytes and their order; with the delay set back to 0 the link is
// prompt again, and a cut closes it.
func TestNemesisLinkDelay(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var cut atomic.Bool
	p := startLinkProxy(t, 1, echo.Addr().String(), false, func(int32) bool { return cut.Load() })
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(msg string) time.Duration {
		start := time.Now()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo through the proxy: %q, want %q", got, msg)
		}
		return time.Since(start)
	}
	roundTrip("prompt")
	p.setDelay(150 * time.Millisecond)
	if d := roundTrip("delayed"); d < 300*time.Millisecond {
		t.Fatalf("round trip over a link delayed 150 ms each way took %v", d)
	}
	p.setDelay(0)
	roundTrip("prompt again")
	cut.Store(true)
	p.cut(func(int32) bool { return true })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a cut link", n)
	}
}
