package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestDeleteGroupRetriedAfterItsTombstonesFailed: DeleteGroups deletes the
// group and writes the tombstones of its offsets and metadata under the
// group's lock. When the write fails the client is told
// COORDINATOR_NOT_AVAILABLE and retries; the group must still be there,
// Empty with its offsets, so that the retry deletes it (not
// GROUP_ID_NOT_FOUND, which left offsets that OffsetFetch still returned,
// that no DeleteGroups could remove and that expiry never looked at).
func TestDeleteGroupRetriedAfterItsTombstonesFailed(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	wantErr(t, "commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "g", GenerationID: -1}), nil)
	if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 42}}); err != nil {
		t.Fatal(err)
	}

	// DeleteGroups, whose tombstones cannot be written.
	log.set(func(l *memLog) { l.fail = kerr.CoordinatorNotAvailable })
	wantErr(t, "delete", sh.DeleteGroup("g"), kerr.CoordinatorNotAvailable)
	log.set(func(l *memLog) { l.fail = nil })
	if co, ok := sh.FetchOffset("g", tp("t", 0)); !ok || co.Offset != 42 {
		t.Fatalf("offset after the failed deletion: %+v %v, want 42 still committed", co, ok)
	}
	if d, err := c.Describe("g"); err != nil || d.State != StateEmpty {
		t.Fatalf("group after the failed deletion: %+v %v, want Empty", d, err)
	}

	// The client retries.
	wantErr(t, "retried delete", sh.DeleteGroup("g"), nil)
	if co, ok := sh.FetchOffset("g", tp("t", 0)); ok {
		t.Fatalf("offset after the retried deletion: %+v, want none", co)
	}
	again := loadedShard(t, log, clock)
	if co, ok := again.FetchOffset("g", tp("t", 0)); ok {
		t.Fatalf("offset after a reload: %+v, want none", co)
	}
}
