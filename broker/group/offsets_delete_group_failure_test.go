package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestDeleteGroupRetriedAfterItsTombstonesFailed: DeleteGroups removes the
// group from the coordinator, then writes the tombstones of its offsets
// and metadata (handleDeleteGroups, and offset expiry, do both in that
// order). When the write fails the client is told
// COORDINATOR_NOT_AVAILABLE and retries; the retry must delete the group,
// whose offsets are still committed and served. It was answered
// GROUP_ID_NOT_FOUND instead (the coordinator had forgotten the group),
// leaving offsets that OffsetFetch still returned, that no DeleteGroups
// could remove and that expiry never looked at, until a reload brought
// the group back.
func TestDeleteGroupRetriedAfterItsTombstonesFailed(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	wantErr(t, "commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "g", GenerationID: -1}), nil)
	if err := sh.CommitOffsets("g", map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42}}); err != nil {
		t.Fatal(err)
	}

	// DeleteGroups, whose tombstones cannot be written.
	wantErr(t, "delete", c.Delete("g"), nil)
	log.set(func(l *memLog) { l.fail = kerr.CoordinatorNotAvailable })
	wantErr(t, "tombstones", sh.DeleteGroupData("g"), kerr.CoordinatorNotAvailable)
	log.set(func(l *memLog) { l.fail = nil })
	if co, ok := sh.FetchOffset("g", tp("t", 0)); !ok || co.Offset != 42 {
		t.Fatalf("offset after the failed deletion: %+v %v, want 42 still committed", co, ok)
	}

	// The client retries.
	wantErr(t, "retried delete", c.Delete("g"), nil)
	wantErr(t, "retried tombstones", sh.DeleteGroupData("g"), nil)
	if co, ok := sh.FetchOffset("g", tp("t", 0)); ok {
		t.Fatalf("offset after the retried deletion: %+v, want none", co)
	}
	again := loadedShard(t, log, clock)
	if co, ok := again.FetchOffset("g", tp("t", 0)); ok {
		t.Fatalf("offset after a reload: %+v, want none", co)
	}
}
