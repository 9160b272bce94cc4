package broker

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
)

// oneOffsetsPartition is an offsets topic of one partition, led here.
type oneOffsetsPartition struct{}

func (oneOffsetsPartition) Leaders() ([]int32, error)                 { return []int32{1}, nil }
func (oneOffsetsPartition) PartitionExists(group.TopicPartition) bool { return true }
func (oneOffsetsPartition) TopicID(string) ([16]byte, bool)           { return [16]byte{}, false }

// heldLog is an empty offsets partition whose replay waits for release;
// the methods a load does not call are left to the nil group.Log.
type heldLog struct {
	group.Log
	release chan struct{}
	once    sync.Once
}

func (l *heldLog) Replay(func([]byte) error) (int64, error)    { <-l.release; return 0, nil }
func (l *heldLog) AwaitCommitted(int64, <-chan struct{}) error { return nil }
func (l *heldLog) Leading() bool                               { return true }
func (l *heldLog) done()                                       { l.once.Do(func() { close(l.release) }) }

// TestHeartbeatWhileGroupLoadingAnswersNone: a Heartbeat for a group whose
// __consumer_offsets partition is still being loaded is answered NONE, as
// Kafka's GroupCoordinator.handleHeartbeat answers it blindly, not
// COORDINATOR_LOAD_IN_PROGRESS; the other coordinator errors
// (NOT_COORDINATOR) are unchanged.
func TestHeartbeatWhileGroupLoadingAnswersNone(t *testing.T) {
	m := group.NewManager(group.ManagerConfig{Topic: oneOffsetsPartition{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(m.Close)
	c := &clientConn{server: &Server{groups: m}}
	heartbeat := func(what string, want *kerr.Error) {
		t.Helper()
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.Generation, req.MemberID = "orders", 1, "consumer-1"
		resp, err := handleHeartbeat(c, requestHeader{}, req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := resp.(*kmsg.HeartbeatResponse).ErrorCode; got != want.Code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	none := &kerr.Error{Message: "NONE", Code: 0}

	heartbeat("partition not led here", kerr.NotCoordinator)

	log := &heldLog{release: make(chan struct{})}
	t.Cleanup(log.done) // before m.Close, which waits for the load
	if err := m.Lead(0, log); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ShardFor("orders"); err != kerr.CoordinatorLoadInProgress {
		t.Fatalf("shard while loading: %v", err)
	}
	heartbeat("while loading", none)
}
