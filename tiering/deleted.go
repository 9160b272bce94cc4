package tiering

import (
	"sync"

	"github.com/google/uuid"
)

// deletedSegmentsRemembered is how many of the latest deleted segments a
// Tier remembers (16 bytes each, plus the set's overhead).
const deletedSegmentsRemembered = 4096

// deletedSegments remembers the segments deleted last (DeleteSegment), so
// that what a read of one already under way when it was deleted brings
// back (a GET's chunks, a decoded index) is not put into the caches after
// they dropped the segment: it would take room from live segments until
// the caches pushed it out. Bounded: a read that outlives more deletions
// than it remembers may still cache its segment's bytes, which is room
// only (segment IDs are never reused, so nothing wrong is ever served).
//
// A cache that checks it under the lock that also guards its removal of
// a segment, or that checks it after its put and removes what it put,
// never keeps a deleted segment's entry, as long as add comes before the
// caches drop the segment. A nil *deletedSegments remembers nothing. Safe
// for concurrent use.
type deletedSegments struct {
	mu    sync.Mutex // guards set, order and next
	set   map[uuid.UUID]struct{}
	order []uuid.UUID // a ring of the set's members, oldest at next once full
	next  int
}

func newDeletedSegments(capacity int) *deletedSegments {
	return &deletedSegments{set: make(map[uuid.UUID]struct{}, capacity), order: make([]uuid.UUID, 0, capacity)}
}

func (d *deletedSegments) add(segment uuid.UUID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.set[segment]; ok {
		return
	}
	if len(d.order) < cap(d.order) {
		d.order = append(d.order, segment)
	} else {
		delete(d.set, d.order[d.next])
		d.order[d.next] = segment
		d.next = (d.next + 1) % len(d.order)
	}
	d.set[segment] = struct{}{}
}

func (d *deletedSegments) contains(segment uuid.UUID) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.set[segment]
	return ok
}
