package metadata

import (
	"slices"
	"testing"
)

// TestElectionPicksOnlySafeReplicas: a clean election (a leader that
// cannot lead, and the preferred-leader pass through electable) picks only
// a replica in the ISR that is registered, unfenced and not shutting down
// (alive), in replica order; the new ISR keeps the live members only; with
// none, nobody leads and the ISR is what is left of it. The code was
// already safe here: the test pins it, since the ISR's meaning (everything
// below the high watermark) is what makes the choice safe.
func TestElectionPicksOnlySafeReplicas(t *testing.T) {
	partition := Partition{Replicas: []int32{1, 2, 3, 4}, Leader: 1, ISR: []int32{1, 3, 4}}
	for _, c := range []struct {
		name    string
		alive   []int32 // registered, unfenced, not shutting down
		leader  int32
		isr     []int32
		electOK []int32 // electable replicas
	}{
		{"the first live in-sync replica in replica order", []int32{2, 3, 4}, 3, []int32{3, 4}, []int32{3, 4}},
		{"never a live replica outside the ISR", []int32{2}, -1, nil, nil},
		{"a fenced, unregistered or shutting-down in-sync replica is not alive", []int32{2, 4}, 4, []int32{4}, []int32{4}},
		{"the leader itself when alive", []int32{1, 2, 3, 4}, 1, []int32{1, 3, 4}, []int32{1, 3, 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			alive := func(id int32) bool { return slices.Contains(c.alive, id) }
			leader, isr := electFromISR(partition, alive)
			if leader != c.leader || !slices.Equal(isr, c.isr) {
				t.Fatalf("elected %d with ISR %v, want %d with %v", leader, isr, c.leader, c.isr)
			}
			for _, r := range partition.Replicas {
				if got := electable(partition, r, alive); got != slices.Contains(c.electOK, r) {
					t.Errorf("replica %d electable %v", r, got)
				}
			}
		})
	}
}
