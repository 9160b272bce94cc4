package metadata

import (
	"testing"

	"github.com/google/uuid"
)

// TestControllerDoesNotUnfenceANewIncarnationOnItsPredecessorsHeartbeats:
// the heartbeats of a broker's earlier incarnation say nothing of the
// process that registers next (DESIGN.md, "Incarnations"): the new,
// fenced registration stays fenced until it heartbeats itself, so it is
// neither unfenced nor elected on the strength of a process that is gone.
func TestControllerDoesNotUnfenceANewIncarnationOnItsPredecessorsHeartbeats(t *testing.T) {
	ctx := testContext(t)
	store, _, stopBeats := threeBeatingBrokers(t, ctx)
	defer func() {
		for _, stop := range stopBeats {
			stop()
		}
	}()
	// Broker 2's process stops (its last heartbeat is recent) and a new
	// one registers on its directory, then never heartbeats.
	stopBeats[2]()
	restarted := testRegistration(2)
	restarted.IncarnationID, restarted.DirectoryID, restarted.CleanShutdown = uuid.New(), [16]byte{2}, true
	epoch, err := store.RegisterBroker(ctx, restarted)
	if err != nil {
		t.Fatal(err)
	}
	store.controller.reconcile(make(chan struct{}))
	if b, _ := store.State().Broker(2); !b.Fenced {
		t.Fatalf("broker 2 at epoch %d unfenced before it heartbeated: %+v", epoch, b)
	}
}
