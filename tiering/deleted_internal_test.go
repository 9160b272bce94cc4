package tiering

import (
	"testing"

	"github.com/google/uuid"
)

// deletedSegments remembers the last segments added, up to its capacity,
// forgetting the oldest first; adding one it holds changes nothing.
func TestDeletedSegmentsRemembersTheLatest(t *testing.T) {
	d := newDeletedSegments(3)
	ids := make([]uuid.UUID, 5)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for _, id := range ids[:3] {
		d.add(id)
	}
	d.add(ids[0]) // held already: not added again, so ids[0] stays oldest
	d.add(ids[3]) // forgets ids[0]
	d.add(ids[4]) // forgets ids[1]
	for i, want := range []bool{false, false, true, true, true} {
		if got := d.contains(ids[i]); got != want {
			t.Errorf("segment %d: contains %v, want %v", i, got, want)
		}
	}
	if len(d.set) != 3 {
		t.Errorf("%d segments remembered, capacity 3", len(d.set))
	}
	var none *deletedSegments
	if none.contains(ids[4]) {
		t.Error("a nil record contains a segment")
	}
}
