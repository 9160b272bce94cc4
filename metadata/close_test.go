package metadata

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// heldFuture is a raft.Future that Raft never resolves, as an Apply
// enqueued just before Shutdown is (hashicorp/raft gives such futures no
// shutdown channel: their Error blocks until released).
type heldFuture struct {
	called  chan struct{} // closed when Error is first called
	release chan struct{}
}

func (f heldFuture) Error() error {
	close(f.called)
	<-f.release
	return raft.ErrRaftShutdown
}

func (heldFuture) Index() uint64 { return 0 }

// TestCloseDoesNotWaitForUnresolvedFutures: a proposal whose Raft future is
// never resolved fails with ErrClosed when the Store closes, and Close
// returns (before, Close waited for the goroutine blocked on the future's
// Error, forever: seen as a 10-minute hang of a broker test's cleanup).
func TestCloseDoesNotWaitForUnresolvedFutures(t *testing.T) {
	dir, address := t.TempDir(), freeAddress(t)
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: address}); err != nil {
		t.Fatal(err)
	}
	store := openReady(t, testConfig(dir, address))
	future := heldFuture{called: make(chan struct{}), release: make(chan struct{})}
	defer close(future.release)
	awaited := make(chan error, 1)
	go func() { awaited <- store.await(context.Background(), future) }()
	<-future.called
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Minute): // a hang, not a timing threshold
		t.Fatal("Close waits for a Raft future that is never resolved")
	}
	if err := <-awaited; !errors.Is(err, ErrClosed) {
		t.Fatalf("the proposal: %v, want ErrClosed", err)
	}
}
