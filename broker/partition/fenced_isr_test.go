package partition

import (
	"slices"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestFencedFollowerDoesNotJoinTheISR: a caught-up follower whose broker
// the leader last saw fenced (the controller took it out of the ISR when
// its session ended or it began a controlled shutdown) gets no ISR
// expansion from a late fetch, as Kafka's leader proposes only unfenced
// replicas (KIP-841); once its broker is unfenced again, its next
// caught-up fetch proposes it, as any follower that caught up.
func TestFencedFollowerDoesNotJoinTheISR(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	a := assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2})
	p.ObserveRegistrations(a.Replicas, fencing{1: false, 2: false, 3: true})
	p.ApplyAssignment(a, t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if expand, err := p.FollowerFetched(3, end, t0); err != nil || expand != nil {
		t.Fatalf("caught-up fetch from fenced broker 3: proposal %v (%v), want none", expand, err)
	}
	p.ObserveRegistrations(a.Replicas, fencing{1: false, 2: false, 3: false})
	expand, err := p.FollowerFetched(3, end, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("caught-up fetch from broker 3 unfenced: proposal %v (%v), want [1 2 3]", expand, err)
	}
}
