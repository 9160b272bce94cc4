package broker_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestWaitingJoinGroupDoesNotHoldElementCharge: a JoinGroup waits on
// the reader goroutine for the rebalance (group.initial.rebalance.delay,
// the members' rejoins, up to the rebalance timeout the client chose)
// and held its request memory meanwhile. With the element charge, a
// ~150 KB JoinGroup of 12,000 protocols held 12,000 × RequestElementBytes
// — here the whole queued.max.request.bytes — for all that time: no other
// connection's request (another member's JoinGroup, a follower's Fetch)
// was read meanwhile. As a Produce waiting for acks=all, a JoinGroup
// (and a SyncGroup) gives its request memory back before it waits.
func TestWaitingJoinGroupDoesNotHoldElementCharge(t *testing.T) {
	const pool = 8 << 20
	n := brokertest.Start(t, func(c *broker.Config) {
		c.MaxRequestBytes = 1 << 20
		c.QueuedMaxRequestBytes = pool
		c.GroupInitialRebalanceDelay = 3 * time.Second
	})
	join := &kmsg.JoinGroupRequest{Version: 3, Group: "g", SessionTimeoutMillis: 10000,
		RebalanceTimeoutMillis: 10000, ProtocolType: "consumer"}
	for i := range 12_000 {
		join.Protocols = append(join.Protocols, kmsg.JoinGroupRequestProtocol{Name: fmt.Sprintf("p%d", i), Metadata: []byte{}})
	}
	// Until the group coordinator is loaded a JoinGroup is answered at
	// once (an error): join again, a new group each time, until one waits.
	var joiner net.Conn
	for attempt := 0; joiner == nil; attempt++ {
		if attempt == 50 {
			t.Fatal("every JoinGroup was answered at once: none waits for its rebalance")
		}
		join.Group = fmt.Sprintf("g%d", attempt)
		frame := requestFrame(join, 7)
		conn, err := net.Dial("tcp", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			t.Logf("JoinGroup: %d-byte frame, %d elements, charged %d of a %d-byte pool, waits",
				len(frame), broker.RequestElements(join), int64(len(frame))+int64(broker.RequestElements(join))*broker.RequestElementBytes, pool)
			joiner = conn
			break
		}
		conn.Close()
		time.Sleep(100 * time.Millisecond)
	}

	other, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Write(requestFrame(&kmsg.ApiVersionsRequest{Version: 0}, 7)); err != nil {
		t.Fatal(err)
	}
	other.SetReadDeadline(time.Now().Add(time.Second))
	var size [4]byte
	_, otherErr := io.ReadFull(other, size[:])
	// The JoinGroup must still be waiting, or the case proves nothing.
	joiner.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := io.ReadFull(joiner, size[:]); err == nil {
		resp := make([]byte, binary.BigEndian.Uint32(size[:]))
		io.ReadFull(joiner, resp)
		t.Fatalf("the JoinGroup was answered already (%x): it did not wait", resp)
	}
	if otherErr != nil {
		t.Fatalf("an ApiVersions on another connection was not answered within 1s while a JoinGroup of %d elements waited for its rebalance: %v",
			broker.RequestElements(join), otherErr)
	}
}
